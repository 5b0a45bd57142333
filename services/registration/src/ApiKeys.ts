import { Db, type DbUnavailable, query } from "@orbit/db"
import { hashApiKey, parseApiKey } from "@orbit/crypto"
import type { Mode } from "@orbit/domain"
import { Context, Effect, Layer, Schema } from "effect"
import { Lru } from "./Lru.ts"
import { KeyLookupLimiter } from "./RateLimiter.ts"

/** Who is calling: one key of one tenant, in one mode. */
export interface Principal {
  readonly keyId: string
  readonly tenantId: string
  readonly mode: Mode
  readonly canWrite: boolean
}

export class InvalidApiKey extends Schema.TaggedError<InvalidApiKey>()("InvalidApiKey", {}) {}

/**
 * What `authenticate` would refuse a key with at once, from the caches and the client's bucket
 * alone: `invalid` (malformed, wrong checksum, or found unknown or revoked recently) or `exhausted`
 * (neither cache knows the key and the client's address has no lookup left).
 */
export type EarlyRefusal = { readonly refused: "invalid" } | { readonly refused: "exhausted"; readonly retryAfterSeconds: number }

const INVALID: EarlyRefusal = { refused: "invalid" }

/** The client's address has used up its lookups of unknown keys (KeyLookupLimiter). */
export class KeyLookupsExhausted extends Schema.TaggedError<KeyLookupsExhausted>()("KeyLookupsExhausted", {
  retryAfterSeconds: Schema.Int
}) {}

/** Revocations must bite within 5 s everywhere (`test/e2e/auth-and-tenancy.test.ts` waits for the refusal), so valid keys are cached for 2 s only. */
const CACHE_TTL_MS = 2000
/** Only keys found valid enter this cache, so its bound is reached by real keys, never by a flood. */
const VALID_MAX = 100_000
/**
 * Keys found unknown or revoked, in a cache of their own: a flood of invented keys churns this one
 * only. An unknown key does not start to exist later (keys are random) and a revoked key stays
 * revoked, so these entries may live longer than the valid ones.
 */
const INVALID_MAX = 10_000
const INVALID_TTL_MS = 30_000

export class ApiKeys extends Context.Service<ApiKeys, {
  /**
   * The key's principal. A malformed key, or one whose checksum does not match, is refused before
   * any lookup; a key neither cache knows is looked up only if `client` (the bucket of the
   * caller's address) has a lookup left. `fresh` skips the valid-key cache: writes always see the
   * key's current state and a reachable Postgres.
   */
  authenticate(
    key: string | undefined,
    options: { readonly client: string; readonly fresh?: boolean }
  ): Effect.Effect<Principal, InvalidApiKey | KeyLookupsExhausted | DbUnavailable>
  /** The key's principal if the cache holds it, still valid; otherwise undefined (authenticate decides). */
  cached(key: string | undefined): Principal | undefined
  /**
   * The refusal `authenticate` would give this key from `client` without a lookup, or undefined
   * when it would look the key up or knows it valid. Synchronous and without Effect, for the
   * server's early refusals (server/EarlyRefusals.ts); it takes no lookup token.
   */
  refusal(key: string | undefined, client: string): EarlyRefusal | undefined
}>()("@orbit/registration/ApiKeys") {
  static readonly layer = ApiKeys.layerWith({})

  /** `cacheTtlMs` replaces how long a valid key is served from the cache (tests). */
  static layerWith(options: { readonly cacheTtlMs?: number }) {
    const ttl = options.cacheTtlMs ?? CACHE_TTL_MS
    return Layer.effect(
      ApiKeys,
      Effect.gen(function*() {
        const { sql } = yield* Db
        const limiter = yield* KeyLookupLimiter
        // An entry past `expires` stays: it marks a key found valid before, whose refresh is no guess.
        const valid = new Lru<string, { principal: Principal; expires: number }>(VALID_MAX)
        const invalid = new Lru<string, number>(INVALID_MAX)

        type Row = { id: string; tenant_id: string; mode: Mode; kind: "secret" | "public" }
        // One query per key at a time: when a busy key's cache entry expires, every request that
        // arrives before the refresh answers waits for that one query instead of sending its own.
        const inflight = new Map<string, Promise<Array<Row>>>()
        const lookup = (hash: string) =>
          query(() => {
            let rows = inflight.get(hash)
            if (rows === undefined) {
              rows = Promise.resolve(
                sql<Array<Row>>`SELECT id, tenant_id, mode, kind FROM api_keys WHERE key_hash = ${hash} AND revoked_at IS NULL`
              ).finally(() => inflight.delete(hash))
              inflight.set(hash, rows)
            }
            return rows
          }).pipe(
            Effect.map((rows): Principal | undefined =>
              rows[0] && { keyId: rows[0].id, tenantId: rows[0].tenant_id, mode: rows[0].mode, canWrite: rows[0].kind === "secret" }
            )
          )

        // Untraced: it runs inside every route's span, on every request (see EndpointStore for the cost).
        const authenticate = Effect.fnUntraced(function*(key: string | undefined, options: { readonly client: string; readonly fresh?: boolean }) {
          // Malformed keys and wrong checksums are refused before any lookup, with the same answer as unknown keys.
          if (key === undefined || parseApiKey(key) === undefined) return yield* new InvalidApiKey()
          const hash = hashApiKey(key)
          const now = Date.now()
          const known = valid.get(hash)
          if (known !== undefined && known.expires > now && !options.fresh) return known.principal
          // A request that joins a lookup of this key already in flight sends no query: it takes no
          // token, so a burst of requests with a key not cached yet is not refused by the bucket.
          let took = false
          if (known === undefined) {
            const refusedUntil = invalid.get(hash)
            if (refusedUntil !== undefined && refusedUntil > now) return yield* new InvalidApiKey()
            if (!inflight.has(hash)) {
              const admitted = limiter.take(options.client)
              if (!admitted.allowed) return yield* new KeyLookupsExhausted({ retryAfterSeconds: admitted.retryAfterSeconds })
              took = true
            }
          }
          const principal = yield* lookup(hash)
          if (principal === undefined) {
            valid.delete(hash)
            invalid.set(hash, now + INVALID_TTL_MS)
            return yield* new InvalidApiKey()
          }
          if (took) limiter.refund(options.client)
          invalid.delete(hash)
          valid.set(hash, { principal, expires: now + ttl })
          return principal
        })

        const cached = (key: string | undefined) => {
          if (key === undefined || parseApiKey(key) === undefined) return undefined
          const entry = valid.get(hashApiKey(key))
          return entry !== undefined && entry.expires > Date.now() ? entry.principal : undefined
        }

        const refusal = (key: string | undefined, client: string): EarlyRefusal | undefined => {
          if (key === undefined || parseApiKey(key) === undefined) return INVALID
          const hash = hashApiKey(key)
          if (valid.get(hash) !== undefined) return undefined
          const refusedUntil = invalid.get(hash)
          if (refusedUntil !== undefined && refusedUntil > Date.now()) return INVALID
          if (inflight.has(hash)) return undefined
          const retryAfterSeconds = limiter.refusal(client)
          return retryAfterSeconds === undefined ? undefined : { refused: "exhausted", retryAfterSeconds }
        }

        return ApiKeys.of({ authenticate, cached, refusal })
      })
    )
  }
}
