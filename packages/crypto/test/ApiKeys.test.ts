import { describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { crc32 } from "node:zlib"
import { apiKeyChecksum, generateApiKey, hashApiKey, parseApiKey, parseApiKeyPrefix } from "../src/ApiKeys.ts"

describe("API keys", () => {
  it.each([
    ["live", "secret", "dv_live_sk_"],
    ["test", "secret", "dv_test_sk_"],
    ["live", "public", "dv_live_pk_"],
    ["test", "public", "dv_test_pk_"]
  ] as const)("generates %s %s keys", (mode, kind, typePrefix) => {
    const { key, hash, prefix } = generateApiKey({ mode, kind })
    expect(key.startsWith(typePrefix)).toBe(true)
    expect(key.slice(typePrefix.length)).toMatch(/^[A-Za-z0-9]{49}$/)
    expect(key.slice(-6)).toBe(apiKeyChecksum(key.slice(0, -6)))
    expect(hash).toBe(createHash("sha256").update(key).digest("hex"))
    expect(hash).toBe(hashApiKey(key))
    expect(prefix).toBe(key.slice(0, typePrefix.length + 4))
    expect(parseApiKeyPrefix(key)).toEqual({ mode, kind })
    expect(parseApiKey(key)).toEqual({ mode, kind, format: "checksummed" })
  })

  it("generates distinct keys", () => {
    const keys = new Set(Array.from({ length: 200 }, () => generateApiKey({ mode: "live", kind: "secret" }).key))
    expect(keys.size).toBe(200)
  })

  it("parses well-formed keys and rejects malformed ones", () => {
    const legacy = "Ab3x".repeat(10) + "Zz9"
    expect(parseApiKey(`dv_live_sk_${legacy}`)).toEqual({ mode: "live", kind: "secret", format: "legacy" })
    expect(parseApiKey(`dv_test_pk_${legacy}`)).toEqual({ mode: "test", kind: "public", format: "legacy" })
    const { key } = generateApiKey({ mode: "live", kind: "secret" })
    for (const bad of [
      "",
      `dv_live_sk_${legacy.slice(1)}`, // one char short of the legacy form
      `dv_live_sk_${legacy}A`, // between the two forms
      `dv_live_sk_${"a".repeat(32)}`,
      `dv_prod_sk_${legacy}`,
      `dv_live_xx_${legacy}`,
      `DV_LIVE_SK_${legacy}`,
      `dv_live_sk_${legacy.slice(1)}!`,
      `dv_live_sk_${legacy.slice(2)}_-`,
      ` dv_live_sk_${legacy}`,
      `${key} `,
      `${key}A`,
      `dv_live_sk_${"a".repeat(300)}`
    ]) {
      expect(parseApiKeyPrefix(bad), bad).toBeUndefined()
    }
  })

  it("the checksum is the CRC32 of the type prefix and random part, in 6 base62 digits", () => {
    const body = "dv_live_sk_" + "a".repeat(43)
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    const digits = apiKeyChecksum(body).split("").map((c) => alphabet.indexOf(c))
    expect(digits.reduce((n, d) => n * 62 + d, 0)).toBe(crc32(body))
    expect(apiKeyChecksum("")).toBe("AAAAAA") // CRC32 of nothing is 0: zero-padded
  })

  it("refuses a checksummed-length key whose checksum does not match: a changed char, a swapped prefix, random strings", () => {
    const { key } = generateApiKey({ mode: "live", kind: "secret" })
    const body = key.slice("dv_live_sk_".length)
    const flip = (c: string) => (c === "A" ? "B" : "A")
    for (let i = 0; i < body.length; i++) {
      const changed = "dv_live_sk_" + body.slice(0, i) + flip(body[i]!) + body.slice(i + 1)
      expect(parseApiKey(changed), changed).toBeUndefined()
    }
    expect(parseApiKey(key.replace("dv_live_", "dv_test_"))).toBeUndefined()
    expect(parseApiKey(key.replace("_sk_", "_pk_"))).toBeUndefined()
    // 10,000 random 49-char bodies: each matches its checksum with probability 2^-32.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    let accepted = 0
    for (let n = 0; n < 10_000; n++) {
      let random = ""
      for (let i = 0; i < 49; i++) random += alphabet[Math.floor(Math.random() * 62)]
      if (parseApiKey(`dv_live_sk_${random}`) !== undefined) accepted++
    }
    expect(accepted).toBe(0)
  })

  it("hashes as SHA-256 hex", () => {
    expect(hashApiKey("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  })
})
