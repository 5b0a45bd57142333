import { generateApiKey } from "@orbit/crypto"
import { Db, query } from "@orbit/db"
import { randomBase62 } from "@orbit/domain"
import { Effect } from "effect"

/** `keys create`: stores only the hash and returns the cleartext key, which is shown once. */
export const createKey = Effect.fn("Keys.create")(function*(options: {
  tenant: string
  mode: "live" | "test"
  kind: "secret" | "public"
}) {
  const { sql } = yield* Db
  const { key, hash, prefix } = generateApiKey({ mode: options.mode, kind: options.kind })
  const id = `key_${randomBase62(20)}`
  yield* query(() =>
    sql`INSERT INTO api_keys (id, tenant_id, mode, kind, key_hash, prefix)
      VALUES (${id}, ${options.tenant}, ${options.mode}, ${options.kind}, ${hash}, ${prefix})`
  )
  return { id, key }
})

export const listKeys = Effect.fn("Keys.list")(function*(tenant: string) {
  const { sql } = yield* Db
  return yield* query(() =>
    sql<Array<{ id: string; mode: string; kind: string; prefix: string; created_at: Date; revoked_at: Date | null }>>`
      SELECT id, mode, kind, prefix, created_at, revoked_at FROM api_keys WHERE tenant_id = ${tenant} ORDER BY created_at`
  )
})

export const revokeKey = Effect.fn("Keys.revoke")(function*(id: string) {
  const { sql } = yield* Db
  const rows = yield* query(() =>
    sql`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = ${id} RETURNING id`
  )
  return rows.length > 0
})
