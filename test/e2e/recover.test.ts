/**
 * Recovery and single retries across services: registration (API) → `webhooks.deliveries` →
 * dispatcher (real HTTPS receiver) → projection (`delivery_attempts`, `delivery_payloads`) →
 * `POST /api/v1/webhooks/{id}/recover` and `…/deliveries/{delivery_id}/retry`. Real processes,
 * real Kafka, real Postgres; no mocks.
 */
import { execFile } from "node:child_process"
import { randomUUID } from "node:crypto"
import path from "node:path"
import { deliveryIdFor, newEventId, topicsFor } from "@orbit/domain"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { CreateEndpointRequest, DeliveryAttempt } from "@orbit/client"
import { type HttpsReceiver, type Received } from "../src/HttpsReceiver.ts"
import { type DeliveryRig, startDeliveryRig } from "../src/DeliveryRig.ts"
import { readRecords } from "../src/KafkaLog.ts"
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

/** Two attempts, one second apart, then a dead letter. */
const TWO_ATTEMPTS = { strategy: "custom", delays_seconds: [1] }

const recover = (key: string, id: string, body: unknown) =>
  platform.api("POST", `/api/v1/webhooks/${id}/recover`, { key, body }) as Promise<{ status: number; json: any }>

const retry = (key: string, id: string, deliveryId: string, body?: unknown) =>
  platform.api("POST", `/api/v1/webhooks/${id}/deliveries/${deliveryId}/retry`, { key, ...(body === undefined ? {} : { body }) }) as Promise<{
    status: number
    json: any
  }>

/** Every attempt of the endpoint in the log, oldest first. */
const attemptLog = async (key: string, id: string) => {
  const all: Array<DeliveryAttempt> = []
  for await (const a of platform.client(key).webhooks.allDeliveries(id, { limit: 100 })) all.push(a)
  return all.reverse()
}

/** What the receiver got for one delivery on one path, in order. */
const receivedFor = (path: string, deliveryId: string): Array<Received> =>
  receiver.received.filter((r) => r.path === path && r.headers["x-devotel-delivery-id"] === deliveryId)

/** First-attempt tasks of the delivery on `webhooks.deliveries` (fan-out's, then any redelivery's). */
const tasksOnDeliveriesTopic = async (deliveryIds: ReadonlyArray<string>) => {
  const counts = new Map(deliveryIds.map((d) => [d, 0]))
  for (const r of await readRecords(topicsFor(platform.topicPrefix).deliveries.name)) {
    const id = (JSON.parse(r.value) as { delivery_id: string }).delivery_id
    if (counts.has(id)) counts.set(id, counts.get(id)! + 1)
  }
  return Object.fromEntries(counts)
}

describe("POST /api/v1/webhooks/{id}/recover and …/deliveries/{delivery_id}/retry", () => {
  let tenant: string
  let key: string
  let endpoint: { id: string; url: string; events: ReadonlyArray<string> }
  const PATH = "/recover"
  /** Events the receiver answers 500 to; `failFirst` ones only on their first request. */
  const failAlways = new Set<string>()
  const failFirst = new Set<string>()
  let failTestEvents = false
  let dead: Array<string> = []
  let succeeded: Array<string> = []
  let recoveredOnce: string
  let startedAt: number
  /**
   * First-attempt tasks per delivery on `webhooks.deliveries` before any recovery: the fan-out
   * writes one there only for a task that had to wait (a ready endpoint's is attempted at once).
   */
  let fanOutTasks: Record<string, number>

  it("sends each dead-lettered delivery once more, same delivery id and body; deliveries that succeeded are not sent", async () => {
    tenant = uniqueTenant()
    key = (await platform.createKey(tenant)).key
    receiver.respond(PATH, (r) => {
      const event = r.headers["x-devotel-event-id"]!
      if (failAlways.has(event)) return 500
      if (failTestEvents && r.headers["x-devotel-event-type"] === "webhook.test") return 500
      if (failFirst.has(event)) {
        failFirst.delete(event)
        return 503
      }
      return 200
    })
    endpoint = (await platform.client(key).webhooks.create({
      url: receiver.url(PATH),
      events: ["message.delivered"],
      retry_policy: TWO_ATTEMPTS,
      timeout_seconds: 5
    } as CreateEndpointRequest)).data
    startedAt = Date.now()

    const deadEvents: Array<string> = []
    for (let i = 0; i < 3; i++) {
      const id = newEventId()
      failAlways.add(id)
      deadEvents.push(id)
    }
    // Published with fixed ids, so the receiver knows which to fail before they arrive.
    const okEvents: Array<string> = []
    for (const id of deadEvents) await platform.publish(tenant, { id })
    for (let i = 0; i < 2; i++) okEvents.push(await platform.publish(tenant))
    // Fails its first attempt, succeeds on the retry: it ends succeeded and must not be recovered.
    const retriedOk = newEventId()
    failFirst.add(retriedOk)
    await platform.publish(tenant, { id: retriedOk })
    okEvents.push(retriedOk)
    dead = deadEvents.map((e) => deliveryIdFor(e, endpoint.id))
    succeeded = okEvents.map((e) => deliveryIdFor(e, endpoint.id))
    recoveredOnce = succeeded[2]!

    // 3 × 2 failed attempts (dead-lettered) + 2 successes + 1 failure and its successful retry.
    await platform.eventually("every delivery to end", async () => {
      const log = await attemptLog(key, endpoint.id)
      const deadLettered = log.filter((a) => a.dead_lettered).map((a) => a.delivery_id)
      const ok = log.filter((a) => a.outcome === "succeeded").map((a) => a.delivery_id)
      return dead.every((d) => deadLettered.includes(d)) && succeeded.every((d) => ok.includes(d))
    })
    failAlways.clear()
    const before = new Map([...dead, ...succeeded].map((d) => [d, receivedFor(PATH, d).length]))
    for (const d of dead) expect(before.get(d), d).toBe(2)

    // A public key may not act.
    const publicKey = (await platform.createKey(tenant, "live", "public")).key
    const refused = await recover(publicKey, endpoint.id, { since: new Date(startedAt - 60_000).toISOString() })
    expect(refused.status).toBe(403)
    expect(refused.json.error.code).toBe("INSUFFICIENT_PERMISSIONS")

    const since = new Date(startedAt - 60_000).toISOString()
    fanOutTasks = await tasksOnDeliveriesTopic([...dead, ...succeeded])
    const started = await platform.client(key).webhooks.recover(endpoint.id, { since })
    expect(started.data).toMatchObject({ endpoint_id: endpoint.id, since: new Date(since).toISOString(), deliveries: 3 })
    expect(started.data.recovery_id).toMatch(/^rcv_/)

    // Each dead delivery arrives once more: same delivery id, same event id (webhook-id), same body.
    await platform.eventually("each dead delivery to arrive once more", () =>
      dead.every((d) => receivedFor(PATH, d).length === 3 && receivedFor(PATH, d)[2]!.status === 200))
    for (const d of dead) {
      const [first, , again] = receivedFor(PATH, d)
      expect(again!.headers["webhook-id"]).toBe(first!.headers["webhook-id"])
      expect(again!.body).toBe(first!.body)
    }
    // The tasks are in Kafka before the 202: one more first-attempt task per dead delivery, none for the others.
    const tasks = await tasksOnDeliveriesTopic([...dead, ...succeeded])
    for (const d of dead) expect(tasks[d], d).toBe(fanOutTasks[d]! + 1)
    for (const d of succeeded) expect(tasks[d], d).toBe(fanOutTasks[d])

    // In the attempt log, each recovered delivery starts a new chain at attempt 1, which succeeds.
    await platform.eventually("the recovered attempts in the log", async () => {
      const log = await attemptLog(key, endpoint.id)
      return dead.every((d) => log.some((a) => a.delivery_id === d && a.attempt === 1 && a.outcome === "succeeded"))
    })
  })

  it("repeating the same window within 24 h starts nothing new: same recovery, nothing sent", async () => {
    const since = new Date(startedAt - 60_000).toISOString()
    const first = await recover(key, endpoint.id, { since })
    const second = await recover(key, endpoint.id, { since })
    expect(first.status).toBe(202)
    expect(second.status).toBe(202)
    expect(second.json.data).toEqual(first.json.data)
    expect(first.json.data.deliveries).toBe(3)
    // A different window is another recovery; the dead deliveries now succeeded, so it sends nothing.
    const other = await recover(key, endpoint.id, { since: new Date(startedAt - 120_000).toISOString() })
    expect(other.status).toBe(202)
    expect(other.json.data.recovery_id).not.toBe(first.json.data.recovery_id)
    expect(other.json.data.deliveries).toBe(0)
    const tasks = await tasksOnDeliveriesTopic([...dead, ...succeeded])
    for (const d of dead) expect(tasks[d], d).toBe(fanOutTasks[d]! + 1)
    for (const d of succeeded) expect(tasks[d], d).toBe(fanOutTasks[d])
  })

  it("bad windows answer 422 with details; unknown and other tenants' endpoints 404; nothing is sent", async () => {
    const now = Date.now()
    const iso = (ms: number) => new Date(ms).toISOString()
    const cases: Array<[unknown, Array<string>]> = [
      [{ since: iso(now - 15 * 86400_000) }, ["since"]],
      [{ since: iso(now - 20 * 86400_000), until: iso(now - 5 * 86400_000) }, ["since"]],
      [{ since: iso(now - 3600_000), until: iso(now - 7200_000) }, ["since"]],
      [{ since: iso(now - 3600_000), until: iso(now - 3600_000) }, ["since"]],
      [{ since: iso(now - 3600_000), until: iso(now + 3600_000) }, ["until"]],
      [{ since: iso(now + 3600_000) }, ["since"]],
      [{ since: "yesterday" }, ["since"]],
      [{ since: "2026-02-30T10:00:00Z" }, ["since"]],
      [{ since: "2026-11-27T10:00:00" }, ["since"]],
      [{}, ["since"]],
      [{ since: iso(now - 3600_000), from: "x" }, ["from"]],
      [{ since: 12 }, ["since"]]
    ]
    for (const [body, fields] of cases) {
      const res = await recover(key, endpoint.id, body)
      expect(res.status, JSON.stringify(body)).toBe(422)
      expect(res.json.error.code).toBe("VALIDATION_ERROR")
      expect(res.json.error.details.map((d: { field: string }) => d.field), JSON.stringify(body)).toEqual(fields)
    }
    const other = (await platform.createKey(uniqueTenant())).key
    const since = iso(now - 3600_000)
    for (const [k, id] of [[other, endpoint.id], [key, "wh_doesnotexist0000000000"], [key, "not-an-id"]] as const) {
      const res = await recover(k, id, { since })
      expect(res.status, id).toBe(404)
      expect(res.json.error.code).toBe("NOT_FOUND")
    }
    expect((await recover((await platform.createKey(tenant, "test")).key, endpoint.id, { since })).status).toBe(404)
    const tasks = await tasksOnDeliveriesTopic([...dead, ...succeeded])
    for (const d of dead) expect(tasks[d], d).toBe(fanOutTasks[d]! + 1)
  })

  it("retry: one attempt now, whatever the last outcome, signed and recorded; a failure is not retried", async () => {
    // A delivery that succeeded is sent once more.
    const target = recoveredOnce
    const before = receivedFor(PATH, target).length
    const res = await platform.client(key).webhooks.retryDelivery(endpoint.id, target)
    expect(res.data).toMatchObject({ delivery_id: target, endpoint_id: endpoint.id, event_type: "message.delivered", attempt: 3 })
    await platform.eventually("the retried delivery to arrive", () => receivedFor(PATH, target).length === before + 1)
    const [first] = receivedFor(PATH, target)
    const again = receivedFor(PATH, target).at(-1)!
    expect(again.headers["webhook-id"]).toBe(first!.headers["webhook-id"])
    expect(again.body).toBe(first!.body)
    expect(again.headers["x-devotel-signature"]).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/)
    const recorded = await platform.eventually("the retry in the attempt log", async () =>
      (await attemptLog(key, endpoint.id)).find((a) => a.delivery_id === target && a.attempt === 3))
    expect(recorded).toMatchObject({ outcome: "succeeded", dead_lettered: false, next_attempt_at: null })

    // A retry that fails is recorded once, with no retry scheduled and no dead letter.
    const failing = dead[0]!
    const eventId = receivedFor(PATH, failing)[0]!.headers["x-devotel-event-id"]!
    failAlways.add(eventId)
    const r = await retry(key, endpoint.id, failing, {})
    expect(r.status).toBe(202)
    // Its attempts so far: 1 and 2 (dead-lettered), then 1 again (recovered): the retry is number 3.
    expect(r.json.data.attempt).toBe(3)
    const failed = await platform.eventually("the failed retry in the attempt log", async () =>
      (await attemptLog(key, endpoint.id)).find((a) => a.delivery_id === failing && a.attempt === 3))
    expect(failed).toMatchObject({ outcome: "failed", http_status: 500, next_attempt_at: null, dead_lettered: false })
    failAlways.delete(eventId)

    // The failed retry leaves the delivery failed: a recovery sends it again (a new window).
    const rec = await recover(key, endpoint.id, { since: new Date(startedAt - 30_000).toISOString() })
    expect(rec.status).toBe(202)
    expect(rec.json.data.deliveries).toBe(1)
    await platform.eventually("the recovered retry to arrive", () => receivedFor(PATH, failing).at(-1)?.status === 200)
  })

  it("`orbit deliveries replay` skips the dead letters that the API delivered since", async () => {
    // Every recovered delivery's success is on the attempts topic (the projection has applied it).
    await platform.eventually("the last recovery's success in the log", async () => {
      const log = await attemptLog(key, endpoint.id)
      return dead.every((d) => log.filter((a) => a.delivery_id === d).at(-1)?.outcome === "succeeded")
    })
    const replay = await runCli(["deliveries", "replay", "--endpoint", endpoint.id])
    expect(replay.stderr).not.toMatch(/failed/)
    expect(replay.code).toBe(0)
    expect(replay.stdout).toMatch(/^replayed 0 dead-lettered deliveries of wh_\w+; 3 dead letters scanned, 3 delivered since skipped$/m)
  })

  it("a test event (addressed to the endpoint, whatever it subscribes to) is recovered too", async () => {
    failTestEvents = true
    const sent = (await platform.client(key).webhooks.test(endpoint.id)).data
    await platform.eventually("the test event to be dead-lettered", async () =>
      (await attemptLog(key, endpoint.id)).some((a) => a.delivery_id === sent.delivery_id && a.dead_lettered))
    failTestEvents = false
    const since = new Date(Date.now() - 60_000).toISOString()
    const rec = await recover(key, endpoint.id, { since })
    expect(rec.status).toBe(202)
    expect(rec.json.data.deliveries).toBe(1)
    const again = await platform.eventually("the recovered test event", () => receivedFor(PATH, sent.delivery_id).find((r) => r.status === 200))
    expect(again.headers["x-devotel-event-type"]).toBe("webhook.test")
  })

  it("retry: unknown delivery 404, inactive endpoint 422, public key 403, bad body 422", async () => {
    const unknown = await retry(key, endpoint.id, randomUUID())
    expect(unknown.status).toBe(404)
    expect(unknown.json.error.code).toBe("NOT_FOUND")
    expect((await retry(key, endpoint.id, "not-a-uuid")).status).toBe(404)
    const other = (await platform.createKey(uniqueTenant())).key
    expect((await retry(other, endpoint.id, succeeded[0]!)).status).toBe(404)
    // Another endpoint of the same tenant does not own the delivery.
    const second = (await platform.client(key).webhooks.create({ url: receiver.url("/other"), events: ["message.delivered"] } as CreateEndpointRequest)).data
    expect((await retry(key, second.id, succeeded[0]!)).status).toBe(404)
    const publicKey = (await platform.createKey(tenant, "live", "public")).key
    expect((await retry(publicKey, endpoint.id, succeeded[0]!)).status).toBe(403)
    const bad = await retry(key, endpoint.id, succeeded[0]!, { now: true })
    expect(bad.status).toBe(422)
    expect(bad.json.error.details).toEqual([expect.objectContaining({ field: "now" })])

    await platform.client(key).webhooks.update(endpoint.id, { url: endpoint.url, events: [...endpoint.events], active: false } as never)
    const inactive = await retry(key, endpoint.id, succeeded[0]!)
    expect(inactive.status).toBe(422)
    expect(inactive.json.error.code).toBe("VALIDATION_ERROR")
    // Nothing was sent for any of these.
    const tasks = await tasksOnDeliveriesTopic([succeeded[0]!])
    expect(tasks[succeeded[0]!]).toBe(fanOutTasks[succeeded[0]!])
  })
})

const runCli = (args: Array<string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const main = path.join(import.meta.dirname, "..", "..", "packages/cli/src/main.ts")
    execFile(process.execPath, [main, ...args], { env: platform.env, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
    })
  })

