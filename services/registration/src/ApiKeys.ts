import { Db, type DbUnavailable, query } from "@orbit/db"
import { hashApiKey, parseApiKeyPrefix } from "@orbit/crypto"
import type { Mode } from "@orbit/domain"
import { Context, Effect, Layer, Schema } from "effect"

/** Who is calling: one key of one tenant, in one mode. */
export interface Principal {
  readonly keyId: string
  readonly tenantId: string
  readonly mode: Mode
  readonly canWrite: boolean
}

export class InvalidApiKey extends Schema.TaggedError<InvalidApiKey>()("InvalidApiKey", {}) {}

/** Revocations must bite within 5 s everywhere (`test/e2e/auth-and-tenancy.test.ts` waits for the refusal), so lookups are cached for 2 s only. */
const CACHE_TTL_MS = 2000
const CACHE_MAX = 10_000

export class ApiKeys extends Context.Service<ApiKeys, {
  /** `fresh` skips the cache: writes always see the key's current state and a reachable Postgres. */
  authenticate(key: string | undefined, options?: { fresh?: boolean }): Effect.Effect<Principal, InvalidApiKey | DbUnavailable>
  /** The key's principal if the cache holds it, still valid; otherwise undefined (authenticate decides). */
  cached(key: string | undefined): Principal | undefined
}>()("@orbit/registration/ApiKeys") {
  static readonly layer = Layer.effect(
    ApiKeys,
    Effect.gen(function*() {
      const { sql } = yield* Db
      const cache = new Map<string, { principal: Principal | undefined; expires: number }>()

      const lookup = (hash: string) =>
        query(() =>
          sql<Array<{ id: string; tenant_id: string; mode: Mode; kind: "secret" | "public" }>>`
            SELECT id, tenant_id, mode, kind FROM api_keys WHERE key_hash = ${hash} AND revoked_at IS NULL`
        ).pipe(
          Effect.map((rows): Principal | undefined =>
            rows[0] && { keyId: rows[0].id, tenantId: rows[0].tenant_id, mode: rows[0].mode, canWrite: rows[0].kind === "secret" }
          )
        )

      // Untraced: it runs inside every route's span, on every request (see EndpointStore for the cost).
      const authenticate = Effect.fnUntraced(function*(key: string | undefined, options?: { fresh?: boolean }) {
        // Malformed keys are refused before any lookup, with the same answer as unknown keys.
        if (key === undefined || parseApiKeyPrefix(key) === undefined) return yield* new InvalidApiKey()
        const hash = hashApiKey(key)
        const now = Date.now()
        const cached = cache.get(hash)
        let principal: Principal | undefined
        if (cached && cached.expires > now && !options?.fresh) {
          principal = cached.principal
        } else {
          principal = yield* lookup(hash)
          if (cache.size >= CACHE_MAX) cache.clear()
          cache.set(hash, { principal, expires: now + CACHE_TTL_MS })
        }
        if (principal === undefined) return yield* new InvalidApiKey()
        return principal
      })

      const cached = (key: string | undefined) => {
        if (key === undefined || parseApiKeyPrefix(key) === undefined) return undefined
        const entry = cache.get(hashApiKey(key))
        return entry !== undefined && entry.expires > Date.now() ? entry.principal : undefined
      }

      return ApiKeys.of({ authenticate, cached })
    })
  )
}
