import { Schema } from "effect"
import { EventType } from "./EventTypes.ts"
import { ENDPOINT_ID_PATTERN } from "./Ids.ts"
import { IsoInstant } from "./Instant.ts"
import { Mode, TenantId } from "./Mode.ts"

/** What upstream producers publish on `orbit.events` (API.md §8). */
export const DomainEvent = Schema.Struct({
  id: Schema.String.check(Schema.isPattern(/^evt_[0-9a-f]{32}$/)),
  type: EventType,
  tenant_id: TenantId,
  mode: Schema.optionalKey(Mode),
  created_at: IsoInstant,
  data: Schema.Record(Schema.String, Schema.Unknown),
  /**
   * (ours) Deliver to this one endpoint of the tenant and mode only, whatever event types it
   * subscribes to (it must still be active). `POST /api/v1/webhooks/{id}/test` publishes so.
   */
  endpoint_id: Schema.optionalKey(Schema.String.check(Schema.isPattern(ENDPOINT_ID_PATTERN)))
})
export type DomainEvent = typeof DomainEvent.Type

export const DomainEventJson = Schema.fromJsonString(DomainEvent)
export const encodeDomainEvent = Schema.encodeSync(DomainEventJson)
