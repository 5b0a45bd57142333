/**
 * AES-256-GCM encryption of endpoint secrets with a rotatable key ring.
 *
 * Key ring format (env `ORBIT_SECRET_KEYS`): `key-id:base64-32-byte-key,key-id2:…`.
 * The first key encrypts; every key decrypts, so a rotation is "prepend the new key,
 * reseal every endpoint's boxes, drop the old key".
 *
 * Box format: `v2.<keyId>.<iv>.<ciphertext>.<tag>` (base64url parts, 12-byte random IV).
 * The AAD binds the version, the key id and the box's place: tenant, mode, endpoint id and slot
 * (`current` or `previous` secret). A box opens only in the place it was sealed for, so a box
 * copied onto another endpoint, or from one slot into the other, fails authentication.
 * `v1` boxes (AAD = version and key id only) still open anywhere, until their key is retired.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from "node:crypto"
import { Config, Context, Effect, Layer, Redacted, Schema } from "effect"

/** A parsed key ring. Keys are `KeyObject`s: they never print their material when logged. */
export interface KeyRing {
  readonly primaryId: string
  readonly keys: ReadonlyMap<string, KeyObject>
}

/** Raised for a malformed key ring. The message never contains key material. */
export class KeyRingError extends Schema.TaggedError<KeyRingError>()("KeyRingError", {
  message: Schema.String
}) {}

/** Raised when a box cannot be opened. The message never contains plaintext or key material. */
export class SecretDecryptError extends Schema.TaggedError<SecretDecryptError>()("SecretDecryptError", {
  reason: Schema.Literals(["malformed", "unsupported-version", "unknown-key", "tampered"]),
  message: Schema.String
}) {}

/** Where a box belongs: it opens only with the same context it was sealed with. */
export interface SecretContext {
  readonly tenant_id: string
  readonly mode: string
  readonly endpoint_id: string
  /** `current` signs always; `previous` signs during a rotation's grace window. */
  readonly slot: "current" | "previous"
}

const ENV_NAME = "ORBIT_SECRET_KEYS"
const VERSION = "v2"
/** Boxes of this version carry no context; they still open, and are resealed as `v2` on the next write. */
const LEGACY_VERSION = "v1"
const KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16
// Key ids end up inside boxes, so keep them to a dot-free, URL-safe alphabet.
const KEY_ID = /^[A-Za-z0-9_-]{1,64}$/
// Standard or URL-safe alphabet, optional padding; the decoded length is checked separately.
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/

// ---------------------------------------------------------------------------
// Pure core
// ---------------------------------------------------------------------------

/**
 * Parses `key-id:base64-key,…`. Throws `KeyRingError` on an empty ring, a missing `:`,
 * a bad key id, bad base64, a key that is not 32 bytes, or a duplicate id.
 * Errors name the entry by position (and the id when it is valid), never the key.
 */
export const parseKeyRing = (s: string): KeyRing => {
  const entries = s.split(",").map((e) => e.trim()).filter((e) => e !== "")
  if (entries.length === 0) {
    throw new KeyRingError({ message: "key ring is empty (expected \"key-id:base64-32-byte-key,…\")" })
  }
  const keys = new Map<string, KeyObject>()
  let primaryId = ""
  entries.forEach((entry, i) => {
    const where = `entry ${i + 1}`
    const colon = entry.indexOf(":")
    if (colon < 0) throw new KeyRingError({ message: `${where}: expected "key-id:base64-key"` })
    const id = entry.slice(0, colon).trim()
    const b64 = entry.slice(colon + 1).trim()
    // Don't echo an invalid id: a swapped entry would put key material there.
    if (!KEY_ID.test(id)) throw new KeyRingError({ message: `${where}: key id must match ${KEY_ID.source}` })
    if (keys.has(id)) throw new KeyRingError({ message: `${where}: duplicate key id "${id}"` })
    if (!BASE64.test(b64)) throw new KeyRingError({ message: `key "${id}": not valid base64` })
    const raw = Buffer.from(b64, "base64")
    if (raw.length !== KEY_BYTES) {
      throw new KeyRingError({ message: `key "${id}": must decode to ${KEY_BYTES} bytes, got ${raw.length}` })
    }
    keys.set(id, createSecretKey(raw))
    raw.fill(0) // createSecretKey copied it
    if (i === 0) primaryId = id
  })
  return { primaryId, keys }
}

/** A fresh single-key ring string, e.g. for dev start-up. Prepend it to an existing ring to rotate. */
export const generateKeyRing = (keyId: string = `k${randomBytes(4).toString("hex")}`): string => {
  if (!KEY_ID.test(keyId)) throw new KeyRingError({ message: `key id must match ${KEY_ID.source}` })
  return `${keyId}:${randomBytes(KEY_BYTES).toString("base64")}`
}

// Node's decoder silently skips bad characters; insisting on the canonical form means any edit
// of the box string is rejected rather than decoding to the same bytes.
const fromB64url = (s: string): Buffer | undefined => {
  const b = Buffer.from(s, "base64url")
  return b.toString("base64url") === s ? b : undefined
}

const legacyAad = (keyId: string) => Buffer.from(`${LEGACY_VERSION}.${keyId}`)

// A JSON array keeps the fields apart whatever characters they hold (no separator to inject).
const aad = (keyId: string, context: SecretContext) =>
  Buffer.from(JSON.stringify([VERSION, keyId, context.tenant_id, context.mode, context.endpoint_id, context.slot]))

/** Encrypts with the ring's first key, for the place `context` names. */
export const encrypt = (ring: KeyRing, plaintext: string, context: SecretContext): string => {
  const key = ring.keys.get(ring.primaryId)!
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(aad(ring.primaryId, context))
  const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()])
  return `${VERSION}.${ring.primaryId}.${iv.toString("base64url")}.${ct.toString("base64url")}.${cipher
    .getAuthTag()
    .toString("base64url")}`
}

/** A box's version and key id (neither is secret), or undefined when it is not a box. */
export const boxHeader = (box: string): { readonly version: string; readonly keyId: string } | undefined => {
  const parts = box.split(".")
  return parts.length === 5 ? { version: parts[0]!, keyId: parts[1]! } : undefined
}

/**
 * Is this box already in the form `encrypt` makes today: the current version, under the ring's
 * first key? Anything else is resealed on the endpoint's next write or by `orbit secrets reseal`.
 */
export const isSealedCurrent = (ring: KeyRing, box: string): boolean => {
  const header = boxHeader(box)
  return header?.version === VERSION && header.keyId === ring.primaryId
}

/**
 * Opens a box made by `encrypt` with any key of the ring, in the place it was sealed for
 * (`v1` boxes carry no place and open anywhere). Throws `SecretDecryptError`; a box from
 * another endpoint or slot fails as `tampered`.
 */
export const decrypt = (ring: KeyRing, box: string, context: SecretContext): string => {
  const parts = box.split(".")
  if (parts.length !== 5) throw new SecretDecryptError({ reason: "malformed", message: "not a secret box" })
  const [version, keyId, ivB64, ctB64, tagB64] = parts as [string, string, string, string, string]
  if (version !== VERSION && version !== LEGACY_VERSION) {
    throw new SecretDecryptError({ reason: "unsupported-version", message: "unsupported secret box version" })
  }
  const key = ring.keys.get(keyId)
  if (key === undefined) {
    // The id is not secret; naming it tells the operator which key is missing from the ring.
    const id = KEY_ID.test(keyId) ? ` "${keyId}"` : ""
    throw new SecretDecryptError({ reason: "unknown-key", message: `secret box key id${id} is not in the key ring` })
  }
  const iv = fromB64url(ivB64)
  const ct = fromB64url(ctB64)
  const tag = fromB64url(tagB64)
  if (iv?.length !== IV_BYTES || tag?.length !== TAG_BYTES || ct === undefined) {
    throw new SecretDecryptError({ reason: "malformed", message: "secret box has a bad IV, ciphertext or tag" })
  }
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES })
    decipher.setAAD(version === VERSION ? aad(keyId, context) : legacyAad(keyId))
    decipher.setAuthTag(tag)
    const pt = Buffer.concat([decipher.update(ct), decipher.final()])
    return pt.toString("utf8")
  } catch {
    throw new SecretDecryptError({ reason: "tampered", message: "secret box failed authentication" })
  }
}

// ---------------------------------------------------------------------------
// Effect service
// ---------------------------------------------------------------------------

export class SecretBox extends Context.Service<SecretBox, {
  encrypt(plain: string, context: SecretContext): Effect.Effect<string>
  decrypt(box: string, context: SecretContext): Effect.Effect<string, SecretDecryptError>
  /** The box is of the current version and under the ring's first key (no reseal needed). */
  isCurrent(box: string): boolean
}>()("@orbit/crypto/SecretBox") {
  /** Reads the ring from `ORBIT_SECRET_KEYS`; fails at start with a message naming the variable. */
  static readonly layer: Layer.Layer<SecretBox, KeyRingError> = Layer.effect(
    SecretBox,
    Effect.gen(function*() {
      const raw = yield* Config.Redacted(ENV_NAME).pipe(
        Effect.mapError(() =>
          new KeyRingError({ message: `${ENV_NAME} is not set (expected "key-id:base64-32-byte-key,…")` })
        )
      )
      const ring = yield* Effect.try({
        try: () => parseKeyRing(Redacted.value(raw)),
        catch: (e) => new KeyRingError({ message: `${ENV_NAME} is invalid: ${asKeyRingError(e).message}` })
      })
      return make(ring)
    })
  )

  /** A layer over an explicit ring string (tests, tools). */
  static readonly layerFromKeyRing = (ring: string): Layer.Layer<SecretBox, KeyRingError> =>
    Layer.effect(SecretBox, Effect.try({ try: () => make(parseKeyRing(ring)), catch: asKeyRingError }))

  /** A layer with a fresh random single-key ring. */
  static readonly layerTest: Layer.Layer<SecretBox> = Layer.effect(
    SecretBox,
    Effect.sync(() => make(parseKeyRing(generateKeyRing())))
  )
}

// Only our own errors carry a vetted message; anything else gets a generic one.
const asKeyRingError = (e: unknown): KeyRingError =>
  e instanceof KeyRingError ? e : new KeyRingError({ message: "key ring could not be loaded" })

const make = (ring: KeyRing): SecretBox["Service"] =>
  SecretBox.of({
    encrypt: Effect.fn("SecretBox.encrypt")(function*(plain: string, context: SecretContext) {
      return encrypt(ring, plain, context)
    }),
    decrypt: Effect.fn("SecretBox.decrypt")(function*(box: string, context: SecretContext) {
      return yield* Effect.try({
        try: () => decrypt(ring, box, context),
        catch: (e) =>
          e instanceof SecretDecryptError
            ? e
            : new SecretDecryptError({ reason: "malformed", message: "secret box could not be decoded" })
      })
    }),
    isCurrent: (box: string) => isSealedCurrent(ring, box)
  })
