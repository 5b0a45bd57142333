import { topicsFor } from "@orbit/domain"
import { describe, expect, it } from "vitest"
import { delayTiersOf, ripeAt, tierFor } from "../src/DelayQueue.ts"

const tiers = delayTiersOf(topicsFor("x_"))

describe("delay queue tiers", () => {
  it("parks a wait in the largest tier not exceeding it", () => {
    expect(tierFor(tiers, 500)).toBeUndefined()
    expect(tierFor(tiers, 1_000)?.delayMs).toBe(1_000)
    expect(tierFor(tiers, 59_000)?.delayMs).toBe(30_000)
    expect(tierFor(tiers, 86_400_000)?.delayMs).toBe(14_400_000)
  })

  it("releases a tier's record no earlier than its append time plus the tier's delay", () => {
    expect(ripeAt(tiers[2]!, 1_000)).toBe(31_000)
  })
})
