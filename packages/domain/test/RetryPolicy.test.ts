import { describe, expect, it } from "@effect/vitest"
import { DEFAULT_RETRY_POLICY, delayAfterAttempt, maxAttempts, nextAttemptAt, normalizeRetryPolicy } from "../src/RetryPolicy.ts"

describe("retry arithmetic", () => {
  it("default: 7 attempts - immediately, then 1 min, 5 min, 30 min, 2 h, 8 h, 24 h", () => {
    expect(maxAttempts(DEFAULT_RETRY_POLICY)).toBe(7)
    expect([1, 2, 3, 4, 5, 6, 7].map((a) => delayAfterAttempt(DEFAULT_RETRY_POLICY, a))).toEqual([
      60, 300, 1800, 7200, 28800, 86400, undefined
    ])
  })

  it("exponential doubles from the initial delay up to the cap", () => {
    const p = normalizeRetryPolicy({ strategy: "exponential", max_attempts: 6, initial_delay_seconds: 10, max_delay_seconds: 50 })
    expect([1, 2, 3, 4, 5, 6].map((a) => delayAfterAttempt(p, a))).toEqual([10, 20, 40, 50, 50, undefined])
    expect(normalizeRetryPolicy({ strategy: "exponential", max_attempts: 2 })).toEqual({
      strategy: "exponential", max_attempts: 2, initial_delay_seconds: 60, max_delay_seconds: 86400
    })
  })

  it("fixed and custom", () => {
    expect(delayAfterAttempt({ strategy: "fixed", max_attempts: 3, delay_seconds: 7 }, 2)).toBe(7)
    expect(delayAfterAttempt({ strategy: "fixed", max_attempts: 3, delay_seconds: 7 }, 3)).toBeUndefined()
    const custom = { strategy: "custom" as const, delays_seconds: [1, 2] }
    expect(maxAttempts(custom)).toBe(3)
    expect([1, 2, 3].map((a) => delayAfterAttempt(custom, a))).toEqual([1, 2, undefined])
    expect(maxAttempts({ strategy: "custom", delays_seconds: [] })).toBe(1)
  })

  it("never early, at most +10 % jitter, Retry-After honoured when longer, capped at 24 h", () => {
    const policy = { strategy: "fixed" as const, max_attempts: 5, delay_seconds: 100 }
    const at = (random: number, retryAfterSeconds?: number) =>
      nextAttemptAt({ policy, attempt: 1, failedAt: 1_000_000, random, retryAfterSeconds })
    expect(at(0)).toBe(1_000_000 + 100_000)
    expect(at(0.999999)).toBeLessThanOrEqual(1_000_000 + 110_000)
    for (let i = 0; i < 1000; i++) {
      const t = at(Math.random())!
      expect(t).toBeGreaterThanOrEqual(1_100_000)
      expect(t).toBeLessThanOrEqual(1_110_000)
    }
    expect(at(0, 30)).toBe(1_100_000)
    expect(at(0, 500)).toBe(1_000_000 + 500_000)
    expect(at(0, 10 ** 9)).toBe(1_000_000 + 86_400_000)
    expect(nextAttemptAt({ policy, attempt: 5, failedAt: 0, random: 0 })).toBeUndefined()
  })
})
