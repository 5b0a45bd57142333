/** The local broker's tooling (infra/kafka.ts) where it is pure. */
import { randomBytes } from "node:crypto"
import { describe, expect, it } from "vitest"
import { newClusterId } from "../../infra/kafka.ts"

describe("newClusterId", () => {
  it("never starts with '-', which the storage tool would read as an option, and draws again instead", () => {
    // 0xf8 in the first byte is 111110xx: base64url character 62, "-".
    const draws = [Buffer.alloc(16, 0xf8), Buffer.alloc(16, 0xfb), Buffer.alloc(16, 0x01)]
    const random = () => draws.shift()!
    expect(Buffer.alloc(16, 0xf8).toString("base64url")).toMatch(/^-/)
    expect(newClusterId(random)).toBe(Buffer.alloc(16, 0x01).toString("base64url"))
    expect(draws).toHaveLength(0)
  })

  it("is 22 base64url characters from 16 random bytes", () => {
    for (let i = 0; i < 1000; i++) expect(newClusterId(randomBytes)).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/)
  })
})
