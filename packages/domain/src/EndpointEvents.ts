import { Schema } from "effect"
import { EventSubscription } from "./EventTypes.ts"
import { Mode } from "./Mode.ts"
import { RetryPolicy } from "./RetryPolicy.ts"

/**
 * The endpoint aggregate's events on `webhooks.endpoint-events` (key = endpoint id).
 * A published shape is never edited: a change adds a new `schema_version` and an upcaster.
 * Secrets appear only as AES-256-GCM boxes (see @orbit/crypto SecretBox).
 */
const envelope = {
  schema_version: Schema.Literal(1),
  event_id: Schema.String,
  occurred_at: Schema.String,
  endpoint_id: Schema.String,
  tenant_id: Schema.String,
  mode: Mode
}

const settings = {
  url: Schema.String,
  events: Schema.Array(EventSubscription),
  description: Schema.NullOr(Schema.String),
  active: Schema.Boolean,
  timeout_seconds: Schema.Int,
  retry_policy: RetryPolicy,
  /** Attempts per second at most (absent in events written before it existed: none). */
  rate_limit_per_second: Schema.optionalKey(Schema.NullOr(Schema.Int))
}

export const EndpointRegistered = Schema.TaggedStruct("EndpointRegistered", {
  ...envelope,
  ...settings,
  secret_box: Schema.String
})
export type EndpointRegistered = typeof EndpointRegistered.Type

/** A full replacement of the settings (PUT). */
export const EndpointUpdated = Schema.TaggedStruct("EndpointUpdated", { ...envelope, ...settings })
export type EndpointUpdated = typeof EndpointUpdated.Type

export const EndpointDeleted = Schema.TaggedStruct("EndpointDeleted", envelope)
export type EndpointDeleted = typeof EndpointDeleted.Type

/** The previous secret keeps signing alongside the new one until `previous_expires_at`. */
export const EndpointSecretRotated = Schema.TaggedStruct("EndpointSecretRotated", {
  ...envelope,
  secret_box: Schema.String,
  previous_secret_box: Schema.String,
  previous_expires_at: Schema.String
})
export type EndpointSecretRotated = typeof EndpointSecretRotated.Type

export const EndpointEvent = Schema.Union([EndpointRegistered, EndpointUpdated, EndpointDeleted, EndpointSecretRotated])
export type EndpointEvent = typeof EndpointEvent.Type

export const EndpointEventJson = Schema.fromJsonString(EndpointEvent)
export const decodeEndpointEvent = Schema.decodeUnknownSync(EndpointEventJson)
export const encodeEndpointEvent = Schema.encodeSync(EndpointEventJson)
