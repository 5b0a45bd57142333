import { createHash } from "node:crypto"
import { Db, type DbUnavailable, query } from "@orbit/db"
import { Cause, Config, Context, Effect, Layer, Schedule } from "effect"
import type { Principal } from "./ApiKeys.ts"

export type Claim =
  | { readonly _tag: "Claimed" }
  /** An earlier request with this key decided `pending` and gave it up (or died): finish its work. */
  | { readonly _tag: "TakenOver"; readonly pending: string }
  | { readonly _tag: "Replay"; readonly status: number; readonly response: unknown }
  | { readonly _tag: "Mismatch" }
  | { readonly _tag: "InProgress" }

const TTL = "24 hours"

/**
 * How long a claim is its request's own: longer than a write can take (the produce timeout plus
 * the read-your-writes wait). A claim older than this belongs to a request that died.
 */
const LEASE = "30 seconds"

/** Expired rows deleted per statement: each statement holds its row locks briefly. */
export const SWEEP_BATCH = 1000

/** How often expired keys are deleted (a Duration such as "1 minute"). */
const SweepInterval = Config.Duration("ORBIT_IDEMPOTENCY_SWEEP_INTERVAL").pipe(Config.withDefault("1 minute"))

/**
 * `Idempotency-Key` records. A key is claimed before anything is produced, so concurrent
 * repeats can't both register; the stored response holds the secret only as a SecretBox, and is
 * kept as the JSON text it was written as (a replay answers with the original's bytes).
 * The claim keeps what its request decided (`pending`, stored text the caller defines) until the
 * answer is stored: a request whose write failed or timed out gives the claim up (`abandon`), and
 * the next request with the key takes it over and appends the same event again, so a retry after
 * an unknown outcome registers one endpoint. A claim is also taken over once its lease has run out
 * (its request died before giving it up). A concurrent repeat of a live claim waits for its answer.
 * A key lives 24 hours: a background fiber of the layer deletes expired rows in batches every
 * ORBIT_IDEMPOTENCY_SWEEP_INTERVAL (default one minute), so the table holds one day of keys.
 */
export class Idempotency extends Context.Service<Idempotency, {
  claim(principal: Principal, key: string, body: unknown, pending: string): Effect.Effect<Claim, DbUnavailable>
  complete(principal: Principal, key: string, status: number, response: unknown): Effect.Effect<void, DbUnavailable>
  /** Forgets the claim: nothing was written, the key is free for any body again. */
  release(principal: Principal, key: string): Effect.Effect<void, DbUnavailable>
  /** Gives the claim up with its outcome unknown: the next request with the key takes it over. */
  abandon(principal: Principal, key: string): Effect.Effect<void, DbUnavailable>
  /** Deletes every expired key, `batch` rows per statement; the number deleted. */
  deleteExpired(batch?: number): Effect.Effect<number, DbUnavailable>
}>()("@orbit/registration/Idempotency") {
  static readonly layer = Layer.effect(
    Idempotency,
    Effect.gen(function*() {
      const { sql } = yield* Db

      const claim = Effect.fn("Idempotency.claim")(function*(p: Principal, key: string, body: unknown, pending: string) {
        const hash = createHash("sha256").update(JSON.stringify(body)).digest("hex")
        for (let i = 0; i < 100; i++) {
          const rows = yield* query(() =>
            sql.begin(async (tx) => {
              await tx`DELETE FROM idempotency_keys
                WHERE tenant_id = ${p.tenantId} AND mode = ${p.mode} AND key = ${key}
                  AND created_at < now() - ${TTL}::interval`
              const inserted = await tx`INSERT INTO idempotency_keys (tenant_id, mode, key, request_hash, pending, claimed_at)
                VALUES (${p.tenantId}, ${p.mode}, ${key}, ${hash}, ${pending}, now()) ON CONFLICT DO NOTHING RETURNING key`
              if (inserted.length > 0) return "claimed" as const
              const taken = await tx<Array<{ pending: string }>>`UPDATE idempotency_keys SET claimed_at = now()
                WHERE tenant_id = ${p.tenantId} AND mode = ${p.mode} AND key = ${key}
                  AND request_hash = ${hash} AND status IS NULL AND pending IS NOT NULL
                  AND (claimed_at IS NULL OR claimed_at < now() - ${LEASE}::interval)
                RETURNING pending`
              if (taken.length > 0) return { pending: taken[0]!.pending }
              return await tx<Array<{ request_hash: string; status: number | null; response: string | null }>>`
                SELECT request_hash, status, response FROM idempotency_keys
                WHERE tenant_id = ${p.tenantId} AND mode = ${p.mode} AND key = ${key}`
            })
          )
          if (rows === "claimed") return { _tag: "Claimed" } as Claim
          if (!Array.isArray(rows)) return { _tag: "TakenOver", pending: rows.pending } as Claim
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
          sql`UPDATE idempotency_keys SET status = ${status}, response = ${JSON.stringify(response)}, pending = NULL
            WHERE tenant_id = ${p.tenantId} AND mode = ${p.mode} AND key = ${key}`
        ).pipe(Effect.asVoid)

      const release = (p: Principal, key: string) =>
        query(() =>
          sql`DELETE FROM idempotency_keys
            WHERE tenant_id = ${p.tenantId} AND mode = ${p.mode} AND key = ${key} AND status IS NULL`
        ).pipe(Effect.asVoid)

      const abandon = (p: Principal, key: string) =>
        query(() =>
          sql`UPDATE idempotency_keys SET claimed_at = NULL
            WHERE tenant_id = ${p.tenantId} AND mode = ${p.mode} AND key = ${key} AND status IS NULL`
        ).pipe(Effect.asVoid)

      // Rows a claim holds locked are skipped, not waited for: the claim deletes its own expired row.
      const deleteExpired = Effect.fn("Idempotency.deleteExpired")(function*(batch: number = SWEEP_BATCH) {
        let total = 0
        for (;;) {
          const { count } = yield* query(() =>
            sql`DELETE FROM idempotency_keys WHERE (tenant_id, mode, key) IN (
              SELECT tenant_id, mode, key FROM idempotency_keys
              WHERE created_at < now() - ${TTL}::interval
              LIMIT ${batch} FOR UPDATE SKIP LOCKED)`
          )
          total += count
          if (count < batch) return total
        }
      })

      const sweep = deleteExpired().pipe(
        Effect.flatMap((deleted) => deleted > 0 ? Effect.logInfo("expired idempotency keys deleted", { deleted }) : Effect.void),
        Effect.catchCause((cause) => Effect.logWarning("deleting expired idempotency keys failed; will try again", { cause: String(Cause.squash(cause)) }))
      )
      yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(yield* SweepInterval)))

      return Idempotency.of({ claim, complete, release, abandon, deleteExpired })
    })
  )
}
