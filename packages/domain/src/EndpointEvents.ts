import { Schema } from "effect"
import { StoredHeaders } from "./EndpointHeaders.ts"
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
  /** Added to every delivery; absent in events written before endpoints had custom headers (= none). */
  headers: Schema.optionalKey(StoredHeaders),
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

/**
 * The endpoint's secrets sealed anew (under the ring's current key, each box bound to this
 * endpoint and its slot); the secrets themselves do not change. It applies only while the
 * endpoint's current box is still `replaces_secret_box`, so a rotation appended in between wins.
 * The boxes it replaces stay in older events, opaque: nothing opens a superseded box.
 */
export const EndpointSecretsResealed = Schema.TaggedStruct("EndpointSecretsResealed", {
  ...envelope,
  replaces_secret_box: Schema.String,
  secret_box: Schema.String,
  previous_secret_box: Schema.NullOr(Schema.String)
})
export type EndpointSecretsResealed = typeof EndpointSecretsResealed.Type

/** Why the platform disabled an endpoint: every attempt failed for the auto-disable period. */
export const DisabledReason = Schema.Literal("failing")
export type DisabledReason = typeof DisabledReason.Type

/**
 * The platform turned the endpoint off (`active: false`) for `reason`; a later update with
 * `active: true` turns it on again and clears the reason.
 */
export const EndpointDisabled = Schema.TaggedStruct("EndpointDisabled", {
  ...envelope,
  reason: DisabledReason,
  /** The HTTP status of the last failed attempt, null when it got no response. */
  last_status: Schema.NullOr(Schema.Int)
})
export type EndpointDisabled = typeof EndpointDisabled.Type

export const EndpointEvent = Schema.Union([EndpointRegistered, EndpointUpdated, EndpointDeleted, EndpointSecretRotated, EndpointSecretsResealed, EndpointDisabled])
export type EndpointEvent = typeof EndpointEvent.Type

export const EndpointEventJson = Schema.fromJsonString(EndpointEvent)
export const decodeEndpointEvent = Schema.decodeUnknownSync(EndpointEventJson)
export const encodeEndpointEvent = Schema.encodeSync(EndpointEventJson)
