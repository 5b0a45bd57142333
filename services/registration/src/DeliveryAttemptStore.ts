import { Db, type DbUnavailable, type KeysetPage, keysetPage, query } from "@orbit/db"
import type { Mode } from "@orbit/domain"
import { Context, Effect, Layer } from "effect"
import type { DeliveryAttemptResource } from "./api/DeliverySchemas.ts"
import type { AttemptSummary } from "./api/StatsSchemas.ts"
import type { CursorPosition } from "./Cursor.ts"

/** A row of `delivery_attempts`: the resource's fields under their column names, instants as `Date`s. */
type Row = Omit<DeliveryAttemptResource, "event_id" | "event_type" | "next_attempt_at" | "attempted_at"> & {
  readonly source_event_id: string
  readonly source_event_type: string
  readonly next_attempt_at: Date | null
  readonly occurred_at: Date
  /** Full-precision occurred_at, for cursors. */
  readonly occurred_key: string
}

const toResource = (r: Row): DeliveryAttemptResource => ({
  id: r.id,
  delivery_id: r.delivery_id,
  endpoint_id: r.endpoint_id,
  event_id: r.source_event_id,
  event_type: r.source_event_type,
  attempt: r.attempt,
  outcome: r.outcome,
  http_status: r.http_status,
  duration_ms: r.duration_ms,
  error_class: r.error_class,
  error_message: r.error_message,
  next_attempt_at: r.next_attempt_at?.toISOString() ?? null,
  dead_lettered: r.dead_lettered,
  attempted_at: r.occurred_at.toISOString(),
  trace_id: r.trace_id
})

export interface AttemptScope {
  readonly tenantId: string
  readonly mode: Mode
  readonly endpointId: string
}

/** A page of attempts; the cursor position's `createdAt` holds the attempt time. */
export type AttemptPage = KeysetPage<DeliveryAttemptResource>

/** An endpoint's attempts in a time window, summed up: counts, latency percentiles, latest times. */
export interface AttemptStats extends AttemptSummary {
  readonly p50: number | null
  readonly p95: number | null
  readonly p99: number | null
  readonly lastSuccessAt: Date | null
  readonly lastFailureAt: Date | null
}

/**
 * Reads of the delivery-attempt log (the projection owns every write). The caller checks that the
 * endpoint belongs to the caller first; the tenant and mode are matched here again all the same.
 */
export class DeliveryAttemptStore extends Context.Service<DeliveryAttemptStore, {
  list(scope: AttemptScope, limit: number, after: CursorPosition | undefined): Effect.Effect<AttemptPage, DbUnavailable>
  /** The attempts with `since <= occurred_at <= until`, summed up in one query. */
  stats(scope: AttemptScope, since: Date, until: Date): Effect.Effect<AttemptStats, DbUnavailable>
}>()("@orbit/registration/DeliveryAttemptStore") {
  static readonly layer = Layer.effect(
    DeliveryAttemptStore,
    Effect.gen(function*() {
      const { sql } = yield* Db
      const columns = sql`id, delivery_id, endpoint_id, source_event_id, source_event_type, attempt, outcome,
        http_status, duration_ms, error_class, error_message, next_attempt_at, dead_lettered, occurred_at, trace_id,
        to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS occurred_key`

      const list = (scope: AttemptScope, limit: number, after: CursorPosition | undefined) =>
        keysetPage(sql, {
          select: sql`
            SELECT ${columns} FROM delivery_attempts
            WHERE endpoint_id = ${scope.endpointId} AND tenant_id = ${scope.tenantId} AND mode = ${scope.mode}`,
          time: "delivery_attempts.occurred_at",
          id: "delivery_attempts.id",
          limit,
          after,
          item: toResource,
          position: (row: Row) => ({ createdAt: row.occurred_key, id: row.id })
        })

      // One pass over the endpoint's rows in the window, found by the page index
      // (endpoint_id, occurred_at): percentile_disc reports durations that occurred.
      const stats = (scope: AttemptScope, since: Date, until: Date) =>
        query(() => sql<Array<{
          total: number
          succeeded: number
          failed: number
          no_response: number
          latency: Array<number> | null
          last_success_at: Date | null
          last_failure_at: Date | null
          last_outcome: "succeeded" | "failed" | null
        }>>`
          SELECT count(*)::int AS total,
            count(*) FILTER (WHERE outcome = 'succeeded')::int AS succeeded,
            count(*) FILTER (WHERE outcome = 'failed')::int AS failed,
            count(*) FILTER (WHERE outcome = 'failed' AND http_status IS NULL)::int AS no_response,
            percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms) AS latency,
            max(occurred_at) FILTER (WHERE outcome = 'succeeded') AS last_success_at,
            max(occurred_at) FILTER (WHERE outcome = 'failed') AS last_failure_at,
            (array_agg(outcome ORDER BY occurred_at DESC, id DESC))[1] AS last_outcome
          FROM delivery_attempts
          WHERE endpoint_id = ${scope.endpointId} AND tenant_id = ${scope.tenantId} AND mode = ${scope.mode}
            AND occurred_at >= ${since} AND occurred_at <= ${until}`).pipe(
          Effect.map(([r]): AttemptStats => ({
            total: r!.total,
            succeeded: r!.succeeded,
            failed: r!.failed,
            noResponse: r!.no_response,
            lastOutcome: r!.last_outcome,
            p50: r!.latency?.[0] ?? null,
            p95: r!.latency?.[1] ?? null,
            p99: r!.latency?.[2] ?? null,
            lastSuccessAt: r!.last_success_at,
            lastFailureAt: r!.last_failure_at
          }))
        )

      return DeliveryAttemptStore.of({
        list: Effect.fn("DeliveryAttemptStore.list")(list),
        stats: Effect.fn("DeliveryAttemptStore.stats")(stats)
      })
    })
  )
}
