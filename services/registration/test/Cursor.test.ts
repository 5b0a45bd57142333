import { randomBytes } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { decodeCursor, encodeCursor } from "../src/Cursor.ts"

const key = randomBytes(32)
const scope = { tenantId: "t1", mode: "live" }
const position = { createdAt: "2026-11-27T10:00:00.123456Z", id: "wh_abc" }

describe("cursor codec", () => {
  it("round-trips and is opaque", () => {
    const c = encodeCursor(key, scope, position)
    expect(decodeCursor(key, scope, c)).toEqual(position)
    expect(c).not.toContain("wh_abc")
  })

  it("refuses tampering, other scopes, other keys and junk", () => {
    const c = encodeCursor(key, scope, position)
    const [payload, tag] = c.split(".")
    const forged = Buffer.from(JSON.stringify(["2026-11-27T10:00:00Z", "wh_other"])).toString("base64url")
    expect(decodeCursor(key, scope, `${forged}.${tag}`)).toBeUndefined()
    expect(decodeCursor(key, scope, `${payload}.${tag!.slice(1)}A`)).toBeUndefined()
    expect(decodeCursor(key, { tenantId: "t2", mode: "live" }, c)).toBeUndefined()
    expect(decodeCursor(key, { tenantId: "t1", mode: "test" }, c)).toBeUndefined()
    expect(decodeCursor(randomBytes(32), scope, c)).toBeUndefined()
    for (const junk of ["", ".", "a.b.c", "x".repeat(600), `${payload}`]) expect(decodeCursor(key, scope, junk)).toBeUndefined()
  })
})
