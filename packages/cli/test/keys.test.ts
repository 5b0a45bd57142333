/**
 * `keys create|list|revoke` run as a person runs them, against the real Postgres (a schema of this
 * file's own, migrated by the CLI's first command): the key is printed once and stored only as its
 * hash, listings are per tenant, a revocation is recorded once.
 */
import { randomBytes } from "node:crypto"
import { hashApiKey, parseApiKey, parseApiKeyPrefix } from "@orbit/crypto"
import { postgres } from "@orbit/db"
import { afterAll, describe, expect, it } from "vitest"
import { DATABASE_URL, orbit } from "./cli.ts"

const schema = `tcli${Date.now().toString(36)}${randomBytes(3).toString("hex")}`
const env = { DATABASE_URL, ORBIT_DB_SCHEMA: schema }
const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => undefined, connection: { search_path: schema } })

interface Listed {
  readonly id: string
  readonly prefix: string
  readonly mode: string
  readonly kind: string
  readonly created: string
  readonly state: string
}

/** `keys list` output: one tab-separated line per key. */
const listKeys = async (tenant: string): Promise<Array<Listed>> => {
  const r = await orbit(["keys", "list", "--tenant", tenant], env)
  expect(r.code, r.stderr).toBe(0)
  return r.stdout.split("\n").filter((l) => l !== "").map((line) => {
    const [id, prefix, mode, kind, created, state, ...rest] = line.split("\t")
    expect(rest).toEqual([])
    return { id: id!, prefix: prefix!, mode: mode!, kind: kind!, created: created!, state: state! }
  })
}

const createKey = async (args: Array<string>) => {
  const r = await orbit(["keys", "create", ...args], env)
  expect(r.code, r.stderr).toBe(0)
  const lines = r.stdout.split("\n")
  expect(lines).toHaveLength(2) // the key, then the final newline: nothing else on stdout
  expect(lines[1]).toBe("")
  return lines[0]!
}

afterAll(async () => {
  await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await sql.end()
})

describe("orbit keys (real Postgres)", () => {
  const tenant = `acme_${randomBytes(3).toString("hex")}`
  let secretKey = ""
  let publicKey = ""

  it("keys create prints the new key alone and stores only its SHA-256 hash", async () => {
    secretKey = await createKey(["--tenant", tenant])
    publicKey = await createKey(["--tenant", tenant, "--mode", "test", "--public"])
    expect(parseApiKeyPrefix(secretKey)).toEqual({ mode: "live", kind: "secret" })
    expect(parseApiKeyPrefix(publicKey)).toEqual({ mode: "test", kind: "public" })
    // Keys are created with their checksum, so the API can refuse a mistyped one without a lookup.
    expect([parseApiKey(secretKey)?.format, parseApiKey(publicKey)?.format]).toEqual(["checksummed", "checksummed"])

    const rows = await sql<Array<Record<string, unknown>>>`SELECT * FROM api_keys WHERE tenant_id = ${tenant} ORDER BY created_at`
    expect(rows.map((r) => [r.mode, r.kind, r.key_hash, r.revoked_at])).toEqual([
      ["live", "secret", hashApiKey(secretKey), null],
      ["test", "public", hashApiKey(publicKey), null]
    ])
    // The cleartext is in no column.
    for (const row of rows) for (const value of Object.values(row)) expect(String(value)).not.toContain(secretKey.slice(11))
  })

  it("keys list shows the tenant's keys by prefix, oldest first, and no other tenant's", async () => {
    const listed = await listKeys(tenant)
    const ids = (await sql<Array<{ id: string }>>`SELECT id FROM api_keys WHERE tenant_id = ${tenant} ORDER BY created_at`).map((r) => r.id)
    expect(listed).toEqual([
      { id: ids[0], prefix: `${secretKey.slice(0, 15)}…`, mode: "live", kind: "secret", created: expect.any(String), state: "active" },
      { id: ids[1], prefix: `${publicKey.slice(0, 15)}…`, mode: "test", kind: "public", created: expect.any(String), state: "active" }
    ])
    for (const k of listed) expect(new Date(k.created).toISOString()).toBe(k.created)
    expect(await listKeys(`other_${tenant}`)).toEqual([])
  })

  it("keys revoke marks one key revoked, once; the other stays active", async () => {
    const [first, second] = await listKeys(tenant)
    const r = await orbit(["keys", "revoke", first!.id], env)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe(`revoked ${first!.id}\n`)

    const afterFirst = await listKeys(tenant)
    expect(afterFirst[0]!.state).toMatch(/^revoked \d{4}-\d\d-\d\dT[\d:.]+Z$/)
    expect(afterFirst[1]).toEqual(second)

    // Revoking again succeeds and keeps the first revocation time.
    const again = await orbit(["keys", "revoke", first!.id], env)
    expect(again.code, again.stderr).toBe(0)
    expect(await listKeys(tenant)).toEqual(afterFirst)
  })

  it("keys revoke of an unknown id exits 2 and changes nothing", async () => {
    const before = await listKeys(tenant)
    const r = await orbit(["keys", "revoke", "key_00000000000000000000"], env)
    expect(r.code).toBe(2)
    expect(r.stdout).toBe("")
    expect(r.stderr.split("\n")[0]).toBe("no key with id key_00000000000000000000")
    expect(await listKeys(tenant)).toEqual(before)
  })
})
