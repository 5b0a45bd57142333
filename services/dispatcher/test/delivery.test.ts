/** End to end: source event → fan-out → signed HTTPS delivery, against the real broker. */
import { createHmac, randomUUID } from "node:crypto"
import { encrypt, parseKeyRing } from "@orbit/crypto"
import { type DeliveryTask, deliveryIdFor, type EndpointRegistered } from "@orbit/domain"
import { Webhook } from "standardwebhooks"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { INVALID_REASON_HEADER } from "../src/fan-out/FanOut.ts"
import {
  domainEvent,
  type Harness,
  makeCert,
  makeHarness,
  type Receiver,
  startReceiver,
  committedOffsets,
  tasksIn,
  type TestEndpoint,
  waitFor,
  waitForCommittedPast,
  waitForGroupCaughtUp
} from "./support.ts"

let tls: ReturnType<typeof makeCert>
let receiver: Receiver
let h: Harness
const url = (path: string) => `https://hooks.test:${receiver.port}${path}`

beforeAll(async () => {
  tls = makeCert()
  receiver = await startReceiver(tls)
  h = await makeHarness("delivery")
  await h.startDispatcher({ ORBIT_EXTRA_CA_FILE: tls.caFile, ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8" })
})

afterAll(async () => {
  await h?.close()
  await receiver?.close()
  tls?.cleanup()
})

/** From scratch: t=<ts>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>, any number of v1 values. */
const devotelSignatures = (header: string) => {
  const parts = header.split(",").map((p) => p.split("="))
  return { t: parts.find(([k]) => k === "t")![1]!, v1: parts.filter(([k]) => k === "v1").map(([, v]) => v!) }
}
const hmacHex = (secret: string, t: string, body: string) => createHmac("sha256", Buffer.from(secret, "utf8")).update(`${t}.${body}`).digest("hex")

describe("dispatcher delivery", () => {
  it("delivers a signed webhook that independent verifiers accept", async () => {
    const tenant = `ten_${randomUUID()}`
    const endpoint = await h.register({ url: url("/e2e"), tenantId: tenant, events: ["message.delivered"] })
    const event = domainEvent(tenant, "message.delivered", { message_id: "m1", status: "delivered", n: 1 })
    const publishedAt = Math.floor(Date.now() / 1000)
    await h.publish(event)

    const got = await waitFor("delivery", () => receiver.received.find((r) => r.path === "/e2e"))
    expect(JSON.parse(got.body)).toEqual({ id: event.id, type: event.type, created_at: event.created_at, data: event.data })
    expect(got.headers["content-type"]).toBe("application/json; charset=utf-8")
    expect(got.headers["user-agent"]).toBe("Devotel-Webhooks/1.0")
    expect(got.headers["x-devotel-event-id"]).toBe(event.id)
    expect(got.headers["x-devotel-event-type"]).toBe("message.delivered")
    expect(got.headers["x-devotel-delivery-id"]).toBe(deliveryIdFor(event.id, endpoint.id))
    expect(got.headers["host"]).toBe(`hooks.test:${receiver.port}`)

    // Standard Webhooks, verified by the npm package with the generated whsec_ secret as-is.
    expect(new Webhook(endpoint.secret).verify(got.body, got.headers)).toEqual(JSON.parse(got.body))
    // X-Devotel-Signature, recomputed from scratch.
    const sig = devotelSignatures(got.headers["x-devotel-signature"]!)
    // Signed at the attempt: between the publish and the receipt.
    expect(Number(sig.t)).toBeGreaterThanOrEqual(publishedAt)
    expect(Number(sig.t)).toBeLessThanOrEqual(got.at / 1000)
    expect(sig.v1).toEqual([hmacHex(endpoint.secret, sig.t, got.body)])

    const attempt = await waitFor("attempt event", () => h.attempts.find((a) => a.endpoint_id === endpoint.id))
    expect(attempt).toMatchObject({
      delivery_id: deliveryIdFor(event.id, endpoint.id),
      source_event_id: event.id,
      attempt: 1,
      outcome: "succeeded",
      http_status: 200,
      error_class: null,
      dead_lettered: false
    })
  })

  it("signs with both secrets during a rotation grace window (new first); caller-chosen secrets work", async () => {
    const tenant = `ten_${randomUUID()}`
    const oldSecret = "my-own-secret-of-24-chars-or-more"
    const endpoint = await h.register({ url: url("/rotated"), tenantId: tenant, secret: oldSecret })
    // Delivered before the rotation: the dispatcher knows the endpoint and its old secret.
    const before = domainEvent(tenant, "call.completed")
    await h.publish(before)
    const first = await waitFor("delivery before the rotation", () => receiver.received.find((r) => r.headers["x-devotel-event-id"] === before.id))
    const firstSig = devotelSignatures(first.headers["x-devotel-signature"]!)
    expect(firstSig.v1).toEqual([hmacHex(oldSecret, firstSig.t, first.body)])

    // The event is published as soon as the rotation is acknowledged, with no wait in between:
    // read-your-writes says it is signed with the rotation applied.
    const newSecret = "the-new-secret-after-rotation-xyz"
    const ring = parseKeyRing(h.keyRing)
    await h.emit({
      _tag: "EndpointSecretRotated",
      schema_version: 1,
      event_id: randomUUID(),
      occurred_at: new Date().toISOString(),
      endpoint_id: endpoint.id,
      tenant_id: tenant,
      mode: "live",
      secret_box: encrypt(ring, newSecret, { tenant_id: tenant, mode: "live", endpoint_id: endpoint.id, slot: "current" }),
      previous_secret_box: encrypt(ring, oldSecret, { tenant_id: tenant, mode: "live", endpoint_id: endpoint.id, slot: "previous" }),
      previous_expires_at: new Date(Date.now() + 3600_000).toISOString()
    })
    const after = domainEvent(tenant, "call.completed")
    await h.publish(after)
    const got = await waitFor("delivery after the rotation", () => receiver.received.find((r) => r.headers["x-devotel-event-id"] === after.id))
    const sig = devotelSignatures(got.headers["x-devotel-signature"]!)
    expect(sig.v1).toEqual([hmacHex(newSecret, sig.t, got.body), hmacHex(oldSecret, sig.t, got.body)])
    for (const secret of [newSecret, oldSecret]) {
      const wh = new Webhook("whsec_" + Buffer.from(secret, "utf8").toString("base64"))
      expect(() => wh.verify(got.body, got.headers)).not.toThrow()
    }
  })

  it("never signs with a box copied from another endpoint or moved into the previous slot", async () => {
    const victimTenant = `ten_${randomUUID()}`
    const victim = await h.register({ url: url("/victim"), tenantId: victimTenant, secret: "the-victims-own-secret-0123456789" })
    // Delivered first, so the victim's secret is already open in the dispatcher's memory.
    const warm = domainEvent(victimTenant, "call.completed")
    await h.publish(warm)
    await waitFor("the victim's delivery", () => receiver.received.find((r) => r.headers["x-devotel-event-id"] === warm.id))

    // Another tenant's endpoint whose registration carries the victim's box, as someone able to
    // write the endpoint topic could make it.
    const tenant = `ten_${randomUUID()}`
    const copied = await h.register({ url: url("/copied"), tenantId: tenant })
    const boxOf = (e: TestEndpoint) => (e.registered as EndpointRegistered).secret_box
    await h.emit({
      _tag: "EndpointSecretsResealed",
      schema_version: 1,
      event_id: randomUUID(),
      occurred_at: new Date().toISOString(),
      endpoint_id: copied.id,
      tenant_id: tenant,
      mode: "live",
      replaces_secret_box: boxOf(copied),
      secret_box: boxOf(victim),
      previous_secret_box: null
    })
    // An endpoint of the same tenant whose current box was moved into the previous slot as it is.
    const moved = await h.register({ url: url("/moved"), tenantId: tenant, secret: "moved-secret-0123456789-abcdefgh" })
    const ring = parseKeyRing(h.keyRing)
    await h.emit({
      _tag: "EndpointSecretRotated",
      schema_version: 1,
      event_id: randomUUID(),
      occurred_at: new Date().toISOString(),
      endpoint_id: moved.id,
      tenant_id: tenant,
      mode: "live",
      secret_box: encrypt(ring, "after-the-move-0123456789-abcdefg", { tenant_id: tenant, mode: "live", endpoint_id: moved.id, slot: "current" }),
      previous_secret_box: boxOf(moved),
      previous_expires_at: new Date(Date.now() + 3600_000).toISOString()
    })

    const event = domainEvent(tenant, "call.completed")
    await h.publish(event)
    for (const endpoint of [copied, moved]) {
      const attempt = await waitFor("the refused attempt", () => h.attempts.find((a) => a.endpoint_id === endpoint.id && a.source_event_id === event.id))
      expect(attempt).toMatchObject({ outcome: "failed", http_status: null, error_class: "signing" })
    }
    // Refused before any request: nothing reached either URL.
    expect(receiver.received.filter((r) => r.path === "/copied" || r.path === "/moved")).toEqual([])
  })

  it("matches tenant, mode, type and active; one task per subscribed endpoint", async () => {
    const tenant = `ten_${randomUUID()}`
    const all = await h.register({ url: url("/m-all"), tenantId: tenant, events: ["*"] })
    await h.register({ url: url("/m-other-type"), tenantId: tenant, events: ["call.failed"] })
    await h.register({ url: url("/m-test-mode"), tenantId: tenant, mode: "test" })
    await h.register({ url: url("/m-inactive"), tenantId: tenant, active: false })
    await h.register({ url: url("/m-other-tenant"), tenantId: `${tenant}_x` })
    const typed = await h.register({ url: url("/m-typed"), tenantId: tenant, events: ["contact.created", "message.sent"] })
    const event = domainEvent(tenant, "message.sent")
    await h.publish(event)
    await waitFor("both deliveries", () =>
      receiver.received.some((r) => r.path === "/m-all") && receiver.received.some((r) => r.path === "/m-typed"))
    // The fan-out commits the event only after each task is attempted (its outcome recorded) or
    // written to the deliveries topic, and the worker commits a task only after its attempt: then
    // every request made for the event was received.
    await waitForGroupCaughtUp(h, "orbit-dispatcher-fanout", h.topics.sourceEvents.name)
    await waitForGroupCaughtUp(h, "orbit-dispatcher-delivery", h.topics.deliveries.name)
    const queued = (await tasksIn(h, h.topics.deliveries.name)).filter((task) => task.source_event_id === event.id)
    const attempted = await waitFor("the attempt events", () => {
      const a = h.attempts.filter((x) => x.source_event_id === event.id)
      return a.length >= 2 ? a : undefined
    })
    // One task per subscribed endpoint: each attempted once, whether at once or after waiting in the topic.
    expect(attempted.map((a) => a.endpoint_id).sort()).toEqual([all.id, typed.id].sort())
    expect(queued.every((task) => task.endpoint_id === all.id || task.endpoint_id === typed.id)).toBe(true)
    const paths = receiver.received.filter((r) => r.path.startsWith("/m-")).map((r) => r.path).sort()
    expect(paths).toEqual(["/m-all", "/m-typed"])
    const ids = receiver.received.filter((r) => r.path.startsWith("/m-")).map((r) => r.headers["x-devotel-delivery-id"])
    expect(new Set(ids)).toEqual(new Set([deliveryIdFor(event.id, all.id), deliveryIdFor(event.id, typed.id)]))
  })

  it("attempts a ready endpoint's task without writing it to webhooks.deliveries; a busy endpoint's tasks wait there", async () => {
    const tenant = `ten_${randomUUID()}`
    const ready = await h.register({ url: url("/hop-ready"), tenantId: tenant, events: ["message.sent"] })
    const first = domainEvent(tenant, "message.sent")
    await h.publish(first)
    await waitFor("the ready endpoint's attempt", () => h.attempts.find((a) => a.source_event_id === first.id && a.outcome === "succeeded"))
    // Committed by the fan-out: its tasks are attempted or in the topic by now.
    await waitForGroupCaughtUp(h, "orbit-dispatcher-fanout", h.topics.sourceEvents.name)
    expect((await tasksIn(h, h.topics.deliveries.name)).filter((t) => t.source_event_id === first.id)).toEqual([])

    // A receiver holding every request: the endpoint's per-endpoint slots (8) fill, and the events
    // beyond them wait in the topic until a slot frees.
    const busyTenant = `ten_${randomUUID()}`
    const busy = await h.register({ url: url("/hop-busy"), tenantId: busyTenant, events: ["message.sent"], timeoutSeconds: 30 })
    const held: Array<() => void> = []
    receiver.on("/hop-busy", (_req, res) => held.push(() => res.writeHead(200).end("ok")))
    const events = Array.from({ length: 10 }, () => domainEvent(busyTenant, "message.sent"))
    for (const event of events) await h.publish(event)
    await waitFor("the endpoint's 8 slots held", () => held.length >= 8)
    const ids = new Set(events.map((e) => e.id))
    // 8 attempts held, so the 2 events beyond the slots can only be in the topic.
    let queued: Array<DeliveryTask> = []
    for (const deadline = Date.now() + 20_000; queued.length < 2;) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for 2 queued tasks (have ${queued.length})`)
      queued = (await tasksIn(h, h.topics.deliveries.name)).filter((t) => ids.has(t.source_event_id))
    }
    expect(queued.length).toBe(2)
    expect(queued.every((t) => t.endpoint_id === busy.id)).toBe(true)
    receiver.on("/hop-busy", (_req, res) => res.writeHead(200).end("ok"))
    for (const release of held.splice(0)) release()
    const attempted = await waitFor("every busy event attempted", () => {
      const a = h.attempts.filter((x) => ids.has(x.source_event_id))
      return a.length >= 10 ? a : undefined
    })
    expect(new Set(attempted.map((a) => a.source_event_id)).size).toBe(10)
    expect(attempted.every((a) => a.outcome === "succeeded" && a.endpoint_id === busy.id)).toBe(true)
    expect(ready.id).not.toBe(busy.id)
  })

  it("commits a source record attempted without the hop only once the attempt's outcome is recorded", async () => {
    const tenant = `ten_${randomUUID()}`
    await h.register({ url: url("/commit-held"), tenantId: tenant, events: ["message.sent"], timeoutSeconds: 30 })
    await h.register({ url: url("/commit-fast"), tenantId: `${tenant}_b`, events: ["message.sent"] })
    const held: Array<() => void> = []
    receiver.on("/commit-held", (_req, res) => held.push(() => res.writeHead(200).end("ok")))
    const producer = h.kafka.producer()
    await producer.connect()
    try {
      const source = h.topics.sourceEvents.name
      const group = "orbit-dispatcher-fanout"
      const send = async (event: Record<string, unknown>, key: string) => {
        const [meta] = await producer.send({ topic: source, acks: -1, messages: [{ key, value: JSON.stringify(event) }] })
        return { topic: source, partition: meta!.partition, offset: BigInt(meta!.baseOffset!) }
      }
      // E (its attempt held by the receiver) and then S (delivered at once), in one partition.
      const key = `k_${randomUUID()}`
      const e = await send(domainEvent(tenant, "message.sent"), key)
      await waitFor("the held attempt", () => held.length === 1)
      const sEvent = domainEvent(`${tenant}_b`, "message.sent")
      const s = await send(sEvent, key)
      expect(s.partition).toBe(e.partition)
      const sId = String(sEvent.id)
      await waitFor("S's attempt recorded", () => h.attempts.some((a) => a.source_event_id === sId && a.outcome === "succeeded"))
      // A record on another partition, published after S finished, committed: a commit has
      // happened since S finished, and it could not pass E, whose attempt is still running.
      let t = await send(domainEvent(`${tenant}_none`, "message.sent"), `t_${randomUUID()}`)
      while (t.partition === e.partition) t = await send(domainEvent(`${tenant}_none`, "message.sent"), `t_${randomUUID()}`)
      await waitForCommittedPast(h, group, t)
      const committed = (await committedOffsets(h, group, source)).get(e.partition) ?? -1n
      expect(committed <= e.offset, `committed ${committed}, E at ${e.offset}, S (${sId}) at ${s.offset}`).toBe(true)
      // Once E's attempt ends and its outcome is recorded, the partition is committed past S.
      for (const release of held.splice(0)) release()
      await waitForCommittedPast(h, group, s)
    } finally {
      receiver.on("/commit-held", (_req, res) => res.writeHead(200).end("ok"))
      for (const release of held.splice(0)) release()
      await producer.disconnect()
    }
  })

  it("moves poison records to orbit.events.invalid and keeps consuming", async () => {
    const tenant = `ten_${randomUUID()}`
    await h.register({ url: url("/after-poison"), tenantId: tenant })
    await h.publishRaw("{not json", "p1")
    await h.publishRaw(JSON.stringify({ ...domainEvent(tenant), type: "message.exploded" }), "p2")
    await h.publishRaw(JSON.stringify({ ...domainEvent(tenant), id: "nope" }), "p3")
    await h.publishRaw(null, "p4")
    const good = domainEvent(tenant)
    await h.publish(good)
    await waitFor("valid event after poison", () => receiver.received.find((r) => r.headers["x-devotel-event-id"] === good.id))
    const invalid = await waitFor("4 invalid records", () => {
      const mine = h.invalid.filter((r) => r.key?.startsWith("p"))
      return mine.length >= 4 ? mine : undefined
    })
    const reasons = Object.fromEntries(invalid.map((r) => [r.key, r.headers[INVALID_REASON_HEADER]]))
    expect(reasons).toEqual({ p1: "invalid_json", p2: "unknown_type", p3: "invalid_shape", p4: "empty" })
    expect(invalid.find((r) => r.key === "p1")!.value).toBe("{not json")
  })

  it("truncates data over 256 KiB, keeping the identifier fields", async () => {
    const tenant = `ten_${randomUUID()}`
    await h.register({ url: url("/big"), tenantId: tenant })
    const data = { message_id: "m-big", contact_id: "c1", channel: "sms", blob: "x".repeat(300 * 1024) }
    const event = domainEvent(tenant, "message.received", data)
    await h.publish(event)
    const got = await waitFor("truncated delivery", () => receiver.received.find((r) => r.path === "/big"))
    const body = JSON.parse(got.body)
    expect(body.truncated).toBe(true)
    expect(body.data).toEqual({
      _truncated: true,
      _original_bytes: Buffer.byteLength(JSON.stringify(data)),
      message_id: "m-big",
      contact_id: "c1",
      channel: "sms"
    })
  })
})
