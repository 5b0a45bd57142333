/**
 * `npm run bench:scale` — the platform at installation scale, each number next to its target.
 *
 * One platform (`startPlatform`: its own Postgres schema and topic prefix, projection and
 * registration as child processes), dispatchers spawned here, and a real HTTPS receiver (forked
 * from this file) that counts distinct event ids per run and can go down and come back on its port.
 *
 * Parts (`--only endpoints,rebuild,backlog,dispatchers`; all by default):
 *   endpoints    --endpoints (100,000) registrations in --tenants (1,000) tenants, one tenant holding
 *                a tenth of them, written to the endpoint topic in bulk as the registration writes
 *                them (packages/domain's EndpointRegistered, secrets sealed with @orbit/crypto's
 *                `encrypt` and the registration's context), plus a sample through the API; then a
 *                dispatcher start: time to its "endpoint index ready" line, resident memory with
 *                all of them indexed; GET /api/v1/webhooks at 500 req/s offered over every page of
 *                the big tenant, its last page included.
 *   rebuild      `orbit rebuild endpoints` over those events, reads of the big tenant's first and
 *                last pages at 100 req/s throughout, each compared with the page before the rebuild.
 *   backlog      --backlog (1,000,000) source events, fan-out 1 to 50 endpoints, published while the
 *                receiver is down; it comes back once the fan-out has consumed them all; the drain
 *                rate next to a burst of --burst (20,000) events with the receiver up, dispatcher
 *                resident memory sampled throughout, distinct ids counted at the receiver.
 *   dispatchers  the same burst with one dispatcher process, then with two in one consumer group;
 *                each process's CPU from /proc/<pid>/stat, and the whole host's from /proc/stat
 *                (what the run's own processes did not use went to other work on the host).
 * Parts that need the endpoints write them first (rebuild), or start a dispatcher (backlog,
 * dispatchers). Everything the run created (schema, topics, processes) is removed at the end.
 *
 * Diagnostics: BENCH_DISPATCHER_NODE_ARGS (extra node flags for the dispatchers, e.g. "--trace-gc"),
 * BENCH_LOG_DIR (each dispatcher's output to a file there), BENCH_REBUILD_NODE_OPTIONS (NODE_OPTIONS for
 * `orbit rebuild endpoints`, e.g. "--cpu-prof").
 */
import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process"
import { randomBytes, randomUUID } from "node:crypto"
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:https"
import type { AddressInfo } from "node:net"
import { cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { encrypt, generateWebhookSecret, parseKeyRing } from "@orbit/crypto"
import { type EndpointEvent, encodeEndpointEvent, newEndpointId, newEventId, topicsFor } from "@orbit/domain"
import { CompressionTypes, Kafka, logLevel, type Message } from "@orbit/kafka"
import { brokers, startKafka } from "../../infra/kafka.ts"
import { serviceArgs } from "../../infra/services.ts"
import { startPlatform } from "../src/Platform.ts"
import { localBrokerPid } from "../../infra/kafka.ts"
import { cpuSeconds, rssMb } from "./ProcStats.ts"
import { measureCpuSteal } from "./CpuSteal.ts"
import { LoadClient } from "./LoadClient.ts"

const ROOT = join(import.meta.dirname, "..", "..")
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
const nowMs = () => performance.timeOrigin + performance.now()

// --------------------------------------------------------------------------------------------
// Receiver (child process): counts distinct event ids per run; "down" closes its port.
// --------------------------------------------------------------------------------------------

interface RunCount { count: number; unique: number; duplicates: number; firstAt: number; lastAt: number }
type ToReceiver =
  | { readonly type: "up" }
  | { readonly type: "down" }
  | { readonly type: "stats"; readonly id: number; readonly run: string }

const runReceiver = async () => {
  const tls = JSON.parse(process.env.BENCH_TLS!) as { key: string; cert: string }
  const runs = new Map<string, RunCount & { seen: Set<string> }>()
  const server = createServer({ key: tls.key, cert: tls.cert, keepAlive: true }, (req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const at = nowMs()
      let body: { id: string; data: { run: string } }
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"))
      } catch {
        res.writeHead(400).end()
        return
      }
      let s = runs.get(body.data.run)
      if (s === undefined) runs.set(body.data.run, s = { count: 0, unique: 0, duplicates: 0, firstAt: at, lastAt: at, seen: new Set() })
      s.count++
      s.lastAt = at
      if (s.seen.has(body.id)) s.duplicates++
      else {
        s.seen.add(body.id)
        s.unique++
      }
      res.writeHead(200, { "content-type": "text/plain", "content-length": "2" }).end("ok")
    })
  })
  server.keepAliveTimeout = 120_000
  server.headersTimeout = 125_000
  server.requestTimeout = 0
  server.maxRequestsPerSocket = 0
  let port = 0
  const listen = () => new Promise<void>((resolve) => server.listen(port, "127.0.0.1", 1024, resolve))
  await listen()
  port = (server.address() as AddressInfo).port
  process.on("message", async (m: ToReceiver) => {
    if (m.type === "up") {
      if (!server.listening) await listen()
      process.send!({ type: "ok" })
    } else if (m.type === "down") {
      // Refuses new connections and cuts the kept-alive ones: every attempt fails to connect.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await closed
      process.send!({ type: "ok" })
    } else {
      const s = runs.get(m.run)
      process.send!({
        type: "stats",
        id: m.id,
        stats: s === undefined ? undefined : { count: s.count, unique: s.unique, duplicates: s.duplicates, firstAt: s.firstAt, lastAt: s.lastAt }
      })
    }
  })
  process.on("disconnect", () => process.exit(0))
  process.send!({ type: "ready", port })
}

// --------------------------------------------------------------------------------------------
// Measurements
// --------------------------------------------------------------------------------------------

/** Samples a process's resident memory every 250 ms until stopped; returns the peak. */
const sampleRss = (pid: number | undefined) => {
  let peak = rssMb(pid)
  let samples = 1
  const timer = setInterval(() => {
    const v = rssMb(pid)
    samples++
    if (!(v <= peak)) peak = Number.isNaN(v) ? peak : v
  }, 250)
  return () => {
    clearInterval(timer)
    return { peak, samples }
  }
}

/** Busy and total jiffies of all CPUs together (Linux /proc/stat): what every process on the host used. */
const hostJiffies = () => {
  const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1, 9).map(Number)
  const busy = user! + nice! + system! + irq! + softirq! + steal!
  return { busy, total: busy + idle! + iowait! }
}

const percentile = (sorted: ArrayLike<number>, p: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

const brokerPid = localBrokerPid

/**
 * Open loop: `rate` requests/s for `seconds`, the i-th request being `requests[i % n]`; latency
 * counts from the scheduled send when behind schedule. `check` sees each answer (status 200 only).
 */
const openLoop = async (
  client: LoadClient,
  rate: number,
  seconds: number | (() => boolean),
  requests: ReadonlyArray<Buffer>,
  check: (i: number, body: Buffer) => boolean = () => true
) => {
  const latencies: Array<number> = []
  let errors = 0
  let wrong = 0
  const start = performance.now()
  const inFlight = new Set<Promise<unknown>>()
  const more = typeof seconds === "number" ? (sent: number) => sent < rate * seconds : () => !seconds()
  let sent = 0
  while (more(sent)) {
    const due = start + (sent * 1000) / rate
    const wait = due - performance.now()
    if (wait > 1) await sleep(wait)
    const i = sent++
    const from = Math.min(due, performance.now())
    const p = client.request(requests[i % requests.length]!).then(
      (res) => {
        if (res.status !== 200) errors++
        else {
          latencies.push(performance.now() - from)
          if (!check(i % requests.length, res.body)) wrong++
        }
      },
      () => errors++
    )
    inFlight.add(p)
    void p.finally(() => inFlight.delete(p))
  }
  await Promise.all(inFlight)
  const sorted = Float64Array.from(latencies).sort()
  return { requests: sent, errors, wrong, seconds: (performance.now() - start) / 1000, p50: percentile(sorted, 50), p99: percentile(sorted, 99) }
}

// --------------------------------------------------------------------------------------------
// Bench (parent)
// --------------------------------------------------------------------------------------------

const main = async () => {
  const { values: args } = parseArgs({
    options: {
      only: { type: "string" },
      endpoints: { type: "string", default: "100000" },
      tenants: { type: "string" },
      backlog: { type: "string", default: "1000000" },
      burst: { type: "string", default: "20000" },
      seconds: { type: "string", default: "10" }
    }
  })
  const ENDPOINTS = Number(args.endpoints)
  const TENANTS = Number(args.tenants ?? Math.max(2, Math.round(ENDPOINTS / 100)))
  const BIG = Math.round(ENDPOINTS / 10)
  const BACKLOG = Number(args.backlog)
  const BURST = Number(args.burst)
  const SECONDS = Number(args.seconds)
  const RECEIVING = 50
  const parts = new Set(args.only?.split(",") ?? ["endpoints", "rebuild", "backlog", "dispatchers"])
  for (const p of parts) if (!["endpoints", "rebuild", "backlog", "dispatchers"].includes(p)) throw new Error(`--only: unknown part ${p}`)
  // Diagnostics: extra node flags for the dispatchers (e.g. "--trace-gc"), a directory for their logs.
  const DISPATCHER_NODE_ARGS = process.env.BENCH_DISPATCHER_NODE_ARGS?.split(" ").filter(Boolean) ?? []
  const LOG_DIR = process.env.BENCH_LOG_DIR
  const NODE = existsSync(join(ROOT, "node_modules/.bin/node")) ? join(ROOT, "node_modules/.bin/node") : process.execPath

  // A rough duration from the sizes, at the rates this 2-core host reached while loaded.
  const bulk = parts.has("endpoints") || parts.has("rebuild")
  const estimate = 30 + (bulk ? ENDPOINTS / 800 : 0) + (parts.has("endpoints") ? 60 + 2 * SECONDS : 0) +
    (parts.has("rebuild") ? 20 + ENDPOINTS / 5_000 : 0) + (parts.has("backlog") ? 60 + BACKLOG / 600 + BURST / 1_000 : 0) +
    (parts.has("dispatchers") ? 60 + (2 * BURST) / 1_000 : 0)
  console.log(`bench:scale  parts: ${[...parts].join(", ")}; ${ENDPOINTS} endpoints in ${TENANTS} tenants (${BIG} in one), ` +
    `backlog ${BACKLOG}, burst ${BURST}; ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`)
  console.log(`expect about ${Math.ceil(estimate / 60)} min (more on a busy host); Ctrl-C cleans up`)

  const children: Array<ChildProcess> = []
  /** Children started in a process group of their own, ended with the whole group. */
  const groups: Array<ChildProcess> = []
  const cleanups: Array<() => Promise<unknown> | unknown> = []
  let cleaning: Promise<void> | undefined
  const cleanup = () => {
    cleaning ??= (async () => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
      for (const c of groups) {
        if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
          try {
            process.kill(-c.pid, "SIGKILL")
          } catch {}
        }
      }
      for (const f of cleanups.reverse()) await Promise.resolve().then(f).catch(() => undefined)
    })()
    return cleaning
  }
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => void cleanup().finally(() => process.exit(130)))
  process.on("unhandledRejection", (error) => {
    console.error("bench:scale failed:", error)
    void cleanup().finally(() => process.exit(1))
  })

  const verdicts: Array<[string, string, string, string]> = []
  const report = (what: string, measured: string, goal: string, ok: boolean | undefined) => {
    const v = ok === undefined ? "-" : ok ? "PASS" : "MISS"
    verdicts.push([what, measured, goal, v])
    console.log(`${what.padEnd(52)} ${measured.padEnd(26)} ${goal.padEnd(12)} ${v}`)
  }
  const steal = measureCpuSteal()

  try {
    await startKafka()
    const BROKERS = brokers()
    // The per-key rate limit is lifted: the bench reads with one key at 500 req/s.
    const platform = await startPlatform({ env: { ORBIT_DB_POOL_SIZE: "10", ORBIT_RATE_LIMIT_PER_SECOND: "1000000" } })
    cleanups.push(() => platform.close())
    const prefix = platform.topicPrefix
    const topics = topicsFor(prefix)
    const ring = parseKeyRing(platform.env.ORBIT_SECRET_KEYS!)
    const kafka = new Kafka({ clientId: "bench-scale", brokers: BROKERS, logLevel: logLevel.NOTHING, retry: { retries: 30, initialRetryTime: 200, maxRetryTime: 2_000 } })
    const admin = kafka.admin()
    await admin.connect()
    cleanups.push(() => admin.disconnect())
    const producer = kafka.producer({ allowAutoTopicCreation: false })
    await producer.connect()
    cleanups.push(() => producer.disconnect())
    console.log(`  platform up (schema and topic prefix ${platform.id})`)

    // TLS for the receiver; the dispatcher trusts it via ORBIT_EXTRA_CA_FILE.
    const dir = mkdtempSync(join(tmpdir(), "bench-scale-"))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=bench.test",
      "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")
    ], { stdio: "ignore" })
    const tls = { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") }
    const receiver = fork(import.meta.filename, ["receiver"], {
      env: { ...process.env, BENCH_TLS: JSON.stringify(tls) },
      execPath: NODE,
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    children.push(receiver)
    const receiverPort = await new Promise<number>((resolve, reject) => {
      receiver.once("message", (m: { port: number }) => resolve(m.port))
      receiver.once("exit", (code) => reject(new Error(`receiver exited (${code})`)))
    })
    let statsId = 0
    const ask = <A>(m: ToReceiver, match: (r: { type: string; id?: number }) => boolean) =>
      new Promise<A>((resolve) => {
        const on = (r: { type: string; id?: number }) => {
          if (!match(r)) return
          receiver.off("message", on)
          resolve(r as A)
        }
        receiver.on("message", on)
        receiver.send(m)
      })
    const receiverUp = () => ask({ type: "up" }, (r) => r.type === "ok")
    const receiverDown = () => ask({ type: "down" }, (r) => r.type === "ok")
    const stats = async (run: string): Promise<RunCount> => {
      const id = ++statsId
      const r = await ask<{ stats?: RunCount }>({ type: "stats", id, run }, (r) => r.type === "stats" && r.id === id)
      return r.stats ?? { count: 0, unique: 0, duplicates: 0, firstAt: 0, lastAt: 0 }
    }

    // ---------------------------------------------------------------- endpoints, in bulk
    let t = 0
    const registered = (tenant: string, url: string, events: Array<string>, extra: Partial<EndpointEvent> = {}): EndpointEvent => {
      const endpoint_id = newEndpointId()
      return {
        _tag: "EndpointRegistered",
        schema_version: 1,
        event_id: randomUUID(),
        // Distinct creation times, so a tenant's pages have one order.
        occurred_at: new Date(Date.UTC(2026, 0, 1) + t++).toISOString(),
        endpoint_id,
        tenant_id: tenant,
        mode: "live",
        url,
        events,
        description: null,
        active: true,
        timeout_seconds: 5,
        retry_policy: { strategy: "custom", delays_seconds: [1, 2, 4, 8, 15, 30, 60, 120, 300] },
        // Sealed as the registration seals it: bound to the tenant, mode, endpoint and slot.
        secret_box: encrypt(ring, generateWebhookSecret(), { tenant_id: tenant, mode: "live", endpoint_id, slot: "current" }),
        ...extra
      } as EndpointEvent
    }
    const writeEndpoints = async (events: ReadonlyArray<EndpointEvent>) => {
      const pending: Array<Promise<unknown>> = []
      for (let i = 0; i < events.length; i += 2_000) {
        pending.push(producer.send({
          topic: topics.endpointEvents.name,
          acks: -1,
          messages: events.slice(i, i + 2_000).map((e) => ({ key: e.endpoint_id, value: encodeEndpointEvent(e) }))
        }))
        if (pending.length >= 4) await pending.shift()
      }
      await Promise.all(pending)
    }
    const bigTenant = "scale_t0"
    if (bulk) {
      const t0 = performance.now()
      const events: Array<EndpointEvent> = []
      for (let i = 0; i < ENDPOINTS; i++) {
        const tenant = i < BIG ? bigTenant : `scale_t${1 + ((i - BIG) % (TENANTS - 1))}`
        events.push(registered(tenant, `https://93.184.216.34/hooks/${i}`, ["message.failed"]))
      }
      const built = performance.now()
      await writeEndpoints(events)
      const written = performance.now()
      console.log(`  ${ENDPOINTS} registrations built and sealed in ${((built - t0) / 1000).toFixed(1)} s, ` +
        `written to ${topics.endpointEvents.name} in ${((written - built) / 1000).toFixed(1)} s (${(ENDPOINTS / ((written - built) / 1000)).toFixed(0)}/s)`)
      // A sample through the API: the registration's own path, into the same tenants.
      const { key } = await platform.createKey("scale_t1")
      const sample = 100
      for (let i = 0; i < sample; i += 10) {
        await Promise.all(Array.from({ length: 10 }, async (_, j) => {
          const res = await platform.api("POST", "/api/v1/webhooks", { key, body: { url: `https://93.184.216.34/api/${i + j}`, events: ["message.failed"] } })
          if (res.status !== 201) throw new Error(`POST /api/v1/webhooks answered ${res.status}: ${res.text}`)
        }))
      }
      const p0 = performance.now()
      await platform.projectionCaughtUp("endpointEvents", 30 * 60_000)
      const projected = performance.now()
      const [{ n }] = await platform.sql<Array<{ n: string }>>`SELECT count(*) AS n FROM endpoints`
      console.log(`  ${sample} registered through the API; projection caught up ${((projected - p0) / 1000).toFixed(1)} s after them ` +
        `(${((projected - written) / 1000).toFixed(1)} s after the bulk write); ${n} rows in the read model`)
      if (Number(n) !== ENDPOINTS + sample) throw new Error(`the read model holds ${n} endpoints, expected ${ENDPOINTS + sample}`)
    }

    // ---------------------------------------------------------------- dispatchers
    const dispatchers: Array<{ child: ChildProcess; log: () => string; startedAt: number }> = []
    const startDispatcher = () => {
      const startedAt = performance.now()
      const child = spawn(NODE, serviceArgs("dispatcher", DISPATCHER_NODE_ARGS), {
        env: {
          ...platform.env,
          KAFKA_BROKERS: BROKERS.join(","),
          ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8",
          ORBIT_EXTRA_CA_FILE: join(dir, "cert.pem"),
          DISPATCHER_SHUTDOWN_GRACE_MS: "2000",
          // Two dispatchers may run at once: each serves /metrics on a free port.
          ORBIT_METRICS_PORT: "0",
          LOG_LEVEL: "Info"
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      children.push(child)
      let log = ""
      const keep = (d: Buffer) => {
        log = (log + d.toString()).slice(-50_000)
      }
      child.stdout!.on("data", keep)
      child.stderr!.on("data", keep)
      if (LOG_DIR !== undefined) {
        const file = createWriteStream(join(LOG_DIR, `dispatcher-${dispatchers.length + 1}.log`))
        child.stdout!.pipe(file)
        child.stderr!.pipe(file)
      }
      const d = { child, log: () => log, startedAt }
      dispatchers.push(d)
      return d
    }
    const waitForLog = async (d: (typeof dispatchers)[number], what: (log: string) => boolean, timeoutMs = 120_000) => {
      const deadline = Date.now() + timeoutMs
      while (!what(d.log())) {
        if (d.child.exitCode !== null) throw new Error(`dispatcher exited:\n${d.log().slice(-3_000)}`)
        if (Date.now() > deadline) throw new Error(`dispatcher: timed out\n${d.log().slice(-3_000)}`)
        await sleep(20)
      }
      return performance.now()
    }
    const joined = (log: string) => (log.match(/consumer group joined/g) ?? []).length
    const started = (log: string) => log.includes("delivery worker started") && log.includes("fan-out started") && joined(log) >= 3
    const ensureDispatcher = async () => {
      if (dispatchers.length > 0) return dispatchers[0]!
      const d = startDispatcher()
      await waitForLog(d, started)
      return d
    }

    if (parts.has("endpoints")) {
      const d = startDispatcher()
      const readyAt = await waitForLog(d, (l) => l.includes("endpoint index ready"))
      const line = d.log().split("\n").find((l) => l.includes("endpoint index ready")) ?? ""
      const indexed = /"endpoints":(\d+)/.exec(line)?.[1] ?? "?"
      const ownMs = /"ms":(\d+)/.exec(line)?.[1] ?? "?"
      const readySeconds = (readyAt - d.startedAt) / 1000
      await waitForLog(d, started)
      await sleep(3_000)
      const rss = rssMb(d.child.pid)
      console.log("")
      report(`endpoint index ready after a dispatcher start`, `${readySeconds.toFixed(2)} s (index ${ownMs} ms)`, "<= 5 s", readySeconds <= 5)
      console.log(`  (${indexed} endpoints indexed; from the process spawn to its "endpoint index ready" line, which includes node's start-up; the index's own time from its consumer's start in parentheses)`)
      report(`dispatcher resident memory, ${indexed} endpoints indexed`, `${rss.toFixed(0)} MB`, "<= 256 MB", rss <= 256)

      // Every page of the big tenant, then each of them in turn at 500 req/s offered.
      const { key } = await platform.createKey(bigTenant)
      const { hostname, port } = new URL(platform.baseUrl)
      const api = new LoadClient(hostname, Number(port), 32)
      cleanups.push(() => api.close())
      const pages: Array<Buffer> = []
      let cursor: string | null = null
      let rows = 0
      do {
        const path: string = `/api/v1/webhooks${cursor === null ? "" : `?cursor=${encodeURIComponent(cursor)}`}`
        pages.push(api.prepare("GET", path, { "x-api-key": key }))
        const res = await api.request(pages.at(-1)!)
        const body = JSON.parse(res.body.toString()) as { data: Array<unknown>; meta: { pagination: { cursor: string | null } } }
        rows += body.data.length
        cursor = body.meta.pagination.cursor
      } while (cursor !== null)
      if (rows !== BIG) throw new Error(`paging the big tenant gave ${rows} endpoints, expected ${BIG}`)
      await openLoop(api, 500, 3, pages) // warm-up
      const r = await openLoop(api, 500, SECONDS, pages)
      console.log(`  GET /api/v1/webhooks over the ${pages.length} pages of a tenant with ${BIG} endpoints at 500 req/s for ${SECONDS} s: ` +
        `${r.requests} requests, p50 ${r.p50.toFixed(2)} ms, errors ${r.errors}`)
      report(`GET /api/v1/webhooks p99, ${BIG} endpoints, 500 req/s`, `${r.p99.toFixed(2)} ms`, "<= 10 ms", r.p99 <= 10 && r.errors === 0)
    }

    // ---------------------------------------------------------------- rebuild
    if (parts.has("rebuild")) {
      const { key } = await platform.createKey(bigTenant)
      const { hostname, port } = new URL(platform.baseUrl)
      const api = new LoadClient(hostname, Number(port), 16)
      cleanups.push(() => api.close())
      // The first and last pages of the big tenant as they are before the rebuild; each read during
      // it must give exactly these (an empty or partly filled table would show fewer or other rows).
      const ids = (b: Buffer) => (JSON.parse(b.toString()) as { data: Array<{ id: string }> }).data.map((e) => e.id).join(",")
      const first = api.prepare("GET", "/api/v1/webhooks", { "x-api-key": key })
      let cursor: string | null = null
      let last = first
      for (;;) {
        const res = await api.request(last)
        cursor = (JSON.parse(res.body.toString()) as { meta: { pagination: { cursor: string | null } } }).meta.pagination.cursor
        if (cursor === null) break
        last = api.prepare("GET", `/api/v1/webhooks?cursor=${encodeURIComponent(cursor)}`, { "x-api-key": key })
      }
      const reads = [first, last]
      const READ_RATE = 100
      const expected = await Promise.all(reads.map(async (r) => ids((await api.request(r)).body)))
      let done = false
      const t0 = performance.now()
      const rebuild = new Promise<string>((resolve, reject) => {
        // In a process group of its own: the command runs the rebuild as its child, and a cleanup
        // ends both.
        const child = spawn(NODE, [join(ROOT, "packages/cli/src/main.ts"), "rebuild", "endpoints"], {
          env: {
            ...platform.env,
            KAFKA_BROKERS: BROKERS.join(","),
            LOG_LEVEL: "Info",
            ...(process.env.BENCH_REBUILD_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_REBUILD_NODE_OPTIONS } : {})
          },
          stdio: ["ignore", "pipe", "pipe"],
          detached: true
        })
        groups.push(child)
        let out = ""
        child.stdout!.on("data", (d: Buffer) => (out += d.toString()))
        child.stderr!.on("data", (d: Buffer) => (out += d.toString()))
        child.on("exit", (code) => (code === 0 || cleaning !== undefined ? resolve(out) : reject(new Error(`orbit rebuild endpoints exited ${code}:\n${out}`))))
      }).finally(() => (done = true))
      const readsDuring = await openLoop(api, READ_RATE, () => done, reads, (i, body) => ids(body) === expected[i])
      const out = await rebuild
      const wall = (performance.now() - t0) / 1000
      const line = out.split("\n").find((l) => l.includes("endpoint read model rebuilt")) ?? ""
      const events = Number(/"events":(\d+)/.exec(line)?.[1] ?? Number.NaN)
      const ms = Number(/"ms":(\d+)/.exec(line)?.[1] ?? Number.NaN)
      const [{ n }] = await platform.sql<Array<{ n: string }>>`SELECT count(*) AS n FROM endpoints`
      console.log("")
      console.log(`  orbit rebuild endpoints: ${events} events in ${(ms / 1000).toFixed(2)} s from its start to the swap ` +
        `(${wall.toFixed(2)} s for the command, node's start-up included); ${n} rows after the swap`)
      report("rebuild rate (events / rebuild time)", `${(events / (ms / 1000)).toFixed(0)} events/s`, ">= 50000/s", events / (ms / 1000) >= 50_000)
      console.log(`  reads during the rebuild: ${readsDuring.requests} at ${READ_RATE} req/s offered, p50 ${readsDuring.p50.toFixed(2)} ms`)
      report("API reads during the rebuild, p99", `${readsDuring.p99.toFixed(2)} ms`, "printed", undefined)
      report("reads refused, or not the page from before (swap)", `${readsDuring.errors + readsDuring.wrong} of ${readsDuring.requests}`, "0", readsDuring.errors + readsDuring.wrong === 0)
    }

    // ---------------------------------------------------------------- backlog and dispatchers
    const receivingTenants = Array.from({ length: RECEIVING }, (_, i) => `scale_r${i}`)
    const eventFor = (run: string, seq: number) => ({
      id: newEventId(),
      type: "message.delivered",
      tenant_id: receivingTenants[seq % RECEIVING]!,
      mode: "live",
      created_at: new Date().toISOString(),
      data: { message_id: `msg_${seq.toString(36).padStart(8, "0")}`, channel: "sms", to: "+15555550123", status: "delivered", run }
    })
    /** Publishes `count` events of `run` as fast as the producer takes them (batches of 500). */
    const publish = async (run: string, count: number) => {
      const pending: Array<Promise<unknown>> = []
      for (let seq = 0; seq < count;) {
        const messages: Array<Message> = []
        for (const end = Math.min(count, seq + 500); seq < end; seq++) {
          const e = eventFor(run, seq)
          messages.push({ key: e.tenant_id, value: JSON.stringify(e) })
        }
        pending.push(producer.send({ topic: topics.sourceEvents.name, acks: -1, compression: CompressionTypes.None, messages }))
        if (pending.length >= 4) await pending.shift()
      }
      await Promise.all(pending)
    }
    /** A dispatcher that exited (out of heap, for one) stops the bench with its log's end. */
    const stopIfADispatcherExited = (while_: string) => {
      const dead = dispatchers.find((d) => d.child.exitCode !== null || d.child.signalCode !== null)
      if (dead !== undefined) throw new Error(`a dispatcher exited while ${while_}:\n${dead.log().slice(-3_000)}`)
    }
    /** Waits until `expected` distinct ids of `run` arrived, or 60 s pass without progress. */
    const arrived = async (run: string, expected: number) => {
      let last = -1
      let progressAt = Date.now()
      for (;;) {
        const s = await stats(run)
        if (s.unique >= expected) return s
        stopIfADispatcherExited(`${run} was delivered`)
        if (s.unique !== last) {
          last = s.unique
          progressAt = Date.now()
        } else if (Date.now() - progressAt > 60_000) return s
        await sleep(200)
      }
    }
    const cpu = () => ({
      dispatchers: dispatchers.map((d) => cpuSeconds(d.child.pid)),
      receiver: cpuSeconds(receiver.pid),
      broker: cpuSeconds(brokerPid()),
      bench: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
      host: hostJiffies()
    })
    const burst = async (run: string) => {
      const c0 = cpu()
      const t0 = nowMs()
      await publish(run, BURST)
      const s = await arrived(run, BURST)
      const seconds = (s.lastAt - t0) / 1000
      const c1 = cpu()
      const share = (a: number, b: number) => `${(((b - a) / seconds) * 100).toFixed(0)}%`
      return {
        rate: s.unique / seconds,
        unique: s.unique,
        duplicates: s.duplicates,
        cpu: `dispatcher ${c1.dispatchers.map((x, i) => share(c0.dispatchers[i] ?? 0, x)).join(" + ")}, broker ${share(c0.broker, c1.broker)}, ` +
          `receiver ${share(c0.receiver, c1.receiver)}, bench ${share(c0.bench, c1.bench)}; ` +
          `the whole host ${(((c1.host.busy - c0.host.busy) / (c1.host.total - c0.host.total)) * cpus().length * 100).toFixed(0)}% of ${cpus().length * 100}%`
      }
    }
    if (parts.has("backlog") || parts.has("dispatchers")) {
      await writeEndpoints(receivingTenants.map((tenant, i) => registered(tenant, `https://127.0.0.1:${receiverPort}/e/${i}`, ["*"])))
      await ensureDispatcher()
      await publish("warmup", Math.min(BURST, 5_000))
      await arrived("warmup", Math.min(BURST, 5_000))
    }
    if (parts.has("backlog")) {
      const d = dispatchers[0]!
      const b = await burst("burst")
      console.log("")
      console.log(`  burst of ${BURST} events, receiver up: ${b.rate.toFixed(0)} deliveries/s (${b.unique} distinct, ${b.duplicates} duplicates; cpu ${b.cpu})`)
      const memory = sampleRss(d.child.pid)
      await receiverDown()
      const t0 = nowMs()
      await publish("backlog", BACKLOG)
      const published = nowMs()
      // The receiver comes back once the fan-out has turned every source event into a task.
      const ends = await admin.fetchTopicOffsets(topics.sourceEvents.name)
      for (;;) {
        const [committed] = await admin.fetchOffsets({ groupId: `${prefix}orbit-dispatcher-fanout`, topics: [topics.sourceEvents.name] })
        if (ends.every((e) => Number(committed?.partitions.find((p) => p.partition === e.partition)?.offset ?? -1) >= Number(e.high))) break
        stopIfADispatcherExited("the backlog was fanned out")
        await sleep(500)
      }
      const fannedOut = nowMs()
      const during = await stats("backlog")
      await receiverUp()
      const up = nowMs()
      const s = await arrived("backlog", BACKLOG)
      const { peak, samples } = memory()
      const drain = s.unique / ((s.lastAt - up) / 1000)
      console.log(`  backlog: ${BACKLOG} events published in ${((published - t0) / 1000).toFixed(1)} s with the receiver down, ` +
        `fanned out ${((fannedOut - t0) / 1000).toFixed(1)} s after the first; ${during.unique} arrived before the receiver came back`)
      console.log(`  drained ${s.unique} distinct in ${((s.lastAt - up) / 1000).toFixed(1)} s after the receiver came back (${s.count} requests, ${s.duplicates} duplicates)`)
      report("backlog drain rate (burst rate of this run)", `${drain.toFixed(0)}/s (${b.rate.toFixed(0)}/s)`, "printed", undefined)
      report(`backlog of ${BACKLOG}: distinct ids at the receiver`, `${s.unique} of ${BACKLOG}`, "all", s.unique === BACKLOG)
      report("dispatcher resident memory during the backlog, peak", `${peak.toFixed(0)} MB (${samples} samples)`, "<= 512 MB", peak <= 512)
    }
    if (parts.has("dispatchers")) {
      const one = await burst("one")
      const second = startDispatcher()
      await waitForLog(second, started)
      await sleep(5_000) // the first process's rejoin settles
      // The second process gets the warm-up the first had (JIT, TLS connections) before it is measured.
      await publish("warmup-two", Math.min(BURST, 5_000))
      await arrived("warmup-two", Math.min(BURST, 5_000))
      const two = await burst("two")
      console.log("")
      console.log(`  burst of ${BURST}, 1 dispatcher:  ${one.rate.toFixed(0)} deliveries/s; cpu (share of one core) ${one.cpu}`)
      console.log(`  burst of ${BURST}, 2 dispatchers: ${two.rate.toFixed(0)} deliveries/s; cpu (share of one core) ${two.cpu}`)
      report("burst, two dispatchers / one", `${(two.rate / one.rate).toFixed(2)} (${two.rate.toFixed(0)} / ${one.rate.toFixed(0)})`, "printed", undefined)
      report("burst with two dispatchers: distinct ids", `${two.unique} of ${BURST}`, "all", two.unique === BURST)
    }

    for (const d of dispatchers) d.child.kill("SIGTERM")
    console.log("")
    console.log(`${"target".padEnd(52)} ${"measured".padEnd(26)} ${"goal".padEnd(12)} verdict`)
    for (const [what, measured, goal, v] of verdicts) console.log(`${what.padEnd(52)} ${measured.padEnd(26)} ${goal.padEnd(12)} ${v}`)
    console.log(`CPU steal during the run: ${(steal() * 100).toFixed(1)}%; load average at the end ${loadavg().map((l) => l.toFixed(2)).join(" ")}`)
  } finally {
    await cleanup()
  }
}

if (process.argv[2] === "receiver") await runReceiver()
else {
  await main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error("bench:scale failed:", error)
      process.exit(1)
    }
  )
}
