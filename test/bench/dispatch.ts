/**
 * `npm run bench:dispatch` — the dispatcher end to end, measured at the receiver.
 *
 * Processes: this one (publisher, bare-undici loop, report), a receiver (real HTTPS server,
 * keep-alive, forked from this file) and the dispatcher (`services/dispatcher/src/main.ts`, a real
 * child process with its own topic prefix), all against the real broker.
 *
 * 50 endpoints, one per tenant, so each event is exactly one delivery (fan-out 1:1, the hardest
 * case per delivery). Every event carries its publish time (`data.ts`, epoch ms with sub-ms
 * precision); the receiver takes `now - ts` when the request body has arrived.
 *
 * Runs, in one process tree:
 *   warm-up   2,000 + 5,000 events, not reported (JIT, TLS connections, consumer groups)
 *   burst     20,000 events published as fast as possible; deliveries/s until the last arrives
 *   ceiling   a bare undici loop posting the same bodies and headers to the same receiver with
 *             the dispatcher's effective concurrency (min(DISPATCHER_CONCURRENCY, per-endpoint × endpoints))
 *   rate      1,000 events/s offered for 10 s; publish-to-receipt p50/p95/p99
 *   hanging   10% of the endpoints never answer (timeout_seconds 2, 1 attempt): the rate and the
 *             burst runs again, measured on the healthy 90%
 *   tenants   tenant B's one fast endpoint gets 50 events/s for 10 s, alone ("fair"), then beside
 *             tenant A, whose 500 endpoints answer after 2 s and get one event/s each from 2 s
 *             before B's run on ("fair+A": A wants ~1,000 slots of the 256); B's p99 beside A is
 *             compared with B's p99 alone
 * Those are the "classic" shape. Two more shapes (BENCH_SHAPES=classic,wide,fan25, default all) run
 * warm-up, burst and ceiling rounds and the rate run each:
 *   wide      fan-out 1 to 500 endpoints (one per tenant): BURST deliveries, RATE deliveries/s
 *   fan25     one tenant, 25 endpoints subscribed to the one event type, so each event is 25
 *             deliveries; the first endpoint answers after BENCH_SLOW_MS and is measured apart (the burst's
 *             rate is the fast endpoints' one, next to a ceiling posting to them alone)
 * Memory: each service's resident memory (VmRSS; the projection and the registration run beside
 * the dispatcher, own Postgres schema, unless BENCH_PLATFORM=0) before a shape's burst rounds, the
 * maximum sampled every MEMORY_SAMPLE_MS during them, and BENCH_MEMORY_AFTER_S after them.
 *   traced    (classic) the dispatcher restarted with tracing on (OTLP/HTTP export to a local
 *             receiver in this process, every span sampled); the burst again, ROUNDS times: its
 *             median next to the burst's (tracing off)
 * Then a table and the targets (docs/BENCHMARKS.md) with PASS/MISS. The whole run is bounded (a
 * watchdog at 2.5x the estimate it prints; a stalled run gives up after 15 s without progress),
 * stops the dispatcher with SIGTERM, kills what is left and deletes its topics and schema.
 *
 * Env knobs: BENCH_SHAPES (classic,wide,fan25), BENCH_WIDE_ENDPOINTS (500), BENCH_FAN_OUT (25), BENCH_SLOW_MS (200),
 * BENCH_MEMORY_AFTER_S (60), BENCH_PLATFORM (1), BENCH_ENDPOINTS (50), BENCH_BURST (20000), BENCH_RATE (1000), BENCH_RATE_SECONDS (10),
 * BENCH_ROUNDS (3: burst and ceiling runs, alternating; medians reported),
 * BENCH_DISPATCHERS (1: dispatcher processes sharing the work), BENCH_ONLY (e.g. "burst,ceiling";
 * runs: burst, ceiling, rate, hang, fair, traced), BENCH_FAIR_ENDPOINTS (500), BENCH_FAIR_RATE (50),
 * and every DISPATCHER_* variable reaches the dispatcher.
 * Diagnostics: BENCH_PROFILE=1 (dispatcher --cpu-prof, directory printed), BENCH_STAGES=1 (splits
 * the rate run's latency at the fan-out using the tasks' Kafka timestamps),
 * BENCH_DISPATCHER_NODE_ARGS (extra node flags, e.g. "--trace-gc"), BENCH_TRACE=1 (echo the
 * dispatcher's non-JSON output lines).
 */
import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process"
import { randomBytes, randomUUID } from "node:crypto"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer as createHttpServer } from "node:http"
import { createServer } from "node:https"
import type { AddressInfo } from "node:net"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { encrypt, generateKeyRing, generateWebhookSecret, parseKeyRing, signDelivery } from "@orbit/crypto"
import { type EndpointEvent, encodeEndpointEvent, newEndpointId, newEventId, topicsFor } from "@orbit/domain"
import { CompressionTypes, Kafka, logLevel, type Message } from "@orbit/kafka"
import { Agent, request } from "@orbit/net-guard"
import { postgres } from "@orbit/db"
import { serviceArgs, serviceEnv } from "../../infra/services.ts"
import { freePort } from "../src/freePort.ts"
import { localBrokerPid } from "../../infra/kafka.ts"
import { cpuSeconds, rssMb } from "./ProcStats.ts"
import { measureCpuSteal } from "./CpuSteal.ts"

/** How often the bursts' peak resident memory is sampled. */
const MEMORY_SAMPLE_MS = 100

const ROOT = join(import.meta.dirname, "..", "..")
const num = (name: string, fallback: number) => {
  const v = process.env[name]
  return v === undefined || v === "" ? fallback : Number(v)
}

// --------------------------------------------------------------------------------------------
// Receiver (child process)
// --------------------------------------------------------------------------------------------

interface RunStats {
  /** Requests fully received and answered 2xx (healthy endpoints). */
  count: number
  unique: number
  duplicates: number
  firstAt: number
  lastAt: number
  latencies: Array<number>
  /** Latencies of the deliveries to the slow endpoints (the `slow` message), apart from the others. */
  slowLatencies: Array<number>
  /** endpoint → [distinct deliveries, last receipt]: a subset's rate can be compared across runs. */
  byEndpoint: Record<number, [number, number]>
}

type ToReceiver =
  | { readonly type: "hang"; readonly endpoints: ReadonlyArray<number> }
  | { readonly type: "slow"; readonly endpoints: ReadonlyArray<number>; readonly ms: number }
  | { readonly type: "drop"; readonly run: string }
  | { readonly type: "stats"; readonly run: string; readonly id: number; readonly latencies: boolean }

const nowMs = () => performance.timeOrigin + performance.now()

const runReceiver = async () => {
  const tls = JSON.parse(process.env.BENCH_TLS!) as { key: string; cert: string }
  const hanging = new Set<number>()
  const slow = new Set<number>()
  let slowMs = 0
  const runs = new Map<string, RunStats & { seen: Set<string> }>()
  let hangingRequests = 0
  const server = createServer({ key: tls.key, cert: tls.cert, keepAlive: true }, (req, res) => {
    const endpoint = Number((req.url ?? "").slice(3)) // "/e/<n>"
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      if (req.url?.startsWith("/s/")) {
        // Tenant A's slow endpoints ("/s/<n>"): every answer takes 2 s; not measured.
        setTimeout(() => res.writeHead(200, { "content-type": "text/plain", "content-length": "2" }).end("ok"), 2_000)
        return
      }
      if (hanging.has(endpoint)) {
        hangingRequests++
        return // never answers: the dispatcher aborts at the endpoint's timeout
      }
      const at = nowMs()
      let body: { id: string; data: { run: string; ts: number } }
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"))
      } catch {
        res.writeHead(400).end()
        return
      }
      let s = runs.get(body.data.run)
      if (s === undefined) {
        s = { count: 0, unique: 0, duplicates: 0, firstAt: at, lastAt: at, latencies: [], slowLatencies: [], byEndpoint: {}, seen: new Set() }
        runs.set(body.data.run, s)
      }
      s.count++
      s.lastAt = at
      // One event reaches several endpoints (fan-out): a delivery is an (endpoint, event) pair.
      const delivery = `${endpoint}/${body.id}`
      if (s.seen.has(delivery)) s.duplicates++
      else {
        s.seen.add(delivery)
        s.unique++
        ;(slow.has(endpoint) ? s.slowLatencies : s.latencies).push(at - body.data.ts)
        const e = (s.byEndpoint[endpoint] ??= [0, 0])
        e[0]++
        e[1] = at
      }
      // A slow endpoint answers `slowMs` after the body arrived (its receipt is measured on arrival).
      if (slow.has(endpoint)) setTimeout(() => res.writeHead(200, { "content-type": "text/plain", "content-length": "2" }).end("ok"), slowMs)
      else res.writeHead(200, { "content-type": "text/plain", "content-length": "2" }).end("ok")
    })
  })
  server.keepAliveTimeout = 120_000
  server.headersTimeout = 125_000
  server.requestTimeout = 0
  server.maxRequestsPerSocket = 0
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", 1024, resolve))
  process.on("message", (m: ToReceiver) => {
    if (m.type === "hang") {
      hanging.clear()
      for (const e of m.endpoints) hanging.add(e)
      process.send!({ type: "ok" })
    } else if (m.type === "slow") {
      for (const e of m.endpoints) slow.add(e)
      slowMs = m.ms
      process.send!({ type: "ok" })
    } else if (m.type === "drop") {
      // A finished run's ids and latencies would only grow the heap (and GC pauses) of later runs.
      runs.set(m.run, { count: 0, unique: 0, duplicates: 0, firstAt: 0, lastAt: 0, latencies: [], slowLatencies: [], byEndpoint: {}, seen: new Set() })
    } else {
      const s = runs.get(m.run)
      process.send!({
        type: "stats",
        id: m.id,
        hangingRequests,
        stats: s === undefined
          ? undefined
          : {
            count: s.count, unique: s.unique, duplicates: s.duplicates, firstAt: s.firstAt, lastAt: s.lastAt,
            latencies: m.latencies ? s.latencies : [], slowLatencies: m.latencies ? s.slowLatencies : [],
            byEndpoint: m.latencies ? s.byEndpoint : {}
          }
      })
    }
  })
  process.on("disconnect", () => process.exit(0))
  process.send!({ type: "ready", port: (server.address() as AddressInfo).port })
}

// --------------------------------------------------------------------------------------------
// Bench (parent)
// --------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

const percentile = (sorted: Float64Array, p: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

const brokerPid = localBrokerPid

interface Result {
  readonly name: string
  readonly deliveries: number
  readonly seconds: number
  readonly perSecond: number
  /** Deliveries/s to the endpoints that never hang (index ≥ HANGING), over their own last receipt. */
  readonly healthyPerSecond: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly max: number
  /** The slow endpoints' deliveries (fan-out 25's one slow endpoint), apart from the others. */
  readonly slowDeliveries: number
  readonly slowP99: number
  readonly duplicates: number
  readonly cpu: { readonly dispatcher: number; readonly receiver: number; readonly broker: number; readonly bench: number }
}

const main = async () => {
  const ENDPOINTS = num("BENCH_ENDPOINTS", 50)
  const BURST = num("BENCH_BURST", 20_000)
  const ROUNDS = num("BENCH_ROUNDS", 3)
  const RATE = num("BENCH_RATE", 1_000)
  const RATE_SECONDS = num("BENCH_RATE_SECONDS", 10)
  const HANGING = Math.max(1, Math.round(ENDPOINTS / 10))
  const TIMEOUT_SECONDS = 2
  const CONCURRENCY = num("DISPATCHER_CONCURRENCY", 256)
  const PER_ENDPOINT = num("DISPATCHER_PER_ENDPOINT_CONCURRENCY", 8)
  const FAIR_ENDPOINTS = num("BENCH_FAIR_ENDPOINTS", 500)
  const FAIR_RATE = num("BENCH_FAIR_RATE", 50)
  const FAIR_SECONDS = 10
  const SLOW_TENANT = "bench_tenant_slow"
  // Shapes (BENCH_SHAPES, default all): "classic" (each event to one of ENDPOINTS endpoints, one per
  // tenant, with the hang and fairness runs), "wide" (the same to WIDE_ENDPOINTS endpoints) and
  // "fan25" (one tenant's FAN_OUT endpoints all subscribed to the one event type, so each event is
  // FAN_OUT deliveries; the first endpoint answers after SLOW_MS and is measured apart).
  const SHAPES = (process.env.BENCH_SHAPES ?? "classic,wide,fan25").split(",").map((x) => x.trim()).filter(Boolean)
  const WIDE_ENDPOINTS = num("BENCH_WIDE_ENDPOINTS", 500)
  const FAN_OUT = num("BENCH_FAN_OUT", 25)
  const SLOW_MS = num("BENCH_SLOW_MS", 200)
  const MEMORY_AFTER_S = num("BENCH_MEMORY_AFTER_S", 60)
  // BENCH_PLATFORM=0: the dispatcher alone (no projection and registration beside it, no memory rows for them).
  const PLATFORM = process.env.BENCH_PLATFORM !== "0"
  const onlyRuns = process.env.BENCH_ONLY?.split(",")
  const wantRun = (name: string) => onlyRuns === undefined || onlyRuns.includes(name)
  // A rough duration, printed up front: each shape's rounds, its rate run and its memory wait, and classic's extras.
  const estimateS = 40 + SHAPES.length * (ROUNDS * 2 * (BURST / 2_000 + 3) + RATE_SECONDS + 8 + MEMORY_AFTER_S + 10) +
    (SHAPES.includes("classic") ? (wantRun("hang") ? 2 * RATE_SECONDS + BURST / 2_000 + 30 : 0) + (wantRun("fair") ? 2 * FAIR_SECONDS + 40 : 0) : 0)
  const NODE = existsSync(join(ROOT, "node_modules/.bin/node")) ? join(ROOT, "node_modules/.bin/node") : process.execPath

  const children: Array<ChildProcess> = []
  const cleanups: Array<() => Promise<void> | void> = []
  let cleaning: Promise<void> | undefined
  const cleanup = () => {
    cleaning ??= (async () => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
      for (const f of cleanups.reverse()) await Promise.resolve(f()).catch(() => undefined)
    })()
    return cleaning
  }
  // The whole bench is bounded: whatever happens, it stops itself and cleans up.
  const watchdogS = Math.max(480, Math.round(estimateS * 2.5))
  console.log(`bench:dispatch: shapes ${SHAPES.join(", ")}; about ${Math.ceil(estimateS / 60)} min on an idle host (gives up after ${Math.ceil(watchdogS / 60)} min)`)
  const watchdog = setTimeout(() => {
    console.error(`bench: exceeded ${Math.ceil(watchdogS / 60)} minutes, aborting`)
    void cleanup().finally(() => process.exit(2))
  }, watchdogS * 1_000)
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => void cleanup().finally(() => process.exit(130)))
  }
  process.on("unhandledRejection", (error) => {
    console.error("bench: failed:", error)
    void cleanup().finally(() => process.exit(1))
  })

  try {
    const { startKafka, brokers } = await import("../../infra/kafka.ts")
    await startKafka()
    const BROKERS = brokers()

    // TLS: a self-signed certificate for 127.0.0.1, trusted by the dispatcher via ORBIT_EXTRA_CA_FILE.
    const dir = mkdtempSync(join(tmpdir(), "bench-dispatch-"))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=bench.test",
      "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")
    ], { stdio: "ignore" })
    const tls = { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") }

    // Receiver.
    const receiver = fork(import.meta.filename, ["receiver"], {
      env: { ...process.env, BENCH_TLS: JSON.stringify(tls) },
      execPath: NODE,
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    children.push(receiver)
    const port = await new Promise<number>((resolve, reject) => {
      receiver.once("message", (m: { type: string; port: number }) => resolve(m.port))
      receiver.once("exit", (code) => reject(new Error(`receiver exited (${code})`)))
    })
    let statsId = 0
    const stats = (run: string, latencies = false) =>
      new Promise<{ stats: RunStats | undefined; hangingRequests: number }>((resolve) => {
        const id = ++statsId
        const onMessage = (m: { type: string; id: number; stats: RunStats | undefined; hangingRequests: number }) => {
          if (m.type !== "stats" || m.id !== id) return
          receiver.off("message", onMessage)
          resolve(m)
        }
        receiver.on("message", onMessage)
        receiver.send({ type: "stats", run, id, latencies } satisfies ToReceiver)
      })
    const setHanging = (endpoints: ReadonlyArray<number>) =>
      new Promise<void>((resolve) => {
        receiver.once("message", () => resolve())
        receiver.send({ type: "hang", endpoints } satisfies ToReceiver)
      })

    // Topics (own prefix) and endpoints, registered before the dispatcher starts.
    const prefix = `bench_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}_`
    const topics = topicsFor(prefix)
    // Other test runs may restart the shared broker: retry rather than fail the run.
    const kafka = new Kafka({
      clientId: "bench-dispatch",
      brokers: BROKERS,
      logLevel: logLevel.NOTHING,
      retry: { retries: 30, initialRetryTime: 200, maxRetryTime: 2_000 }
    })
    const admin = kafka.admin()
    await admin.connect()
    cleanups.push(async () => {
      await admin.deleteTopics({ topics: Object.values(topics).map((t) => t.name) }).catch(() => undefined)
      await admin.disconnect()
    })
    await admin.createTopics({
      waitForLeaders: true,
      topics: Object.values(topics).map((t) => ({
        topic: t.name,
        numPartitions: t.partitions,
        replicationFactor: 1,
        configEntries: [{ name: "retention.ms", value: String(t.retentionMs) }]
      }))
    })
    const producer = kafka.producer({ allowAutoTopicCreation: false })
    await producer.connect()
    cleanups.push(() => producer.disconnect())

    const keyRing = generateKeyRing("bench")
    const ring = parseKeyRing(keyRing)
    const tenants = Array.from({ length: ENDPOINTS }, (_, i) => `bench_tenant_${i}`)
    // Receiver endpoint numbers (URL /e/<n>) of the other shapes: apart from classic's 0..ENDPOINTS-1.
    const WIDE_BASE = 100_000
    const FAN_BASE = 200_000
    const registered: Array<EndpointEvent> = SHAPES.includes("classic") ? tenants.map((tenant, i) => endpointRegistered(tenant, i, newEndpointId())) : []
    const FAN_TENANT = "bench_tenant_fan"
    const wideTenants = Array.from({ length: WIDE_ENDPOINTS }, (_, i) => `bench_tenant_wide_${i}`)
    if (SHAPES.includes("wide")) wideTenants.forEach((tenant, i) => registered.push(endpointRegistered(tenant, WIDE_BASE + i, newEndpointId())))
    if (SHAPES.includes("fan25")) {
      for (let i = 0; i < FAN_OUT; i++) registered.push(endpointRegistered(FAN_TENANT, FAN_BASE + i, newEndpointId(), ["message.delivered"]))
    }
    // The wide and fan25 endpoints never hang: a longer timeout keeps a loaded host's late answers from counting as hangs.
    function endpointRegistered(
      tenant: string,
      i: number,
      endpoint_id: string,
      events: Extract<EndpointEvent, { _tag: "EndpointRegistered" }>["events"] = ["*"],
      timeout_seconds = i < WIDE_BASE ? TIMEOUT_SECONDS : 10
    ): EndpointEvent {
      return {
        _tag: "EndpointRegistered",
        schema_version: 1,
        event_id: randomUUID(),
        occurred_at: new Date().toISOString(),
        endpoint_id,
        tenant_id: tenant,
        mode: "live",
        url: `https://127.0.0.1:${port}/e/${i}`,
        events,
        description: null,
        active: true,
        timeout_seconds,
        retry_policy: { strategy: "fixed", max_attempts: 1, delay_seconds: 1 },
        secret_box: encrypt(ring, generateWebhookSecret(), { tenant_id: tenant, mode: "live", endpoint_id, slot: "current" })
      }
    }
    // Tenant A of the fairness runs: many endpoints answering after 2 s (well within their timeout).
    for (let i = 0; i < FAIR_ENDPOINTS; i++) {
      const endpoint_id = newEndpointId()
      registered.push({
        ...registered[0]!,
        event_id: randomUUID(),
        endpoint_id,
        tenant_id: SLOW_TENANT,
        url: `https://127.0.0.1:${port}/s/${i}`,
        timeout_seconds: 10,
        secret_box: encrypt(ring, generateWebhookSecret(), { tenant_id: SLOW_TENANT, mode: "live", endpoint_id, slot: "current" })
      } as EndpointEvent)
    }
    for (let i = 0; i < registered.length; i += 500) {
      await producer.send({
        topic: topics.endpointEvents.name,
        acks: -1,
        messages: registered.slice(i, i + 500).map((e) => ({ key: e.endpoint_id, value: encodeEndpointEvent(e) }))
      })
    }
    if (SHAPES.includes("fan25")) {
      await new Promise<void>((resolve) => {
        receiver.once("message", () => resolve())
        receiver.send({ type: "slow", endpoints: [FAN_BASE], ms: SLOW_MS } satisfies ToReceiver)
      })
    }

    // The projection and the registration beside the dispatcher, as `npm start` runs them (their own
    // Postgres schema, dropped at the end): the memory rows measure all three services.
    const schema = prefix.slice(0, -1)
    const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
    const platform: Partial<Record<"projection" | "registration", ChildProcess>> = {}
    if (PLATFORM) {
      const apiPort = await freePort()
      cleanups.push(async () => {
        const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => undefined })
        await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined)
        await sql.end()
      })
      for (const name of ["projection", "registration"] as const) {
        const child = spawn(NODE, serviceArgs(name), {
          env: {
            ...serviceEnv(process.env),
            DATABASE_URL,
            ORBIT_DB_SCHEMA: schema,
            KAFKA_BROKERS: BROKERS.join(","),
            KAFKAJS_NO_PARTITIONER_WARNING: "1",
            ORBIT_TOPIC_PREFIX: prefix,
            ORBIT_SECRET_KEYS: keyRing,
            PORT: String(apiPort),
            LOG_LEVEL: "Warn"
          },
          stdio: ["ignore", "ignore", "inherit"]
        })
        children.push(child)
        platform[name] = child
      }
      for (const startedAt = Date.now(); ;) {
        const ok = await fetch(`http://127.0.0.1:${apiPort}/readyz`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.ok, () => false)
        if (ok) break
        if (Date.now() - startedAt > 120_000) throw new Error("the registration service did not become ready")
        await sleep(500)
      }
    }

    // Dispatcher(s): BENCH_DISPATCHERS processes in one consumer group (default 1).
    const profileDir = process.env.BENCH_PROFILE === "1" ? mkdtempSync(join(tmpdir(), "bench-dispatch-prof-")) : undefined
    const spawnDispatcher = (extraEnv: Record<string, string> = {}) => {
      // The dispatcher's own node flags (services/dispatcher/package.json "orbit.nodeArgs"), as `npm start` has them.
      const child = spawn(NODE, serviceArgs("dispatcher", [
        ...(profileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profileDir}`]),
        ...(process.env.BENCH_DISPATCHER_NODE_ARGS?.split(" ").filter(Boolean) ?? [])
      ]), {
        env: {
          ...serviceEnv(process.env),
          KAFKA_BROKERS: BROKERS.join(","),
          KAFKAJS_NO_PARTITIONER_WARNING: "1",
          ORBIT_TOPIC_PREFIX: prefix,
          ORBIT_SECRET_KEYS: keyRing,
          ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8",
          ORBIT_EXTRA_CA_FILE: join(dir, "cert.pem"),
          DISPATCHER_SHUTDOWN_GRACE_MS: "2000",
          // Metrics on, each process on a free port (several dispatchers may run at once).
          ORBIT_METRICS_PORT: "0",
          LOG_LEVEL: "Info",
          ...extraEnv
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      children.push(child)
      let log = ""
      const keep = (d: Buffer) => {
        log = (log + d.toString()).slice(-20_000)
      }
      child.stdout!.on("data", keep)
      child.stderr!.on("data", keep)
      if (process.env.BENCH_TRACE === "1") {
        const echo = (d: Buffer) => {
          for (const line of d.toString().split("\n")) if (line.startsWith("[")) console.error(line)
        }
        child.stdout!.on("data", echo)
        child.stderr!.on("data", echo)
      }
      return { child, log: () => log }
    }
    let dispatchers = Array.from({ length: Math.max(1, num("BENCH_DISPATCHERS", 1)) }, () => spawnDispatcher())
    const dispatcherLog = () => dispatchers.map((d) => d.log()).join("\n")
    const startedAt = Date.now()
    const joined = (log: string) => (log.match(/consumer group joined/g) ?? []).length
    // Started, and (with several processes) every one a member of the fan-out, delivery and retry groups.
    const dispatchersReady = async () => {
      const since = Date.now()
      while (!dispatchers.every((d) => d.log().includes("delivery worker started") && d.log().includes("fan-out started") && joined(d.log()) >= 3)) {
        const dead = dispatchers.find((d) => d.child.exitCode !== null)
        if (dead !== undefined) throw new Error(`dispatcher exited:\n${dead.log()}`)
        if (Date.now() - since > 60_000) throw new Error(`dispatcher did not start:\n${dispatcherLog()}`)
        await sleep(50)
      }
    }
    await dispatchersReady()
    const stopDispatcher = async () => {
      await Promise.all(dispatchers.map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise((r) => child.once("exit", r))
        child.kill("SIGTERM")
        await Promise.race([exited, sleep(10_000)])
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      }))
    }

    // Event bodies: the shape of a real message.delivered event, ~300 bytes as delivered.
    const eventFor = (run: string, seq: number, tenant: string, ts: number) => ({
      id: newEventId(),
      type: "message.delivered",
      tenant_id: tenant,
      mode: "live",
      created_at: new Date(ts).toISOString(),
      data: {
        message_id: `msg_${seq.toString(36).padStart(8, "0")}`,
        channel: "sms",
        to: "+15555550123",
        status: "delivered",
        run,
        ts
      }
    })
    const toMessage = (e: ReturnType<typeof eventFor>): Message => ({ key: e.tenant_id, value: JSON.stringify(e) })
    const send = (messages: Array<Message>) =>
      producer.send({ topic: topics.sourceEvents.name, acks: -1, compression: CompressionTypes.None, messages })

    /**
     * A delivery shape: which tenant each event goes to, how many deliveries it makes, and which
     * receiver endpoints (URL /e/<n>) they reach; the slow ones are measured apart.
     */
    interface Shape {
      readonly key: string
      /** Prefix of the shape's run names ("" for classic). */
      readonly prefix: string
      readonly label: string
      readonly fanOut: number
      readonly tenantOf: (seq: number) => string
      /** Endpoints that answer at once (the ceiling posts to these). */
      readonly fast: ReadonlyArray<number>
      readonly slow: ReadonlyArray<number>
      /** Endpoints whose deliveries count toward the burst's rate next to the ceiling. */
      readonly measured: (endpoint: number) => boolean
    }
    const range = (base: number, n: number) => Array.from({ length: n }, (_, i) => base + i)
    const shapes: Record<string, Shape> = {
      classic: {
        key: "classic", prefix: "", label: `fan-out 1 to ${ENDPOINTS} endpoints (1 per tenant)`, fanOut: 1,
        tenantOf: (seq) => tenants[seq % ENDPOINTS]!, fast: range(0, ENDPOINTS), slow: [],
        measured: (e) => e >= HANGING
      },
      wide: {
        key: "wide", prefix: "wide:", label: `fan-out 1 to ${WIDE_ENDPOINTS} endpoints (1 per tenant)`, fanOut: 1,
        tenantOf: (seq) => wideTenants[seq % WIDE_ENDPOINTS]!, fast: range(WIDE_BASE, WIDE_ENDPOINTS), slow: [],
        measured: () => true
      },
      fan25: {
        key: "fan25", prefix: "fan25:", label: `fan-out ${FAN_OUT}: 1 tenant, ${FAN_OUT} endpoints, 1 answers in ${SLOW_MS} ms`, fanOut: FAN_OUT,
        tenantOf: () => FAN_TENANT, fast: range(FAN_BASE + 1, FAN_OUT - 1), slow: [FAN_BASE],
        measured: (e) => e !== FAN_BASE
      }
    }
    const classic = shapes.classic!

    /** Resident memory (MB) of each service (the largest dispatcher process) and of the broker. */
    interface Memory { readonly dispatcher: number; readonly projection: number; readonly registration: number; readonly broker: number }
    const memory = (): Memory => ({
      dispatcher: Math.max(...dispatchers.map((d) => rssMb(d.child.pid))),
      projection: rssMb(platform.projection?.pid),
      registration: rssMb(platform.registration?.pid),
      broker: rssMb(brokerPid())
    })
    const maxMemory = (a: Memory, b: Memory): Memory => ({
      dispatcher: Math.max(a.dispatcher, b.dispatcher),
      projection: Math.max(a.projection, b.projection),
      registration: Math.max(a.registration, b.registration),
      broker: Math.max(a.broker, b.broker)
    })
    /** Samples resident memory every MEMORY_SAMPLE_MS until the returned function is called; it returns the maximum. */
    const trackPeak = () => {
      let peak = memory()
      const timer = setInterval(() => {
        peak = maxMemory(peak, memory())
      }, MEMORY_SAMPLE_MS)
      return () => {
        clearInterval(timer)
        return maxMemory(peak, memory())
      }
    }

    const cpu = () => ({
      dispatcher: dispatchers.reduce((n, d) => n + cpuSeconds(d.child.pid), 0),
      receiver: cpuSeconds(receiver.pid),
      broker: cpuSeconds(brokerPid()),
      bench: (process.cpuUsage().user + process.cpuUsage().system) / 1e6
    })
    const cpuDelta = (a: ReturnType<typeof cpu>, b: ReturnType<typeof cpu>, seconds: number) => ({
      dispatcher: (b.dispatcher - a.dispatcher) / seconds,
      receiver: (b.receiver - a.receiver) / seconds,
      broker: (b.broker - a.broker) / seconds,
      bench: (b.bench - a.bench) / seconds
    })

    /** Where the records are: topic end offsets against the dispatcher's committed group offsets. */
    const diagnose = async () => {
      for (const [group, list] of [
        [`${prefix}orbit-dispatcher-fanout`, [topics.sourceEvents.name]],
        [`${prefix}orbit-dispatcher-delivery`, [topics.deliveries.name, topics.retry1s.name]]
      ] as const) {
        const committed = await admin.fetchOffsets({ groupId: group, topics: [...list] })
        for (const t of committed) {
          const ends = await admin.fetchTopicOffsets(t.topic)
          console.error(`  ${t.topic.slice(prefix.length)}: ` + t.partitions.map((p) =>
            `${p.partition}:${p.offset}/${ends.find((e) => e.partition === p.partition)?.high}`).join(" "))
        }
      }
      await tallyAttempts()
    }

    /** Tallies the attempt events so far by outcome and error class (diagnostics only). */
    const tallyAttempts = async () => {
      const consumer = kafka.consumer({ groupId: `${prefix}bench-tally-${randomUUID()}`, maxWaitTimeInMs: 100 })
      await consumer.connect()
      await consumer.subscribe({ topics: [topics.attempts.name], fromBeginning: true })
      const ends = await admin.fetchTopicOffsets(topics.attempts.name)
      const total = ends.reduce((n, e) => n + Number(e.high), 0)
      const tally = new Map<string, number>()
      let seen = 0
      await consumer.run({
        eachMessage: async ({ message }) => {
          seen++
          const a = JSON.parse(message.value!.toString()) as { outcome: string; error_class: string | null; error_message: string | null }
          const k = a.outcome === "succeeded" ? "succeeded" : `${a.error_class}: ${a.error_message?.slice(0, 80)}`
          tally.set(k, (tally.get(k) ?? 0) + 1)
        }
      })
      const until = Date.now() + 20_000
      while (seen < total && Date.now() < until) await sleep(100)
      await consumer.disconnect()
      console.error(`  attempt events: ${seen}/${total}`)
      for (const [k, n] of [...tally].sort((a, b) => b[1] - a[1]).slice(0, 10)) console.error(`    ${n}  ${k}`)
    }

    /**
     * BENCH_STAGES=1: splits the publish-to-receipt latency of `run` at the fan-out: the delivery
     * task's Kafka timestamp (set when the dispatcher produced it) minus the event's publish time.
     */
    const stages = async (run: string) => {
      const consumer = kafka.consumer({ groupId: `${prefix}bench-stages-${randomUUID()}`, maxWaitTimeInMs: 100 })
      await consumer.connect()
      await consumer.subscribe({ topics: [topics.deliveries.name], fromBeginning: true })
      const ends = await admin.fetchTopicOffsets(topics.deliveries.name)
      const total = ends.reduce((n, e) => n + Number(e.high), 0)
      const lat: Array<number> = []
      let seen = 0
      await consumer.run({
        eachMessage: async ({ message }) => {
          seen++
          const task = JSON.parse(message.value!.toString()) as { body: string }
          const body = JSON.parse(task.body) as { data: { run: string; ts: number } }
          if (body.data.run === run) lat.push(Number(message.timestamp) - body.data.ts)
        }
      })
      const until = Date.now() + 30_000
      while (seen < total && Date.now() < until) await sleep(100)
      await consumer.disconnect()
      const sorted = Float64Array.from(lat).sort()
      console.log(`  ${run}: publish -> task produced by fan-out: p50 ${percentile(sorted, 50).toFixed(1)} p95 ${percentile(sorted, 95).toFixed(1)} p99 ${percentile(sorted, 99).toFixed(1)} ms (${lat.length} tasks)`)
    }

    /** Waits until `expected` distinct deliveries of `run` arrived; returns the stats with latencies. */
    const await_ = async (run: string, expected: number, timeoutMs: number) => {
      // Gives up at the deadline, or after 15 s without progress.
      const deadline = Date.now() + timeoutMs
      let last = -1
      let progressAt = Date.now()
      for (;;) {
        const { stats: s } = await stats(run)
        const got = s?.unique ?? 0
        if (got >= expected || Date.now() > deadline || Date.now() - progressAt > 15_000) break
        if (got > last) {
          last = got
          progressAt = Date.now()
        }
        await sleep(50)
      }
      const { stats: s } = await stats(run, true)
      receiver.send({ type: "drop", run } satisfies ToReceiver)
      if ((s?.unique ?? 0) < expected) {
        console.error(`bench: ${run}: only ${s?.unique ?? 0} of ${expected} deliveries within ${timeoutMs / 1000} s`)
        console.error(dispatcherLog().split("\n").slice(-8).join("\n"))
        await diagnose()
      }
      return s
    }

    const summarise = (
      name: string,
      s: RunStats | undefined,
      startedAt: number,
      cpus: ReturnType<typeof cpuDelta>,
      measured: (endpoint: number) => boolean = classic.measured
    ): Result => {
      const lat = Float64Array.from(s?.latencies ?? []).sort()
      const slowLat = Float64Array.from(s?.slowLatencies ?? []).sort()
      const seconds = ((s?.lastAt ?? startedAt) - startedAt) / 1000
      const healthyEndpoints = Object.entries(s?.byEndpoint ?? {}).filter(([e]) => measured(Number(e))).map(([, v]) => v)
      const healthyLast = Math.max(startedAt, ...healthyEndpoints.map(([, last]) => last))
      return {
        name,
        deliveries: s?.unique ?? 0,
        seconds,
        perSecond: (s?.unique ?? 0) / seconds,
        healthyPerSecond: healthyEndpoints.reduce((n, [u]) => n + u, 0) / ((healthyLast - startedAt) / 1000),
        p50: percentile(lat, 50),
        p95: percentile(lat, 95),
        p99: percentile(lat, 99),
        max: lat.length === 0 ? Number.NaN : lat[lat.length - 1]!,
        slowDeliveries: slowLat.length,
        slowP99: percentile(slowLat, 99),
        duplicates: s?.duplicates ?? 0,
        cpu: cpus
      }
    }

    // Classic only: the first `hangingCount` endpoints never answer.
    const healthy = (hangingCount: number) => (seq: number) => seq % ENDPOINTS >= hangingCount
    /** Deliveries expected at the receiver from `events` events of `shape` (classic's hanging endpoints excluded). */
    const expectedOf = (shape: Shape, events: number, hangingCount: number) =>
      shape === classic ? Array.from({ length: events }, (_, i) => i).filter(healthy(hangingCount)).length : events * shape.fanOut

    /** Publishes events making `deliveries` deliveries as fast as the producer takes them (batches of 500). */
    const burst = async (run: string, deliveries: number, hangingCount = 0, shape = classic): Promise<Result> => {
      const count = Math.ceil(deliveries / shape.fanOut)
      const c0 = cpu()
      const t0 = nowMs()
      const batches: Array<Promise<unknown>> = []
      for (let seq = 0; seq < count;) {
        const ts = nowMs()
        const messages: Array<Message> = []
        for (const end = Math.min(count, seq + 500); seq < end; seq++) messages.push(toMessage(eventFor(run, seq, shape.tenantOf(seq), ts)))
        batches.push(send(messages))
        if (batches.length >= 4) await batches.shift()
      }
      await Promise.all(batches)
      const s = await await_(run, expectedOf(shape, count, hangingCount), 120_000)
      const seconds = ((s?.lastAt ?? nowMs()) - t0) / 1000
      return summarise(run, s, t0, cpuDelta(c0, cpu(), seconds), shape.measured)
    }

    /** Offers `rate` deliveries/s (events/s × the shape's fan-out) for `seconds`, in small batches every ~5 ms. */
    const steady = async (run: string, rate: number, seconds: number, hangingCount = 0, shape = classic): Promise<Result> => {
      const eventRate = rate / shape.fanOut
      const c0 = cpu()
      const t0 = nowMs()
      const total = Math.round(eventRate * seconds)
      const sends: Array<Promise<unknown>> = []
      let seq = 0
      while (seq < total) {
        const ts = nowMs()
        const due = Math.min(total, Math.floor(((ts - t0) / 1000) * eventRate))
        if (due > seq) {
          const messages: Array<Message> = []
          for (; seq < due; seq++) messages.push(toMessage(eventFor(run, seq, shape.tenantOf(seq), ts)))
          sends.push(send(messages))
        }
        await sleep(4)
      }
      await Promise.all(sends)
      const s = await await_(run, expectedOf(shape, total, hangingCount), 60_000)
      const elapsed = ((s?.lastAt ?? nowMs()) - t0) / 1000
      return summarise(run, s, t0, cpuDelta(c0, cpu(), elapsed), shape.measured)
    }

    /**
     * Tenant B (the last endpoint's tenant: it never hangs) gets `FAIR_RATE` events/s for `FAIR_SECONDS` s to its
     * one endpoint; with `withA`, tenant A's event fans out to its `FAIR_ENDPOINTS` slow endpoints
     * once a second, from 2 s before B's first event until B's last.
     */
    const fair = async (run: string, withA: boolean): Promise<Result> => {
      const sends: Array<Promise<unknown>> = []
      let aSeq = 0
      const publishA = () => {
        const e = eventFor(`${run}-a`, aSeq++, SLOW_TENANT, nowMs())
        sends.push(send([toMessage(e)]))
      }
      let aTimer: NodeJS.Timeout | undefined
      if (withA) {
        publishA()
        aTimer = setInterval(publishA, 1_000)
        await sleep(2_000)
      }
      const c0 = cpu()
      const t0 = nowMs()
      const total = FAIR_RATE * FAIR_SECONDS
      let seq = 0
      while (seq < total) {
        const ts = nowMs()
        const due = Math.min(total, Math.floor(((ts - t0) / 1000) * FAIR_RATE))
        if (due > seq) {
          const messages: Array<Message> = []
          for (; seq < due; seq++) messages.push(toMessage(eventFor(run, seq, tenants[ENDPOINTS - 1]!, ts)))
          sends.push(send(messages))
        }
        await sleep(4)
      }
      clearInterval(aTimer)
      await Promise.all(sends)
      const s = await await_(run, total, 60_000)
      const elapsed = ((s?.lastAt ?? nowMs()) - t0) / 1000
      return summarise(run, s, t0, cpuDelta(c0, cpu(), elapsed))
    }

    /**
     * The ceiling: a bare undici loop, same receiver, same bodies and headers (byte for byte the
     * same shape), same concurrency. Everything but the send time is prepared before the clock
     * starts (bodies, signed headers, URLs), and the agent's connections are opened by an untimed
     * warm-up, as the dispatcher's are, so the loop is as cheap as an HTTP client can be.
     */
    const ceiling = async (run: string, count: number, concurrency: number, shape = classic): Promise<Result> => {
      const agent = new Agent({ connect: { ca: tls.cert }, keepAliveTimeout: 60_000 })
      const secret = generateWebhookSecret()
      const prepare = (name: string, n: number) =>
        Array.from({ length: n }, (_, seq) => {
          const endpoint = shape.fast[seq % shape.fast.length]!
          const e = eventFor(name, seq, shape.tenantOf(seq), 0)
          // The body the dispatcher sends (API.md §7), split where the send time goes.
          const [head, tail] = JSON.stringify({ id: e.id, type: e.type, created_at: e.created_at, data: { ...e.data, ts: -1 } })
            .split("-1") as [string, string]
          const headers = {
            "content-type": "application/json; charset=utf-8",
            "user-agent": "Devotel-Webhooks/1.0",
            "x-devotel-event-id": e.id,
            "x-devotel-event-type": e.type,
            "x-devotel-delivery-id": randomUUID(),
            ...signDelivery({ secrets: [secret], eventId: e.id, timestamp: Math.floor(Date.now() / 1000), body: head + tail })
          }
          return { url: `https://127.0.0.1:${port}/e/${endpoint}`, head, tail, headers }
        })
      let failures = 0
      const loop = async (requests: ReturnType<typeof prepare>) => {
        let next = 0
        const worker = async () => {
          for (let i = next++; i < requests.length; i = next++) {
            const r = requests[i]!
            const res = await request(r.url, { method: "POST", body: r.head + nowMs() + r.tail, headers: r.headers, dispatcher: agent })
            await res.body.dump()
            if (res.statusCode !== 200) failures++
          }
        }
        await Promise.all(Array.from({ length: concurrency }, worker))
      }
      await loop(prepare(`${run}-warmup`, 2 * concurrency))
      const requests = prepare(run, count)
      const c0 = cpu()
      const t0 = nowMs()
      await loop(requests)
      const s = await await_(run, count, 30_000)
      await agent.close()
      if (failures > 0) console.error(`bench: ceiling: ${failures} non-200 answers`)
      const seconds = ((s?.lastAt ?? nowMs()) - t0) / 1000
      return summarise(run, s, t0, cpuDelta(c0, cpu(), seconds), shape.measured)
    }

    /** Concurrency of the ceiling: what the dispatcher may run at once to the shape's fast endpoints. */
    const concurrencyOf = (shape: Shape) => dispatchers.length * Math.min(CONCURRENCY, PER_ENDPOINT * shape.fast.length)
    const effectiveConcurrency = concurrencyOf(classic)
    const load = loadavg().map((l) => l.toFixed(2)).join(" ")
    console.log(`bench:dispatch  ${dispatchers.length} dispatcher process(es)${PLATFORM ? " beside the projection and the registration" : ""}, ` +
      `concurrency ${CONCURRENCY} / ${PER_ENDPOINT} per endpoint, load average at start ${load}`)
    console.log(`  dispatcher ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s (prefix ${prefix})`)

    const steal = measureCpuSteal()
    // Classic's warm-up (the other shapes warm their own endpoints up in perShape).
    if (SHAPES.includes("classic")) {
      await burst("warmup", 2_000)
      await burst("warmup2", 5_000)
    }
    const results: Array<Result> = []
    const settle = async (r: Result) => {
      await sleep(2_000) // let the dispatcher, broker and receiver settle before the next run
      console.log(`  done: ${r.name} ${r.deliveries} deliveries, ${r.perSecond.toFixed(0)}/s, p99 ${r.p99.toFixed(1)} ms`)
    }
    const log = (r: Result) => {
      results.push(r)
      return settle(r)
    }
    // BENCH_ONLY=burst,ceiling,rate,hang,fair runs a subset (while profiling); the default is all of them.
    const want = wantRun
    // Burst and ceiling alternate ROUNDS times and the median of each is reported: one 2-4 s run
    // of either moved by up to a third between consecutive runs on this VM.
    const median = (rs: Array<Result>): Result => ({ ...[...rs].sort((x, y) => x.perSecond - y.perSecond)[rs.length >> 1]!, name: rs[0]!.name.split("#")[0]! })
    const rounds: Record<string, Array<Result>> = {}
    const memoryRows: Array<{ shape: Shape; before: Memory; peak: Memory; after: Memory }> = []
    const perShape = async (shape: Shape) => {
      const p = shape.prefix
      // The shape's endpoints get their connections opened (and the index its first lookups) untimed.
      if (shape !== classic) await burst(`${p}warmup`, 2_000, 0, shape)
      const before = memory()
      let peak: Memory | undefined
      for (let i = 1; i <= ROUNDS; i++) {
        for (const name of ["burst", "ceiling"] as const) {
          if (!want(name)) continue
          let r: Result
          if (name === "burst") {
            const stop = trackPeak()
            r = await burst(`${p}burst#${i}`, BURST, 0, shape)
            const m = stop()
            peak = peak === undefined ? m : maxMemory(peak, m)
          } else r = await ceiling(`${p}ceiling#${i}`, BURST, concurrencyOf(shape), shape)
          ;(rounds[`${p}${name}`] ??= []).push(r)
          await settle(r)
        }
      }
      for (const name of ["burst", "ceiling"]) if (rounds[`${p}${name}`] !== undefined) results.push(median(rounds[`${p}${name}`]!))
      if (peak !== undefined) {
        console.log(`  ${shape.key}: resident memory ${MEMORY_AFTER_S} s after the bursts...`)
        await sleep(MEMORY_AFTER_S * 1_000)
        memoryRows.push({ shape, before, peak, after: memory() })
      }
      if (want("rate")) await log(await steady(`${p}rate`, RATE, RATE_SECONDS, 0, shape))
    }
    for (const key of SHAPES) {
      const shape = shapes[key]
      if (shape === undefined) throw new Error(`BENCH_SHAPES: unknown shape ${key} (classic, wide, fan25)`)
      if (shape !== classic) await perShape(shape)
      else {
        await perShape(classic)
        if (want("rate") && process.env.BENCH_STAGES === "1") await stages("rate")
      }
    }
    let hangingRequests = 0
    let hangingSeconds = 0
    if (SHAPES.includes("classic") && want("hang")) {
      await setHanging(Array.from({ length: HANGING }, (_, i) => i))
      const hangingStart = nowMs()
      await log(await steady("rate+hang", RATE, RATE_SECONDS, HANGING))
      await log(await burst("burst+hang", BURST, HANGING))
      hangingRequests = (await stats("none")).hangingRequests
      hangingSeconds = (nowMs() - hangingStart) / 1000
      await setHanging([])
    }
    // Last: tenant A's backlog of slow deliveries outlives its run.
    if (SHAPES.includes("classic") && want("fair")) {
      // The hanging endpoints' parked deliveries arrive once they answer again: B's baseline waits
      // until the receiver has seen none of them for 3 s (at most a minute).
      for (let last = -1, i = 0; i < 20; i++) {
        const n = ((await stats("rate+hang")).stats?.count ?? 0) + ((await stats("burst+hang")).stats?.count ?? 0)
        if (n === last) break
        last = n
        await sleep(3_000)
      }
      await log(await fair("fair", false))
      await log(await fair("fair+A", true))
    }

    await stopDispatcher()

    // Tracing on: the same dispatcher(s) restarted with every span exported over OTLP/HTTP to a
    // receiver in this process (it only counts what arrives), then the burst rounds again.
    const traced: Array<Result> = []
    const exported = { requests: 0, bytes: 0 }
    if (SHAPES.includes("classic") && want("traced")) {
      const otlp = createHttpServer((req, res) => {
        req.on("data", (c: Buffer) => {
          exported.bytes += c.length
        })
        req.on("end", () => {
          exported.requests++
          res.writeHead(200, { "content-type": "application/x-protobuf" }).end()
        })
      })
      await new Promise<void>((resolve) => otlp.listen(0, "127.0.0.1", resolve))
      cleanups.push(() => new Promise<void>((resolve) => otlp.close(() => resolve())))
      const tracingEnv = {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(otlp.address() as AddressInfo).port}`,
        OTEL_TRACES_SAMPLER: "always_on"
      }
      dispatchers = dispatchers.map(() => spawnDispatcher(tracingEnv))
      await dispatchersReady()
      await burst("warmup-traced", 5_000)
      for (let i = 1; i <= ROUNDS; i++) {
        const r = await burst(`traced#${i}`, BURST)
        traced.push(r)
        await settle(r)
      }
      results.push(median(traced))
      await stopDispatcher()
    }

    const none: Result = {
      name: "-", deliveries: 0, seconds: Number.NaN, perSecond: Number.NaN, healthyPerSecond: Number.NaN, p50: Number.NaN, p95: Number.NaN,
      p99: Number.NaN, max: Number.NaN, slowDeliveries: 0, slowP99: Number.NaN, duplicates: 0,
      cpu: { dispatcher: Number.NaN, receiver: Number.NaN, broker: Number.NaN, bench: Number.NaN }
    }
    const byName = new Map(results.map((r) => [r.name, r]))
    const b = byName.get("burst") ?? none
    const c = byName.get("ceiling") ?? none
    const r = byName.get("rate") ?? none
    const rh = byName.get("rate+hang") ?? none
    const bh = byName.get("burst+hang") ?? none
    const fb = byName.get("fair") ?? none
    const fa = byName.get("fair+A") ?? none
    const t = byName.get("traced") ?? none
    const pad = (s: string, n: number) => s.padStart(n)
    const f0 = (x: number) => Number.isNaN(x) ? "-" : x.toFixed(0)
    const f1 = (x: number) => Number.isNaN(x) ? "-" : x.toFixed(1)
    const pct = (x: number) => Number.isNaN(x) ? "-" : `${(x * 100).toFixed(0)}%`
    console.log("")
    console.log("run           what                                   deliveries   secs   deliv/s     p50     p95     p99     max  dups  cpu: disp  broker  recv  bench")
    const describe: Record<string, string> = {
      burst: `${BURST} events published at once`,
      ceiling: `bare undici loop, concurrency ${effectiveConcurrency}`,
      rate: `${RATE} events/s offered for ${RATE_SECONDS} s`,
      "rate+hang": `same, ${HANGING}/${ENDPOINTS} endpoints hang (healthy)`,
      "burst+hang": `same burst, ${HANGING}/${ENDPOINTS} hang (healthy)`,
      fair: `tenant B: ${FAIR_RATE}/s to 1 endpoint, alone`,
      "fair+A": `same, A: ${FAIR_ENDPOINTS} endpoints answer in 2 s`,
      traced: `same burst, tracing on: 100 % to OTLP`
    }
    for (const shape of [shapes.wide!, shapes.fan25!]) {
      const p = shape.prefix
      describe[`${p}burst`] = `${BURST} deliveries (${Math.ceil(BURST / shape.fanOut)} events) at once`
      describe[`${p}ceiling`] = `bare undici loop, concurrency ${concurrencyOf(shape)}`
      describe[`${p}rate`] = `${RATE} deliveries/s offered for ${RATE_SECONDS} s`
    }
    for (const x of results) {
      console.log(
        `${x.name.padEnd(13)} ${describe[x.name]!.padEnd(38)} ${pad(String(x.deliveries), 10)} ${pad(f1(x.seconds), 6)} ${pad(f0(x.perSecond), 9)}` +
          ` ${pad(f1(x.p50), 7)} ${pad(f1(x.p95), 7)} ${pad(f1(x.p99), 7)} ${pad(f0(x.max), 7)} ${pad(String(x.duplicates), 5)}` +
          `       ${pad(pct(x.cpu.dispatcher), 4)} ${pad(pct(x.cpu.broker), 7)} ${pad(pct(x.cpu.receiver), 5)} ${pad(pct(x.cpu.bench), 6)}`
      )
    }
    console.log("(latency = publish to receipt at the receiver, ms, of the endpoints that answer at once; deliv/s = distinct deliveries /")
    console.log(" (last receipt - first publish); cpu = share of one core used by each process during the run; the machine has 2 cores)")
    for (const [name, rs] of [...Object.entries(rounds), ["traced", traced] as const]) {
      if (rs.length > 1) console.log(`${name}: ${rs.map((r) => r.perSecond.toFixed(0)).join(", ")} deliveries/s in ${rs.length} rounds; the median is shown`)
    }
    for (const name of ["fan25:burst", "fan25:rate"]) {
      const x = byName.get(name)
      if (x !== undefined) {
        console.log(`${name}: the ${SLOW_MS} ms endpoint: ${x.slowDeliveries} deliveries, p99 ${f1(x.slowP99)} ms; the ${FAN_OUT - 1} others: ` +
          `${f0(x.healthyPerSecond)} deliveries/s, p99 ${f1(x.p99)} ms`)
      }
    }
    if (SHAPES.includes("classic") && want("traced")) {
      console.log(`tracing: burst ${f0(t.perSecond)} deliveries/s with every span exported (${exported.requests} OTLP requests, ` +
        `${(exported.bytes / 1e6).toFixed(1)} MB) against ${f0(b.perSecond)}/s with tracing off in this run = ${(t.perSecond / b.perSecond).toFixed(2)}x;`)
      // CPU per delivery moves less than deliveries/s when other processes take the cores.
      const cpuPerDelivery = (x: Result) => (x.cpu.dispatcher * x.seconds * 1000) / x.deliveries
      console.log(`  dispatcher CPU per delivery: ${cpuPerDelivery(t).toFixed(3)} ms traced, ${cpuPerDelivery(b).toFixed(3)} ms not = ` +
        `${(cpuPerDelivery(t) / cpuPerDelivery(b)).toFixed(2)}x`)
    }
    console.log(`CPU steal during the runs: ${(steal() * 100).toFixed(1)}% (time the hypervisor gave other guests; absolute numbers move with it, ratios less)`)
    console.log("")
    const verdict = (ok: boolean, got: string) => got.includes("-") || got.includes("NaN") ? "-" : ok ? "PASS" : "MISS"
    const lines: Array<[string, string, string, boolean]> = []
    if (SHAPES.includes("classic")) {
      lines.push(
        ["end-to-end deliveries/s (burst)", f0(b.perSecond), ">= 5000", b.perSecond >= 5000],
        ["p99 at 1,000 events/s offered", `${f1(r.p99)} ms`, "<= 100 ms", r.p99 <= 100],
        ["ratio to bare undici ceiling", (b.perSecond / c.perSecond).toFixed(2), ">= 0.50", b.perSecond / c.perSecond >= 0.5],
        // The same 45 endpoints with and without the 5 hanging ones beside them.
        ["healthy throughput with 10% hanging", pct(bh.perSecond / b.healthyPerSecond), ">= 90%", bh.perSecond / b.healthyPerSecond >= 0.9],
        ["healthy p99 with 10% hanging (rate)", `${f1(rh.p99)} ms = ${(rh.p99 / r.p99).toFixed(2)}x`, "<= 2x", rh.p99 <= 2 * r.p99],
        // Tenant B's one fast endpoint, alone and beside tenant A's 500 endpoints answering in 2 s.
        ["tenant B p99 beside tenant A (fairness)", `${f1(fa.p99)} ms = ${(fa.p99 / fb.p99).toFixed(2)}x`, "<= 2x", fa.p99 <= 2 * fb.p99]
      )
    }
    if (want("traced") && SHAPES.includes("classic")) {
      // The burst with every span exported over OTLP/HTTP, against the burst with tracing off.
      lines.push(["burst with tracing on (100 % sampled)", `${f0(t.perSecond)} = ${(t.perSecond / b.perSecond).toFixed(2)}x`, ">= 0.70x", t.perSecond >= 0.7 * b.perSecond])
    }
    for (const shape of [shapes.wide!, shapes.fan25!]) {
      if (!SHAPES.includes(shape.key)) continue
      const p = shape.prefix
      const sb = byName.get(`${p}burst`) ?? none
      const sc = byName.get(`${p}ceiling`) ?? none
      const sr = byName.get(`${p}rate`) ?? none
      // fan25: the fast endpoints' deliveries/s (up to their own last receipt) against a ceiling posting to them alone.
      const rate = shape.slow.length > 0 ? sb.healthyPerSecond : sb.perSecond
      const fast = shape.slow.length > 0 ? " (fast endpoints)" : ""
      lines.push(
        [`${p} ratio to bare undici ceiling${fast}`, `${(rate / sc.perSecond).toFixed(2)} (${f0(rate)}/${f0(sc.perSecond)})`, ">= 0.50", rate / sc.perSecond >= 0.5],
        [`${p} p99 at ${RATE} deliveries/s${fast}`, `${f1(sr.p99)} ms`, "<= 100 ms", sr.p99 <= 100]
      )
    }
    console.log("target                                        measured             goal       verdict")
    for (const [what, got, goal, ok] of lines) console.log(`${what.padEnd(45)} ${got.padEnd(20)} ${goal.padEnd(10)} ${verdict(ok, got)}`)
    if (SHAPES.includes("classic") && want("hang")) {
      console.log(`(hanging endpoints received ${hangingRequests} requests in ${hangingSeconds.toFixed(0)} s, each held until the ${TIMEOUT_SECONDS} s timeout;`)
      console.log(` healthy throughput = burst+hang ${f0(bh.perSecond)}/s against the same ${ENDPOINTS - HANGING} endpoints in the burst, ${f0(b.healthyPerSecond)}/s)`)
    }
    if (memoryRows.length > 0) {
      // Resident memory (VmRSS) before the shape's bursts, its maximum sampled during them, and MEMORY_AFTER_S after.
      const limits = { dispatcher: 256, projection: 192, registration: 160 } as const
      console.log("")
      console.log(`resident memory, MB    before   peak  ${pad(`+${MEMORY_AFTER_S}s`, 5)}   goal     verdict   (shape)`)
      for (const { shape, before, peak, after } of memoryRows) {
        for (const service of ["dispatcher", "projection", "registration", "broker"] as const) {
          const limit = service === "broker" ? undefined : limits[service]
          const worst = Math.max(before[service], peak[service], after[service])
          const got = [before[service], peak[service], after[service]].map((x) => pad(f0(x), 6)).join(" ")
          console.log(`${service.padEnd(20)} ${got}   ${(limit === undefined ? "-" : `<= ${limit}`).padEnd(8)} ` +
            `${(limit === undefined || Number.isNaN(worst) ? "-" : worst <= limit ? "PASS" : "MISS").padEnd(9)} ${shape.key}`)
        }
      }
    }
    if (profileDir !== undefined) console.log(`dispatcher CPU profile: ${profileDir}`)
  } finally {
    clearTimeout(watchdog)
    await cleanup()
  }
}

if (process.argv[2] === "receiver") await runReceiver()
else {
  await main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error("bench: failed:", error)
      process.exit(1)
    }
  )
}
