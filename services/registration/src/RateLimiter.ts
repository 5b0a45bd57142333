import { Config, Context, Effect, Layer } from "effect"

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
      return RateLimiter.of({
        check: (keyId) => {
          const now = Date.now()
          let bucket = buckets.get(keyId)
          if (bucket === undefined) {
            if (buckets.size >= MAX_BUCKETS) buckets.clear()
            bucket = { tokens: burst, updatedAt: now }
            buckets.set(keyId, bucket)
          }
          return take(bucket, now, rate, burst)
        }
      })
    })
  )
}
