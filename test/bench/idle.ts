/**
 * `npm run bench:idle` — what the platform costs when it has nothing to do.
 *
 * 1. broker alone: the local broker (KAFKA_PORT; started if needed) with no client of this run,
 *    its CPU over BENCH_IDLE_SECONDS (60). This is the baseline of the same run.
 * 2. platform idle: the three services (real child processes, own schema and topic prefix) on
 *    that broker, started and ready, then given nothing to do for BENCH_IDLE_SECONDS after
 *    BENCH_IDLE_SETTLE_SECONDS (10) to finish starting (group joins, first metadata).
 * CPU is user + system time from /proc/<pid>/stat, as % of one core over the window.
 * Targets (issue 18): the three services together ≤ 1 % of a core; the broker ≤ 1 % of a core
 * more than alone. Prints loadavg and CPU steal: other work on the host moves every number.
 * With KAFKA_BROKERS (an external cluster) the broker rows are n/a.
 */
import { loadavg } from "node:os"
import { setTimeout as sleep } from "node:timers/promises"
import { localBrokerPid, startKafka } from "../../infra/kafka.ts"
import type { ServiceName } from "../../infra/services.ts"
import { startPlatform } from "../src/Platform.ts"
import { cpuSeconds } from "./ProcStats.ts"
import { measureCpuSteal } from "./CpuSteal.ts"

const num = (name: string, fallback: number) => {
  const v = process.env[name]
  return v === undefined || v === "" ? fallback : Number(v)
}
const SECONDS = num("BENCH_IDLE_SECONDS", 60)
const SETTLE_SECONDS = num("BENCH_IDLE_SETTLE_SECONDS", 10)
const SERVICES: ReadonlyArray<ServiceName> = ["registration", "projection", "dispatcher"]

/** % of one core each pid used over `seconds` of wall time from now. */
const measure = async (pids: ReadonlyMap<string, number>, seconds: number): Promise<Map<string, number>> => {
  const before = new Map([...pids].map(([name, pid]) => [name, cpuSeconds(pid)]))
  const t0 = performance.now()
  await sleep(seconds * 1000)
  const wall = (performance.now() - t0) / 1000
  return new Map([...pids].map(([name, pid]) => [name, (100 * (cpuSeconds(pid) - before.get(name)!)) / wall]))
}

const pct = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? "n/a" : `${v.toFixed(2)} %`)
const verdict = (ok: boolean | undefined) => (ok === undefined ? "n/a" : ok ? "PASS" : "MISS")

await startKafka()
const broker = localBrokerPid()
const steal = measureCpuSteal()
const load = loadavg()

console.log(`bench:idle — ${SECONDS} s windows, loadavg ${load.map((l) => l.toFixed(2)).join(" ")} at start`)
const alone = broker === undefined ? undefined : (await measure(new Map([["broker", broker]]), SECONDS)).get("broker")
console.log(`broker alone: ${pct(alone)} of a core`)

const platform = await startPlatform({ services: [], env: { LOG_LEVEL: "Warn" } })
let result: Map<string, number>
try {
  const pids = new Map<string, number>()
  // The dispatcher logs at Info for the start lines waited on below; idle, nothing is logged.
  for (const name of SERVICES) pids.set(name, platform.start(name, name === "dispatcher" ? { LOG_LEVEL: "Info" } : {}).pid!)
  await platform.ready(120_000)
  await platform.eventually("the dispatcher's consumers", () => {
    const log = (platform.logs.get("dispatcher") ?? []).join("\n")
    return log.includes("delivery worker started") && log.includes("fan-out started")
  }, 120_000)
  await sleep(SETTLE_SECONDS * 1000)
  if (broker !== undefined) pids.set("broker", broker)
  result = await measure(pids, SECONDS)
} finally {
  await platform.close()
}

const services = SERVICES.reduce((sum, name) => sum + result.get(name)!, 0)
const withPlatform = result.get("broker")
const brokerExtra = alone === undefined || withPlatform === undefined ? undefined : withPlatform - alone
const rows: Array<[string, string, string, string]> = [
  ...SERVICES.map((name): [string, string, string, string] => [name, pct(result.get(name)), "", ""]),
  ["three services", pct(services), "≤ 1.00 %", verdict(services <= 1)],
  ["broker alone (baseline)", pct(alone), "", ""],
  ["broker with the platform", pct(withPlatform), "", ""],
  ["broker, platform's share", pct(brokerExtra), "≤ 1.00 %", verdict(brokerExtra === undefined ? undefined : brokerExtra <= 1)]
]
console.log(`\nidle for ${SECONDS} s (% of one core; CPU steal ${(100 * steal()).toFixed(1)} %, loadavg now ${loadavg().map((l) => l.toFixed(2)).join(" ")})`)
const width = Math.max(...rows.map((r) => r[0].length))
for (const [name, value, target, ok] of rows) {
  console.log(`  ${name.padEnd(width)}  ${value.padStart(9)}  ${target.padEnd(9)} ${ok}`)
}
process.exit(0)
