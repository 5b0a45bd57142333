import { Config, Context, Effect, Layer, Schema } from "effect"
import { Lru } from "./Lru.ts"
import { countRateLimited } from "./RegistrationMetrics.ts"

/** A token bucket per API key: `ratePerSecond` sustained, bursts up to `burst`. */
export interface Bucket {
  tokens: number
  updatedAt: number
}

/** Pure: take one token at `now`, or say how many seconds until one is available. */
export const take = (
  bucket: Bucket,
  now: number,
  ratePerSecond: number,
  burst: number
): { allowed: true } | { allowed: false; retryAfterSeconds: number } => {
  bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * ratePerSecond)
  bucket.updatedAt = now
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1
    return { allowed: true }
  }
  return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / ratePerSecond)) }
}

const MAX_BUCKETS = 100_000

export class RateLimiter extends Context.Service<RateLimiter, {
  check(keyId: string): { allowed: true } | { allowed: false; retryAfterSeconds: number }
}>()("@orbit/registration/RateLimiter") {
  static readonly layer = Layer.effect(
    RateLimiter,
    Effect.gen(function*() {
      const rate = yield* Config.Int("ORBIT_RATE_LIMIT_PER_SECOND").pipe(Config.withDefault(1000))
      const burst = yield* Config.Int("ORBIT_RATE_LIMIT_BURST").pipe(Config.withDefault(rate * 2))
      const buckets = new Map<string, Bucket>()
      const context = yield* Effect.context<never>()
      return RateLimiter.of({
        check: (keyId) => {
          const now = Date.now()
          let bucket = buckets.get(keyId)
          if (bucket === undefined) {
            if (buckets.size >= MAX_BUCKETS) buckets.clear()
            bucket = { tokens: burst, updatedAt: now }
            buckets.set(keyId, bucket)
          }
          const taken = take(bucket, now, rate, burst)
          if (!taken.allowed) countRateLimited("tenant", context)
          return taken
        }
      })
    })
  )
}

/**
 * A token bucket per client address (ClientAddress.ts) for the lookups of API keys this process
 * does not know: each such lookup takes a token first, and a lookup that finds a valid key gives
 * it back. So the bucket charges failed authentications only: a client that sends the keys it was
 * given is never limited by it, however fast, while one that guesses keys gets `burst` lookups and
 * then `ratePerSecond`, whatever it sends. Keys the checksum or the caches already answer cost
 * nothing and take no token. The defaults of ORBIT_KEY_LOOKUP_RATE_PER_SECOND and
 * ORBIT_KEY_LOOKUP_BURST are far above what a client with real keys produces (a typo, a revoked
 * key retried) and keep a flood from one address to a trickle of queries; tests and benchmarks
 * from one address, whose keys are valid, never reach them.
 */
export class KeyLookupLimiter extends Context.Service<KeyLookupLimiter, {
  /** Takes a token for one lookup from this address's bucket, or says when one will be available. */
  take(address: string): { allowed: true } | { allowed: false; retryAfterSeconds: number }
  /** Gives back the token of a lookup that found a valid key. */
  refund(address: string): void
  /**
   * If this address has no lookup left now, refuses as `take` would (the same bucket update and
   * refusal count) and says when one will be available; otherwise takes nothing and answers
   * undefined, leaving the token to the `take` of the lookup that follows.
   */
  refusal(address: string): number | undefined
}>()("@orbit/registration/KeyLookupLimiter") {
  static readonly layer = Layer.effect(
    KeyLookupLimiter,
    Effect.gen(function*() {
      const rate = yield* Config.schema(Schema.Finite.check(Schema.isGreaterThan(0)), "ORBIT_KEY_LOOKUP_RATE_PER_SECOND").pipe(
        Config.withDefault(10)
      )
      const burst = yield* Config.schema(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)), "ORBIT_KEY_LOOKUP_BURST").pipe(
        Config.withDefault(100)
      )
      // Least recently used buckets go first: clearing them all would hand a flooding address a full bucket.
      const buckets = new Lru<string, Bucket>(MAX_BUCKETS)
      const context = yield* Effect.context<never>()
      return KeyLookupLimiter.of({
        take: (address) => {
          const now = Date.now()
          let bucket = buckets.get(address)
          if (bucket === undefined) bucket = { tokens: burst, updatedAt: now }
          buckets.set(address, bucket)
          const taken = take(bucket, now, rate, burst)
          if (!taken.allowed) countRateLimited("key_lookup", context)
          return taken
        },
        refund: (address) => {
          const bucket = buckets.get(address)
          if (bucket !== undefined) bucket.tokens = Math.min(burst, bucket.tokens + 1)
        },
        refusal: (address) => {
          const bucket = buckets.get(address)
          // An address without a bucket has a full one (burst ≥ 1) waiting for it.
          if (bucket === undefined) return undefined
          const now = Date.now()
          if (Math.min(burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * rate) >= 1) return undefined
          const taken = take(bucket, now, rate, burst)
          // Never allowed: the same refill just left less than one token.
          if (taken.allowed) return undefined
          countRateLimited("key_lookup", context)
          return taken.retryAfterSeconds
        }
      })
    })
  )
}
