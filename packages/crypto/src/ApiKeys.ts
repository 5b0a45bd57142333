/**
 * API keys (API.md §1): `dv_<mode>_<kind>_<random><checksum>`, mode `live|test`, kind `sk`
 * (secret, full access) or `pk` (public, read-only). Only the SHA-256 hash is stored; the key is
 * shown once.
 *
 * The checksum (as in GitHub's tokens) is the CRC32 of everything before it — the type prefix
 * and the random part — as 6 base62 digits. It is no secret: it lets the server refuse a mistyped
 * or invented key without asking the database, since a random string has about one chance in four
 * billion of carrying a valid checksum. Keys issued before it existed (43 random chars, no
 * checksum) keep working: the two forms differ in length, so a 49-char key is always checked and
 * a 43-char key is always looked up.
 */
import { createHash, randomBytes } from "node:crypto"
import { crc32 } from "node:zlib"

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

/** How a well-formed key is written: with its checksum, or in the form issued before checksums. */
export type ApiKeyFormat = "checksummed" | "legacy"

export interface ParsedApiKey {
  readonly mode: ApiKeyMode
  readonly kind: ApiKeyKind
  readonly format: ApiKeyFormat
}

export const RANDOM_CHARS = 43 // 43 base62 chars ≈ 256 bits
export const CHECKSUM_CHARS = 6 // 62^6 > 2^32: any CRC32 fits
const BASE62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
const FORMAT = new RegExp(`^dv_(live|test)_(sk|pk)_([A-Za-z0-9]{${RANDOM_CHARS}}|[A-Za-z0-9]{${RANDOM_CHARS + CHECKSUM_CHARS}})$`)

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

/** The checksum of a key's body (type prefix and random part): its CRC32 in 6 base62 digits, most significant first. */
export const apiKeyChecksum = (body: string): string => {
  let n = crc32(body)
  let out = ""
  for (let i = 0; i < CHECKSUM_CHARS; i++) {
    out = BASE62[n % 62] + out
    n = Math.floor(n / 62)
  }
  return out
}

export const hashApiKey = (key: string): string => createHash("sha256").update(key, "utf8").digest("hex")

export const generateApiKey = (
  { mode, kind }: { readonly mode: ApiKeyMode; readonly kind: ApiKeyKind }
): GeneratedApiKey => {
  const typePrefix = `dv_${mode}_${kind === "secret" ? "sk" : "pk"}_`
  const body = typePrefix + randomBase62(RANDOM_CHARS)
  const key = body + apiKeyChecksum(body)
  return { key, hash: hashApiKey(key), prefix: key.slice(0, typePrefix.length + 4) }
}

/**
 * Mode, kind and form of a well-formed key, or `undefined` for anything malformed, a checksummed
 * key whose checksum does not match included. Pure and cheap: it runs before any lookup.
 */
export const parseApiKey = (key: string): ParsedApiKey | undefined => {
  const m = FORMAT.exec(key)
  if (m === null) return undefined
  const format: ApiKeyFormat = m[3]!.length === RANDOM_CHARS ? "legacy" : "checksummed"
  if (format === "checksummed") {
    const split = key.length - CHECKSUM_CHARS
    if (apiKeyChecksum(key.slice(0, split)) !== key.slice(split)) return undefined
  }
  return { mode: m[1] as ApiKeyMode, kind: m[2] === "sk" ? "secret" : "public", format }
}

/** Mode and kind of a well-formed key, or `undefined` for anything malformed (see parseApiKey). */
export const parseApiKeyPrefix = (
  key: string
): { readonly mode: ApiKeyMode; readonly kind: ApiKeyKind } | undefined => {
  const parsed = parseApiKey(key)
  return parsed && { mode: parsed.mode, kind: parsed.kind }
}
