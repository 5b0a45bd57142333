import { ConfigProvider, Effect, Layer } from "effect"
import { describe, expect, it } from "vitest"
import { KeyLookupLimiter } from "../src/RateLimiter.ts"

const limiter = (env: Record<string, string>) =>
  Effect.runSync(
    Effect.gen(function*() {
      return yield* KeyLookupLimiter
    }).pipe(Effect.provide(KeyLookupLimiter.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))))))
  )

describe("KeyLookupLimiter.refusal", () => {
  // A refill far slower than the test, so the bucket only empties.
  const env = { ORBIT_KEY_LOOKUP_BURST: "3", ORBIT_KEY_LOOKUP_RATE_PER_SECOND: "0.001" }

  it("takes no token while the address has one: the lookups that follow still get the whole burst", () => {
    const l = limiter(env)
    expect(l.refusal("198.51.100.1")).toBeUndefined()
    for (let i = 0; i < 3; i++) {
      expect(l.refusal("198.51.100.1")).toBeUndefined()
      expect(l.take("198.51.100.1")).toEqual({ allowed: true })
    }
    expect(l.take("198.51.100.1").allowed).toBe(false)
  })

  it("refuses as take does once the address is out of lookups, with the same Retry-After; other addresses are untouched", () => {
    const l = limiter(env)
    for (let i = 0; i < 3; i++) l.take("198.51.100.2")
    const taken = l.take("198.51.100.2")
    expect(taken.allowed).toBe(false)
    expect(l.refusal("198.51.100.2")).toBe(taken.allowed ? undefined : taken.retryAfterSeconds)
    expect(l.refusal("198.51.100.3")).toBeUndefined()
    // A refund gives the address a lookup again.
    l.refund("198.51.100.2")
    expect(l.refusal("198.51.100.2")).toBeUndefined()
    expect(l.take("198.51.100.2")).toEqual({ allowed: true })
  })
})
