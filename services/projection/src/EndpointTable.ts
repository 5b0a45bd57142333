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

/**
 * Applies one endpoint event to `table` through the pure `evolve`, so the Postgres read model
 * and the dispatcher's in-memory index fold events identically.
 */
export const applyEndpointEvent = async (tx: Tx, table: string, event: EndpointEvent): Promise<void> => {
  const rows = await tx<Array<EndpointRow>>`SELECT * FROM ${tx(table)} WHERE id = ${event.endpoint_id} FOR UPDATE`
  const before = rows[0] ? toEndpoint(rows[0]) : undefined
  const after = evolve(before, event)
  if (after === undefined) {
    if (before !== undefined) await tx`DELETE FROM ${tx(table)} WHERE id = ${event.endpoint_id}`
    return
  }
  if (after === before) return
  const row = {
    id: after.id,
    tenant_id: after.tenant_id,
    mode: after.mode,
    url: after.url,
    events: tx.json(after.events as Array<string>),
    description: after.description,
    active: after.active,
    timeout_seconds: after.timeout_seconds,
    retry_policy: tx.json(after.retry_policy as never),
    secret_box: after.secret_box,
    previous_secret_box: after.previous_secret_box,
    previous_expires_at: after.previous_expires_at,
    created_at: after.created_at,
    updated_at: after.updated_at
  }
  await tx`
    INSERT INTO ${tx(table)} ${tx(row)}
    ON CONFLICT (id) DO UPDATE SET
      url = EXCLUDED.url, events = EXCLUDED.events, description = EXCLUDED.description,
      active = EXCLUDED.active, timeout_seconds = EXCLUDED.timeout_seconds,
      retry_policy = EXCLUDED.retry_policy, secret_box = EXCLUDED.secret_box,
      previous_secret_box = EXCLUDED.previous_secret_box,
      previous_expires_at = EXCLUDED.previous_expires_at, updated_at = EXCLUDED.updated_at`
}
