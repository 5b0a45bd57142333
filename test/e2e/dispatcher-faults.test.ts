/**
 * Dispatcher fault tolerance, end to end: real dispatcher processes (`services/dispatcher/src/main.ts`),
 * the real broker, a real HTTPS receiver. Endpoints are registered by producing
 * `EndpointRegistered` straight to the endpoint-events topic (the dispatcher's only input for
 * them), so no registration service or Postgres is involved.
 *
 * The guarantee checked after every fault: each (event, subscribed endpoint) pair reached the
 * receiver at least once, and every copy of it carried the same `X-Devotel-Delivery-Id`
 * (`deliveryIdFor(event, endpoint)`). Duplicates are allowed; nothing may be missing.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { randomBytes, randomUUID } from "node:crypto"
import { once } from "node:events"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import type { IncomingMessage, ServerResponse } from "node:http"
import { createServer, type Server } from "node:https"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { encrypt, generateKeyRing, generateWebhookSecret, parseKeyRing } from "@orbit/crypto"
import { deliveryIdFor, type EndpointEvent, encodeEndpointEvent, newEndpointId, newEventId, topicsFor } from "@orbit/domain"
import { Kafka, logLevel, type KafkajsProducer as Producer } from "@orbit/kafka"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { brokers } from "../../infra/kafka.ts"
import { startOwnKafka } from "../src/OwnKafka.ts"

const ROOT = join(import.meta.dirname, "..", "..")
const NODE = join(ROOT, "node_modules/.bin/node")

// ---------------------------------------------------------------------------------------------
// Receiver: real HTTPS (self-signed certificate trusted by the dispatcher via ORBIT_EXTRA_CA_FILE)
// ---------------------------------------------------------------------------------------------

interface Receipt {
  readonly at: number
  readonly endpoint: string
  readonly eventId: string
  readonly deliveryId: string
}

type Behaviour = (req: IncomingMessage, res: ServerResponse) => void

const tls = (() => {
  const dir = mkdtempSync(join(tmpdir(), "dispatcher-faults-"))
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=faults.test",
    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")
  ], { stdio: "ignore" })
  return { dir, caFile: join(dir, "cert.pem"), key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) }
})()

const receipts: Array<Receipt> = []
/** Per endpoint path segment: how to answer (default 200 at once). */
const behaviours = new Map<string, Behaviour>()
let server: Server
let port = 0

const startReceiver = async () => {
  server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const endpoint = (req.url ?? "").split("/")[2] ?? ""
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { id: string }
      receipts.push({ at: Date.now(), endpoint, eventId: body.id, deliveryId: String(req.headers["x-devotel-delivery-id"]) })
      const behaviour = behaviours.get(endpoint)
      if (behaviour) behaviour(req, res)
      else res.writeHead(200).end("ok")
    })
  })
  server.keepAliveTimeout = 60_000
  server.listen(0, "127.0.0.1")
  await once(server, "listening")
  port = (server.address() as AddressInfo).port
}

// ---------------------------------------------------------------------------------------------
// One isolated deployment per test: topic prefix, key ring, endpoints, dispatcher processes
// ---------------------------------------------------------------------------------------------

const clientFor = (list: ReadonlyArray<string>) =>
  new Kafka({
    clientId: "dispatcher-faults-test",
    brokers: [...list],
    logLevel: logLevel.NOTHING,
    retry: { retries: 30, initialRetryTime: 200, maxRetryTime: 2_000 }
  })
const sharedKafka = clientFor(brokers())
let sharedProducer: Producer
const children: Array<ChildProcess> = []
const prefixes: Array<string> = []

interface Dispatcher {
  readonly child: ChildProcess
  readonly log: () => string
  /** Log lines (JSON) whose message is `message`. */
  readonly lines: (message: string) => Array<Record<string, unknown>>
  readonly exited: Promise<number | null>
}

/** The broker a deployment uses: the run's shared one, or a test's own (which the test may kill). */
interface Cluster {
  readonly kafka: Kafka
  readonly producer: Producer
  readonly brokers: ReadonlyArray<string>
}

const makeDeployment = async (name: string, env: Record<string, string> = {}, cluster?: Cluster) => {
  const prefix = `faults_${Date.now().toString(36)}_${name}_${randomBytes(3).toString("hex")}_`
  if (cluster === undefined) prefixes.push(prefix)
  const { kafka, producer } = cluster ?? { kafka: sharedKafka, producer: sharedProducer }
  const clusterBrokers = cluster?.brokers ?? brokers()
  const topics = topicsFor(prefix)
  const keyRing = generateKeyRing("faults")
  const ring = parseKeyRing(keyRing)
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({
    waitForLeaders: true,
    topics: Object.values(topics).map((t) => ({ topic: t.name, numPartitions: t.partitions, replicationFactor: 1 }))
  })
  await admin.disconnect()
  const endpoints: Array<{ id: string; tenant: string; key: string }> = []

  const register = async (
    count: number,
    options: { timeoutSeconds?: number; tenant?: string; retryDelaysSeconds?: ReadonlyArray<number> } = {}
  ) => {
    const tenant = options.tenant ?? `tenant_${randomBytes(4).toString("hex")}`
    const created = Array.from({ length: count }, () => {
      const id = newEndpointId()
      const key = id.slice(-12)
      const event: EndpointEvent = {
        _tag: "EndpointRegistered",
        schema_version: 1,
        event_id: randomUUID(),
        occurred_at: new Date().toISOString(),
        endpoint_id: id,
        tenant_id: tenant,
        mode: "live",
        url: `https://127.0.0.1:${port}/hook/${key}`,
        events: ["*"],
        description: null,
        active: true,
        timeout_seconds: options.timeoutSeconds ?? 10,
        // Retries a few seconds apart: a delivery cut short by a fault is retried soon.
        retry_policy: { strategy: "custom", delays_seconds: [...(options.retryDelaysSeconds ?? [1, 2, 3, 5, 8])] },
        secret_box: encrypt(ring, generateWebhookSecret(), { tenant_id: tenant, mode: "live", endpoint_id: id, slot: "current" })
      }
      return { id, tenant, key, event }
    })
    await producer.send({
      topic: topics.endpointEvents.name,
      acks: -1,
      messages: created.map((c) => ({ key: c.id, value: encodeEndpointEvent(c.event) }))
    })
    endpoints.push(...created)
    return created
  }

  /** Every published (event, endpoint) pair: the delivery ids that must all arrive. */
  const expected = new Map<string, { endpoint: string; eventId: string }>()
  /** `count` events, round robin over `tenants` (the source topic's key, so over its partitions). */
  const publish = async (count: number, tenants: ReadonlyArray<string>) => {
    for (let i = 0; i < count; i += 250) {
      const events = Array.from({ length: Math.min(250, count - i) }, (_, j) => ({
        id: newEventId(),
        type: "message.delivered",
        tenant_id: tenants[(i + j) % tenants.length]!,
        mode: "live",
        created_at: new Date().toISOString(),
        data: { message_id: `m${i + j}` }
      }))
      await producer.send({
        topic: topics.sourceEvents.name,
        acks: -1,
        messages: events.map((e) => ({ key: e.tenant_id, value: JSON.stringify(e) }))
      })
      for (const e of events) {
        for (const endpoint of endpoints.filter((x) => x.tenant === e.tenant_id)) {
          expected.set(deliveryIdFor(e.id, endpoint.id), { endpoint: endpoint.key, eventId: e.id })
        }
      }
    }
  }

  /** `tenants` tenants with `perTenant` endpoints each; returns the tenant ids. */
  const registerTenants = async (tenants: number, perTenant: number) => {
    const ids: Array<string> = []
    for (let t = 0; t < tenants; t++) ids.push((await register(perTenant))[0]!.tenant)
    return ids
  }

  const mine = () => {
    const keys = new Set(endpoints.map((e) => e.key))
    return receipts.filter((r) => keys.has(r.endpoint))
  }
  const missing = () => {
    const got = new Set(mine().map((r) => r.deliveryId))
    return [...expected.keys()].filter((id) => !got.has(id))
  }

  const startDispatcher = async (extra: Record<string, string> = {}): Promise<Dispatcher> => {
    const child = spawn(NODE, [join(ROOT, "services/dispatcher/src/main.ts")], {
      env: {
        ...process.env,
        KAFKA_BROKERS: clusterBrokers.join(","),
        // Several dispatchers run at once: each serves /metrics on a free port.
        ORBIT_METRICS_PORT: "0",
        // A broker of the test's own would disagree with an inherited KAFKA_PORT (a start-up error).
        KAFKA_PORT: undefined,
        KAFKAJS_NO_PARTITIONER_WARNING: "1",
        ORBIT_TOPIC_PREFIX: prefix,
        ORBIT_SECRET_KEYS: keyRing,
        ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8",
        ORBIT_EXTRA_CA_FILE: tls.caFile,
        DISPATCHER_SESSION_TIMEOUT_MS: "6000",
        LOG_LEVEL: "Info",
        ...env,
        ...extra
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    children.push(child)
    let out = ""
    child.stdout!.on("data", (d: Buffer) => { out += d.toString() })
    child.stderr!.on("data", (d: Buffer) => { out += d.toString() })
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    const lines = (message: string) =>
      out.split("\n").flatMap((line) => {
        if (!line.startsWith("{")) return []
        try {
          const parsed = JSON.parse(line) as { message?: unknown }
          const [m, fields] = Array.isArray(parsed.message) ? parsed.message : [parsed.message, {}]
          return m === message ? [fields as Record<string, unknown>] : []
        } catch {
          return []
        }
      })
    await waitFor("dispatcher started", () => lines("delivery worker started").length > 0 && lines("fan-out started").length > 0, 60_000, () => out)
    return { child, log: () => out, lines, exited }
  }

  return { prefix, topics, register, registerTenants, publish, expected, mine, missing, startDispatcher }
}

const waitFor = async (what: string, check: () => boolean, timeoutMs: number, context?: () => string) => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${context ? `\n${context().slice(-3000)}` : ""}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

const waitForAsync = async (what: string, check: () => Promise<boolean>, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

/** Each (event, endpoint) pair arrived, and every copy carried the pair's delivery id. */
const expectAllDelivered = (d: Awaited<ReturnType<typeof makeDeployment>>) => {
  expect(d.missing()).toEqual([])
  for (const r of d.mine()) {
    const pair = d.expected.get(r.deliveryId)
    expect(pair, `unexpected delivery id ${r.deliveryId}`).toBeDefined()
    expect(pair).toEqual({ endpoint: r.endpoint, eventId: r.eventId })
  }
}

const describeGroup = async (groupId: string) => {
  const admin = sharedKafka.admin()
  await admin.connect()
  try {
    const { groups } = await admin.describeGroups([groupId])
    return groups[0]!
  } finally {
    await admin.disconnect()
  }
}

beforeAll(async () => {
  await startReceiver()
  sharedProducer = sharedKafka.producer({ allowAutoTopicCreation: false })
  await sharedProducer.connect()
})

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
  await sharedProducer?.disconnect()
  const admin = sharedKafka.admin()
  await admin.connect()
  const existing = new Set(await admin.listTopics())
  const mine = prefixes.flatMap((p) => Object.values(topicsFor(p)).map((t) => t.name)).filter((t) => existing.has(t))
  if (mine.length > 0) await admin.deleteTopics({ topics: mine }).catch(() => undefined)
  await admin.disconnect()
  server?.closeAllConnections()
  server?.close()
  rmSync(tls.dir, { recursive: true, force: true })
})

describe("dispatcher faults", () => {
  it("two processes share the work; kill -9 of one under load loses nothing", async () => {
    const d = await makeDeployment("kill")
    // 12 tenants × 2 endpoints: the load spreads over every partition of the source and delivery topics.
    const tenants = await d.registerTenants(12, 2)
    const first = await d.startDispatcher()
    const second = await d.startDispatcher()
    // Both are members of the fan-out and delivery groups, each with partitions of its own.
    const lastJoin = (p: Dispatcher, group: string) =>
      p.lines("consumer group joined").filter((j) => String(j.groupId).endsWith(group)).at(-1)
    await waitFor("both processes own partitions of both groups", () =>
      [first, second].every((p) =>
        Number(lastJoin(p, "orbit-dispatcher-delivery")?.partitions ?? 0) > 0 &&
        Number(lastJoin(p, "orbit-dispatcher-fanout")?.partitions ?? 0) > 0
      ), 30_000)
    const group = await describeGroup(`${d.prefix}orbit-dispatcher-delivery`)
    expect(group.members).toHaveLength(2)
    const joinsBeforeKill = first.lines("consumer group joined").length

    await d.publish(1500, tenants) // 3,000 deliveries
    const publishedBeforeKill = d.expected.size
    await waitFor("some deliveries", () => d.mine().length >= 300, 30_000)
    const deliveredBeforeKill = new Set(d.mine().map((r) => r.deliveryId)).size
    second.child.kill("SIGKILL")
    await second.exited
    const killedAt = Date.now()
    const takenOver = () =>
      first.lines("consumer group joined").length > joinsBeforeKill &&
      Number(lastJoin(first, "orbit-dispatcher-delivery")?.partitions) === 6 &&
      Number(lastJoin(first, "orbit-dispatcher-fanout")?.partitions) === 6
    const takeover = (async () => {
      await waitFor("the survivor to take over every partition", takenOver, 60_000, first.log)
      return Date.now() - killedAt
    })()
    await d.publish(500, tenants) // more load after the crash: 1,000 more deliveries
    await waitFor("every delivery", () => d.missing().length === 0, 60_000, first.log)
    // The kill came under load: work published before it was still undelivered.
    expect(deliveredBeforeKill).toBeLessThan(publishedBeforeKill)
    // The survivor took over the dead member's partitions (it rejoined the groups after the kill).
    expect(first.lines("consumer group joined").length).toBeGreaterThan(joinsBeforeKill)
    expect(Number(lastJoin(first, "orbit-dispatcher-delivery")?.partitions)).toBe(6)
    expect(Number(lastJoin(first, "orbit-dispatcher-fanout")?.partitions)).toBe(6)
    expectAllDelivered(d)
    // The measured time, for the record (docs/BENCHMARKS.md); nothing here asserts on it.
    console.log(`[recovery] dispatcher kill -9: the survivor owned every partition ${((await takeover) / 1000).toFixed(1)} s later (session timeout 6 s)`)
  })

  it("kill -9 of the broker mid-load: deliveries resume once it answers again, and nothing is lost", async () => {
    // A broker of this test's own: it is killed, so it must be one no other test or checkout uses.
    const own = await startOwnKafka()
    const kafka = clientFor(own.brokers)
    const producer = kafka.producer({ allowAutoTopicCreation: false })
    let dispatcher: Dispatcher | undefined
    try {
      await producer.connect()
      // A session far longer than a rejoin takes: a consumer that came back as a new member would
      // wait for its old self to time out, and the resume below would not come within it.
      const sessionTimeoutMs = 60_000
      const d = await makeDeployment("broker", { DISPATCHER_SESSION_TIMEOUT_MS: String(sessionTimeoutMs) }, { kafka, producer, brokers: own.brokers })
      const tenants = await d.registerTenants(12, 2)
      // A gated endpoint answers 503 until the broker is back: its deliveries are failed and
      // scheduled for retry in Kafka before the crash, and can only succeed after it. Its
      // retries (113 s in all) outlast any restart.
      const [gated] = await d.register(1, { retryDelaysSeconds: [1, 2, 3, 5, 8, 13, 21, 30, 30] })
      let gateOpen = false
      const refusedBeforeRestart = new Set<string>()
      const acceptedAfterRestart = new Set<string>()
      behaviours.set(gated!.key, (req, res) => {
        const id = String(req.headers["x-devotel-delivery-id"])
        if (gateOpen) {
          acceptedAfterRestart.add(id)
          res.writeHead(200).end("ok")
        } else {
          refusedBeforeRestart.add(id)
          res.writeHead(503).end("closed")
        }
      })
      dispatcher = await d.startDispatcher()
      await d.publish(20, [gated!.tenant])
      const gatedIds = [...d.expected.keys()]
      await d.publish(1000, tenants) // 2,000 deliveries
      await waitFor("every gated delivery refused once", () => gatedIds.every((id) => refusedBeforeRestart.has(id)), 60_000, dispatcher.log)
      await waitFor("some deliveries", () => d.mine().length >= 200, 30_000)
      await own.kill() // kill -9: no clean shutdown, no group left
      const killedAt = Date.now()
      const undeliveredAtKill = d.missing().length
      await own.startNode(1) // returns once the broker answers a metadata request again
      const answeredAt = Date.now()
      // Deliveries resume: the first one after the broker is back, well within the session timeout
      // (a consumer rejoining as a new member would stall until the old member's session ended).
      const firstAfter = () => d.mine().find((r) => r.at >= answeredAt)
      await waitFor("a delivery after the broker answered again, within the session timeout", () => firstAfter() !== undefined, sessionTimeoutMs, dispatcher.log)
      gateOpen = true
      const beforeRestart = new Set(d.expected.keys())
      await d.publish(500, tenants) // 1,000 more after the restart
      const published = Date.now()
      const newIds = [...d.expected.keys()].filter((id) => !beforeRestart.has(id))
      const firstNew = () => d.mine().find((r) => r.at >= answeredAt && !beforeRestart.has(r.deliveryId))
      await waitFor("a delivery of an event published after the restart", () => firstNew() !== undefined, 150_000, dispatcher.log)
      await waitFor("every delivery", () => d.missing().length === 0, 150_000, dispatcher.log)
      // Work pending across the crash (retries scheduled before it) completed after it.
      await waitFor("every gated delivery accepted after the restart", () => gatedIds.every((id) => acceptedAfterRestart.has(id)), 150_000, dispatcher.log)
      expect(undeliveredAtKill).toBeGreaterThan(0) // the kill came under load
      expect(newIds.length).toBe(1000)
      expectAllDelivered(d)
      // The measured times, for the record (docs/BENCHMARKS.md); nothing here asserts on them.
      const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`
      const lastNew = Math.max(...d.mine().filter((r) => !beforeRestart.has(r.deliveryId)).map((r) => r.at))
      console.log(
        `[recovery] broker kill -9: down ${s(answeredAt - killedAt)} (${undeliveredAtKill} deliveries outstanding); after it answered again: ` +
          `first delivery ${s(firstAfter()!.at - answeredAt)}, first of the events published after it ${s(firstNew()!.at - answeredAt)}, ` +
          `all ${newIds.length} of those ${s(lastNew - answeredAt)} (publishing them took ${s(published - answeredAt)})`
      )
      behaviours.delete(gated!.key)
    } finally {
      dispatcher?.child.kill("SIGKILL")
      await producer.disconnect().catch(() => undefined)
      await own.remove()
    }
  }, 420_000) // a broker start, a crash and a restart on a loaded host: generous; the waits end as soon as their condition holds

  it("a receiver that never answers causes no rebalance; other endpoints keep receiving", async () => {
    // A short session timeout: if the hanging calls held up heartbeats, the group would rebalance
    // long before the dispatcher gives up on them (30 s).
    const d = await makeDeployment("hang", { DISPATCHER_SESSION_TIMEOUT_MS: "10000" })
    const [slow] = await d.register(1, { timeoutSeconds: 30 })
    const healthy = await d.register(2)
    const dispatcher = await d.startDispatcher()
    const groups = ["orbit-dispatcher-delivery", "orbit-dispatcher-retry", "orbit-dispatcher-fanout"].map((g) => `${d.prefix}${g}`)
    const joins = () => dispatcher.lines("consumer group joined").length
    const membership = () =>
      Promise.all(groups.map(async (g) => {
        const { state, members } = await describeGroup(g)
        return { state, members: members.map((m) => m.memberId).sort() }
      }))
    // Every group has settled with this process as its one member.
    await waitForAsync("every group stable with one member", async () =>
      (await membership()).every((g) => g.state === "Stable" && g.members.length === 1), 60_000)
    const joinsBefore = joins()
    const membersBefore = await membership()

    // The slow endpoint never answers: only the dispatcher's 30 s timeout ends its requests.
    const hanging = new Set<ServerResponse>()
    let hangsEnded = 0
    behaviours.set(slow!.key, (_req, res) => {
      hanging.add(res)
      res.once("close", () => {
        hanging.delete(res)
        hangsEnded++
      })
    })
    await d.publish(5, [slow!.tenant]) // 5 requests to the slow endpoint, all held
    await waitFor("the slow endpoint to be hanging", () => hanging.size > 0, 15_000)

    // Healthy endpoints (another tenant) receive throughout the hang, in several waves.
    const healthyKeys = new Set(healthy.map((h) => h.key))
    const healthyMissing = () => d.missing().filter((id) => healthyKeys.has(d.expected.get(id)!.endpoint))
    for (let wave = 0; wave < 5; wave++) {
      await d.publish(40, [healthy[0]!.tenant])
      await waitFor(`healthy wave ${wave} delivered`, () => healthyMissing().length === 0, 30_000, dispatcher.log)
    }
    // All of that happened while no slow request had ended.
    expect(hangsEnded).toBe(0)
    expect(hanging.size).toBeGreaterThan(0)

    // The dispatcher gives up on the 5 hanging requests (its timeout), closing them. (Their
    // retries may hang again: the endpoint still never answers.)
    await waitFor("the dispatcher to close the hanging requests", () => hangsEnded >= 5, 60_000, dispatcher.log)
    // Sentinel: a wave published after the hang ended is delivered; a rebalance caused by the hang
    // (session timeout 10 s, hang 30 s) would have been logged before it.
    await d.publish(10, [healthy[1]!.tenant])
    await waitFor("the sentinel wave", () => healthyMissing().length === 0, 30_000, dispatcher.log)

    // No (re)join happened in this process and the groups still have the same members.
    expect(joins()).toBe(joinsBefore)
    expect(await membership()).toEqual(membersBefore)
    for (const res of hanging) res.destroy()
    behaviours.delete(slow!.key)
  }, 180_000)

  it("SIGTERM: in-flight attempts finish or are handed back; a restarted dispatcher completes everything", async () => {
    const d = await makeDeployment("sigterm")
    const endpoints = await d.register(2)
    // Slow answers (300 ms), 8 at a time per endpoint: plenty of attempts in flight at SIGTERM.
    for (const e of endpoints) behaviours.set(e.key, (_req, res) => void setTimeout(() => res.writeHead(200).end("ok"), 300))
    const first = await d.startDispatcher({ DISPATCHER_SHUTDOWN_GRACE_MS: "1000" })
    await d.publish(150, [endpoints[0]!.tenant]) // 300 deliveries, ~6 s of work
    await waitFor("some deliveries", () => d.mine().length >= 30, 30_000)
    first.child.kill("SIGTERM")
    // It stopped on its own and cleanly (nothing here sends SIGKILL; a process that ignored the
    // signal would keep the test waiting until its timeout): the signal did not kill it, and it
    // exited 0, a clean stop (a failure while closing exits 1)...
    expect(await first.exited).toBe(0)
    expect(first.child.signalCode).toBeNull()
    // ...with work in flight when the signal came (so something was finished or handed back).
    const stopping = first.lines("delivery worker stopping")
    expect(stopping).toHaveLength(1)
    expect(Number(stopping[0]!.outstanding)).toBeGreaterThan(0)
    const atStop = new Set(d.mine().map((r) => r.deliveryId)).size
    expect(atStop).toBeLessThan(d.expected.size)

    const second = await d.startDispatcher()
    await waitFor("every delivery", () => d.missing().length === 0, 60_000, second.log)
    expectAllDelivered(d)
    for (const e of endpoints) behaviours.delete(e.key)
  })
})
