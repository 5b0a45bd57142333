import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer } from "effect"
import { randomBytes } from "node:crypto"
import { inspect } from "node:util"
import {
  decrypt,
  encrypt,
  generateKeyRing,
  KeyRingError,
  parseKeyRing,
  SecretBox,
  SecretDecryptError
} from "../src/SecretBox.ts"

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

  it("produces a v1 box under the primary key, random IV each time, without the plaintext", () => {
    const plain = "my-very-secret-webhook-secret"
    const a = encrypt(ring, plain)
    const b = encrypt(ring, plain)
    expect(a).toMatch(/^v1\.k1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/)
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
    expect(encrypt(rotated, "s3cret").startsWith("v1.new.")).toBe(true)
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
    expect((thrown(() => decrypt(two, boxA.replace("v1.a.", "v1.b."))) as SecretDecryptError).reason).toBe("tampered")
  })

  it("rejects malformed boxes and other versions", () => {
    expect((thrown(() => decrypt(ring, "nope")) as SecretDecryptError).reason).toBe("malformed")
    const box = encrypt(ring, "x")
    expect((thrown(() => decrypt(ring, box.replace(/^v1/, "v2"))) as SecretDecryptError).reason).toBe(
      "unsupported-version"
    )
  })
})

describe("SecretBox service", () => {
  it.effect("layerFromKeyRing encrypts and decrypts", () =>
    Effect.gen(function*() {
      const box = yield* SecretBox
      const sealed = yield* box.encrypt("hello")
      expect(yield* box.decrypt(sealed)).toBe("hello")
      const err = yield* Effect.flip(box.decrypt(sealed.slice(0, -3) + "AAA"))
      expect(err._tag).toBe("SecretDecryptError")
    }).pipe(Effect.provide(SecretBox.layerFromKeyRing(generateKeyRing("t")))))

  it.effect("layerTest works", () =>
    Effect.gen(function*() {
      const box = yield* SecretBox
      expect(yield* box.decrypt(yield* box.encrypt("x"))).toBe("x")
    }).pipe(Effect.provide(SecretBox.layerTest)))

  const build = (env: Record<string, string>) =>
    Effect.gen(function*() {
      const box = yield* SecretBox
      return yield* box.decrypt(yield* box.encrypt("via-env"))
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
