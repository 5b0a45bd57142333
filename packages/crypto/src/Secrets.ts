/**
 * Endpoint signing secrets.
 *
 * Generated secrets use the Standard Webhooks form `whsec_<base64 key bytes>`; callers may
 * also choose their own secret string. See README "Verifying with a Standard Webhooks library".
 */
import { randomBytes } from "node:crypto"

export const WHSEC_PREFIX = "whsec_"

// Canonical, padded, non-empty standard base64 — what Standard Webhooks libraries decode.
const WHSEC = /^whsec_(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$/

/** A fresh secret: `"whsec_" + base64(32 random bytes)`. */
export const generateWebhookSecret = (): string => WHSEC_PREFIX + randomBytes(32).toString("base64")

/** True when `secret` is `whsec_` followed by valid base64, i.e. its key bytes are the decoded part. */
export const isWhsecSecret = (secret: string): boolean => WHSEC.test(secret)

/**
 * The HMAC key bytes of the Standard Webhooks signature: the base64-decoded part after `whsec_`
 * when the secret has that form, else the secret's UTF-8 bytes.
 */
export const standardWebhooksKey = (secret: string): Buffer =>
  isWhsecSecret(secret)
    ? Buffer.from(secret.slice(WHSEC_PREFIX.length), "base64")
    : Buffer.from(secret, "utf8")

/**
 * The string a receiver passes to a Standard Webhooks library (`new Webhook(x)`) to verify our
 * `webhook-signature`: a `whsec_` secret as-is, any other secret as `whsec_` + base64(UTF-8 bytes).
 */
export const standardWebhooksSecret = (secret: string): string =>
  isWhsecSecret(secret) ? secret : WHSEC_PREFIX + Buffer.from(secret, "utf8").toString("base64")
