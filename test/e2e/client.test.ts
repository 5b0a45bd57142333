/**
 * The typed client (`@orbit/client`) against a real platform: registration, projection and
 * dispatcher as processes, a real HTTPS receiver, real Kafka and Postgres. Every call goes through
 * the SDK face (`new Orbit({ apiKey, baseUrl })`); nothing here speaks raw HTTP except the check
 * that the committed document is the served one.
 */
import { readFileSync } from "node:fs"
import { type CreateEndpointRequest, type Endpoint, Orbit, OrbitError } from "@orbit/client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { HttpsReceiver } from "../src/HttpsReceiver.ts"
import { type DeliveryRig, startDeliveryRig } from "../src/DeliveryRig.ts"
import { type Platform, uniqueTenant } from "../src/Platform.ts"

let receiver: HttpsReceiver
let platform: Platform
let rig: DeliveryRig

beforeAll(async () => {
  rig = await startDeliveryRig()
  ;({ receiver, platform } = rig)
})

afterAll(async () => {
  await rig?.close()
})

/** A client for a new key of a new tenant (or of `tenant`, in `mode`, of `kind`). */
const clientFor = async (tenant = uniqueTenant(), mode: "live" | "test" = "live", kind: "secret" | "public" = "secret") => {
  const { key } = await platform.createKey(tenant, mode, kind)
  return new Orbit({ apiKey: key, baseUrl: platform.baseUrl })
}

/** The OrbitError a call rejects with (fails the test if it resolves or throws anything else). */
const rejection = async (call: Promise<unknown>): Promise<OrbitError> => {
  const error = await call.then(() => undefined, (e: unknown) => e)
  expect(error).toBeInstanceOf(OrbitError)
  return error as OrbitError
}

const body: CreateEndpointRequest = { url: "https://hooks.example.com/orbit", events: ["message.delivered"] }

describe("@orbit/client", () => {
  it("was generated from the document the service serves (regenerate with `npm run generate -w @orbit/client`)", async () => {
    const { servers: _servers, ...served } = (await platform.api("GET", "/api/v1/openapi.json")).json
    const committed = JSON.parse(readFileSync(new URL(import.meta.resolve("@orbit/client/openapi.json")), "utf8"))
    expect(served).toEqual(committed)
  })

  it("create with an idempotency key: a replay returns the original endpoint and registers nothing", async () => {
    const orbit = await clientFor()
    const first = await orbit.webhooks.create(body, { idempotencyKey: "client-create-1" })
    expect(first.data.id).toMatch(/^wh_/)
    expect(first.data.signing_secret).toMatch(/^whsec_/)
    expect(first.meta.request_id).toMatch(/^req_/)
    const replay = await orbit.webhooks.create(body, { idempotencyKey: "client-create-1" })
    expect(replay.data).toEqual(first.data)
    expect((await orbit.webhooks.list()).data.map((e) => e.id)).toEqual([first.data.id])
    // Without a key, the same body registers a second endpoint.
    const second = await orbit.webhooks.create(body)
    expect(second.data.id).not.toBe(first.data.id)
  })

  it("list pages with cursors; all() walks every page, newest first", async () => {
    const orbit = await clientFor()
    const ids: Array<string> = []
    for (let i = 0; i < 5; i++) ids.push((await orbit.webhooks.create({ ...body, description: `n${i}` })).data.id)
    await platform.waitFor("5 endpoints listed", async () => (await orbit.webhooks.list({ limit: 200 })).data.length === 5)

    const first = await orbit.webhooks.list({ limit: 2 })
    expect(first.data.map((e) => e.id)).toEqual([ids[4], ids[3]])
    expect(first.meta.pagination.has_more).toBe(true)
    const second = await orbit.webhooks.list({ limit: 2, cursor: first.meta.pagination.cursor! })
    expect(second.data.map((e) => e.id)).toEqual([ids[2], ids[1]])

    const walked: Array<Endpoint> = []
    for await (const endpoint of orbit.webhooks.all({ limit: 2 })) walked.push(endpoint)
    expect(walked.map((e) => e.id)).toEqual([...ids].reverse())
    expect(walked.every((e) => !("signing_secret" in e))).toBe(true)
  })

  it("get, update, rotateSecret, test, deliveries, delete", async () => {
    const orbit = await clientFor()
    const created = (await orbit.webhooks.create({ url: receiver.url("/client"), events: ["call.completed"] })).data

    const got = await orbit.webhooks.get(created.id)
    expect(got.data).toEqual(Object.fromEntries(Object.entries(created).filter(([k]) => k !== "signing_secret")))

    const updated = await orbit.webhooks.update(created.id, {
      url: receiver.url("/client-v2"),
      events: ["call.completed", "call.failed"],
      description: "updated by the client",
      timeout_seconds: 10
    })
    expect(updated.data).toMatchObject({
      id: created.id,
      url: receiver.url("/client-v2"),
      events: ["call.completed", "call.failed"],
      description: "updated by the client",
      timeout_seconds: 10,
      created_at: created.created_at
    })
    expect((await orbit.webhooks.get(created.id)).data).toEqual(updated.data)

    const rotated = await orbit.webhooks.rotateSecret(created.id, { grace_period_seconds: 60 })
    expect(rotated.data.id).toBe(created.id)
    expect(rotated.data.signing_secret).toMatch(/^whsec_/)
    expect(rotated.data.signing_secret).not.toBe(created.signing_secret)
    const chosen = await orbit.webhooks.rotateSecret(created.id)
    expect(chosen.data.signing_secret).not.toBe(rotated.data.signing_secret)

    const sent = await orbit.webhooks.test(created.id)
    expect(sent.data).toMatchObject({ endpoint_id: created.id, type: "webhook.test" })
    const attempts = await platform.waitFor("the test delivery in the attempt log", async () =>
      (await orbit.webhooks.deliveries(created.id)).data.length === 1
    ).then(() => orbit.webhooks.deliveries(created.id, { limit: 10 }))
    expect(attempts.data[0]).toMatchObject({
      delivery_id: sent.data.delivery_id,
      event_id: sent.data.event_id,
      event_type: "webhook.test",
      outcome: "succeeded",
      http_status: 200
    })
    expect(attempts.meta.pagination).toEqual({ cursor: null, has_more: false })
    expect(receiver.received.filter((r) => r.headers["x-devotel-event-id"] === sent.data.event_id).map((r) => r.path)).toEqual(["/client-v2"])
    const walked = []
    for await (const attempt of orbit.webhooks.allDeliveries(created.id, { limit: 1 })) walked.push(attempt.id)
    expect(walked).toEqual([attempts.data[0]!.id])

    await expect(orbit.webhooks.delete(created.id)).resolves.toBeUndefined()
    const gone = await rejection(orbit.webhooks.get(created.id))
    expect(gone.code).toBe("NOT_FOUND")
  })

  it("answers a non-2xx with a typed OrbitError carrying the envelope", async () => {
    const tenant = uniqueTenant()
    const orbit = await clientFor(tenant)

    const notFound = await rejection(orbit.webhooks.get("wh_doesnotexist0000000000"))
    expect(notFound).toMatchObject({ code: "NOT_FOUND", status: 404, details: [] })
    expect(notFound.message).toBeTruthy()
    expect(notFound.request_id).toMatch(/^req_/)

    const invalid = await rejection(orbit.webhooks.create({ ...body, timeout_seconds: 0 }))
    expect(invalid).toMatchObject({ code: "VALIDATION_ERROR", status: 422 })
    expect(invalid.details).toEqual([expect.objectContaining({ field: "timeout_seconds", value: 0, expected: "integer 1–30" })])

    expect(await rejection(orbit.webhooks.create({ ...body, url: "http://hooks.example.com/" }))).toMatchObject({
      code: "INVALID_WEBHOOK_URL",
      status: 422
    })
    expect(await rejection(orbit.webhooks.list({ cursor: "not-a-cursor" }))).toMatchObject({ code: "INVALID_CURSOR", status: 400 })

    const readOnly = await clientFor(tenant, "live", "public")
    expect(await rejection(readOnly.webhooks.create(body))).toMatchObject({ code: "INSUFFICIENT_PERMISSIONS", status: 403 })

    const stranger = new Orbit({ apiKey: "dv_live_sk_not-a-key", baseUrl: platform.baseUrl })
    expect(await rejection(stranger.webhooks.list())).toMatchObject({ code: "INVALID_API_KEY", status: 401 })
  })
})
