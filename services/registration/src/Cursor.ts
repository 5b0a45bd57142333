import { createHmac, type KeyObject, timingSafeEqual } from "node:crypto"
import type { KeysetPosition } from "@orbit/db"

/** A position in a newest-first listing: the last item of the previous page. */
export type CursorPosition = KeysetPosition

export interface CursorScope {
  readonly tenantId: string
  readonly mode: string
  /** What is listed, when not the tenant's endpoints (e.g. one endpoint's deliveries): binds the cursor to it. */
  readonly resource?: string
}

/**
 * Opaque, tamper-evident cursors: base64url(JSON) + "." + HMAC over the payload and the caller's
 * scope. A cursor edited by hand, or replayed by another tenant or mode, fails verification.
 */
export const encodeCursor = (key: KeyObject | Uint8Array, scope: CursorScope, position: CursorPosition): string => {
  const payload = Buffer.from(JSON.stringify([position.createdAt, position.id])).toString("base64url")
  return `${payload}.${mac(key, scope, payload)}`
}

export const decodeCursor = (key: KeyObject | Uint8Array, scope: CursorScope, cursor: string): CursorPosition | undefined => {
  if (cursor.length > 512) return undefined
  const [payload, tag, ...rest] = cursor.split(".")
  if (payload === undefined || tag === undefined || rest.length > 0) return undefined
  const expected = Buffer.from(mac(key, scope, payload))
  const given = Buffer.from(tag)
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined
  try {
    const value: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"))
    if (!Array.isArray(value) || value.length !== 2) return undefined
    const [createdAt, id] = value
    if (typeof createdAt !== "string" || typeof id !== "string" || Number.isNaN(Date.parse(createdAt))) return undefined
    return { createdAt, id }
  } catch {
    return undefined
  }
}

const mac = (key: KeyObject | Uint8Array, scope: CursorScope, payload: string) =>
  createHmac("sha256", key)
    .update(`${scope.tenantId}\u0000${scope.mode}\u0000${scope.resource === undefined ? "" : `${scope.resource}\u0000`}${payload}`)
    .digest("base64url")
