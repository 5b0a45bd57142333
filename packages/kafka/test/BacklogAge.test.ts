import { describe, expect, it } from "vitest"
import { BacklogAge } from "../src/BacklogAge.ts"

describe("BacklogAge", () => {
  it("is 0 with nothing waiting, and the time since the oldest waiting record's end offset was first seen otherwise", () => {
    const age = new BacklogAge()
    expect(age.observe("p0", 5n, 5n, 1_000)).toBe(0)
    // Records 5..7 arrive; seen at t=2000.
    expect(age.observe("p0", 8n, 5n, 2_000)).toBe(0)
    expect(age.observe("p0", 8n, 5n, 4_000)).toBe(2_000)
    // More arrive at t=5000; the oldest waiting (offset 5) is still the one seen at t=2000.
    expect(age.observe("p0", 12n, 5n, 5_000)).toBe(3_000)
    // 5..7 done: the oldest waiting (offset 8) was first seen at t=5000.
    expect(age.observe("p0", 12n, 8n, 6_000)).toBe(1_000)
    expect(age.observe("p0", 12n, 12n, 7_000)).toBe(0)
  })

  it("does not grow under a steady small backlog that keeps being worked off", () => {
    const age = new BacklogAge()
    for (let t = 0; t < 100; t++) {
      // Each second two records arrive and the two of the previous second are done.
      const end = BigInt(2 * (t + 1))
      const done = BigInt(2 * t)
      expect(age.observe("p", end, done, t * 1_000)).toBe(0)
    }
  })

  it("keeps partitions apart, starts over when a log's end goes back, and stays bounded", () => {
    const age = new BacklogAge(3)
    age.observe("a", 10n, 0n, 0)
    age.observe("b", 10n, 10n, 0)
    expect(age.observe("b", 10n, 10n, 9_000)).toBe(0)
    expect(age.observe("a", 10n, 0n, 9_000)).toBe(9_000)
    // The broker was replaced: offsets start from 0 again.
    expect(age.observe("a", 3n, 0n, 10_000)).toBe(0)
    // Past the bound, the oldest sample is kept: the age is never younger than it was.
    for (let t = 1; t <= 10; t++) age.observe("a", BigInt(3 + t), 0n, 10_000 + t * 1_000)
    expect(age.observe("a", 13n, 0n, 30_000)).toBe(20_000)
  })
})
