/**
 * Test harness: a real HTTPS receiver (self-signed cert for `hooks.test`, made with openssl), a
 * dispatcher running in process against the real broker with a unique topic prefix, and kafkajs
 * helpers that produce endpoint/source events and collect what the dispatcher writes.
 */
import { execFileSync } from "node:child_process"
import { randomBytes, randomUUID } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import type { IncomingMessage, ServerResponse } from "node:http"
import { createServer, type Server } from "node:https"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { encrypt, generateKeyRing, generateWebhookSecret, parseKeyRing, SecretBox } from "@orbit/crypto"
import {
  decodeDeliveryAttempted,
  decodeDeliveryDeadLettered,
  decodeDeliveryTask,
  type DeliveryTask,
  type DeliveryAttempted,
  type DeliveryDeadLettered,
  type EndpointEvent,
  encodeEndpointEvent,
  newEndpointId,
  newEventId,
  type RetryPolicy,
  topicsFor
} from "@orbit/domain"
import { brokersFromEnv, delayTiersOf, Kafka, KafkaClient, type KafkajsConsumer as Consumer, type KafkajsProducer as Producer, logLevel } from "@orbit/kafka"
import { NetGuardPolicy, type ResolveHost, Resolver } from "@orbit/net-guard"
import { Layer, Logger, ManagedRuntime, References } from "effect"
import { DispatcherLive } from "../src/main.ts"

/** The broker the tests use: the local one on KAFKA_PORT (default 9092) unless KAFKA_BROKERS is set. */
export const BROKERS = brokersFromEnv().join(",")

export interface Received {
  readonly at: number
  readonly path: string
  readonly headers: Record<string, string>
  readonly body: string
}

export type Handler = (req: IncomingMessage, res: ServerResponse, received: Received) => void

export interface Receiver {
  readonly port: number
  readonly received: Array<Received>
  /** The handler for a path (default: 200 "ok"). */
  on(path: string, handler: Handler): void
  close(): Promise<void>
}

export const makeCert = () => {
  const dir = mkdtempSync(join(tmpdir(), "dispatcher-tls-"))
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
    "-subj", "/CN=hooks.test", "-addext", "subjectAltName=DNS:hooks.test,DNS:rebind.test,IP:127.0.0.1",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")
  ], { stdio: "ignore" })
  return {
    dir,
    key: readFileSync(join(dir, "key.pem")),
    cert: readFileSync(join(dir, "cert.pem"), "utf8"),
    caFile: join(dir, "cert.pem"),
    cleanup: () => rmSync(dir, { recursive: true, force: true })
  }
}

export const startReceiver = async (tls: { key: Buffer; cert: string }): Promise<Receiver> => {
  const received: Array<Received> = []
  const handlers = new Map<string, Handler>()
  const server: Server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const r: Received = {
        at: Date.now(),
        path: req.url ?? "",
        headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(",") : v ?? ""])),
        body: Buffer.concat(chunks).toString("utf8")
      }
      received.push(r)
      const handler = handlers.get(r.path)
      if (handler) handler(req, res, r)
      else res.writeHead(200, { "content-type": "text/plain" }).end("ok")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    port: (server.address() as AddressInfo).port,
    received,
    on: (path, handler) => void handlers.set(path, handler),
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}

/** `hooks.test` → 127.0.0.1 (allowed by the test policy); `rebind.test` → a private 10/8 address. */
export const testResolver: ResolveHost = async (host) => {
  if (host === "rebind.test") return [{ address: "10.0.0.7", family: 4 }]
  return [{ address: "127.0.0.1", family: 4 }]
}

export const waitFor = async <A>(what: string, f: () => A | undefined | false, timeoutMs = 20_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = f()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

export interface Harness {
  readonly prefix: string
  readonly keyRing: string
  readonly topics: ReturnType<typeof topicsFor>
  readonly kafka: Kafka
  readonly producer: Producer
  readonly attempts: Array<DeliveryAttempted>
  readonly dead: Array<DeliveryDeadLettered>
  readonly invalid: Array<{ key: string | null; value: string | null; headers: Record<string, string> }>
  startDispatcher(env?: Record<string, string>): Promise<ManagedRuntime.ManagedRuntime<never, unknown>>
  startCollector(): Promise<void>
  register(options: RegisterOptions): Promise<TestEndpoint>
  emit(event: EndpointEvent): Promise<void>
  publish(event: Record<string, unknown>, key?: string): Promise<void>
  publishRaw(value: string | Buffer | null, key?: string): Promise<void>
  close(): Promise<void>
}

export interface RegisterOptions {
  readonly url: string
  readonly tenantId: string
  readonly mode?: "live" | "test"
  readonly events?: ReadonlyArray<string>
  readonly secret?: string
  readonly timeoutSeconds?: number
  readonly retryPolicy?: RetryPolicy
  readonly active?: boolean
}

export interface TestEndpoint {
  readonly id: string
  readonly secret: string
  readonly registered: EndpointEvent
}

/** A unique prefix and key ring; output topics are collected from the beginning. */
export const makeHarness = async (name: string): Promise<Harness> => {
  const prefix = `t${Date.now()}_${name}_${randomBytes(3).toString("hex")}_`
  const keyRing = generateKeyRing("test")
  const ring = parseKeyRing(keyRing)
  const topics = topicsFor(prefix)
  const kafka = new Kafka({ clientId: `test-${name}`, brokers: BROKERS.split(","), logLevel: logLevel.NOTHING })
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  const attempts: Array<DeliveryAttempted> = []
  const dead: Array<DeliveryDeadLettered> = []
  const invalid: Harness["invalid"] = []
  const runtimes: Array<ManagedRuntime.ManagedRuntime<never, unknown>> = []
  let collector: Consumer | undefined

  const startCollector = async () => {
    if (collector) return
    collector = kafka.consumer({ groupId: `${prefix}test-collector-${randomUUID()}`, maxWaitTimeInMs: 50 })
    await collector.connect()
    await collector.subscribe({ topics: [topics.attempts.name, topics.dead.name, topics.invalidEvents.name], fromBeginning: true })
    await collector.run({
      eachMessage: async ({ topic, message }) => {
        const value = message.value?.toString("utf8") ?? null
        if (topic === topics.attempts.name) attempts.push(decodeDeliveryAttempted(value))
        else if (topic === topics.dead.name) dead.push(decodeDeliveryDeadLettered(value))
        else {
          invalid.push({
            key: message.key?.toString("utf8") ?? null,
            value,
            headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]))
          })
        }
      }
    })
  }

  const harness: Harness = {
    prefix,
    keyRing,
    topics,
    kafka,
    producer,
    attempts,
    dead,
    invalid,
    startCollector,
    startDispatcher: async (env = {}) => {
      Object.assign(process.env, {
        KAFKA_BROKERS: BROKERS,
        ORBIT_TOPIC_PREFIX: prefix,
        ORBIT_EXTRA_CA_FILE: env.ORBIT_EXTRA_CA_FILE ?? process.env.ORBIT_EXTRA_CA_FILE,
        DISPATCHER_SHUTDOWN_GRACE_MS: "1000",
        ...env
      })
      const layer = DispatcherLive.pipe(
        Layer.provide(Layer.mergeAll(
          SecretBox.layerFromKeyRing(keyRing),
          NetGuardPolicy.layer,
          Resolver.layerFrom(testResolver)
        )),
        Layer.provide(KafkaClient.layer),
        Layer.provide(Layer.mergeAll(
          Logger.layer([Logger.consoleJson]),
          Layer.succeed(References.MinimumLogLevel, (process.env.TEST_LOG_LEVEL ?? "Error") as "Error")
        ))
      )
      const runtime = ManagedRuntime.make(layer as Layer.Layer<never, unknown>)
      await runtime.context()
      runtimes.push(runtime)
      await startCollector()
      return runtime
    },
    register: async (o) => {
      const secret = o.secret ?? generateWebhookSecret()
      const id = newEndpointId()
      const at = new Date().toISOString()
      const registered: EndpointEvent = {
        _tag: "EndpointRegistered",
        schema_version: 1,
        event_id: randomUUID(),
        occurred_at: at,
        endpoint_id: id,
        tenant_id: o.tenantId,
        mode: o.mode ?? "live",
        url: o.url,
        events: (o.events ?? ["*"]) as never,
        description: null,
        active: o.active ?? true,
        timeout_seconds: o.timeoutSeconds ?? 5,
        retry_policy: o.retryPolicy ?? { strategy: "fixed", max_attempts: 1, delay_seconds: 1 },
        secret_box: encrypt(ring, secret, { tenant_id: o.tenantId, mode: o.mode ?? "live", endpoint_id: id, slot: "current" })
      }
      await harness.emit(registered)
      return { id, secret, registered }
    },
    emit: async (event) => {
      await producer.send({ topic: topics.endpointEvents.name, acks: -1, messages: [{ key: event.endpoint_id, value: encodeEndpointEvent(event) }] })
    },
    publish: async (event, key) => {
      await harness.publishRaw(JSON.stringify(event), key ?? String(event.tenant_id))
    },
    publishRaw: async (value, key = "tenant") => {
      await producer.send({ topic: topics.sourceEvents.name, acks: -1, messages: [{ key, value }] })
    },
    close: async () => {
      for (const r of runtimes.reverse()) await r.dispose()
      await collector?.disconnect()
      await producer.disconnect()
      const admin = kafka.admin()
      await admin.connect()
      await admin.deleteTopics({ topics: Object.values(topics).map((t) => t.name) }).catch(() => undefined)
      await admin.disconnect()
    }
  }
  return harness
}

export const domainEvent = (tenantId: string, type = "message.delivered", data: Record<string, unknown> = { message_id: randomUUID() }) => ({
  id: newEventId(),
  type,
  tenant_id: tenantId,
  mode: "live",
  created_at: new Date().toISOString(),
  data
})


/** Where one record sits in a topic. */
export interface RecordAt {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
}

/**
 * The first delivery task in `topics` (the deliveries topic or the retry tiers) that `match`
 * accepts, read from the beginning by a throwaway consumer group; waits until it is there.
 */
export const findTask = async (
  h: Harness,
  topics: ReadonlyArray<string>,
  match: (task: DeliveryTask) => boolean,
  timeoutMs = 20_000
): Promise<RecordAt & { readonly task: DeliveryTask }> => {
  const consumer = h.kafka.consumer({ groupId: `${h.prefix}test-find-${randomUUID()}`, maxWaitTimeInMs: 50 })
  let found: (RecordAt & { readonly task: DeliveryTask }) | undefined
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [...topics], fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        if (found !== undefined || message.value === null) return
        const task = decodeDeliveryTask(message.value.toString("utf8"))
        if (match(task)) found = { topic, partition, offset: BigInt(message.offset), task }
      }
    })
    return await waitFor("the delivery task in Kafka", () => found, timeoutMs)
  } finally {
    await consumer.disconnect()
  }
}

/** The retry tier topics of a harness. */
export const tierTopics = (h: Harness): Array<string> => delayTiersOf(h.topics).map((t) => t.topic)

/** Committed offsets of `${prefix}${group}` on `topic`, by partition (-1 where nothing is committed). */
export const committedOffsets = async (h: Harness, group: string, topic: string): Promise<Map<number, bigint>> => {
  const admin = h.kafka.admin()
  await admin.connect()
  try {
    const [t] = await admin.fetchOffsets({ groupId: `${h.prefix}${group}`, topics: [topic] })
    return new Map((t?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]))
  } finally {
    await admin.disconnect()
  }
}

/**
 * Waits until the dispatcher's consumer group `group` (e.g. "orbit-dispatcher-retry") has committed
 * past `record`: its handling finished and its outcome is durable (offsets are committed after).
 */
export const waitForCommittedPast = async (h: Harness, group: string, record: RecordAt, timeoutMs = 30_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const committed = (await committedOffsets(h, group, record.topic)).get(record.partition) ?? -1n
    if (committed > record.offset) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${group} to commit ${record.topic}[${record.partition}] past ${record.offset} (at ${committed})`)
    await sleep(100)
  }
}

/**
 * Waits until the consumer group `group` has committed every record that `topic` holds now (its
 * committed offsets reach the current end offsets): everything produced so far was handled.
 */
export const waitForGroupCaughtUp = async (h: Harness, group: string, topic: string, timeoutMs = 30_000): Promise<void> => {
  const admin = h.kafka.admin()
  await admin.connect()
  try {
    const ends = (await admin.fetchTopicOffsets(topic)).map((p) => ({ partition: p.partition, high: BigInt(p.high) }))
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const committed = await committedOffsets(h, group, topic)
      const behind = ends.filter((e) => e.high > 0n && (committed.get(e.partition) ?? -1n) < e.high)
      if (behind.length === 0) return
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${group} to commit ${topic} up to ${JSON.stringify(behind.map((b) => [b.partition, String(b.high)]))}`)
      await sleep(100)
    }
  } finally {
    await admin.disconnect()
  }
}

/** Every record `topic` holds now, read to its current end offsets by a throwaway consumer group. */
export const readToEnd = async (
  client: { readonly kafka: Kafka; readonly prefix: string },
  topic: string
): Promise<Array<{ readonly partition: number; readonly key: string | null; readonly value: string | null }>> => {
  const admin = client.kafka.admin()
  await admin.connect()
  const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect())
  const want = new Map(ends.map((p) => [p.partition, BigInt(p.high)]))
  const next = new Map(ends.map((p) => [p.partition, BigInt(p.low)]))
  const records: Array<{ partition: number; key: string | null; value: string | null }> = []
  const consumer = client.kafka.consumer({ groupId: `${client.prefix}test-read-${randomUUID()}`, maxWaitTimeInMs: 50 })
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const offset = BigInt(message.offset)
        if (offset >= want.get(partition)!) return
        records.push({ partition, key: message.key?.toString("utf8") ?? null, value: message.value?.toString("utf8") ?? null })
        next.set(partition, offset + 1n)
      }
    })
    await waitFor(`${topic} read to its end`, () => [...want].every(([p, high]) => next.get(p)! >= high))
    return records
  } finally {
    await consumer.disconnect()
  }
}

/** Every delivery task `topic` holds now. */
export const tasksIn = async (client: { readonly kafka: Kafka; readonly prefix: string }, topic: string): Promise<Array<DeliveryTask>> =>
  (await readToEnd(client, topic)).flatMap((r) => r.value === null ? [] : [decodeDeliveryTask(r.value)])
