/**
 * The API fuzz run at any size: `npm run fuzz:api -w @orbit/test -- --runs 200000 --seed 7`
 * (with the broker up: `npm run infra:start`). `--runs` counts requests (rounded up to whole
 * batches); `--seed` defaults to a fresh one, printed so a failure can be replayed;
 * `--concurrency` sets the requests in flight. It starts its own platform (a fresh schema and
 * topic prefix, dropped at the end), exactly as the e2e test does.
 */
import { parseArgs } from "node:util"
import { prepareFuzz, runFuzz } from "../src/ApiFuzz.ts"
import { startPlatform, uniqueTenant } from "../src/Platform.ts"

const BATCH = 50
const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "200000" },
    seed: { type: "string" },
    concurrency: { type: "string", default: "8" }
  }
})
const requests = Number(values.runs)
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed)
const concurrency = Number(values.concurrency)
if (!Number.isSafeInteger(requests) || requests < 1 || !Number.isSafeInteger(seed) || !Number.isSafeInteger(concurrency) || concurrency < 1) {
  console.error("usage: npm run fuzz:api -w @orbit/test -- [--runs <requests>] [--seed <integer>] [--concurrency <n>]")
  process.exit(2)
}

const runs = Math.ceil(requests / BATCH)
console.log(`api fuzz: seed ${seed}, ${runs} batches of ${BATCH} requests, ${concurrency} in flight`)
const platform = await startPlatform({ env: { ORBIT_RATE_LIMIT_PER_SECOND: "1000000" } })
let failed = false
try {
  const world = await prepareFuzz(platform, uniqueTenant(), uniqueTenant())
  const stats = await runFuzz(platform, world, { runs, seed, batchSize: BATCH, concurrency, log: (line) => console.log(line) })
  const unhandled = (platform.logs.get("registration") ?? []).filter((l) => l.includes("unhandled error"))
  if (unhandled.length > 0) throw new Error(`the registration service logged unhandled errors:\n${unhandled.join("\n")}`)
  console.log(`api fuzz passed: seed ${seed}, ${stats.requests} requests, ${(stats.wallMs / 1000).toFixed(1)} s (snapshots ${(stats.snapshotMs / 1000).toFixed(1)} s), statuses ${JSON.stringify(stats.statuses)}, connections closed by the server ${stats.clientErrors}, resent ${stats.resent}`)
} catch (e) {
  failed = true
  console.error(e instanceof Error ? e.message : e)
  console.error(`api fuzz FAILED (seed ${seed}); replay with --seed ${seed} --runs ${requests}`)
} finally {
  await platform.close()
}
process.exit(failed ? 1 : 0)
