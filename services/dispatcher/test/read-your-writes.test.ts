/**
 * Read-your-writes under load: an event published after an endpoint write was acknowledged is
 * fanned out and signed with that write applied — whichever of two dispatcher instances (one
 * consumer group) matches it and whichever takes its task, while busy threads load every core.
 *
 * Each round makes one write the way the registration service does (an acknowledged record on
 * `webhooks.endpoint-events`), publishes an event at once, and checks its delivery: signed with
 * the new and the old secret after a rotation, delivered after an event type was added or an
 * endpoint registered, not delivered after a type was removed or the endpoint deactivated. The
 * endpoints exist before the dispatchers start, so both indexes know their state before the write;
 * rounds of different tenants run 8 at a time. A last test pins the worker's half on its own: a
 * task matched by an index ahead of the worker's waits for the worker's index to catch up.
 */
import { createHmac, randomUUID } from "node:crypto"
import { availableParallelism } from "node:os"
import { Worker } from "node:worker_threads"
import { encrypt, parseKeyRing } from "@orbit/crypto"
import { type DeliveryTask, deliveryIdFor, encodeDeliveryTask, type EndpointEvent, type EndpointRegistered } from "@orbit/domain"
import type { Admin } from "@orbit/kafka"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encodeIndexOffsets, INDEX_OFFSETS_HEADER } from "../src/endpoints/EndpointIndex.ts"
import { buildWebhookBody } from "../src/fan-out/WebhookBody.ts"
import { domainEvent, type Harness, makeCert, makeHarness, type Receiver, startReceiver, type TestEndpoint, waitFor } from "./support.ts"

const ROUNDS = 40
/** Rounds played at once. */
const WAVE = 8
const KINDS = ["rotate", "add-type", "remove-type", "deactivate", "register"] as const
type Kind = typeof KINDS[number]

let tls: ReturnType<typeof makeCert>
let receiver: Receiver
let h: Harness
let admin: Admin
const busy: Array<Worker> = []
const url = (path: string) => `https://hooks.test:${receiver.port}${path}`

interface Round {
  readonly i: number
  readonly kind: Kind
  /** Has an endpoint `/ryw/<i>/control`, subscribed to everything throughout: it receives the sentinel. */
  readonly tenant: string
  /** The endpoint the write is about (registered in the round for "register"). */
  subject?: TestEndpoint
}
const rounds: Array<Round> = []

/** The settings of `endpoint` as registered, with `changes`: an `EndpointUpdated` (a PUT). */
const updated = (endpoint: TestEndpoint, changes: Partial<Pick<EndpointRegistered, "events" | "active">>): EndpointEvent => {
  const r = endpoint.registered as EndpointRegistered
  return {
    _tag: "EndpointUpdated",
    schema_version: 1,
    event_id: randomUUID(),
    occurred_at: new Date().toISOString(),
    endpoint_id: r.endpoint_id,
    tenant_id: r.tenant_id,
    mode: r.mode,
    url: r.url,
    events: r.events,
    description: r.description,
    active: r.active,
    timeout_seconds: r.timeout_seconds,
    retry_policy: r.retry_policy,
    ...changes
  }
}

const until = async (what: string, condition: () => Promise<boolean>, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** Waits until `groupId` has committed `topic` up to its end offsets measured now. */
const committedUpToEnd = async (groupId: string, topic: string) => {
  const end = await admin.fetchTopicOffsets(topic)
  await until(`${groupId} to commit ${topic}`, async () => {
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] })
    return end.every((e) => {
      const c = committed?.partitions.find((p) => p.partition === e.partition)
      return BigInt(e.high) === 0n || (c !== undefined && BigInt(c.offset) >= BigInt(e.high))
    })
  })
}

/**
 * Every source record published so far is fanned out (its tasks acknowledged: the fan-out group
 * commits a record only then), and every task produced by then is finished (delivered, or
 * cancelled): what has not been received by now is not going to be.
 */
const settled = async () => {
  await committedUpToEnd(`${h.prefix}orbit-dispatcher-fanout`, h.topics.sourceEvents.name)
  await committedUpToEnd(`${h.prefix}orbit-dispatcher-delivery`, h.topics.deliveries.name)
}

const signatures = (header: string) => {
  const parts = header.split(",").map((p) => p.split("="))
  return { t: parts.find(([k]) => k === "t")![1]!, v1: parts.filter(([k]) => k === "v1").map(([, v]) => v!) }
}
const hmacHex = (secret: string, t: string, body: string) => createHmac("sha256", Buffer.from(secret, "utf8")).update(`${t}.${body}`).digest("hex")

beforeAll(async () => {
  tls = makeCert()
  receiver = await startReceiver(tls)
  h = await makeHarness("ryw")
  admin = h.kafka.admin()
  await admin.connect()
  // The topics as the dispatcher creates them, so that the endpoints exist before it starts.
  await admin.createTopics({
    waitForLeaders: true,
    topics: Object.values(h.topics).map((t) => ({
      topic: t.name,
      numPartitions: t.partitions,
      replicationFactor: 1,
      configEntries: [{ name: "retention.ms", value: String(t.retentionMs) }]
    }))
  })
  for (let i = 0; i < ROUNDS; i++) {
    const kind = KINDS[i % KINDS.length]!
    const tenant = `ten_${randomUUID()}`
    await h.register({ url: url(`/ryw/${i}/control`), tenantId: tenant, events: ["*"] })
    const subjectEvents = kind === "remove-type" ? ["message.sent", "call.completed"] : kind === "deactivate" ? ["*"] : ["message.sent"]
    const subject = kind === "register"
      ? undefined
      : await h.register({ url: url(`/ryw/${i}/subject`), tenantId: tenant, events: subjectEvents, secret: `old-secret-of-round-${i}-${randomUUID()}` })
    rounds.push({ i, kind, tenant, ...(subject === undefined ? {} : { subject }) })
  }
  const env = { ORBIT_EXTRA_CA_FILE: tls.caFile, ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8" }
  await h.startDispatcher(env)
  await h.startDispatcher(env)
  // Both instances own partitions of both groups before the rounds start.
  for (const group of ["orbit-dispatcher-fanout", "orbit-dispatcher-delivery"]) {
    await until(`${group} stable with two members`, async () => {
      const { groups: [g] } = await admin.describeGroups([`${h.prefix}${group}`])
      return g?.state === "Stable" && g.members.length === 2
    }, 60_000)
  }
  for (let n = 0; n < availableParallelism(); n++) busy.push(new Worker("for (;;) {}", { eval: true }))
}, 120_000)

afterAll(async () => {
  await Promise.all(busy.map((w) => w.terminate()))
  await admin?.disconnect()
  await h?.close()
  await receiver?.close()
  tls?.cleanup()
})

describe("read-your-writes", () => {
  it(`applies an acknowledged endpoint write to every event published after it (${ROUNDS} rounds, 2 instances, CPU loaded)`, async () => {
    const ring = parseKeyRing(h.keyRing)
    const newSecret = (round: Round) => `new-secret-of-round-${round.i}`
    const violations: Array<string> = []
    /** Write, publish, wait for the sentinel: the round's event is published after its own write was acknowledged. */
    const play = async (round: Round) => {
      const { kind, tenant } = round
      // The write, acknowledged by the broker (as the registration service's 2xx means).
      switch (kind) {
        case "rotate":
          await h.emit({
            _tag: "EndpointSecretRotated",
            schema_version: 1,
            event_id: randomUUID(),
            occurred_at: new Date().toISOString(),
            endpoint_id: round.subject!.id,
            tenant_id: tenant,
            mode: "live",
            secret_box: encrypt(ring, newSecret(round), { tenant_id: tenant, mode: "live", endpoint_id: round.subject!.id, slot: "current" }),
            previous_secret_box: encrypt(ring, round.subject!.secret, { tenant_id: tenant, mode: "live", endpoint_id: round.subject!.id, slot: "previous" }),
            previous_expires_at: new Date(Date.now() + 3600_000).toISOString()
          })
          break
        case "add-type":
          await h.emit(updated(round.subject!, { events: ["message.sent", "call.completed"] }))
          break
        case "remove-type":
          await h.emit(updated(round.subject!, { events: ["message.sent"] }))
          break
        case "deactivate":
          await h.emit(updated(round.subject!, { active: false }))
          break
        case "register":
          round.subject = await h.register({ url: url(`/ryw/${round.i}/subject`), tenantId: tenant, events: ["message.sent"] })
          break
      }
      const event = domainEvent(tenant, kind === "add-type" || kind === "remove-type" ? "call.completed" : "message.sent")
      await h.publish(event)
      // The sentinel comes after the event: the control endpoint receives it once it is fanned out.
      const sentinel = domainEvent(tenant, "webhook.test")
      await h.publish(sentinel)
      await waitFor(`sentinel of round ${round.i}`, () =>
        receiver.received.find((r) => r.path === `/ryw/${round.i}/control` && r.headers["x-devotel-event-id"] === sentinel.id), 60_000)
      return event.id
    }
    /** The round's event as received by its subject endpoint, checked against the write. */
    const check = (round: Round, eventId: string) => {
      const { kind } = round
      const got = receiver.received.filter((r) => r.path === `/ryw/${round.i}/subject` && r.headers["x-devotel-event-id"] === eventId)
      if (kind === "remove-type" || kind === "deactivate") {
        if (got.length > 0) violations.push(`round ${round.i} (${kind}): delivered to an endpoint that no longer wanted it`)
        return
      }
      if (got.length === 0) return void violations.push(`round ${round.i} (${kind}): not delivered`)
      const secrets = kind === "rotate" ? [newSecret(round), round.subject!.secret] : [round.subject!.secret]
      for (const r of got) {
        const sig = signatures(r.headers["x-devotel-signature"]!)
        if (JSON.stringify(sig.v1) !== JSON.stringify(secrets.map((s) => hmacHex(s, sig.t, r.body)))) {
          violations.push(`round ${round.i} (${kind}): signed with ${sig.v1.length} secret(s), not ${kind === "rotate" ? "the new then the old one" : "its own"}`)
        }
      }
    }
    // Rounds run in waves of concurrent writers (tenants), so index updates and events interleave.
    for (let w = 0; w < ROUNDS; w += WAVE) {
      const wave = rounds.slice(w, w + WAVE)
      const events = await Promise.all(wave.map(play))
      await settled()
      wave.forEach((round, n) => check(round, events[n]!))
    }
    expect(violations).toEqual([])
  }, 600_000)

  it("a worker whose index is behind a task's index offsets waits for them before it decides and signs", async () => {
    const tenant = `ten_${randomUUID()}`
    const topic = h.topics.endpointEvents.name
    const before = await admin.fetchTopicOffsets(topic)
    const endpoint = await h.register({ url: url("/ryw/ahead"), tenantId: tenant, events: ["message.sent"], secret: `old-secret-${randomUUID()}` })
    const after = await admin.fetchTopicOffsets(topic)
    const partition = after.find((a) => a.high !== before.find((b) => b.partition === a.partition)?.high)!.partition
    // As if another instance had matched the event with the rotation below applied: the rotation
    // is the next record of the endpoint's partition.
    const ahead = after.map((a) => ({ partition: a.partition, offset: a.partition === partition ? String(BigInt(a.high) + 1n) : a.high }))
    const task = (eventId: string): DeliveryTask => {
      const event = { ...domainEvent(tenant, "message.sent"), id: eventId }
      const at = new Date().toISOString()
      return {
        _tag: "DeliveryTask", schema_version: 1, event_id: randomUUID(), occurred_at: at,
        delivery_id: deliveryIdFor(event.id, endpoint.id), endpoint_id: endpoint.id, tenant_id: tenant, mode: "live",
        source_event_id: event.id, source_event_type: event.type, body: buildWebhookBody(event as never), attempt: 1, not_before: at
      }
    }
    const waiting = task(domainEvent(tenant).id)
    const sentinel = task(domainEvent(tenant).id)
    await h.producer.send({
      topic: h.topics.deliveries.name,
      acks: -1,
      messages: [
        { key: endpoint.id, value: encodeDeliveryTask(waiting), headers: { [INDEX_OFFSETS_HEADER]: encodeIndexOffsets(ahead) } },
        // No offsets: handled at the topic's end offsets of now. Same key, so the same consumer takes it after the first.
        { key: endpoint.id, value: encodeDeliveryTask(sentinel) }
      ]
    })
    const ofEvent = (id: string) => () => receiver.received.find((r) => r.path === "/ryw/ahead" && r.headers["x-devotel-event-id"] === id)
    await waitFor("the sentinel task", ofEvent(sentinel.source_event_id))
    // The first task has been taken, and must not have been delivered before the rotation.
    expect(ofEvent(waiting.source_event_id)()).toBeUndefined()

    const ring = parseKeyRing(h.keyRing)
    const newSecret = `new-secret-${randomUUID()}`
    await h.emit({
      _tag: "EndpointSecretRotated", schema_version: 1, event_id: randomUUID(), occurred_at: new Date().toISOString(),
      endpoint_id: endpoint.id, tenant_id: tenant, mode: "live",
      secret_box: encrypt(ring, newSecret, { tenant_id: tenant, mode: "live", endpoint_id: endpoint.id, slot: "current" }),
      previous_secret_box: encrypt(ring, endpoint.secret, { tenant_id: tenant, mode: "live", endpoint_id: endpoint.id, slot: "previous" }),
      previous_expires_at: new Date(Date.now() + 3600_000).toISOString()
    })
    const got = await waitFor("the task that waited for the rotation", ofEvent(waiting.source_event_id))
    const sig = signatures(got.headers["x-devotel-signature"]!)
    expect(sig.v1).toEqual([hmacHex(newSecret, sig.t, got.body), hmacHex(endpoint.secret, sig.t, got.body)])
  })
})
