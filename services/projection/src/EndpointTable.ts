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
  secret_box: string
  previous_secret_box: string | null
  previous_expires_at: Date | null
  created_at: Date
  updated_at: Date
}

const toEndpoint = (r: EndpointRow): Endpoint => ({
  ...r,
  previous_expires_at: r.previous_expires_at?.toISOString() ?? null,
  created_at: r.created_at.toISOString(),
  updated_at: r.updated_at.toISOString()
})

const toRow = (tx: Tx, e: Endpoint) => ({
  id: e.id,
  tenant_id: e.tenant_id,
  mode: e.mode,
  url: e.url,
  events: tx.json(e.events as Array<string>),
  description: e.description,
  active: e.active,
  timeout_seconds: e.timeout_seconds,
  retry_policy: tx.json(e.retry_policy as never),
  secret_box: e.secret_box,
  previous_secret_box: e.previous_secret_box,
  previous_expires_at: e.previous_expires_at,
  created_at: e.created_at,
  updated_at: e.updated_at
})

/**
 * Applies endpoint events to `table` through the pure `evolve`, so the Postgres read model and
 * the dispatcher's in-memory index fold events identically. The batch is folded in memory over
 * the rows it touches, then written with one upsert and one delete.
 */
export const applyEndpointEvents = async (tx: Tx, table: string, events: ReadonlyArray<EndpointEvent>): Promise<void> => {
  if (events.length === 0) return
  const ids = [...new Set(events.map((e) => e.endpoint_id))]
  const rows = await tx<Array<EndpointRow>>`SELECT * FROM ${tx(table)} WHERE id = ANY(${ids}) FOR UPDATE`
  const before = new Map(rows.map((r) => [r.id, toEndpoint(r)]))
  const after = new Map<string, Endpoint | undefined>(before)
  for (const event of events) after.set(event.endpoint_id, evolve(after.get(event.endpoint_id), event))

  const upserts: Array<ReturnType<typeof toRow>> = []
  const deletes: Array<string> = []
  for (const [id, state] of after) {
    if (state === undefined) {
      if (before.has(id)) deletes.push(id)
    } else if (state !== before.get(id)) {
      upserts.push(toRow(tx, state))
    }
  }
  if (deletes.length > 0) await tx`DELETE FROM ${tx(table)} WHERE id = ANY(${deletes})`
  if (upserts.length > 0) {
    await tx`
      INSERT INTO ${tx(table)} ${tx(upserts)}
      ON CONFLICT (id) DO UPDATE SET
        url = EXCLUDED.url, events = EXCLUDED.events, description = EXCLUDED.description,
        active = EXCLUDED.active, timeout_seconds = EXCLUDED.timeout_seconds,
        retry_policy = EXCLUDED.retry_policy, secret_box = EXCLUDED.secret_box,
        previous_secret_box = EXCLUDED.previous_secret_box,
        previous_expires_at = EXCLUDED.previous_expires_at, updated_at = EXCLUDED.updated_at`
  }
}
