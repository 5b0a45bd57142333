import type { Tx } from "@orbit/db"
import { type Endpoint, type EndpointEvent, evolve } from "@orbit/domain"

export interface EndpointRow {
  id: string
  tenant_id: string
  mode: "live" | "test"
  url: string
  events: Endpoint["events"]
  description: string | null
  active: boolean
  timeout_seconds: number
  retry_policy: Endpoint["retry_policy"]
  headers: Endpoint["headers"]
  disabled_reason: Endpoint["disabled_reason"]
  disabled_at: Date | null
  rate_limit_per_second: number | null
  secret_box: string
  previous_secret_box: string | null
  previous_expires_at: Date | null
  created_at: Date
  updated_at: Date
}

const toEndpoint = (r: EndpointRow): Endpoint => ({
  ...r,
  disabled_at: r.disabled_at?.toISOString() ?? null,
  previous_expires_at: r.previous_expires_at?.toISOString() ?? null,
  created_at: r.created_at.toISOString(),
  updated_at: r.updated_at.toISOString()
})

/** Locks and reads the rows of `ids`; a pending query, so it can be pipelined. */
export const selectEndpointRows = (tx: Tx, table: string, ids: ReadonlyArray<string>) =>
  tx<Array<EndpointRow>>`SELECT * FROM ${tx(table)} WHERE id = ANY(${ids as Array<string>}) FOR UPDATE`

/**
 * Folds endpoint events over the rows they touch through the pure `evolve` (so the Postgres read
 * model and the dispatcher's in-memory index fold events identically): which rows to delete, which
 * to change, and which are new (none of `rows` has their id).
 */
export const endpointChanges = (rows: ReadonlyArray<EndpointRow>, events: ReadonlyArray<EndpointEvent>) => {
  const before = new Map(rows.map((r) => [r.id, toEndpoint(r)]))
  const after = new Map<string, Endpoint | undefined>(before)
  for (const event of events) after.set(event.endpoint_id, evolve(after.get(event.endpoint_id), event))

  const deletes: Array<string> = []
  const changed: Array<Endpoint> = []
  const created: Array<Endpoint> = []
  for (const [id, state] of after) {
    if (state === undefined) {
      if (before.has(id)) deletes.push(id)
    } else if (!before.has(id)) {
      created.push(state)
    } else if (state !== before.get(id)) {
      changed.push(state)
    }
  }
  return { deletes, changed, created }
}

/**
 * The deletes and upserts, one statement each at most, as pending queries for the caller to
 * pipeline. The upserted rows travel as one jsonb parameter (an endpoint's fields are the table's
 * columns), so a batch of thousands of rows costs one parameter to bind and a short statement to
 * parse, not a parameter per column per row.
 */
export const endpointWrites = (tx: Tx, table: string, deletes: ReadonlyArray<string>, upserts: ReadonlyArray<Endpoint>) => {
  const writes = []
  if (deletes.length > 0) writes.push(tx`DELETE FROM ${tx(table)} WHERE id = ANY(${deletes as Array<string>})`)
  if (upserts.length > 0) {
    writes.push(tx`
      INSERT INTO ${tx(table)}
      SELECT * FROM jsonb_populate_recordset(NULL::${tx(table)}, ${tx.json(upserts as never)})
      ON CONFLICT (id) DO UPDATE SET
        url = EXCLUDED.url, events = EXCLUDED.events, description = EXCLUDED.description,
        active = EXCLUDED.active, timeout_seconds = EXCLUDED.timeout_seconds,
        retry_policy = EXCLUDED.retry_policy, headers = EXCLUDED.headers,
        rate_limit_per_second = EXCLUDED.rate_limit_per_second,
        disabled_reason = EXCLUDED.disabled_reason, disabled_at = EXCLUDED.disabled_at, secret_box = EXCLUDED.secret_box,
        previous_secret_box = EXCLUDED.previous_secret_box,
        previous_expires_at = EXCLUDED.previous_expires_at, updated_at = EXCLUDED.updated_at`)
  }
  return writes
}

/**
 * The columns `copyNewRows` writes: every column of the endpoint tables (`test/EndpointProjection.test.ts`
 * compares rows written by COPY with the same events upserted, so a column left out here fails it).
 */
const COLUMNS = [
  "id",
  "tenant_id",
  "mode",
  "url",
  "events",
  "description",
  "active",
  "timeout_seconds",
  "retry_policy",
  "headers",
  "disabled_reason",
  "disabled_at",
  "rate_limit_per_second",
  "secret_box",
  "previous_secret_box",
  "previous_expires_at",
  "created_at",
  "updated_at"
] as const satisfies ReadonlyArray<keyof EndpointRow & keyof Endpoint>

const COPY_ESCAPES: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" }

/**
 * One field in COPY's text format: null is `\N`; objects and arrays (the jsonb columns) are their
 * JSON; backslash, newline, carriage return and tab are escaped, so no value can end its field or
 * row early.
 */
export const copyField = (value: unknown): string =>
  value === null || value === undefined
    ? "\\N"
    : (typeof value === "object" ? JSON.stringify(value) : String(value)).replace(/[\\\n\r\t]/g, (c) => COPY_ESCAPES[c]!)

/**
 * Sends rows none of which is in `table` yet with COPY: one more round trip than the upsert, but
 * far less work per row for Postgres (no JSON to parse, no conflict to check), so it pays for
 * large batches (a rebuild from offset 0, a projection catching up on a bulk of registrations).
 *
 * It resolves once the rows and CopyDone are sent, not when Postgres has taken them: postgres.js
 * 3.4.9 never settles a COPY that Postgres refuses after CopyDone (porsager/postgres#1173), so
 * waiting for the stream to finish could wait for ever. The COPY's outcome shows in the next
 * statement of the transaction instead: after a failed COPY it fails with SQLSTATE 25P02 (see
 * `copyFailed`). The stream's `_final` (the driver's, which sends CopyDone) is wrapped to learn
 * when the connection takes statements again.
 */
export const copyNewRows = async (tx: Tx, table: string, rows: ReadonlyArray<Endpoint>): Promise<void> => {
  let text = ""
  for (const row of rows) {
    for (let i = 0; i < COLUMNS.length; i++) text += (i === 0 ? "" : "\t") + copyField(row[COLUMNS[i]!])
    text += "\n"
  }
  const stream = await tx`COPY ${tx(table)} (${tx(COLUMNS as unknown as Array<string>)}) FROM STDIN`.writable()
  await new Promise<void>((resolve, reject) => {
    const driverFinal = stream._final!
    stream._final = (callback) => {
      driverFinal.call(stream, callback)
      resolve()
    }
    stream.on("error", reject)
    stream.end(text)
  })
}

/**
 * A statement sent after `copyNewRows` failed because the COPY did (the transaction was aborted):
 * returned as a data error, so the batch is applied again carefully, row by row, where the row
 * Postgres refuses is found and skipped (see transactCarefullyOnDataError).
 */
export const copyFailed = (error: unknown): unknown =>
  typeof error === "object" && error !== null && "code" in error && error.code === "25P02"
    ? Object.assign(new Error("COPY of new endpoint rows failed; applying the batch row by row"), { code: "22000", cause: error })
    : error

/** Applies endpoint events to `table` one statement at a time (the careful path). */
export const applyEndpointEvents = async (tx: Tx, table: string, events: ReadonlyArray<EndpointEvent>): Promise<void> => {
  if (events.length === 0) return
  const rows = await selectEndpointRows(tx, table, [...new Set(events.map((e) => e.endpoint_id))])
  const { deletes, changed, created } = endpointChanges(rows, events)
  for (const write of endpointWrites(tx, table, deletes, [...changed, ...created])) await write
}
