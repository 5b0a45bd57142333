/**
 * ApiKeys against the real Postgres (a schema of its own): which keys cost a lookup (a burst of one
 * key not cached yet costs one), and that lookups of unknown keys never push a valid key out of the
 * cache. The lookup limiter is a double that counts the lookups it admits.
 */
import { randomBytes } from "node:crypto"
import { generateApiKey } from "@orbit/crypto"
import { Db, postgres } from "@orbit/db"
import { Effect, Exit, Layer, ManagedRuntime } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ApiKeys } from "../src/ApiKeys.ts"
import { KeyLookupLimiter } from "../src/RateLimiter.ts"

const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const BASE62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
const randomChars = (n: number) => Array.from(randomBytes(n), (b) => BASE62[b % 62]).join("")

describe("ApiKeys (real Postgres)", () => {
  const schema = `tkeys${Date.now().toString(36)}${randomBytes(3).toString("hex")}`
  const sql = postgres(DATABASE_URL, { max: 2, onnotice: () => undefined, connection: { search_path: schema } })
  const admitted = { count: 0, refunded: 0, allow: true }
  const limiter = Layer.succeed(KeyLookupLimiter, KeyLookupLimiter.of({
    take: () => {
      admitted.count++
      return admitted.allow ? { allowed: true } : { allowed: false, retryAfterSeconds: 7 }
    },
    refund: () => {
      admitted.refunded++
    },
    refusal: () => (admitted.allow ? undefined : 7)
  }))
  let runtime: ManagedRuntime.ManagedRuntime<ApiKeys, unknown>
  let keys: ApiKeys["Service"]

  // A cache period far longer than the test, so that only eviction can take a valid key out of the cache.
  beforeAll(async () => {
    Object.assign(process.env, { ORBIT_DB_SCHEMA: schema, DATABASE_URL, ORBIT_DB_POOL_SIZE: "10", PGAPPNAME: schema })
    runtime = ManagedRuntime.make(ApiKeys.layerWith({ cacheTtlMs: 3_600_000 }).pipe(Layer.provide(Layer.merge(Db.layer, limiter))))
    keys = await runtime.runPromise(Effect.gen(function*() {
      return yield* ApiKeys
    }))
  })

  afterAll(async () => {
    await runtime.dispose()
    await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await sql.end()
  })

  const insert = async (key: { hash: string; prefix: string }, tenant = "tenant_a") => {
    const id = `key_${randomBytes(8).toString("hex")}`
    await sql`INSERT INTO api_keys (id, tenant_id, mode, kind, key_hash, prefix) VALUES (${id}, ${tenant}, 'live', 'secret', ${key.hash}, ${key.prefix})`
    return id
  }
  const authenticate = (key: string, fresh = false) =>
    runtime.runPromise(Effect.exit(keys.authenticate(key, { client: "203.0.113.7", fresh })))
  const failureTag = (exit: Exit.Exit<unknown, { _tag: string }>) =>
    Exit.isFailure(exit) ? exit.cause.reasons.map((r) => (r._tag === "Fail" ? r.error._tag : r._tag)).join(",") : "success"

  it("a valid key stays cached through a flood of more unknown keys than the cache of refusals holds", async () => {
    const valid = generateApiKey({ mode: "live", kind: "secret" })
    const keyId = await insert(valid)
    expect(Exit.isSuccess(await authenticate(valid.key))).toBe(true)
    expect(keys.cached(valid.key)?.keyId).toBe(keyId)

    // Keys in the form issued before checksums: well-formed, so each one is looked up.
    const flood = Array.from({ length: 10_050 }, () => `dv_live_sk_${randomChars(43)}`)
    const before = admitted.count
    for (let i = 0; i < flood.length; i += 50) {
      const exits = await Promise.all(flood.slice(i, i + 50).map((k) => authenticate(k)))
      for (const exit of exits) expect(failureTag(exit)).toBe("InvalidApiKey")
    }
    expect(admitted.count - before).toBe(flood.length)
    expect(keys.cached(valid.key)?.keyId).toBe(keyId)
    // The most recent refusals are still answered from their cache, without another lookup.
    const again = admitted.count
    expect(failureTag(await authenticate(flood.at(-1)!))).toBe("InvalidApiKey")
    expect(admitted.count).toBe(again)
  }, 120_000)

  it("keys with a wrong checksum are refused without a lookup; a valid key's lookup is given back", async () => {
    const before = admitted.count
    for (let i = 0; i < 1000; i++) {
      expect(failureTag(await authenticate(`dv_live_sk_${randomChars(49)}`))).toBe("InvalidApiKey")
    }
    const real = generateApiKey({ mode: "test", kind: "public" })
    await insert(real)
    expect(failureTag(await authenticate(real.key.slice(0, -1) + (real.key.endsWith("A") ? "B" : "A")))).toBe("InvalidApiKey")
    expect(failureTag(await authenticate(real.key.replace("dv_test_", "dv_live_")))).toBe("InvalidApiKey")
    expect(admitted.count).toBe(before)

    const refunded = admitted.refunded
    expect(failureTag(await authenticate(real.key))).toBe("success")
    expect([admitted.count - before, admitted.refunded - refunded]).toEqual([1, 1])
  })

  it("an address out of lookups gets KeyLookupsExhausted for unknown keys, while cached and known keys are served", async () => {
    const known = generateApiKey({ mode: "live", kind: "secret" })
    await insert(known)
    expect(failureTag(await authenticate(known.key))).toBe("success")
    admitted.allow = false
    try {
      const unknown = generateApiKey({ mode: "live", kind: "secret" }).key
      expect(failureTag(await authenticate(unknown))).toBe("KeyLookupsExhausted")
      expect(failureTag(await authenticate(known.key))).toBe("success")
      // A write re-reads a known key from Postgres: a key found valid before is no guess.
      expect(failureTag(await authenticate(known.key, true))).toBe("success")
      const legacy = { ...known, key: `dv_live_sk_${randomChars(43)}` }
      expect(failureTag(await authenticate(legacy.key))).toBe("KeyLookupsExhausted")
    } finally {
      admitted.allow = true
    }
  })

  it("refusal answers what authenticate refuses without a lookup, and nothing else, taking no lookup", async () => {
    const refusal = (key: string | undefined) => keys.refusal(key, "203.0.113.7")
    const before = admitted.count
    expect(refusal(undefined)).toEqual({ refused: "invalid" })
    expect(refusal(`dv_live_sk_${randomChars(49)}`)).toEqual({ refused: "invalid" })
    // Unknown to both caches: authenticate would look it up, so no refusal here.
    const unknown = `dv_live_sk_${randomChars(43)}`
    expect(refusal(unknown)).toBeUndefined()
    expect(admitted.count).toBe(before)
    // Found unknown once, then refused from the cache of refusals.
    expect(failureTag(await authenticate(unknown))).toBe("InvalidApiKey")
    expect(refusal(unknown)).toEqual({ refused: "invalid" })
    const known = generateApiKey({ mode: "live", kind: "secret" })
    await insert(known)
    expect(failureTag(await authenticate(known.key))).toBe("success")
    admitted.allow = false
    try {
      expect(refusal(generateApiKey({ mode: "live", kind: "secret" }).key)).toEqual({ refused: "exhausted", retryAfterSeconds: 7 })
      // A key found valid is never refused here, whatever its address's bucket.
      expect(refusal(known.key)).toBeUndefined()
    } finally {
      admitted.allow = true
    }
  })

  it("keys issued before checksums (43 chars, no checksum) are still looked up and served", async () => {
    const legacyKey = `dv_live_sk_${randomChars(43)}`
    const { createHash } = await import("node:crypto")
    const keyId = await insert({ hash: createHash("sha256").update(legacyKey).digest("hex"), prefix: legacyKey.slice(0, 15) })
    const exit = await authenticate(legacyKey)
    expect(Exit.isSuccess(exit) && exit.value.keyId).toBe(keyId)
  })

  /** Scans of api_keys so far, the pool's share included: its sessions are ended so that Postgres publishes their statistics. */
  const scans = async () => {
    await sql`SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = ${schema}`
    const [row] = await sql<Array<{ n: string }>>`
      SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS n FROM pg_stat_user_tables WHERE schemaname = ${schema} AND relname = 'api_keys'`
    return Number(row!.n)
  }

  it("concurrent requests with one key make one query", async () => {
    const key = generateApiKey({ mode: "live", kind: "secret" })
    await insert(key)
    const before = await scans()
    const exits = await Promise.all(Array.from({ length: 100 }, () => authenticate(key.key, true)))
    expect(exits.map(failureTag)).toEqual(Array(100).fill("success"))
    expect((await scans()) - before).toBe(1)
  }, 60_000)

  it("a burst of requests with a key not cached yet takes one lookup token, and gives it back", async () => {
    const key = generateApiKey({ mode: "live", kind: "secret" })
    await insert(key)
    const [taken, refunded] = [admitted.count, admitted.refunded]
    const exits = await Promise.all(Array.from({ length: 100 }, () => authenticate(key.key)))
    expect(exits.map(failureTag)).toEqual(Array(100).fill("success"))
    // The requests that joined the one lookup in flight took no token: a bucket smaller than the
    // burst refuses none of them.
    expect([admitted.count - taken, admitted.refunded - refunded]).toEqual([1, 1])
  })

  it("a revoked key is refused at the next lookup and then from the cache of refusals", async () => {
    const key = generateApiKey({ mode: "live", kind: "secret" })
    const keyId = await insert(key)
    expect(failureTag(await authenticate(key.key))).toBe("success")
    await sql`UPDATE api_keys SET revoked_at = now() WHERE id = ${keyId}`
    expect(failureTag(await authenticate(key.key, true))).toBe("InvalidApiKey")
    expect(keys.cached(key.key)).toBeUndefined()
    const before = admitted.count
    expect(failureTag(await authenticate(key.key))).toBe("InvalidApiKey")
    expect(admitted.count).toBe(before)
  })
})
