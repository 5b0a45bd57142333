/**
 * Delivery signatures (API.md §7). Pure functions; they run once per delivery attempt.
 *
 * - `X-Devotel-Signature: t=<ts>,v1=<hex>[,v1=<hex>]` — HMAC-SHA256, key = the secret's UTF-8
 *   bytes, message = `<ts>.<body>`.
 * - Standard Webhooks `webhook-id` / `webhook-timestamp` / `webhook-signature: v1,<b64> [v1,<b64>]`
 *   — HMAC-SHA256 over `<id>.<ts>.<body>`, key per `standardWebhooksKey`.
 *
 * `secrets` is ordered new first, previous second (rotation grace window).
 */
import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from "node:crypto"
import { standardWebhooksKey } from "./Secrets.ts"

/**
 * A secret prepared once for many signatures: both HMAC keys as `KeyObject`s. Preparing a key
 * (above all the decoded `whsec_` bytes) costs several times the HMAC of a small body, so a
 * dispatcher that signs thousands of deliveries per second keeps these per endpoint.
 */
export interface SigningKey {
  readonly devotel: KeyObject
  readonly standard: KeyObject
}

export const signingKey = (secret: string): SigningKey => ({
  devotel: createSecretKey(Buffer.from(secret, "utf8")),
  standard: createSecretKey(standardWebhooksKey(secret))
})

export interface DevotelSignatureInput {
  /** Secret strings, or the same prepared with `signingKey`. */
  readonly secrets: ReadonlyArray<string | SigningKey>
  /** Unix seconds. */
  readonly timestamp: number
  readonly body: string
}

export interface StandardWebhooksSignatureInput extends DevotelSignatureInput {
  readonly msgId: string
}

export interface SignDeliveryInput extends DevotelSignatureInput {
  readonly eventId: string
}

// A type alias (not an interface) so it is assignable to `Record<string, string>` header maps.
export type SignatureHeaders = {
  readonly "X-Devotel-Signature": string
  readonly "webhook-id": string
  readonly "webhook-timestamp": string
  readonly "webhook-signature": string
}

// Programmer errors: signing with no secret or a non-integer time must never go out silently.
const check = (secrets: ReadonlyArray<string | SigningKey>, timestamp: number): void => {
  if (secrets.length === 0) throw new RangeError("at least one signing secret is required")
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new RangeError("timestamp must be a non-negative integer (unix seconds)")
  }
}

// Two update() calls hash `<ts>.` and the body without building the concatenated string.
const devotelHex = (secret: string | KeyObject, prefix: string, body: string): string =>
  createHmac("sha256", secret).update(prefix).update(body).digest("hex")

/** `t=<ts>,v1=<hex>[,v1=<hex>…]`, one `v1` per secret in the given order. */
export const devotelSignature = ({ secrets, timestamp, body }: DevotelSignatureInput): string => {
  check(secrets, timestamp)
  const prefix = `${timestamp}.`
  let header = `t=${timestamp}`
  for (const secret of secrets) header += `,v1=${devotelHex(typeof secret === "string" ? secret : secret.devotel, prefix, body)}`
  return header
}

/** `v1,<base64>[ v1,<base64>…]`, one per secret in the given order. */
export const standardWebhooksSignature = (
  { secrets, msgId, timestamp, body }: StandardWebhooksSignatureInput
): string => {
  check(secrets, timestamp)
  const prefix = `${msgId}.${timestamp}.`
  let header = ""
  for (const secret of secrets) {
    const key = typeof secret === "string" ? standardWebhooksKey(secret) : secret.standard
    const sig = createHmac("sha256", key).update(prefix).update(body).digest("base64")
    header += header === "" ? `v1,${sig}` : ` v1,${sig}`
  }
  return header
}

/**
 * Verifies an `X-Devotel-Signature` header as a receiver would: `t` must be within
 * `toleranceSeconds` of `nowSeconds` (either direction — a far-future `t` is as suspect as an
 * old one) and at least one `v1` must match, compared in constant time.
 */
export const verifyDevotelSignature = (
  header: string,
  secret: string,
  body: string,
  nowSeconds: number,
  toleranceSeconds = 300
): boolean => {
  let t: number | undefined
  const candidates: Array<string> = []
  for (const part of header.split(",")) {
    const eq = part.indexOf("=")
    if (eq < 0) continue
    const key = part.slice(0, eq).trim()
    const value = part.slice(eq + 1).trim()
    if (key === "t" && /^\d{1,15}$/.test(value)) t = Number(value)
    else if (key === "v1" && /^[0-9a-f]{64}$/.test(value)) candidates.push(value)
  }
  if (t === undefined || candidates.length === 0) return false
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return false
  const expected = Buffer.from(devotelHex(secret, `${t}.`, body), "utf8")
  let ok = false
  // Check every candidate (no early exit) so timing does not reveal which one matched.
  for (const c of candidates) ok = timingSafeEqual(expected, Buffer.from(c, "utf8")) || ok
  return ok
}

/** All signature headers of one delivery attempt (API.md §7). `webhook-id` is the event id. */
export const signDelivery = ({ secrets, eventId, timestamp, body }: SignDeliveryInput): SignatureHeaders => ({
  "X-Devotel-Signature": devotelSignature({ secrets, timestamp, body }),
  "webhook-id": eventId,
  "webhook-timestamp": String(timestamp),
  "webhook-signature": standardWebhooksSignature({ secrets, msgId: eventId, timestamp, body })
})
