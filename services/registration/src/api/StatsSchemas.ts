import { Schema } from "effect"

/** The windows `GET /api/v1/webhooks/{id}/stats` accepts, and their length. */
export const STATS_WINDOWS = { "24h": 24 * 3600_000, "7d": 7 * 24 * 3600_000 } as const
export type StatsWindow = keyof typeof STATS_WINDOWS
export const DEFAULT_STATS_WINDOW: StatsWindow = "24h"

/** Query of `GET /api/v1/webhooks/{id}/stats`: the window only (unknown parameters are refused). */
export const EndpointStatsQuery = Schema.Struct({
  window: Schema.optionalKey(Schema.Literals(["24h", "7d"]).annotate({ expected: `"24h" or "7d"` }))
})
export type EndpointStatsQuery = typeof EndpointStatsQuery.Type

/**
 * An endpoint's state over the window, decided in this order:
 * `disabled` — the endpoint is inactive; `healthy` — no attempts in the window;
 * `unresponsive` — no attempt in the window got an HTTP response (timeouts, connection and TLS errors only);
 * `failing` — the latest attempt failed, or fewer than half the attempts succeeded; `healthy` otherwise.
 */
export const EndpointState = Schema.Literals(["healthy", "failing", "unresponsive", "disabled"]).annotate({
  description:
    "Decided in this order: disabled (the endpoint is inactive); healthy (no attempts in the window); unresponsive (attempts in the window and none got an HTTP response: timeouts, connection and TLS errors only); failing (the latest attempt failed, or the success rate is below 0.5); healthy otherwise."
})
export type EndpointState = typeof EndpointState.Type

const Millis = Schema.NullOr(Schema.Int)

export const EndpointStatsResource = Schema.Struct({
  endpoint_id: Schema.String,
  window: Schema.Literals(["24h", "7d"]),
  /** The window's start and end (the time of the request). */
  since: Schema.String,
  until: Schema.String,
  state: EndpointState,
  attempts: Schema.Struct({
    total: Schema.Int,
    succeeded: Schema.Int,
    failed: Schema.Int,
    /** Failed attempts that got no HTTP response (timeout, connection, TLS…); part of `failed`. */
    no_response: Schema.Int.annotate({ description: "Failed attempts that got no HTTP response (timeout, connection, TLS…); counted in failed too." })
  }),
  success_rate: Schema.NullOr(Schema.Finite).annotate({ description: "succeeded / total, 0–1; null without attempts." }),
  latency_ms: Schema.Struct({ p50: Millis, p95: Millis, p99: Millis }).annotate({
    description: "Attempt durations in the window (nearest-rank percentiles of duration_ms, every attempt counted); null without attempts."
  }),
  last_success_at: Schema.NullOr(Schema.String).annotate({ description: "The latest successful attempt in the window, or null." }),
  last_failure_at: Schema.NullOr(Schema.String).annotate({ description: "The latest failed attempt in the window, or null." })
}).annotate({ identifier: "EndpointStats" })
export type EndpointStatsResource = typeof EndpointStatsResource.Type

/** The counts the state is decided from, as the attempt store reads them. */
export interface AttemptSummary {
  readonly total: number
  readonly succeeded: number
  readonly failed: number
  readonly noResponse: number
  readonly lastOutcome: "succeeded" | "failed" | null
}

/** The state rule of {@link EndpointState}. */
export const endpointState = (active: boolean, s: AttemptSummary): EndpointState => {
  if (!active) return "disabled"
  if (s.total === 0) return "healthy"
  if (s.noResponse === s.total) return "unresponsive"
  if (s.lastOutcome === "failed" || s.succeeded / s.total < 0.5) return "failing"
  return "healthy"
}
