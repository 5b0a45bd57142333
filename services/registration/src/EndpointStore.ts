import { Db, type DbUnavailable, type KeysetPage, keysetPage, query } from "@orbit/db"
import type { Endpoint, EndpointSettings, Mode } from "@orbit/domain"
import { Context, Effect, Layer } from "effect"
import type { CursorPosition } from "./Cursor.ts"

/** The endpoint resource of API.md §3: never carries a secret. */
export type EndpointResource = Pick<Endpoint, "id" | "disabled_reason" | "disabled_at" | "created_at" | "updated_at"> & EndpointSettings

interface Row extends EndpointResource {
  /** Full-precision created_at, for cursors. */
  readonly created_key: string
}

/** The row without its cursor key (the other columns are the resource's, in its order). */
const toResource = ({ created_key: _, ...resource }: Row): EndpointResource => resource

export type Page = KeysetPage<EndpointResource>

/** Reads of the endpoint read model (the projection owns every write). */
export class EndpointStore extends Context.Service<EndpointStore, {
  list(scope: { tenantId: string; mode: Mode }, limit: number, after: CursorPosition | undefined): Effect.Effect<Page, DbUnavailable>
  get(scope: { tenantId: string; mode: Mode }, id: string): Effect.Effect<EndpointResource | undefined, DbUnavailable>
  /**
   * The aggregate's state for a command to decide on, whatever its tenant and mode (the decider
   * checks the scope). Carries the secret boxes, so it never leaves the service.
   */
  load(id: string): Effect.Effect<Endpoint | undefined, DbUnavailable>
  /** The ids of every endpoint of every tenant after `afterId`, in id order, `limit` at most (operator tools). */
  ids(afterId: string, limit: number): Effect.Effect<ReadonlyArray<string>, DbUnavailable>
}>()("@orbit/registration/EndpointStore") {
  static readonly layer = Layer.effect(
    EndpointStore,
    Effect.gen(function*() {
      const { sql } = yield* Db
      // Timestamps leave Postgres already formatted as the API shows them (no Date round trip). The
      // formatted columns reuse the names created_at/updated_at, so ORDER BY and WHERE name the table's
      // columns explicitly: an unqualified ORDER BY created_at would sort by the formatted text, reading
      // and sorting every row of the tenant instead of walking the index for one page.
      const columns = sql`id, url, events, description, active, timeout_seconds, retry_policy, headers, rate_limit_per_second,
        disabled_reason, to_char(disabled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS disabled_at,
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created_at,
        to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS updated_at,
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_key`

      const list = (scope: { tenantId: string; mode: Mode }, limit: number, after: CursorPosition | undefined) =>
        keysetPage(sql, {
          select: sql`SELECT ${columns} FROM endpoints WHERE tenant_id = ${scope.tenantId} AND mode = ${scope.mode}`,
          time: "endpoints.created_at",
          id: "endpoints.id",
          limit,
          after,
          item: toResource,
          position: (row: Row) => ({ createdAt: row.created_key, id: row.id })
        })

      const get = (scope: { tenantId: string; mode: Mode }, id: string) =>
        query(() =>
          sql<Array<Row>>`
            SELECT ${columns} FROM endpoints WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND mode = ${scope.mode}`
        ).pipe(Effect.map((rows) => (rows[0] ? toResource(rows[0]) : undefined)))

      const load = (id: string) =>
        query(() =>
          sql<Array<Endpoint>>`
            SELECT id, tenant_id, mode, url, events, description, active, timeout_seconds, retry_policy, headers,
              rate_limit_per_second, disabled_reason,
              to_char(disabled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS disabled_at,
              secret_box, previous_secret_box,
              to_char(previous_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS previous_expires_at,
              to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created_at,
              to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS updated_at
            FROM endpoints WHERE id = ${id}`
        ).pipe(Effect.map((rows) => rows[0]))

      // No span of their own: each runs inside a route's span (Webhooks.list, …), and a span per
      // call on the read path costs a captured stack trace and a copy of the fiber's whole context
      // per request (README, "Spans").
      const ids = (afterId: string, limit: number) =>
        query(() => sql<Array<{ id: string }>>`SELECT id FROM endpoints WHERE id > ${afterId} ORDER BY id LIMIT ${limit}`).pipe(
          Effect.map((rows) => rows.map((r) => r.id))
        )

      return EndpointStore.of({ list, get, load, ids })
    })
  )
}
