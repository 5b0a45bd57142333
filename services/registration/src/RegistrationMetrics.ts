import { Db, query } from "@orbit/db"
import { MetricsSampleMs } from "@orbit/runtime"
import { Cause, Context, Effect, Exit, Layer, Metric, Schedule } from "effect"
import { HttpRouter, HttpServerError, HttpServerRequest, type HttpServerResponse } from "effect/http"
import { withStreakStarts } from "./StreakStarts.ts"

/** Seconds buckets for API requests. */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/** Seconds buckets for the read-your-writes wait (bounded by its timeout). */
const RYW_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

const REQUESTS = "orbit_http_requests_total"
const REQUESTS_OPTIONS = { description: "HTTP requests answered, by method, route template and status", incremental: true }
const REQUEST_DURATION = "orbit_http_request_duration_seconds"
const REQUEST_DURATION_OPTIONS = { description: "Time to answer an HTTP request, by method and route template", boundaries: REQUEST_BUCKETS }
const rateLimited = Metric.counter("orbit_http_rate_limited_total", {
  description: "Requests refused with 429 by a rate limit: `tenant` (an API key's budget) or `key_lookup` (unknown keys from one address)",
  incremental: true
})
const refusedEarly = Metric.counter("orbit_http_refused_early_total", {
  description:
    "Requests to keyed routes refused by the server before routing, from the key caches and the per-address lookup bucket alone: " +
    "`invalid` (401) or `exhausted` (429); each is counted in orbit_http_requests_total too",
  incremental: true
})
export const readYourWritesWait = Metric.histogram("orbit_read_your_writes_wait_seconds", {
  description: "How long a write waited for the projection to apply its endpoint event before answering",
  boundaries: RYW_BUCKETS
})
const failingLongest = Metric.gauge("orbit_endpoint_failing_longest_seconds", {
  description: "The longest time any active endpoint has been failing without a success (0 when none)"
})

/** The rate limits a request can meet. */
export type RateLimit = "tenant" | "key_lookup"

const limitSeries = { tenant: Metric.withAttributes(rateLimited, { limit: "tenant" }), key_lookup: Metric.withAttributes(rateLimited, { limit: "key_lookup" }) }

/** Counts one request refused by `limit` (called where the limiter refuses; outside Effect, hence the context). */
export const countRateLimited = (limit: RateLimit, context: Context.Context<never>): void => limitSeries[limit].updateUnsafe(1, context)

const refusedSeries = {
  invalid: Metric.withAttributes(refusedEarly, { reason: "invalid" }),
  exhausted: Metric.withAttributes(refusedEarly, { reason: "exhausted" })
}

/**
 * Counts one request answered before the router (server/EarlyRefusals.ts), under the same series
 * as HttpMetrics would have counted it and under orbit_http_refused_early_total.
 */
export const countRefusedEarly = (
  reason: "invalid" | "exhausted",
  request: { readonly method: string; readonly route: string; readonly status: number; readonly seconds: number },
  context: Context.Context<never>
): void => {
  refusedSeries[reason].updateUnsafe(1, context)
  const labels = series(methodLabel(request.method), routeLabel(request.route), request.status)
  labels.count.updateUnsafe(1, context)
  labels.duration.updateUnsafe(request.seconds, context)
}

const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])

/** A request method as a label (pure): the methods of HTTP APIs as they are, anything else `other`. */
export const methodLabel = (method: string): string => (METHODS.has(method) ? method : "other")

/**
 * The route template a request matched, as a label (pure): the router's path with `:name`
 * parameters written `{name}` as in the OpenAPI document; the catch-all 404 route, or no route at
 * all, is `unmatched`. Never the raw path, whose ids would make every request its own series.
 */
export const routeLabel = (routerPath: string | undefined): string => {
  if (routerPath === undefined || routerPath === "*" || routerPath === "/*") return "unmatched"
  return routerPath.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, "{$1}")
}

const isRouteNotFound = (e: unknown) => HttpServerError.isHttpServerError(e) && e.reason._tag === "RouteNotFound"

/**
 * Counts and times every request the router answers, under its route template (RouteContext, set
 * by the router for the route it chose). A request that matches no route at all (it fails with
 * RouteNotFound, turned into a 404 further out) is `unmatched`, 404.
 */
export const HttpMetrics = HttpRouter.middleware(
  (httpEffect): Effect.Effect<HttpServerResponse.HttpServerResponse, unknown, HttpServerRequest.HttpServerRequest> =>
    Effect.withFiber((fiber) => {
      const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
      const started = performance.now()
      return Effect.onExit(httpEffect, (exit) =>
        Effect.withFiber((after) => {
          const route = Context.getOrUndefined(after.context, HttpRouter.RouteContext)?.route.path
          let status: number
          if (Exit.isSuccess(exit)) status = exit.value.status
          else if (isRouteNotFound(Cause.squash(exit.cause))) status = 404
          else if (Cause.hasInterruptsOnly(exit.cause)) return Effect.void
          else status = 500
          const labels = series(methodLabel(request.method), routeLabel(route), status)
          labels.count.updateUnsafe(1, after.context)
          labels.duration.updateUnsafe((performance.now() - started) / 1_000, after.context)
          return Effect.void
        }))
    }),
  { global: true }
)

/**
 * Label sets are bounded (method, route template, status), so their series objects are kept. Each
 * is a metric of the family's name with its labels as its own attributes, which resolves its
 * series once; `Metric.withAttributes` would resolve it again on every update.
 */
const seriesCache = new Map<string, { count: Metric.Metric<number, unknown>; duration: Metric.Metric<number, unknown> }>()
const series = (method: string, route: string, status: number) => {
  const key = `${method} ${route} ${status}`
  let found = seriesCache.get(key)
  if (found === undefined) {
    found = {
      count: Metric.counter(REQUESTS, { ...REQUESTS_OPTIONS, attributes: { method, route, status: String(status) } }),
      duration: Metric.histogram(REQUEST_DURATION, { ...REQUEST_DURATION_OPTIONS, attributes: { method, route } })
    }
    seriesCache.set(key, found)
  }
  return found
}

/**
 * How long the longest-failing active endpoint has been failing (pure SQL over the attempt read
 * model): the age of the earliest attempt of any active endpoint's failure streak, as AutoDisable
 * reads the streaks (`withStreakStarts`).
 */
const longestFailingSeconds = (sql: Db["Service"]["sql"]) =>
  sql<Array<{ seconds: number | null }>>`
    ${withStreakStarts(sql)}
    SELECT EXTRACT(EPOCH FROM now() - min(a.occurred_at))::float8 AS seconds
    FROM active c JOIN delivery_attempts a ON a.endpoint_id = c.id AND a.occurred_at > c.since`

/**
 * Samples `orbit_endpoint_failing_longest_seconds` in the background every other
 * `ORBIT_METRICS_SAMPLE_MS` (default every 30 s): it reads the attempt log per active endpoint, and
 * the alert it serves is about an hour.
 */
export const EndpointFailingGauge = Layer.effectDiscard(Effect.gen(function*() {
  const { sql } = yield* Db
  const sampleMs = yield* MetricsSampleMs
  const sample = query(() => longestFailingSeconds(sql)).pipe(
    Effect.flatMap(([row]) => Metric.update(failingLongest, Math.max(0, row?.seconds ?? 0))),
    Effect.catchCause((cause) => Effect.logDebug("metrics: sampling failing endpoints failed; next time", { cause: String(Cause.squash(cause)) }))
  )
  yield* Metric.update(failingLongest, 0)
  // Reading a series registers it, so these exist before their first observation.
  yield* Metric.value(readYourWritesWait)
  yield* Metric.value(limitSeries.tenant)
  yield* Metric.value(limitSeries.key_lookup)
  yield* Metric.value(refusedSeries.invalid)
  yield* Metric.value(refusedSeries.exhausted)
  yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(`${Math.max(100, sampleMs * 2)} millis`)))
}))
