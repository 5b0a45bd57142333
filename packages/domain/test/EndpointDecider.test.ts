import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import {
  decide,
  type DecideContext,
  type Endpoint,
  type EndpointCommand,
  type EndpointEvent,
  type EndpointSettings,
  evolve,
  isEndpointRejection
} from "../src/index.ts"

const context: DecideContext = { now: "2026-11-27T10:00:05.000Z", event_id: "evt_cmd" }
const settings: EndpointSettings = {
  url: "https://a.example.com/hook",
  events: ["message.delivered"],
  description: null,
  active: true,
  timeout_seconds: 30,
  retry_policy: { strategy: "custom", delays_seconds: [1] },
  headers: { "X-Tenant": "acme" },
  rate_limit_per_second: null
}
const scope = { tenant_id: "t1", mode: "live" as const }

const active: Endpoint = {
  id: "wh_abc",
  ...scope,
  ...settings,
  disabled_reason: null,
  disabled_at: null,
  secret_box: "box_current",
  previous_secret_box: null,
  previous_expires_at: null,
  created_at: "2026-11-27T10:00:00.000Z",
  updated_at: "2026-11-27T10:00:00.000Z"
}
const inactive: Endpoint = { ...active, active: false }
const otherTenant: Endpoint = { ...active, tenant_id: "t2" }
const otherMode: Endpoint = { ...active, mode: "test" }

const accepted = { _tag: "UrlAccepted" as const }
const refused = { _tag: "UrlRefused" as const, reason: "The URL resolves to a private address." }

const register: EndpointCommand = { _tag: "RegisterEndpoint", ...scope, endpoint_id: "wh_new", settings, secret_box: "box_new" }
const update: EndpointCommand = { _tag: "UpdateEndpoint", ...scope, endpoint_id: "wh_abc", settings: { ...settings, events: ["*"] } }
const moved: EndpointCommand = { ...update, settings: { ...settings, url: "https://b.example.com/hook" } }
const remove: EndpointCommand = { _tag: "RemoveEndpoint", ...scope, endpoint_id: "wh_abc" }
const rotate: EndpointCommand = { _tag: "RotateEndpointSecret", ...scope, endpoint_id: "wh_abc", secret_box: "box_next", previous_secret_box: "box_current_as_previous", grace_seconds: 3600 }
const reseal: EndpointCommand = {
  _tag: "ResealEndpointSecrets",
  ...scope,
  endpoint_id: "wh_abc",
  replaces_secret_box: "box_current",
  secret_box: "box_current_resealed",
  previous_secret_box: null
}
const disable: EndpointCommand = { _tag: "DisableEndpoint", ...scope, endpoint_id: "wh_abc", reason: "failing", last_status: 500 }

const events = (command: EndpointCommand, state: Endpoint | undefined): ReadonlyArray<EndpointEvent> => {
  const decision = decide(command, state, context)
  if (Result.isFailure(decision)) throw new Error(`expected events, got the rejection ${decision.failure._tag}`)
  return decision.success
}
const rejection = (command: EndpointCommand, state: Endpoint | undefined) => {
  const decision = decide(command, state, context)
  if (Result.isSuccess(decision)) throw new Error(`expected a rejection, got ${decision.success.map((e) => e._tag).join(", ")}`)
  expect(isEndpointRejection(decision.failure)).toBe(true)
  return decision.failure
}
const envelope = (endpoint_id: string) => ({ schema_version: 1, event_id: "evt_cmd", occurred_at: context.now, endpoint_id, ...scope })

describe("decide: RegisterEndpoint", () => {
  it("registers a vetted URL under the fresh id, and evolve turns it into the new endpoint", () => {
    const out = events({ ...register, url_verdict: accepted }, undefined)
    expect(out).toEqual([{ _tag: "EndpointRegistered", ...envelope("wh_new"), ...settings, secret_box: "box_new" }])
    expect(out.reduce(evolve, undefined)).toMatchObject({ id: "wh_new", ...settings, created_at: context.now, updated_at: context.now })
  })

  it("asks for the URL's vetting first, and refuses a URL the vetting refused", () => {
    expect(rejection(register, undefined)).toMatchObject({ _tag: "UrlUnvetted", url: settings.url })
    expect(rejection({ ...register, url_verdict: refused }, undefined)).toMatchObject({
      _tag: "UrlRefused",
      url: settings.url,
      reason: refused.reason
    })
  })

  it("never overwrites an existing endpoint", () => {
    expect(rejection({ ...register, endpoint_id: "wh_abc", url_verdict: accepted }, active)).toMatchObject({ _tag: "EndpointAlreadyExists" })
  })
})

describe("decide: UpdateEndpoint", () => {
  it("replaces the settings of an endpoint of the command's scope, active or not", () => {
    for (const state of [active, inactive]) {
      const out = events(update, state)
      expect(out).toEqual([{ _tag: "EndpointUpdated", ...envelope("wh_abc"), ...settings, events: ["*"] }])
      expect(out.reduce(evolve, state)).toMatchObject({ events: ["*"], created_at: state.created_at, updated_at: context.now })
    }
  })

  it("needs no vetting while the URL is unchanged, and vetting when it changes", () => {
    expect(events({ ...update, url_verdict: refused }, active)).toHaveLength(1)
    expect(rejection(moved, active)).toMatchObject({ _tag: "UrlUnvetted", url: "https://b.example.com/hook" })
    expect(rejection({ ...moved, url_verdict: refused }, active)).toMatchObject({ _tag: "UrlRefused", url: "https://b.example.com/hook" })
    expect(events({ ...moved, url_verdict: accepted }, active)[0]).toMatchObject({ url: "https://b.example.com/hook" })
  })

  it("finds no endpoint that is absent or of another tenant or mode, before any vetting", () => {
    for (const state of [undefined, otherTenant, otherMode]) {
      expect(rejection(update, state)).toMatchObject({ _tag: "EndpointNotFound", endpoint_id: "wh_abc" })
      expect(rejection(moved, state)).toMatchObject({ _tag: "EndpointNotFound" })
    }
  })
})

describe("decide: RemoveEndpoint", () => {
  it("deletes an endpoint of the command's scope, active or not", () => {
    for (const state of [active, inactive]) {
      const out = events(remove, state)
      expect(out).toEqual([{ _tag: "EndpointDeleted", ...envelope("wh_abc") }])
      expect(out.reduce(evolve, state)).toBeUndefined()
    }
  })

  it("finds no endpoint that is absent or of another tenant or mode", () => {
    for (const state of [undefined, otherTenant, otherMode]) {
      expect(rejection(remove, state)).toMatchObject({ _tag: "EndpointNotFound", endpoint_id: "wh_abc" })
    }
  })
})

describe("decide: RotateEndpointSecret", () => {
  it("keeps the current secret signing for the grace period after now", () => {
    for (const state of [active, inactive]) {
      const out = events(rotate, state)
      expect(out).toEqual([{
        _tag: "EndpointSecretRotated",
        ...envelope("wh_abc"),
        secret_box: "box_next",
        previous_secret_box: "box_current_as_previous",
        previous_expires_at: "2026-11-27T11:00:05.000Z"
      }])
      expect(out.reduce(evolve, state)).toMatchObject({
        secret_box: "box_next",
        previous_secret_box: "box_current_as_previous",
        updated_at: context.now
      })
    }
  })

  it("replaces a secret still in its grace period with the current one", () => {
    const rotated = { ...active, previous_secret_box: "box_old", previous_expires_at: "2026-11-28T00:00:00.000Z" }
    expect(events(rotate, rotated)[0]).toMatchObject({ previous_secret_box: "box_current_as_previous" })
  })

  it("finds no endpoint that is absent or of another tenant or mode", () => {
    for (const state of [undefined, otherTenant, otherMode]) {
      expect(rejection(rotate, state)).toMatchObject({ _tag: "EndpointNotFound", endpoint_id: "wh_abc" })
    }
  })
})

describe("decide: ResealEndpointSecrets", () => {
  it("replaces the boxes it was made from, keeping everything else", () => {
    const rotated = { ...active, previous_secret_box: "box_old", previous_expires_at: "2026-11-28T00:00:00.000Z" }
    const command = { ...reseal, previous_secret_box: "box_old_resealed" }
    const out = events(command, rotated)
    expect(out).toEqual([{
      _tag: "EndpointSecretsResealed",
      ...envelope("wh_abc"),
      replaces_secret_box: "box_current",
      secret_box: "box_current_resealed",
      previous_secret_box: "box_old_resealed"
    }])
    expect(out.reduce(evolve, rotated)).toEqual({ ...rotated, secret_box: "box_current_resealed", previous_secret_box: "box_old_resealed" })
  })

  it("decides nothing once the current box has changed (a rotation came first)", () => {
    expect(events(reseal, { ...active, secret_box: "box_rotated" })).toEqual([])
  })

  it("finds no endpoint that is absent or of another tenant or mode", () => {
    for (const state of [undefined, otherTenant, otherMode]) {
      expect(rejection(reseal, state)).toMatchObject({ _tag: "EndpointNotFound", endpoint_id: "wh_abc" })
    }
  })
})

describe("disable", () => {
  it("turns an active endpoint off with the reason, and an update with active: true turns it on and clears it", () => {
    const [event] = events(disable, active)
    expect(event).toEqual({ _tag: "EndpointDisabled", ...envelope("wh_abc"), reason: "failing", last_status: 500 })
    const off = evolve(active, event!)!
    expect(off).toMatchObject({ active: false, disabled_reason: "failing", disabled_at: context.now, headers: settings.headers })
    const stillOff = evolve(off, events({ ...update, settings: { ...settings, active: false } }, off)[0]!)!
    expect(stillOff).toMatchObject({ active: false, disabled_reason: "failing", disabled_at: context.now })
    const on = evolve(off, events(update, off)[0]!)!
    expect(on).toMatchObject({ active: true, disabled_reason: null, disabled_at: null })
  })

  it("decides nothing for an endpoint that is already inactive", () => {
    expect(events(disable, inactive)).toEqual([])
  })

  it("finds no endpoint that is absent or of another tenant or mode", () => {
    for (const state of [undefined, otherTenant, otherMode]) {
      expect(rejection(disable, state)).toMatchObject({ _tag: "EndpointNotFound", endpoint_id: "wh_abc" })
    }
  })
})
