import { describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { generateApiKey, hashApiKey, parseApiKeyPrefix } from "../src/ApiKeys.ts"

describe("API keys", () => {
  it.each([
    ["live", "secret", "dv_live_sk_"],
    ["test", "secret", "dv_test_sk_"],
    ["live", "public", "dv_live_pk_"],
    ["test", "public", "dv_test_pk_"]
  ] as const)("generates %s %s keys", (mode, kind, typePrefix) => {
    const { key, hash, prefix } = generateApiKey({ mode, kind })
    expect(key.startsWith(typePrefix)).toBe(true)
    expect(key.slice(typePrefix.length)).toMatch(/^[A-Za-z0-9]{43}$/)
    expect(hash).toBe(createHash("sha256").update(key).digest("hex"))
    expect(hash).toBe(hashApiKey(key))
    expect(prefix).toBe(key.slice(0, typePrefix.length + 4))
    expect(parseApiKeyPrefix(key)).toEqual({ mode, kind })
  })

  it("generates distinct keys", () => {
    const keys = new Set(Array.from({ length: 200 }, () => generateApiKey({ mode: "live", kind: "secret" }).key))
    expect(keys.size).toBe(200)
  })

  it("parses well-formed keys and rejects malformed ones", () => {
    const r32 = "a".repeat(32)
    expect(parseApiKeyPrefix(`dv_live_sk_${r32}`)).toEqual({ mode: "live", kind: "secret" })
    expect(parseApiKeyPrefix(`dv_test_pk_${"Ab_-".repeat(8)}`)).toEqual({ mode: "test", kind: "public" })
    for (const bad of [
      "",
      `dv_live_sk_${"a".repeat(31)}`, // too short
      `dv_prod_sk_${r32}`,
      `dv_live_xx_${r32}`,
      `DV_LIVE_SK_${r32}`,
      `dv_live_sk_${"a".repeat(31)}!`,
      ` dv_live_sk_${r32}`,
      `dv_live_sk_${"a".repeat(300)}`
    ]) {
      expect(parseApiKeyPrefix(bad)).toBeUndefined()
    }
  })

  it("hashes as SHA-256 hex", () => {
    expect(hashApiKey("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  })
})
