import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer } from "effect"
import { createCipheriv, createSecretKey, randomBytes } from "node:crypto"
import { inspect } from "node:util"
import {
  decrypt as decryptIn,
  encrypt as encryptFor,
  generateKeyRing,
  isSealedCurrent,
  KeyRingError,
  parseKeyRing,
  SecretBox,
  type SecretContext,
  SecretDecryptError
} from "../src/SecretBox.ts"

const here: SecretContext = { tenant_id: "acme", mode: "live", endpoint_id: "wh_1", slot: "current" }
const encrypt = (ring: ReturnType<typeof parseKeyRing>, plain: string) => encryptFor(ring, plain, here)
const decrypt = (ring: ReturnType<typeof parseKeyRing>, box: string) => decryptIn(ring, box, here)

/**
 * A box as the previous version sealed it (AAD `v1.<keyId>`, no context), written out here
 * independently of the module, so boxes already stored in the endpoint topic are covered.
 */
const sealV1 = (keyId: string, keyB64: string, plain: string): string => {
  const iv = randomBytes(12)
  const cipher = createCipheriv("aes-256-gcm", createSecretKey(Buffer.from(keyB64, "base64")), iv, { authTagLength: 16 })
  cipher.setAAD(Buffer.from(`v1.${keyId}`))
  const ct = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()])
  return ["v1", keyId, iv.toString("base64url"), ct.toString("base64url"), cipher.getAuthTag().toString("base64url")].join(".")
}

const key = () => randomBytes(32).toString("base64")

// Runs `f` and returns what it threw (so the message can be checked for leaks).
const thrown = (f: () => unknown): unknown => {
  try {
    f()
  } catch (e) {
    return e
  }
  throw new Error("expected a throw")
}

describe("parseKeyRing", () => {
  it("parses ids in order, first one primary", () => {
    const ring = parseKeyRing(` a:${key()} , b_2:${key()}`)
    expect(ring.primaryId).toBe("a")
    expect([...ring.keys.keys()]).toEqual(["a", "b_2"])
  })

  it.each([
    ["empty", "", /empty/],
    ["only commas", " , ,", /empty/],
    ["missing colon", "justsomething", /entry 1: expected "key-id:base64-key"/],
    ["bad id", "a.b:" + "x", /entry 1: key id must match/],
    ["bad base64", "k1:not*base64!", /key "k1": not valid base64/],
    ["short key", `k1:${randomBytes(16).toString("base64")}`, /key "k1": must decode to 32 bytes, got 16/],
    ["duplicate id", `k1:${key()},k1:${key()}`, /entry 2: duplicate key id "k1"/]
  ])("rejects %s", (_name, input, message) => {
    const e = thrown(() => parseKeyRing(input))
    expect(e).toBeInstanceOf(KeyRingError)
    expect((e as KeyRingError).message).toMatch(message)
  })

  it("never puts key material in errors", () => {
    const k = randomBytes(31).toString("base64")
    for (const input of [`k1:${k}`, `${k}:k1`, k, `k1:${k}*`, `k1:${key()},k1:${k}`]) {
      const e = thrown(() => parseKeyRing(input)) as KeyRingError
      expect(e.message).not.toContain(k)
      expect(String(e)).not.toContain(k)
    }
  })

  it("does not print key material when the ring is logged", () => {
    const k = key()
    const ring = parseKeyRing(`k1:${k}`)
    expect(JSON.stringify([...ring.keys])).not.toContain(k)
    expect(inspect(ring, { depth: 5 })).not.toContain(k)
  })

  it("generateKeyRing produces a parseable ring with a fresh key each time", () => {
    const a = generateKeyRing()
    expect(parseKeyRing(a).keys.size).toBe(1)
    expect(generateKeyRing("dev")).toMatch(/^dev:[A-Za-z0-9+/]{43}=$/)
    expect(generateKeyRing("dev")).not.toBe(generateKeyRing("dev"))
  })
})

describe("encrypt / decrypt", () => {
  const ring = parseKeyRing(generateKeyRing("k1"))

  it("round-trips, including empty and non-ASCII plaintext", () => {
    for (const plain of ["whsec_abc", "", "ünïcødé 🔑", "x".repeat(10_000)]) {
      expect(decrypt(ring, encrypt(ring, plain))).toBe(plain)
    }
  })

  it("produces a v2 box under the primary key, random IV each time, without the plaintext", () => {
    const plain = "my-very-secret-webhook-secret"
    const a = encrypt(ring, plain)
    const b = encrypt(ring, plain)
    expect(a).toMatch(/^v2\.k1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/)
    expect(a).not.toBe(b)
    expect(a).not.toContain(plain)
    expect(a).not.toContain(Buffer.from(plain).toString("base64url"))
    expect(a).not.toContain(Buffer.from(plain).toString("base64"))
  })

  it("decrypts old boxes after rotation (new key first, old key second)", () => {
    const oldRing = generateKeyRing("old")
    const box = encrypt(parseKeyRing(oldRing), "s3cret")
    const rotated = parseKeyRing(`${generateKeyRing("new")},${oldRing}`)
    expect(decrypt(rotated, box)).toBe("s3cret")
    expect(encrypt(rotated, "s3cret").startsWith("v2.new.")).toBe(true)
  })

  it("fails clearly on an unknown key id", () => {
    const box = encrypt(parseKeyRing(generateKeyRing("gone")), "s3cret")
    const e = thrown(() => decrypt(ring, box)) as SecretDecryptError
    expect(e).toBeInstanceOf(SecretDecryptError)
    expect(e.reason).toBe("unknown-key")
    expect(e.message).toContain("\"gone\"")
  })

  it("detects tampering with any part", () => {
    const plain = "s3cret-value"
    const box = encrypt(ring, plain)
    const [v, id, iv, ct, tag] = box.split(".") as [string, string, string, string, string]
    const flip = (b64: string) => {
      const b = Buffer.from(b64, "base64url")
      b[0] = b[0]! ^ 1
      return b.toString("base64url")
    }
    const tampered = [
      [v, id, flip(iv), ct, tag],
      [v, id, iv, flip(ct), tag],
      [v, id, iv, ct, flip(tag)],
      [v, id, iv, ct + "A", tag], // non-canonical / longer ciphertext
      [v, id, iv, ct.slice(0, -2), tag]
    ]
    for (const parts of tampered) {
      const e = thrown(() => decrypt(ring, parts.join("."))) as SecretDecryptError
      expect(e).toBeInstanceOf(SecretDecryptError)
      expect(["tampered", "malformed"]).toContain(e.reason)
      expect(e.message).not.toContain(plain)
    }
    // A box re-labelled with another key id in the ring fails authentication (id is AAD).
    const two = parseKeyRing(`${generateKeyRing("a")},${generateKeyRing("b")}`)
    const boxA = encrypt(two, plain)
    expect((thrown(() => decrypt(two, boxA.replace("v2.a.", "v2.b."))) as SecretDecryptError).reason).toBe("tampered")
  })

  it("rejects malformed boxes and other versions", () => {
    expect((thrown(() => decrypt(ring, "nope")) as SecretDecryptError).reason).toBe("malformed")
    const box = encrypt(ring, "x")
    expect((thrown(() => decrypt(ring, box.replace(/^v2/, "v3"))) as SecretDecryptError).reason).toBe(
      "unsupported-version"
    )
  })
})

describe("boxes are bound to their endpoint and slot", () => {
  const k1 = key()
  const ring = parseKeyRing(`k1:${k1}`)
  const elsewhere: ReadonlyArray<[string, SecretContext]> = [
    ["another endpoint", { ...here, endpoint_id: "wh_2" }],
    ["another tenant", { ...here, tenant_id: "evil" }],
    ["another mode", { ...here, mode: "test" }],
    ["the previous slot", { ...here, slot: "previous" }],
    // The fields are kept apart: moving characters between them is another context.
    ["shifted fields", { ...here, tenant_id: "acme\",\"live", mode: "" }]
  ]

  it.each(elsewhere)("a box sealed for one place does not open in %s", (_name, there) => {
    const box = encrypt(ring, "whsec_victim")
    expect(decrypt(ring, box)).toBe("whsec_victim")
    const e = thrown(() => decryptIn(ring, box, there)) as SecretDecryptError
    expect(e).toBeInstanceOf(SecretDecryptError)
    expect(e.reason).toBe("tampered")
    expect(e.message).not.toContain("whsec_victim")
  })

  it("a box sealed for the previous slot opens there and only there", () => {
    const previous = { ...here, slot: "previous" as const }
    const box = encryptFor(ring, "old-secret", previous)
    expect(decryptIn(ring, box, previous)).toBe("old-secret")
    expect((thrown(() => decrypt(ring, box)) as SecretDecryptError).reason).toBe("tampered")
  })

  it("boxes of the previous version (no context) still open", () => {
    const legacy = sealV1("k1", k1, "whsec_legacy")
    expect(decrypt(ring, legacy)).toBe("whsec_legacy")
    expect(isSealedCurrent(ring, legacy)).toBe(false)
    // Re-labelling a v2 box as v1 (to drop the context) fails: the AAD differs.
    const v2 = encrypt(ring, "whsec_bound")
    expect((thrown(() => decryptIn(ring, v2.replace(/^v2/, "v1"), { ...here, endpoint_id: "wh_2" })) as SecretDecryptError).reason)
      .toBe("tampered")
  })

  it("isSealedCurrent: current version under the first key only", () => {
    const two = parseKeyRing(`${generateKeyRing("new")},k1:${k1}`)
    expect(isSealedCurrent(ring, encrypt(ring, "x"))).toBe(true)
    expect(isSealedCurrent(two, encrypt(ring, "x"))).toBe(false)
    expect(isSealedCurrent(two, encrypt(two, "x"))).toBe(true)
    expect(isSealedCurrent(ring, "nope")).toBe(false)
  })
})

describe("SecretBox service", () => {
  it.effect("layerFromKeyRing encrypts and decrypts", () =>
    Effect.gen(function*() {
      const box = yield* SecretBox
      const sealed = yield* box.encrypt("hello", here)
      expect(yield* box.decrypt(sealed, here)).toBe("hello")
      expect(box.isCurrent(sealed)).toBe(true)
      const err = yield* Effect.flip(box.decrypt(sealed.slice(0, -3) + "AAA", here))
      expect(err._tag).toBe("SecretDecryptError")
    }).pipe(Effect.provide(SecretBox.layerFromKeyRing(generateKeyRing("t")))))

  it.effect("layerTest works", () =>
    Effect.gen(function*() {
      const box = yield* SecretBox
      expect(yield* box.decrypt(yield* box.encrypt("x", here), here)).toBe("x")
    }).pipe(Effect.provide(SecretBox.layerTest)))

  const build = (env: Record<string, string>) =>
    Effect.gen(function*() {
      const box = yield* SecretBox
      return yield* box.decrypt(yield* box.encrypt("via-env", here), here)
    }).pipe(
      Effect.provide(SecretBox.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))))),
      Effect.exit
    )

  it.effect("layer reads ORBIT_SECRET_KEYS", () =>
    Effect.gen(function*() {
      const exit = yield* build({ ORBIT_SECRET_KEYS: generateKeyRing() })
      expect(exit).toEqual(Exit.succeed("via-env"))
    }))

  it.effect("layer fails at start naming ORBIT_SECRET_KEYS when missing or bad", () =>
    Effect.gen(function*() {
      const k = randomBytes(20).toString("base64")
      const envs: Array<Record<string, string>> = [{}, { ORBIT_SECRET_KEYS: "" }, { ORBIT_SECRET_KEYS: `k1:${k}` }]
      for (const env of envs) {
        const exit = yield* build(env)
        expect(Exit.isFailure(exit)).toBe(true)
        const err = yield* Effect.flip(Effect.suspend(() => exit))
        expect(err).toBeInstanceOf(KeyRingError)
        expect(err.message).toContain("ORBIT_SECRET_KEYS")
        expect(err.message).not.toContain(k)
      }
    }))
})
