/**
 * The API fuzz run (src/ApiFuzz.ts) at CI size: a fixed seed, 10,000 generated requests against
 * the real registration service. No 5xx, the right content type and envelope on every answer, and
 * no state change from a refused request. `npm run fuzz:api` runs it longer with any seed.
 */
import { afterAll, beforeAll, expect, it } from "vitest"
import { prepareFuzz, runFuzz, type FuzzWorld } from "../src/ApiFuzz.ts"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

const SEED = 20261206
const BATCH = 50
const RUNS = 200

let platform: Platform
let world: FuzzWorld
beforeAll(async () => {
  // The per-key rate limit would answer most of the run 429 instead of exercising the routes.
  platform = await startPlatform({ env: { ORBIT_RATE_LIMIT_PER_SECOND: "1000000" } })
  world = await prepareFuzz(platform, uniqueTenant(), uniqueTenant())
})
afterAll(() => platform?.close())

it(`${RUNS * BATCH} generated requests (seed ${SEED}): no 5xx, the envelope on every answer, no state change from a refusal`, async () => {
  const stats = await runFuzz(platform, world, { runs: RUNS, seed: SEED, batchSize: BATCH, concurrency: 8 })
  console.log(`api fuzz: seed ${SEED}, ${stats.requests} requests in ${stats.batches} batches, ${(stats.wallMs / 1000).toFixed(1)} s, statuses ${JSON.stringify(stats.statuses)}, connections closed by the server ${stats.clientErrors}, resent ${stats.resent}`)
  expect(stats.requests).toBeGreaterThanOrEqual(10_000)
  // The run reached the routes: most requests were authenticated and some writes succeeded.
  expect(stats.statuses[201] ?? 0).toBeGreaterThan(0)
  expect(stats.statuses[422] ?? 0).toBeGreaterThan(100)
  const logs = (platform.logs.get("registration") ?? []).join("\n")
  expect(logs).not.toContain("unhandled error")
}, 600_000)
