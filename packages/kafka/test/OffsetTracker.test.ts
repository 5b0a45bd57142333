import { describe, expect, it } from "vitest"
import { OffsetTracker } from "../src/OffsetTracker.ts"

describe("OffsetTracker", () => {
  it("commits only the contiguous finished prefix", () => {
    const t = new OffsetTracker()
    for (const o of [5n, 6n, 7n, 8n]) t.start(o)
    t.finish(6n)
    t.finish(8n)
    expect(t.committable()).toBeUndefined()
    t.finish(5n)
    expect(t.committable()).toBe(7n)
    t.finish(7n)
    expect(t.committable()).toBe(9n)
    expect(t.inFlight).toBe(0)
  })
})
