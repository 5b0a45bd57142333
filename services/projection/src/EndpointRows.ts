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
 * model and the dispatcher's in-memory index fold events identically) and returns the writes,
 * one delete and one upsert at most, as pending queries for the caller to pipeline. The upserted
 * rows travel as one jsonb parameter (an endpoint's fields are the table's columns), so a batch of
 * thousands of rows costs one parameter to bind and a short statement to parse, not a parameter
 * per column per row.
 */
export const endpointWrites = (tx: Tx, table: string, rows: ReadonlyArray<EndpointRow>, events: ReadonlyArray<EndpointEvent>) => {
  const before = new Map(rows.map((r) => [r.id, toEndpoint(r)]))
  const after = new Map<string, Endpoint | undefined>(before)
  for (const event of events) after.set(event.endpoint_id, evolve(after.get(event.endpoint_id), event))

  const upserts: Array<Endpoint> = []
  const deletes: Array<string> = []
  for (const [id, state] of after) {
    if (state === undefined) {
      if (before.has(id)) deletes.push(id)
    } else if (state !== before.get(id)) {
      upserts.push(state)
    }
  }
  const writes = []
  if (deletes.length > 0) writes.push(tx`DELETE FROM ${tx(table)} WHERE id = ANY(${deletes})`)
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

/** Applies endpoint events to `table` one statement at a time (the careful path). */
export const applyEndpointEvents = async (tx: Tx, table: string, events: ReadonlyArray<EndpointEvent>): Promise<void> => {
  if (events.length === 0) return
  const rows = await selectEndpointRows(tx, table, [...new Set(events.map((e) => e.endpoint_id))])
  for (const write of endpointWrites(tx, table, rows, events)) await write
}
