/**
 * `deliveries replay`: the pure selection and task building, then the reader/producer against the
 * real broker (dead letters produced straight to a prefixed dead-letter topic). The whole round
 * trip through the CLI, the dispatcher and a receiver is in test/e2e/deliveries.test.ts.
 */
import { randomBytes, randomUUID } from "node:crypto"
import {
  decodeDeliveryTask,
  type DeliveryAttempted,
  type DeliveryDeadLettered,
  encodeDeliveryAttempted,
  type DeliveryTask,
  encodeDeliveryDeadLettered,
  newEndpointId,
  newEventId,
  topicsFor
} from "@orbit/domain"
import { Kafka, KafkaClient, logLevel, Producer, TopicAdmin } from "@orbit/kafka"
import { Effect, Exit, Layer, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ReplayArgs, replayDeadLetters, replayTask, selectForReplay, SinceArg } from "../src/dead-letters/DeadLetterReplay.ts"
import { BROKERS, readToEnd } from "./support.ts"

const dead = (endpointId: string, at: string, over: Partial<DeliveryDeadLettered> = {}): DeliveryDeadLettered => {
  const sourceEventId = newEventId()
  return {
    _tag: "DeliveryDeadLettered",
    schema_version: 1,
    event_id: randomUUID(),
    occurred_at: at,
    delivery_id: randomUUID(),
    endpoint_id: endpointId,
    tenant_id: "tenant_a",
    mode: "live",
    source_event_id: sourceEventId,
    source_event_type: "message.delivered",
    body: JSON.stringify({ id: sourceEventId, type: "message.delivered", created_at: at, data: {} }),
    attempts: 2,
    last_http_status: 500,
    last_error_class: "http_status",
    ...over
  }
}

describe("replay (pure)", () => {
  const a = newEndpointId()
  const b = newEndpointId()

  it("selects the endpoint's dead letters at or after --since, one per delivery id (the latest)", () => {
    const old = dead(a, "2026-01-01T00:00:00.000Z")
    const first = dead(a, "2026-01-02T00:00:00.000Z")
    const again = { ...first, event_id: randomUUID(), occurred_at: "2026-01-03T00:00:00.000Z", attempts: 3 }
    const other = dead(b, "2026-01-02T00:00:00.000Z")
    expect(selectForReplay([old, again, first, other], { endpointId: a, since: undefined })).toEqual([old, again])
    expect(selectForReplay([old, first, again, other], { endpointId: a, since: Date.parse("2026-01-02T00:00:00.000Z") }))
      .toEqual([again])
    expect(selectForReplay([old, first, other], { endpointId: a, since: Date.parse("2026-01-02T00:00:00.001Z") })).toEqual([])
  })

  it("skips a delivery that succeeded after it was dead-lettered, not one that succeeded before", () => {
    const first = dead(a, "2026-01-02T00:00:00.000Z")
    const second = dead(a, "2026-01-02T00:00:00.000Z")
    const succeededAt = new Map([
      [first.delivery_id, Date.parse("2026-01-02T00:00:01.000Z")],
      [second.delivery_id, Date.parse("2026-01-01T23:59:59.000Z")]
    ])
    expect(selectForReplay([first, second], { endpointId: a, since: undefined, succeededAt })).toEqual([second])
  })

  it("builds a fresh attempt-1 task with the same delivery id and body, due now", () => {
    const d = dead(a, "2026-01-01T00:00:00.000Z")
    const task = replayTask(d, Date.parse("2026-02-01T00:00:00.000Z"), () => "new-id")
    expect(task).toEqual({
      _tag: "DeliveryTask",
      schema_version: 1,
      event_id: "new-id",
      occurred_at: "2026-02-01T00:00:00.000Z",
      delivery_id: d.delivery_id,
      endpoint_id: a,
      tenant_id: d.tenant_id,
      mode: "live",
      source_event_id: d.source_event_id,
      source_event_type: d.source_event_type,
      body: d.body,
      attempt: 1,
      not_before: "2026-02-01T00:00:00.000Z"
    } satisfies DeliveryTask)
  })

  it("validates the arguments", () => {
    const ok = (v: unknown) => Exit.isSuccess(Schema.decodeUnknownExit(ReplayArgs)(v))
    expect(ok({ endpoint: a })).toBe(true)
    expect(ok({ endpoint: a, since: "2026-11-27T10:00:00Z" })).toBe(true)
    expect(ok({ endpoint: a, since: "2026-11-27T10:00:00.123+01:00" })).toBe(true)
    expect(ok({ endpoint: a, since: "2026-11-27" })).toBe(true)
    expect(ok({})).toBe(false)
    expect(ok({ endpoint: "ep_1" })).toBe(false)
    const since = (s: string) => Exit.isSuccess(Schema.decodeUnknownExit(SinceArg)(s))
    for (const bad of ["yesterday", "2026-11-27T10:00:00", "2026-02-30", "2026-13-01T00:00:00Z", "1700000000", ""]) {
      expect(since(bad), bad).toBe(false)
    }
  })
})

describe("replay (real broker)", () => {
  const prefix = `t${Date.now()}_replay_${randomBytes(3).toString("hex")}_`
  const topics = topicsFor(prefix)
  const kafka = new Kafka({ clientId: "test-replay", brokers: BROKERS.split(","), logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  const producer = kafka.producer({ allowAutoTopicCreation: false })

  /** The shared broker may be restarting (other suites run fault tests): set-up retries for a while. */
  const retrying = async <A>(f: () => Promise<A>): Promise<A> => {
    for (let i = 0;; i++) {
      try {
        return await f()
      } catch (error) {
        if (i >= 30) throw error
        await new Promise((r) => setTimeout(r, 1000))
      }
    }
  }

  beforeAll(async () => {
    await retrying(() => admin.connect())
    await retrying(() =>
      admin.createTopics({
        waitForLeaders: true,
        topics: [topics.dead, topics.deliveries, topics.attempts].map((t) => ({ topic: t.name, numPartitions: t.partitions }))
      })
    )
    await retrying(() => producer.connect())
  })

  afterAll(async () => {
    await producer.disconnect()
    await admin.deleteTopics({ topics: [topics.dead.name, topics.deliveries.name, topics.attempts.name] }).catch(() => undefined)
    await admin.disconnect()
  })

  const run = (args: typeof ReplayArgs.Type, topicPrefix = prefix) =>
    Effect.runPromise(
      Effect.scoped(replayDeadLetters(args)).pipe(
        Effect.provide(Layer.mergeAll(Producer.layer(), TopicAdmin.layer).pipe(
          Layer.provideMerge(Layer.succeed(KafkaClient, KafkaClient.of({ kafka, brokers: BROKERS.split(","), topicPrefix })))
        ))
      )
    )

  it("reads the dead letters to the end offsets at start, skips unreadable ones, produces the selected tasks", async () => {
    const a = newEndpointId()
    const b = newEndpointId()
    const now = Date.now()
    const iso = (ms: number) => new Date(ms).toISOString()
    const a1 = dead(a, iso(now - 3_600_000))
    const a2 = dead(a, iso(now - 60_000))
    const a2again = { ...a2, event_id: randomUUID(), occurred_at: iso(now - 30_000) }
    const b1 = dead(b, iso(now - 60_000))
    await producer.send({
      topic: topics.dead.name,
      acks: -1,
      messages: [
        ...[a1, a2, b1, a2again].map((d) => ({ key: d.endpoint_id, value: encodeDeliveryDeadLettered(d) })),
        { key: a, value: "not json" }
      ]
    })

    expect(await run({ endpoint: a, since: iso(now - 120_000) })).toEqual({ scanned: 5, unreadable: 1, replayed: 1, deliveredSince: 0 })
    expect(await run({ endpoint: a })).toEqual({ scanned: 5, unreadable: 1, replayed: 2, deliveredSince: 0 })
    expect(await run({ endpoint: newEndpointId() })).toEqual({ scanned: 5, unreadable: 1, replayed: 0, deliveredSince: 0 })

    // run() returns once its produce is acknowledged: the topic holds all the replayed tasks.
    const records = await readToEnd({ kafka, prefix }, topics.deliveries.name)
    const tasks = records.map((r) => decodeDeliveryTask(r.value!))
    for (const [i, task] of tasks.entries()) expect(records[i]!.key).toBe(task.endpoint_id)
    expect(tasks).toHaveLength(3)
    expect(tasks.map((t) => t.delivery_id).sort()).toEqual([a2.delivery_id, a1.delivery_id, a2.delivery_id].sort())
    for (const t of tasks) {
      expect(t.attempt).toBe(1)
      expect(t.endpoint_id).toBe(a)
      expect(Date.parse(t.not_before)).toBeLessThanOrEqual(Date.now())
      expect(t.body).toBe(t.delivery_id === a1.delivery_id ? a1.body : a2.body)
    }
    // The replay's consumer groups are removed when it is done.
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId)
    expect(groups.filter((g) => g.startsWith(`${prefix}orbit-replay-`))).toEqual([])
  })

  it("skips the dead letters of deliveries that succeeded since (the attempts topic says so)", async () => {
    const c = newEndpointId()
    const now = Date.now()
    const iso = (ms: number) => new Date(ms).toISOString()
    const recovered = dead(c, iso(now - 60_000))
    const stillDead = dead(c, iso(now - 60_000))
    const succeeded = (d: DeliveryDeadLettered, at: string): DeliveryAttempted => ({
      _tag: "DeliveryAttempted",
      schema_version: 1,
      event_id: randomUUID(),
      occurred_at: at,
      delivery_id: d.delivery_id,
      endpoint_id: d.endpoint_id,
      tenant_id: d.tenant_id,
      mode: d.mode,
      source_event_id: d.source_event_id,
      source_event_type: d.source_event_type,
      attempt: 1,
      outcome: "succeeded",
      http_status: 200,
      duration_ms: 5,
      error_class: null,
      error_message: null,
      next_attempt_at: null,
      dead_lettered: false
    })
    await producer.send({
      topic: topics.dead.name,
      acks: -1,
      messages: [recovered, stillDead].map((d) => ({ key: c, value: encodeDeliveryDeadLettered(d) }))
    })
    await producer.send({
      topic: topics.attempts.name,
      acks: -1,
      messages: [
        // A success after the dead letter (a recovery), and one before it (an earlier chain).
        { key: c, value: encodeDeliveryAttempted(succeeded(recovered, iso(now - 30_000))) },
        { key: c, value: encodeDeliveryAttempted(succeeded(stillDead, iso(now - 120_000))) },
        { key: c, value: "not json" }
      ]
    })
    const report = await run({ endpoint: c })
    expect(report).toMatchObject({ replayed: 1, deliveredSince: 1 })
    const tasks = (await readToEnd({ kafka, prefix }, topics.deliveries.name)).map((r) => decodeDeliveryTask(r.value!)).filter((t) => t.endpoint_id === c)
    expect(tasks.map((t) => t.delivery_id)).toEqual([stillDead.delivery_id])
  })

  it("an empty dead-letter topic replays nothing and returns at once", async () => {
    const fresh = `t${Date.now()}_replay_empty_${randomBytes(3).toString("hex")}_`
    await retrying(() => admin.createTopics({ waitForLeaders: true, topics: [{ topic: topicsFor(fresh).dead.name, numPartitions: 3 }] }))
    try {
      // Nothing to read: it returns without waiting for records (a read that waited would end
      // only with its no-progress error, after the test's timeout).
      expect(await run({ endpoint: newEndpointId() }, fresh)).toEqual({ scanned: 0, unreadable: 0, replayed: 0, deliveredSince: 0 })
    } finally {
      await admin.deleteTopics({ topics: [topicsFor(fresh).dead.name] }).catch(() => undefined)
    }
  })
})
