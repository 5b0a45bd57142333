// `npm run bench:api`: POST and GET throughput and latency of the registration API on the real
// stack (Kafka, projection, Postgres), and the same GET served by a bare node:http handler
// running the same Postgres query, measured in the same run; then a flood of random well-formed
// API keys, with a valid key's reads during it and the share of the flood that reached Postgres;
// then the write phase: registrations with WRITE_CONCURRENCY in flight and POST latency at a
// fixed offered rate, next to a bare node:http server doing one INSERT per registration.
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { once } from "node:events"
import path from "node:path"
import { freePort } from "../src/freePort.ts"
import { startPlatform, uniqueTenant } from "../src/Platform.ts"
import { measureCpuSteal } from "./CpuSteal.ts"
import { LoadClient } from "./LoadClient.ts"

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16)
const WRITE_CONCURRENCY = Number(process.env.BENCH_WRITE_CONCURRENCY ?? 64)
const WRITE_RATE = Number(process.env.BENCH_WRITE_RATE ?? 500)
/** `BENCH_ONLY=reads`, `flood` or `writes` (or a comma-separated list) runs those phases alone (quicker A/B runs). */
const runs = (phase: "reads" | "flood" | "writes") => process.env.BENCH_ONLY === undefined || process.env.BENCH_ONLY.split(",").includes(phase)

const percentile = (sorted: Array<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

interface Result { requests: number; errors: number; seconds: number; p50: number; p99: number }

const summarize = (latencies: Array<number>, errors: number, seconds: number): Result => {
  const sorted = [...latencies].sort((a, b) => a - b)
  return { requests: latencies.length, errors, seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99) }
}

/** Closed loop: `concurrency` workers, each sending the next request when the last one answers. */
const closedLoop = async (client: LoadClient, request: Buffer, expect: number, concurrency = CONCURRENCY) => {
  const latencies: Array<number> = []
  let errors = 0
  const end = performance.now() + SECONDS * 1000
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const t = performance.now()
      const res = await client.request(request)
      if (res.status === expect) latencies.push(performance.now() - t)
      else errors++
    }
  }))
  return summarize(latencies, errors, SECONDS)
}

/** Open loop: requests start on a fixed schedule; latency counts from the scheduled start (coordinated omission). */
const openLoop = async (client: LoadClient, rate: number, request: Buffer, expect: number) => {
  const latencies: Array<number> = []
  let errors = 0
  const total = rate * SECONDS
  const start = performance.now()
  let pending = 0
  let sent = 0
  let allAnswered = () => {}
  const answered = new Promise<void>((resolve) => (allAnswered = resolve))
  while (sent < total) {
    const due = start + (sent * 1000) / rate
    const wait = due - performance.now()
    if (wait > 1) await new Promise((r) => setTimeout(r, wait))
    pending++
    sent++
    // From the scheduled start when behind schedule (time waiting to be sent is latency too), from
    // the actual send when the timer fired up to 1 ms early.
    const from = Math.min(due, performance.now())
    client.request(request).then(
      (res) => (res.status === expect ? latencies.push(performance.now() - from) : errors++),
      () => errors++
    ).finally(() => --pending === 0 && sent === total && allAnswered())
  }
  if (pending > 0) await answered
  return summarize(latencies, errors, SECONDS)
}

/**
 * Closed loop of random well-formed API keys, as fast as CONCURRENCY connections go: even
 * requests carry a key of the checksummed length (refused by its checksum), odd ones a key in the
 * form issued before checksums (looked up while the client's address has lookups left).
 */
const BASE62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
const randomKey = (n: number) => `dv_live_sk_${Array.from(randomBytes(n), (b) => BASE62[b % 62]).join("")}`
const flood = async (client: LoadClient) => {
  const statuses = new Map<number, number>()
  let sent = 0
  const end = performance.now() + SECONDS * 1000
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < end) {
      const request = client.prepare("GET", "/api/v1/webhooks", { "x-api-key": randomKey(sent++ % 2 === 0 ? 49 : 43) })
      const status = await client.request(request).then((res) => res.status, () => 0)
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
    }
  }))
  return { sent, statuses }
}

const verdict = (ok: boolean) => (ok ? "PASS" : "MISS")

const line = (name: string, r: Result) =>
  `${name.padEnd(44)} ${(r.requests / r.seconds).toFixed(0).padStart(7)} req/s   p50 ${r.p50.toFixed(2).padStart(7)} ms   p99 ${r.p99.toFixed(2).padStart(7)} ms   errors ${r.errors}`

// The per-key rate limit is lifted: this measures the stack, and the bench uses a single key.
const platform = await startPlatform({ env: { ORBIT_DB_POOL_SIZE: "10", ORBIT_RATE_LIMIT_PER_SECOND: "1000000" } })
let bare: ChildProcess | undefined
let bareWrite: ChildProcess | undefined
try {
  const tenant = uniqueTenant()
  const { key } = await platform.createKey(tenant)
  const { hostname, port } = new URL(platform.baseUrl)
  const api = new LoadClient(hostname, Number(port), CONCURRENCY)
  const list = api.prepare("GET", "/api/v1/webhooks", { "x-api-key": key })
  // An IP literal: the sandbox has no DNS, and a lookup per POST would measure its resolver, not us.
  const create = api.prepare("POST", "/api/v1/webhooks", { "x-api-key": key, "content-type": "application/json" },
    JSON.stringify({ url: "https://93.184.216.34/bench", events: ["message.delivered"] }))
  // Seed the tenant so a list page is full (25 of 200 rows).
  for (let i = 0; i < 200; i += 20) await Promise.all(Array.from({ length: 20 }, () => api.request(create)))

  const barePort = await freePort()
  if (runs("reads") || runs("flood")) {
    bare = spawn(process.execPath, [path.join(import.meta.dirname, "bare-list-server.ts")], {
      env: { ...platform.env, PORT: String(barePort), BENCH_TENANT: tenant },
      stdio: ["ignore", "pipe", "inherit"]
    })
    await once(bare.stdout!, "data")
    const bareClient = new LoadClient("127.0.0.1", barePort, CONCURRENCY)
    const bareList = bareClient.prepare("GET", "/", {})
    // Both servers warm up the same way, a full closed-loop run each, so both are measured with their
    // hot paths compiled by the optimizing tiers: a lighter warm-up for one of them measures the JIT.
    await closedLoop(api, list, 200)
    await closedLoop(bareClient, bareList, 200)

    if (runs("reads")) {
      const steal = measureCpuSteal()
      process.stdout.write(`\nbench:api — ${SECONDS}s per run, closed-loop concurrency ${CONCURRENCY}, 2 cores shared by load generator, services, Kafka and Postgres\n\n`)
      const getMax = await closedLoop(api, list, 200)
      process.stdout.write(line("GET  /api/v1/webhooks (max, closed loop)", getMax) + "\n")
      const bareMax = await closedLoop(bareClient, bareList, 200)
      process.stdout.write(line("GET  bare node:http + same query (baseline)", bareMax) + "\n")
      const get500 = await openLoop(api, 500, list, 200)
      process.stdout.write(line("GET  /api/v1/webhooks at 500 req/s offered", get500) + "\n")
      const bare500 = await openLoop(bareClient, 500, bareList, 200)
      process.stdout.write(line("GET  bare baseline at 500 req/s offered", bare500) + "\n")
      const post100 = await openLoop(api, 100, create, 201)
      process.stdout.write(line("POST /api/v1/webhooks at 100 req/s offered", post100) + "\n")
      const postMax = await closedLoop(api, create, 201)
      process.stdout.write(line("POST /api/v1/webhooks (max, closed loop)", postMax) + "\n")
      process.stdout.write(
        `\nGET throughput ratio platform / bare baseline: ${(getMax.requests / bareMax.requests).toFixed(2)}  (target ≥ 0.60)\n` +
          `GET p99 at 500 req/s: ${get500.p99.toFixed(2)} ms (target ≤ 10 ms)   POST p99 at 100 req/s: ${post100.p99.toFixed(2)} ms (target ≤ 50 ms)\n` +
          `CPU steal during the runs: ${(steal() * 100).toFixed(1)}% (time the hypervisor gave other guests; absolute numbers move with it, ratios less)\n`
      )
    }

    if (runs("flood")) {
      const VALID_RATE_DURING_FLOOD = 200
      // The flood: random keys at the highest rate the load client reaches, on connections of their
      // own, while the valid key reads at a fixed offered rate. What reached Postgres is read from
      // Postgres: the scans of api_keys (the valid key's periodic cache refresh counts too).
      const floodClient = new LoadClient(hostname, Number(port), CONCURRENCY)
      const scansBefore = await platform.tableScans("api_keys")
      const [floodRun, getDuring] = await Promise.all([flood(floodClient), openLoop(api, VALID_RATE_DURING_FLOOD, list, 200)])
      const reached = (await platform.tableScans("api_keys")) - scansBefore
      floodClient.close()
      const floodRate = floodRun.sent / SECONDS
      const statuses = [...floodRun.statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s === 0 ? "failed" : s} ×${n}`).join("  ")
      process.stdout.write(
        `${"FLOOD random well-formed keys (max, closed loop)".padEnd(44)} ${floodRate.toFixed(0).padStart(7)} req/s   ${statuses}\n` +
          line(`GET  /api/v1/webhooks at ${VALID_RATE_DURING_FLOOD} req/s, flood on`, getDuring) + "\n"
      )
      const share = reached / floodRun.sent
      process.stdout.write(
        `Key flood at ${floodRate.toFixed(0)} req/s: valid key GET p99 ${getDuring.p99.toFixed(2)} ms (target ≤ 10 ms) ${verdict(getDuring.p99 <= 10 && getDuring.errors === 0)}   ` +
          `reached Postgres ${reached} of ${floodRun.sent} (${(share * 100).toFixed(3)} %, target ≤ 1 %) ${verdict(share <= 0.01)}\n`
      )
    }
    api.close()
    bareClient.close()
  }

  if (runs("writes")) {
    // The write phase. The baseline registers into a table of its own in the platform's schema.
    const bareWritePort = await freePort()
    bareWrite = spawn(process.execPath, [path.join(import.meta.dirname, "bare-insert-server.ts")], {
      env: { ...platform.env, PORT: String(bareWritePort), BENCH_TENANT: tenant },
      stdio: ["ignore", "pipe", "inherit"]
    })
    await once(bareWrite.stdout!, "data")
    const writes = new LoadClient(hostname, Number(port), WRITE_CONCURRENCY)
    const bareWrites = new LoadClient("127.0.0.1", bareWritePort, WRITE_CONCURRENCY)
    const writeBody = JSON.stringify({ url: "https://93.184.216.34/bench", events: ["message.delivered"] })
    const createW = writes.prepare("POST", "/api/v1/webhooks", { "x-api-key": key, "content-type": "application/json" }, writeBody)
    const bareCreate = bareWrites.prepare("POST", "/", { "content-type": "application/json" }, writeBody)
    // The same warm-up for both, as for the reads.
    await closedLoop(writes, createW, 201, WRITE_CONCURRENCY)
    await closedLoop(bareWrites, bareCreate, 201, WRITE_CONCURRENCY)
    process.stdout.write(`
write phase — ${SECONDS}s per run, ${WRITE_CONCURRENCY} POSTs in flight (closed loop), then ${WRITE_RATE} POSTs/s offered

`)
    const postWide = await closedLoop(writes, createW, 201, WRITE_CONCURRENCY)
    process.stdout.write(line(`POST /api/v1/webhooks, ${WRITE_CONCURRENCY} in flight`, postWide) + "\n")
    const bareWide = await closedLoop(bareWrites, bareCreate, 201, WRITE_CONCURRENCY)
    process.stdout.write(line(`POST bare node:http + INSERT, ${WRITE_CONCURRENCY} in flight`, bareWide) + "\n")
    const postRate = await openLoop(writes, WRITE_RATE, createW, 201)
    process.stdout.write(line(`POST /api/v1/webhooks at ${WRITE_RATE} req/s offered`, postRate) + "\n")
    const bareRate = await openLoop(bareWrites, WRITE_RATE, bareCreate, 201)
    process.stdout.write(line(`POST bare baseline at ${WRITE_RATE} req/s offered`, bareRate) + "\n")
    const registrations = postWide.requests / postWide.seconds
    process.stdout.write(
      `\nRegistrations/s with ${WRITE_CONCURRENCY} in flight: ${registrations.toFixed(0)} (target ≥ 1000) ${verdict(registrations >= 1000 && postWide.errors === 0)}   ` +
        `ratio platform / bare INSERT: ${(postWide.requests / bareWide.requests).toFixed(2)}\n` +
        `POST p99 at ${WRITE_RATE} req/s: ${postRate.p99.toFixed(2)} ms (target ≤ 50 ms) ${verdict(postRate.p99 <= 50 && postRate.errors === 0)}   ` +
        `bare INSERT p99 ${bareRate.p99.toFixed(2)} ms, ratio ${(postRate.p99 / bareRate.p99).toFixed(2)}\n`
    )
    writes.close()
    bareWrites.close()
  }
} finally {
  bare?.kill()
  bareWrite?.kill()
  await platform.close()
}
process.exit(0)
