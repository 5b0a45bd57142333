import { Result, Schema } from "effect"
import { type Endpoint, type EndpointSettings } from "./Endpoint.ts"
import type { DisabledReason, EndpointEvent } from "./EndpointEvents.ts"
import type { Mode } from "./Mode.ts"

/**
 * The endpoint aggregate's decider: `decide(command, state, context)` answers which events a command
 * produces, or why it is refused; `evolve` (Endpoint.ts) folds those events onto the state. Both are
 * pure. Everything that needs I/O is an input: the clock and a fresh event id arrive in the
 * context; a fresh endpoint id, the encrypted secret and the verdict on a URL arrive in the command.
 */

/** Who issues a command: one tenant in one mode. An endpoint exists only for its own tenant and mode. */
export interface CommandScope {
  readonly tenant_id: string
  readonly mode: Mode
}

/** The SSRF vetting of a URL (DNS included), done by the caller when `decide` asks for it. */
export type UrlVerdict =
  | { readonly _tag: "UrlAccepted" }
  | { readonly _tag: "UrlRefused"; readonly reason: string }

export interface RegisterEndpoint extends CommandScope {
  readonly _tag: "RegisterEndpoint"
  /** A fresh id: registration never targets an existing endpoint. */
  readonly endpoint_id: string
  readonly settings: EndpointSettings
  /** The signing secret, already sealed (@orbit/crypto SecretBox). */
  readonly secret_box: string
  readonly url_verdict?: UrlVerdict
}

/** A full replacement of the settings (PUT). */
export interface UpdateEndpoint extends CommandScope {
  readonly _tag: "UpdateEndpoint"
  readonly endpoint_id: string
  readonly settings: EndpointSettings
  /** Consulted only when the URL differs from the current one. */
  readonly url_verdict?: UrlVerdict
}

export interface RemoveEndpoint extends CommandScope {
  readonly _tag: "RemoveEndpoint"
  readonly endpoint_id: string
}

export interface RotateEndpointSecret extends CommandScope {
  readonly _tag: "RotateEndpointSecret"
  readonly endpoint_id: string
  /** The new signing secret, already sealed for the current slot. */
  readonly secret_box: string
  /**
   * The current signing secret sealed anew for the previous slot (a box opens only in the slot
   * it was sealed for, so the current box cannot simply move over).
   */
  readonly previous_secret_box: string
  /** How long the current secret keeps signing alongside the new one. */
  readonly grace_seconds: number
}

/** Seals the endpoint's unchanged secrets anew: the current key, boxes bound to their place. */
export interface ResealEndpointSecrets extends CommandScope {
  readonly _tag: "ResealEndpointSecrets"
  readonly endpoint_id: string
  /** The current box the new boxes were made from: if it has changed since, nothing is resealed. */
  readonly replaces_secret_box: string
  readonly secret_box: string
  readonly previous_secret_box: string | null
}

/** The platform turns off an endpoint whose every attempt has failed for the auto-disable period. */
export interface DisableEndpoint extends CommandScope {
  readonly _tag: "DisableEndpoint"
  readonly endpoint_id: string
  readonly reason: DisabledReason
  /** The HTTP status of the last failed attempt, null when it got no response. */
  readonly last_status: number | null
}

export type EndpointCommand = RegisterEndpoint | UpdateEndpoint | RemoveEndpoint | RotateEndpointSecret | ResealEndpointSecrets | DisableEndpoint

/** What only the caller's world knows at the moment of deciding. */
export interface DecideContext {
  /** ISO-8601 instant: every event's `occurred_at`. */
  readonly now: string
  /** Id of the one event a command produces. */
  readonly event_id: string
}

/** No endpoint with this id exists for the command's tenant and mode (absent, deleted, or another's). */
export class EndpointNotFound extends Schema.TaggedError<EndpointNotFound>()("EndpointNotFound", {
  endpoint_id: Schema.String
}) {}

/** The URL must be vetted before deciding: pass the verdict as the command's `url_verdict`. */
export class UrlUnvetted extends Schema.TaggedError<UrlUnvetted>()("UrlUnvetted", {
  url: Schema.String
}) {}

/** The URL's vetting refused it (not public https, or resolving to a private address). */
export class UrlRefused extends Schema.TaggedError<UrlRefused>()("UrlRefused", {
  url: Schema.String,
  reason: Schema.String
}) {}

/** Registration with an id that already exists (fresh ids make this a caller's bug). */
export class EndpointAlreadyExists extends Schema.TaggedError<EndpointAlreadyExists>()("EndpointAlreadyExists", {
  endpoint_id: Schema.String
}) {}

export type EndpointRejection = EndpointNotFound | UrlUnvetted | UrlRefused | EndpointAlreadyExists

const REJECTION_TAGS: ReadonlySet<string> = new Set(["EndpointNotFound", "UrlUnvetted", "UrlRefused", "EndpointAlreadyExists"])

export const isEndpointRejection = (u: unknown): u is EndpointRejection =>
  typeof u === "object" && u !== null && REJECTION_TAGS.has((u as { _tag?: unknown })._tag as string)

export type Decision = Result.Result<ReadonlyArray<EndpointEvent>, EndpointRejection>

/** The state as the command's scope sees it: another tenant's or mode's endpoint does not exist. */
const visible = (state: Endpoint | undefined, command: EndpointCommand): Endpoint | undefined =>
  state !== undefined && state.tenant_id === command.tenant_id && state.mode === command.mode ? state : undefined

/** Why a URL may not be used yet: it is accepted once vetted, and only then. */
const urlRefusal = (url: string, verdict: UrlVerdict | undefined): UrlUnvetted | UrlRefused | undefined => {
  if (verdict === undefined) return new UrlUnvetted({ url })
  if (verdict._tag === "UrlRefused") return new UrlRefused({ url, reason: verdict.reason })
  return undefined
}

const envelope = (command: EndpointCommand, context: DecideContext) => ({
  schema_version: 1 as const,
  event_id: context.event_id,
  occurred_at: context.now,
  endpoint_id: command.endpoint_id,
  tenant_id: command.tenant_id,
  mode: command.mode
})

/**
 * The invariants of the endpoint commands:
 * - every command but registration needs the endpoint to exist in the command's tenant and mode;
 * - a URL is vetted on registration, and on update only when it changes (an unchanged URL was
 *   vetted when it was set);
 * - rotation keeps the current secret signing until `now + grace_seconds`;
 * - a reseal replaces the boxes it was made from and no others: once the current box has changed
 *   (a rotation came first), it decides nothing.
 * - only an active endpoint is disabled: disabling an inactive one decides nothing.
 */
export const decide = (command: EndpointCommand, state: Endpoint | undefined, context: DecideContext): Decision => {
  switch (command._tag) {
    case "RegisterEndpoint": {
      if (state !== undefined) return Result.fail(new EndpointAlreadyExists({ endpoint_id: command.endpoint_id }))
      const refusal = urlRefusal(command.settings.url, command.url_verdict)
      if (refusal !== undefined) return Result.fail(refusal)
      return Result.succeed([{
        _tag: "EndpointRegistered",
        ...envelope(command, context),
        ...command.settings,
        secret_box: command.secret_box
      }])
    }
    case "UpdateEndpoint": {
      const current = visible(state, command)
      if (current === undefined) return Result.fail(new EndpointNotFound({ endpoint_id: command.endpoint_id }))
      if (command.settings.url !== current.url) {
        const refusal = urlRefusal(command.settings.url, command.url_verdict)
        if (refusal !== undefined) return Result.fail(refusal)
      }
      return Result.succeed([{ _tag: "EndpointUpdated", ...envelope(command, context), ...command.settings }])
    }
    case "RemoveEndpoint": {
      if (visible(state, command) === undefined) return Result.fail(new EndpointNotFound({ endpoint_id: command.endpoint_id }))
      return Result.succeed([{ _tag: "EndpointDeleted", ...envelope(command, context) }])
    }
    case "RotateEndpointSecret": {
      const current = visible(state, command)
      if (current === undefined) return Result.fail(new EndpointNotFound({ endpoint_id: command.endpoint_id }))
      return Result.succeed([{
        _tag: "EndpointSecretRotated",
        ...envelope(command, context),
        secret_box: command.secret_box,
        previous_secret_box: command.previous_secret_box,
        previous_expires_at: new Date(Date.parse(context.now) + command.grace_seconds * 1000).toISOString()
      }])
    }
    case "ResealEndpointSecrets": {
      const current = visible(state, command)
      if (current === undefined) return Result.fail(new EndpointNotFound({ endpoint_id: command.endpoint_id }))
      if (current.secret_box !== command.replaces_secret_box) return Result.succeed([])
      return Result.succeed([{
        _tag: "EndpointSecretsResealed",
        ...envelope(command, context),
        replaces_secret_box: command.replaces_secret_box,
        secret_box: command.secret_box,
        previous_secret_box: command.previous_secret_box
      }])
    }
    case "DisableEndpoint": {
      const current = visible(state, command)
      if (current === undefined) return Result.fail(new EndpointNotFound({ endpoint_id: command.endpoint_id }))
      if (!current.active) return Result.succeed([])
      return Result.succeed([{
        _tag: "EndpointDisabled",
        ...envelope(command, context),
        reason: command.reason,
        last_status: command.last_status
      }])
    }
  }
}
