import type { DisabledReason, EndpointEvent } from "./EndpointEvents.ts"
import type { EventSubscription } from "./EventTypes.ts"
import type { Mode } from "./Mode.ts"
import type { RetryPolicy } from "./RetryPolicy.ts"

/** The endpoint aggregate's state, as every read model (Postgres, dispatcher index) sees it. */
export interface Endpoint {
  readonly id: string
  readonly tenant_id: string
  readonly mode: Mode
  readonly url: string
  readonly events: ReadonlyArray<EventSubscription>
  readonly description: string | null
  readonly active: boolean
  readonly timeout_seconds: number
  readonly retry_policy: RetryPolicy
  /** Added to every delivery (EndpointHeaders.ts). */
  readonly headers: Readonly<Record<string, string>>
  /** Why the platform disabled it (`active` is then false); null otherwise. */
  readonly disabled_reason: DisabledReason | null
  /** When the platform disabled it; null otherwise. */
  readonly disabled_at: string | null
  /** Attempts per second at most, across dispatcher instances; `null`: no limit. */
  readonly rate_limit_per_second: number | null
  readonly secret_box: string
  readonly previous_secret_box: string | null
  readonly previous_expires_at: string | null
  readonly created_at: string
  readonly updated_at: string
}

/** The settings a caller chooses (register and replace carry them all). */
export type EndpointSettings = Pick<
  Endpoint,
  "url" | "events" | "description" | "active" | "timeout_seconds" | "retry_policy" | "headers" | "rate_limit_per_second"
>

/** Settings as an event carries them: fields added later (`headers`, `rate_limit_per_second`) are absent from older events. */
type EventSettings = Omit<EndpointSettings, "headers" | "rate_limit_per_second"> & {
  readonly headers?: EndpointSettings["headers"] | undefined
  readonly rate_limit_per_second?: number | null
}

const NO_HEADERS: Readonly<Record<string, string>> = {}

const settingsOf = (s: EventSettings): EndpointSettings => ({
  url: s.url,
  events: s.events,
  description: s.description,
  active: s.active,
  timeout_seconds: s.timeout_seconds,
  retry_policy: s.retry_policy,
  headers: s.headers ?? NO_HEADERS,
  rate_limit_per_second: s.rate_limit_per_second ?? null
})

/**
 * Pure fold of one event onto the state. `undefined` means "does not exist" (never registered
 * or deleted). Events for an unknown or deleted endpoint leave it absent, so replays are safe.
 */
export const evolve = (state: Endpoint | undefined, event: EndpointEvent): Endpoint | undefined => {
  switch (event._tag) {
    case "EndpointRegistered":
      if (state !== undefined) return state
      return {
        id: event.endpoint_id,
        tenant_id: event.tenant_id,
        mode: event.mode,
        ...settingsOf(event),
        disabled_reason: null,
        disabled_at: null,
        secret_box: event.secret_box,
        previous_secret_box: null,
        previous_expires_at: null,
        created_at: event.occurred_at,
        updated_at: event.occurred_at
      }
    case "EndpointUpdated":
      if (state === undefined) return undefined
      return {
        ...state,
        ...settingsOf(event),
        // Turning the endpoint on clears why the platform turned it off; keeping it off keeps the reason.
        ...(event.active ? { disabled_reason: null, disabled_at: null } : {}),
        updated_at: event.occurred_at
      }
    case "EndpointDisabled":
      if (state === undefined) return undefined
      // Already off: the first reason and instant stand (a repeated event changes nothing).
      if (!state.active) return state
      return {
        ...state,
        active: false,
        disabled_reason: event.reason,
        disabled_at: event.occurred_at,
        updated_at: event.occurred_at
      }
    case "EndpointSecretRotated":
      if (state === undefined) return undefined
      return {
        ...state,
        secret_box: event.secret_box,
        previous_secret_box: event.previous_secret_box,
        previous_expires_at: event.previous_expires_at,
        updated_at: event.occurred_at
      }
    case "EndpointSecretsResealed":
      // Same secrets, new boxes; not a change of the resource, so updated_at stays.
      if (state === undefined || state.secret_box !== event.replaces_secret_box) return state
      // A reseal drops an expired previous secret (null): its window is over with it.
      return {
        ...state,
        secret_box: event.secret_box,
        previous_secret_box: event.previous_secret_box,
        previous_expires_at: event.previous_secret_box === null ? null : state.previous_expires_at
      }
    case "EndpointDeleted":
      return undefined
  }
}

/**
 * Does this endpoint want an event of `type` for (tenant, mode)? An event `addressed` to it (a
 * test event) skips the event-type filter; it must still be active and of that tenant and mode.
 */
export const subscribes = (endpoint: Endpoint, tenantId: string, mode: Mode, type: string, addressed = false): boolean =>
  endpoint.active && endpoint.tenant_id === tenantId && endpoint.mode === mode &&
  (addressed || endpoint.events.includes("*") || endpoint.events.includes(type as EventSubscription))
