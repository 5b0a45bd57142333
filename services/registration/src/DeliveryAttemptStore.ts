import { Db, type DbUnavailable, query } from "@orbit/db"
import type { AttemptErrorClass, AttemptOutcome, Mode } from "@orbit/domain"
import { Context, Effect, Layer } from "effect"
import type { DeliveryAttemptResource } from "./api/DeliverySchemas.ts"
import type { CursorPosition } from "./Cursor.ts"

interface Row {
  readonly id: string
  readonly delivery_id: string
  readonly endpoint_id: string
  readonly source_event_id: string
  readonly source_event_type: string
  readonly attempt: number
  readonly outcome: AttemptOutcome
  readonly http_status: number | null
  readonly duration_ms: number
  readonly error_class: AttemptErrorClass | null
  readonly error_message: string | null
  readonly next_attempt_at: Date | null
  readonly dead_lettered: boolean
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
  attempted_at: r.occurred_at.toISOString()
})

export interface AttemptScope {
  readonly tenantId: string
  readonly mode: Mode
  readonly endpointId: string
}

export interface AttemptPage {
  readonly items: ReadonlyArray<DeliveryAttemptResource>
  /** The position after the last item, when there is a next page. `createdAt` holds the attempt time. */
  readonly next: CursorPosition | undefined
}

/**
 * Reads of the delivery-attempt log (the projection owns every write). The caller checks that the
 * endpoint belongs to the caller first; the tenant and mode are matched here again all the same.
 */
export class DeliveryAttemptStore extends Context.Service<DeliveryAttemptStore, {
  list(scope: AttemptScope, limit: number, after: CursorPosition | undefined): Effect.Effect<AttemptPage, DbUnavailable>
}>()("@orbit/registration/DeliveryAttemptStore") {
  static readonly layer = Layer.effect(
    DeliveryAttemptStore,
    Effect.gen(function*() {
      const { sql } = yield* Db
      const columns = sql`id, delivery_id, endpoint_id, source_event_id, source_event_type, attempt, outcome,
        http_status, duration_ms, error_class, error_message, next_attempt_at, dead_lettered, occurred_at,
        to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS occurred_key`

      const list = (scope: AttemptScope, limit: number, after: CursorPosition | undefined) =>
        query(() =>
          after === undefined
            ? sql<Array<Row>>`
                SELECT ${columns} FROM delivery_attempts
                WHERE endpoint_id = ${scope.endpointId} AND tenant_id = ${scope.tenantId} AND mode = ${scope.mode}
                ORDER BY occurred_at DESC, id DESC LIMIT ${limit + 1}`
            : sql<Array<Row>>`
                SELECT ${columns} FROM delivery_attempts
                WHERE endpoint_id = ${scope.endpointId} AND tenant_id = ${scope.tenantId} AND mode = ${scope.mode}
                  AND (occurred_at, id) < (${after.createdAt}::text::timestamptz, ${after.id})
                ORDER BY occurred_at DESC, id DESC LIMIT ${limit + 1}`
        ).pipe(
          Effect.map((rows): AttemptPage => {
            const page = rows.slice(0, limit)
            const last = page[page.length - 1]
            return {
              items: page.map(toResource),
              next: rows.length > limit && last ? { createdAt: last.occurred_key, id: last.id } : undefined
            }
          })
        )

      return DeliveryAttemptStore.of({ list: Effect.fn("DeliveryAttemptStore.list")(list) })
    })
  )
}
