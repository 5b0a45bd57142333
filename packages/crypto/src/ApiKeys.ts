/**
 * API keys (API.md §1): `dv_<mode>_<kind>_<random>`, mode `live|test`, kind `sk` (secret, full
 * access) or `pk` (public, read-only). Only the SHA-256 hash is stored; the key is shown once.
 */
import { createHash, randomBytes } from "node:crypto"

export type ApiKeyMode = "live" | "test"
export type ApiKeyKind = "secret" | "public"

export interface GeneratedApiKey {
  /** The cleartext key — show once, never store. */
  readonly key: string
  /** SHA-256 hex of the whole key; what is stored and looked up. */
  readonly hash: string
  /** Type prefix plus the first 4 random chars (e.g. `dv_live_sk_Ab3x`), safe to display in listings. */
  readonly prefix: string
}

const RANDOM_CHARS = 43 // 43 base62 chars ≈ 256 bits
const BASE62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
// ≥ 32 random chars per API.md; the upper bound just stops absurd inputs from being hashed.
const FORMAT = /^dv_(live|test)_(sk|pk)_[A-Za-z0-9_-]{32,256}$/

// Rejection sampling keeps base62 unbiased: bytes ≥ 248 (= 4 × 62) are discarded.
const randomBase62 = (n: number): string => {
  let out = ""
  while (out.length < n) {
    for (const b of randomBytes(n + 8)) {
      if (b < 248) out += BASE62[b % 62]
      if (out.length === n) break
    }
  }
  return out
}

export const hashApiKey = (key: string): string => createHash("sha256").update(key, "utf8").digest("hex")

export const generateApiKey = (
  { mode, kind }: { readonly mode: ApiKeyMode; readonly kind: ApiKeyKind }
): GeneratedApiKey => {
  const typePrefix = `dv_${mode}_${kind === "secret" ? "sk" : "pk"}_`
  const key = typePrefix + randomBase62(RANDOM_CHARS)
  return { key, hash: hashApiKey(key), prefix: key.slice(0, typePrefix.length + 4) }
}

/** Mode and kind of a well-formed key, or `undefined` for anything malformed. */
export const parseApiKeyPrefix = (
  key: string
): { readonly mode: ApiKeyMode; readonly kind: ApiKeyKind } | undefined => {
  const m = FORMAT.exec(key)
  if (m === null) return undefined
  return { mode: m[1] as ApiKeyMode, kind: m[2] === "sk" ? "secret" : "public" }
}
