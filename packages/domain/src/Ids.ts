import { createHash, randomBytes, randomUUID } from "node:crypto"

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

/** Unbiased base62 from a CSPRNG (rejection sampling: 248 = 4 × 62). */
export const randomBase62 = (length: number): string => {
  let out = ""
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += BASE62[byte % 62]
      if (out.length === length) break
    }
  }
  return out
}

/** `wh_` + 24 base62 characters (~143 bits): unguessable, so ids reveal nothing across tenants. */
export const newEndpointId = (): string => `wh_${randomBase62(24)}`
export const ENDPOINT_ID_PATTERN = /^wh_[0-9A-Za-z]{20,64}$/

export const newEventId = (): string => `evt_${randomBytes(16).toString("hex")}`
export const newMessageId = (): string => randomUUID()

/**
 * The delivery id is a name-based UUID (v5 layout over SHA-256) of the (event, endpoint) pair,
 * so every attempt and every redelivery of that pair carries the same `X-Devotel-Delivery-Id`.
 */
export const deliveryIdFor = (eventId: string, endpointId: string): string => {
  const h = createHash("sha256").update(`${eventId}\u0000${endpointId}`).digest()
  h[6] = (h[6]! & 0x0f) | 0x50
  h[8] = (h[8]! & 0x3f) | 0x80
  const hex = h.subarray(0, 16).toString("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`
}
