import { Db, type DbUnavailable, query } from "@orbit/db"
import type { Endpoint, EndpointSettings, Mode } from "@orbit/domain"
import { Context, Effect, Layer } from "effect"
import type { CursorPosition } from "./Cursor.ts"

/** The endpoint resource of API.md §3: never carries a secret. */
export type EndpointResource = Pick<Endpoint, "id" | "created_at" | "updated_at"> & EndpointSettings

interface Row extends EndpointResource {
  /** Full-precision created_at, for cursors. */
  readonly created_key: string
}

const toResource = (r: Row): EndpointResource => ({
  id: r.id,
  url: r.url,
  events: r.events,
  description: r.description,
  active: r.active,
  timeout_seconds: r.timeout_seconds,
  retry_policy: r.retry_policy,
  created_at: r.created_at,
  updated_at: r.updated_at
})

export interface Page {
  readonly items: ReadonlyArray<EndpointResource>
  readonly next: CursorPosition | undefined
}

/** Reads of the endpoint read model (the projection owns every write). */
export class EndpointStore extends Context.Service<EndpointStore, {
  list(scope: { tenantId: string; mode: Mode }, limit: number, after: CursorPosition | undefined): Effect.Effect<Page, DbUnavailable>
  get(scope: { tenantId: string; mode: Mode }, id: string): Effect.Effect<EndpointResource | undefined, DbUnavailable>
  /** The current secret's box, for rotation (never leaves the service). */
  secretBox(scope: { tenantId: string; mode: Mode }, id: string): Effect.Effect<string | undefined, DbUnavailable>
}>()("@orbit/registration/EndpointStore") {
  static readonly layer = Layer.effect(
    EndpointStore,
    Effect.gen(function*() {
      const { sql } = yield* Db
      // Timestamps leave Postgres already formatted as the API shows them (no Date round trip). The
      // formatted columns reuse the names created_at/updated_at, so ORDER BY and WHERE name the table's
      // columns explicitly: an unqualified ORDER BY created_at would sort by the formatted text, reading
      // and sorting every row of the tenant instead of walking the index for one page. The cursor's
      // instant goes in as text for Postgres to parse: as a timestamptz parameter the driver would
      // round it to milliseconds and a page could skip rows.
      const columns = sql`id, url, events, description, active, timeout_seconds, retry_policy,
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created_at,
        to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS updated_at,
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_key`

      const list = (scope: { tenantId: string; mode: Mode }, limit: number, after: CursorPosition | undefined) =>
        query(() =>
          after === undefined
            ? sql<Array<Row>>`
                SELECT ${columns} FROM endpoints
                WHERE tenant_id = ${scope.tenantId} AND mode = ${scope.mode}
                ORDER BY endpoints.created_at DESC, endpoints.id DESC LIMIT ${limit + 1}`
            : sql<Array<Row>>`
                SELECT ${columns} FROM endpoints
                WHERE tenant_id = ${scope.tenantId} AND mode = ${scope.mode}
                  AND (endpoints.created_at, endpoints.id) < (${after.createdAt}::text::timestamptz, ${after.id})
                ORDER BY endpoints.created_at DESC, endpoints.id DESC LIMIT ${limit + 1}`
        ).pipe(
          Effect.map((rows): Page => {
            const page = rows.slice(0, limit)
            const last = page[page.length - 1]
            return {
              items: page.map(toResource),
              next: rows.length > limit && last ? { createdAt: last.created_key, id: last.id } : undefined
            }
          })
        )

      const get = (scope: { tenantId: string; mode: Mode }, id: string) =>
        query(() =>
          sql<Array<Row>>`
            SELECT ${columns} FROM endpoints WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND mode = ${scope.mode}`
        ).pipe(Effect.map((rows) => (rows[0] ? toResource(rows[0]) : undefined)))

      const secretBox = (scope: { tenantId: string; mode: Mode }, id: string) =>
        query(() =>
          sql<Array<{ secret_box: string }>>`
            SELECT secret_box FROM endpoints WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND mode = ${scope.mode}`
        ).pipe(Effect.map((rows) => rows[0]?.secret_box))

      // No span of their own: each runs inside a route's span (Webhooks.list, …), and a span per
      // call on the read path costs a captured stack trace and a copy of the fiber's whole context
      // per request (README, "Spans").
      return EndpointStore.of({ list, get, secretBox })
    })
  )
}
