import { createHash } from "node:crypto"
import { Db, type DbUnavailable, query } from "@orbit/db"
import { Context, Effect, Layer } from "effect"
import type { Principal } from "./ApiKeys.ts"

export type Claim =
  | { readonly _tag: "Claimed" }
  | { readonly _tag: "Replay"; readonly status: number; readonly response: unknown }
  | { readonly _tag: "Mismatch" }
  | { readonly _tag: "InProgress" }

const TTL = "24 hours"

/**
 * `Idempotency-Key` records. A key is claimed before anything is produced, so concurrent
 * repeats can't both register; the stored response holds the secret only as a SecretBox, and is
 * kept as the JSON text it was written as (a replay answers with the original's bytes).
 */
export class Idempotency extends Context.Service<Idempotency, {
  claim(principal: Principal, key: string, body: unknown): Effect.Effect<Claim, DbUnavailable>
  complete(principal: Principal, key: string, status: number, response: unknown): Effect.Effect<void, DbUnavailable>
  release(principal: Principal, key: string): Effect.Effect<void, DbUnavailable>
}>()("@orbit/registration/Idempotency") {
  static readonly layer = Layer.effect(
    Idempotency,
    Effect.gen(function*() {
      const { sql } = yield* Db

      const claim = Effect.fn("Idempotency.claim")(function*(p: Principal, key: string, body: unknown) {
        const hash = createHash("sha256").update(JSON.stringify(body)).digest("hex")
        for (let i = 0; i < 100; i++) {
          const rows = yield* query(() =>
            sql.begin(async (tx) => {
              await tx`DELETE FROM idempotency_keys
                WHERE tenant_id = ${p.tenantId} AND mode = ${p.mode} AND key = ${key}
                  AND created_at < now() - ${TTL}::interval`
              const inserted = await tx`INSERT INTO idempotency_keys (tenant_id, mode, key, request_hash)
                VALUES (${p.tenantId}, ${p.mode}, ${key}, ${hash}) ON CONFLICT DO NOTHING RETURNING key`
              if (inserted.length > 0) return undefined
              return await tx<Array<{ request_hash: string; status: number | null; response: string | null }>>`
                SELECT request_hash, status, response FROM idempotency_keys
                WHERE tenant_id = ${p.tenantId} AND mode = ${p.mode} AND key = ${key}`
            })
          )
          if (rows === undefined) return { _tag: "Claimed" } as Claim
          const row = rows[0]
          if (row === undefined) continue
          if (row.request_hash !== hash) return { _tag: "Mismatch" } as Claim
          if (row.status !== null) {
            // The stored text, parsed: JSON.parse keeps the order of the original's fields, so the
            // replay serializes to the same bytes as the first answer.
            return { _tag: "Replay", status: row.status, response: JSON.parse(row.response ?? "null") } as Claim
          }
          // The first request is still running: wait for its answer rather than registering twice.
          yield* Effect.sleep("100 millis")
        }
        return { _tag: "InProgress" } as Claim
      })

      const complete = (p: Principal, key: string, status: number, response: unknown) =>
        query(() =>
          sql`UPDATE idempotency_keys SET status = ${status}, response = ${JSON.stringify(response)}
            WHERE tenant_id = ${p.tenantId} AND mode = ${p.mode} AND key = ${key}`
        ).pipe(Effect.asVoid)

      const release = (p: Principal, key: string) =>
        query(() =>
          sql`DELETE FROM idempotency_keys
            WHERE tenant_id = ${p.tenantId} AND mode = ${p.mode} AND key = ${key} AND status IS NULL`
        ).pipe(Effect.asVoid)

      return Idempotency.of({ claim, complete, release })
    })
  )
}
