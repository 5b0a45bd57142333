import { Schema } from "effect"

const int = (min: number, max: number) =>
  Schema.Int.check(Schema.isBetween({ minimum: min, maximum: max })).annotate({ expected: `integer ${min}–${max}` })

export const ExponentialRetry = Schema.Struct({
  strategy: Schema.Literal("exponential"),
  max_attempts: int(1, 10),
  initial_delay_seconds: Schema.optionalKey(int(1, 3600)),
  max_delay_seconds: Schema.optionalKey(int(1, 86400))
})

export const FixedRetry = Schema.Struct({
  strategy: Schema.Literal("fixed"),
  max_attempts: int(1, 10),
  delay_seconds: int(1, 86400)
})

export const CustomRetry = Schema.Struct({
  strategy: Schema.Literal("custom"),
  delays_seconds: Schema.Array(int(1, 86400)).check(Schema.isMaxLength(9))
})

/** API.md §4. Optional fields are filled in by `normalizeRetryPolicy` so stored policies are explicit. */
export const RetryPolicy = Schema.Union([ExponentialRetry, FixedRetry, CustomRetry])
export type RetryPolicy = typeof RetryPolicy.Type

/** The default schedule: immediately, then 1 min, 5 min, 30 min, 2 h, 8 h, 24 h (7 attempts). */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  strategy: "custom",
  delays_seconds: [60, 300, 1800, 7200, 28800, 86400]
}

export const normalizeRetryPolicy = (policy: RetryPolicy | undefined | null): RetryPolicy => {
  if (policy == null) return DEFAULT_RETRY_POLICY
  if (policy.strategy === "exponential") {
    return {
      strategy: "exponential",
      max_attempts: policy.max_attempts,
      initial_delay_seconds: policy.initial_delay_seconds ?? 60,
      max_delay_seconds: policy.max_delay_seconds ?? 86400
    }
  }
  return policy
}

export const maxAttempts = (policy: RetryPolicy): number =>
  policy.strategy === "custom" ? policy.delays_seconds.length + 1 : policy.max_attempts

/**
 * Seconds to wait after failed attempt `attempt` (1-based) before the next one, or
 * `undefined` when the policy is exhausted.
 */
export const delayAfterAttempt = (policy: RetryPolicy, attempt: number): number | undefined => {
  if (attempt >= maxAttempts(policy)) return undefined
  switch (policy.strategy) {
    case "custom":
      return policy.delays_seconds[attempt - 1]
    case "fixed":
      return policy.delay_seconds
    case "exponential": {
      const initial = policy.initial_delay_seconds ?? 60
      const max = policy.max_delay_seconds ?? 86400
      return Math.min(initial * 2 ** (attempt - 1), max)
    }
  }
}

export const MAX_RETRY_AFTER_SECONDS = 86400

/**
 * When the next attempt is due, in epoch ms. Never early: the policy's delay, or a longer
 * `Retry-After` (capped at 24 h), plus up to +10 % jitter (`random` in [0,1)).
 */
export const nextAttemptAt = (options: {
  readonly policy: RetryPolicy
  readonly attempt: number
  readonly failedAt: number
  readonly retryAfterSeconds?: number | undefined
  readonly random: number
}): number | undefined => {
  const delay = delayAfterAttempt(options.policy, options.attempt)
  if (delay === undefined) return undefined
  const retryAfter = Math.min(options.retryAfterSeconds ?? 0, MAX_RETRY_AFTER_SECONDS)
  const base = Math.max(delay, retryAfter) * 1000
  return options.failedAt + base + Math.floor(base * 0.1 * options.random)
}
