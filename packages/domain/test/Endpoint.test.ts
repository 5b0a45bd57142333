import { describe, expect, it } from "@effect/vitest"
import { type EndpointEvent, evolve, subscribes } from "../src/index.ts"
import { decodeEndpointEvent, encodeEndpointEvent } from "../src/EndpointEvents.ts"
import { deliveryIdFor } from "../src/Ids.ts"

const envelope = (n: number) => ({
  schema_version: 1 as const,
  event_id: `evt_${n}`,
  occurred_at: `2026-11-27T10:00:0${n}.000Z`,
  endpoint_id: "wh_abc",
  tenant_id: "t1",
  mode: "live" as const
})
const settings = {
  url: "https://a.example.com/",
  events: ["message.delivered" as const],
  description: null,
  active: true,
  timeout_seconds: 30,
  retry_policy: { strategy: "custom" as const, delays_seconds: [1] }
}
const registered: EndpointEvent = { _tag: "EndpointRegistered", ...envelope(1), ...settings, secret_box: "box1" }
const updated: EndpointEvent = { _tag: "EndpointUpdated", ...envelope(2), ...settings, events: ["*"], active: false }
const rotated: EndpointEvent = {
  _tag: "EndpointSecretRotated", ...envelope(3), secret_box: "box2", previous_secret_box: "box1", previous_expires_at: "2026-11-28T10:00:00.000Z"
}
const deleted: EndpointEvent = { _tag: "EndpointDeleted", ...envelope(4) }
const withHeaders: EndpointEvent = { _tag: "EndpointUpdated", ...envelope(5), ...settings, headers: { "X-Tenant": "acme" } }
const disabled: EndpointEvent = { _tag: "EndpointDisabled", ...envelope(6), reason: "failing", last_status: null }

describe("evolve", () => {
  it("folds the aggregate's events", () => {
    const s1 = evolve(undefined, registered)!
    expect(s1).toMatchObject({ id: "wh_abc", created_at: registered.occurred_at, secret_box: "box1", previous_secret_box: null })
    const s2 = evolve(s1, updated)!
    expect(s2).toMatchObject({ events: ["*"], active: false, created_at: registered.occurred_at, updated_at: updated.occurred_at })
    const s3 = evolve(s2, rotated)!
    expect(s3).toMatchObject({ secret_box: "box2", previous_secret_box: "box1" })
    expect(evolve(s3, deleted)).toBeUndefined()
  })

  it("applies a reseal only while the box it replaces is current", () => {
    const s3 = [registered, updated, rotated].reduce(evolve, undefined as ReturnType<typeof evolve>)!
    const resealed: EndpointEvent = {
      _tag: "EndpointSecretsResealed", ...envelope(5), replaces_secret_box: "box2", secret_box: "box2b", previous_secret_box: "box1b"
    }
    expect(evolve(s3, resealed)).toEqual({ ...s3, secret_box: "box2b", previous_secret_box: "box1b" })
    // A reseal made from the box before the rotation is stale: the rotation wins.
    expect(evolve(s3, { ...resealed, replaces_secret_box: "box1" })).toBe(s3)
    expect(evolve(undefined, resealed)).toBeUndefined()
    expect(decodeEndpointEvent(encodeEndpointEvent(resealed))).toEqual(resealed)
  })

  it("reads an event without headers (written before custom headers) as no headers, and keeps headers an event sets", () => {
    const s1 = evolve(undefined, registered)!
    expect(s1.headers).toEqual({})
    expect(evolve(s1, withHeaders)!.headers).toEqual({ "X-Tenant": "acme" })
    expect(evolve(evolve(s1, withHeaders)!, updated)!.headers).toEqual({})
  })

  it("disables once: a repeated disable keeps the first instant", () => {
    const s1 = evolve(undefined, registered)!
    const off = evolve(s1, disabled)!
    expect(off).toMatchObject({ active: false, disabled_reason: "failing", disabled_at: disabled.occurred_at })
    expect(evolve(off, { ...disabled, occurred_at: "2026-11-27T11:00:00.000Z" })).toBe(off)
  })

  it("is safe to replay: re-registration keeps state, events for unknown endpoints change nothing", () => {
    const s1 = evolve(undefined, registered)!
    expect(evolve(s1, registered)).toBe(s1)
    expect(evolve(undefined, updated)).toBeUndefined()
    expect(evolve(undefined, deleted)).toBeUndefined()
  })

  it("matches tenant, mode, active and type or *", () => {
    const s = evolve(undefined, registered)!
    expect(subscribes(s, "t1", "live", "message.delivered")).toBe(true)
    expect(subscribes(s, "t1", "live", "message.sent")).toBe(false)
    expect(subscribes(s, "t2", "live", "message.delivered")).toBe(false)
    expect(subscribes(s, "t1", "test", "message.delivered")).toBe(false)
    const all = evolve(s, { ...updated, active: true })!
    expect(subscribes(all, "t1", "live", "call.completed")).toBe(true)
    expect(subscribes(evolve(s, updated)!, "t1", "live", "call.completed")).toBe(false)
  })
})

describe("endpoint event codec", () => {
  it("round-trips every event and refuses unknown shapes", () => {
    for (const e of [registered, updated, rotated, deleted, withHeaders, disabled]) expect(decodeEndpointEvent(encodeEndpointEvent(e))).toEqual(e)
    expect(() => decodeEndpointEvent(JSON.stringify({ ...registered, schema_version: 2 }))).toThrow()
    expect(() => decodeEndpointEvent("{not json")).toThrow()
    // An event published before custom headers existed decodes as it was written.
    const { headers: _h, ...old } = decodeEndpointEvent(JSON.stringify(registered)) as { headers?: unknown }
    expect(_h).toBeUndefined()
    expect(old).toEqual(registered)
  })

  it("carries the rate limit, and decodes events written before it existed as no limit", () => {
    const limited: EndpointEvent = { ...updated, rate_limit_per_second: 5 }
    expect(decodeEndpointEvent(encodeEndpointEvent(limited))).toEqual(limited)
    const s1 = evolve(undefined, decodeEndpointEvent(encodeEndpointEvent(registered)))!
    expect(s1.rate_limit_per_second).toBeNull()
    expect(evolve(s1, limited)!.rate_limit_per_second).toBe(5)
    expect(evolve(evolve(s1, limited)!, updated)!.rate_limit_per_second).toBeNull() // a PUT without it clears it
  })
})

describe("delivery id", () => {
  it("is a stable UUID per (event, endpoint) pair", () => {
    const id = deliveryIdFor("evt_1", "wh_a")
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(deliveryIdFor("evt_1", "wh_a")).toBe(id)
    expect(deliveryIdFor("evt_1", "wh_b")).not.toBe(id)
    expect(deliveryIdFor("evt_2", "wh_a")).not.toBe(id)
  })
})
