import { describe, expect, it } from "@effect/vitest"
import { createHmac } from "node:crypto"
import { Webhook } from "standardwebhooks"
import { generateWebhookSecret, isWhsecSecret, standardWebhooksSecret } from "../src/Secrets.ts"
import {
  devotelSignature,
  signDelivery,
  signingKey,
  standardWebhooksSignature,
  verifyDevotelSignature
} from "../src/Signer.ts"

const body = JSON.stringify({ id: "evt_123", type: "message.delivered", created_at: "2025-01-01T00:00:00Z", data: { text: "héllo ✓" } })
const now = () => Math.floor(Date.now() / 1000)

// Independent reference: the definition from API.md §7, written out from scratch.
const referenceHex = (secret: string, t: number, raw: string) =>
  createHmac("sha256", Buffer.from(secret, "utf8")).update(Buffer.from(`${t}.${raw}`, "utf8")).digest("hex")

describe("generateWebhookSecret", () => {
  it("is whsec_ + base64 of 32 random bytes", () => {
    const s = generateWebhookSecret()
    expect(s).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/)
    expect(Buffer.from(s.slice(6), "base64")).toHaveLength(32)
    expect(isWhsecSecret(s)).toBe(true)
    expect(generateWebhookSecret()).not.toBe(s)
  })

  it("tells whsec_ secrets from caller-chosen ones", () => {
    expect(isWhsecSecret("my-own-secret")).toBe(false)
    expect(isWhsecSecret("whsec_")).toBe(false)
    expect(isWhsecSecret("whsec_not base64!")).toBe(false)
    expect(standardWebhooksSecret("my-own-secret")).toBe("whsec_" + Buffer.from("my-own-secret").toString("base64"))
    const s = generateWebhookSecret()
    expect(standardWebhooksSecret(s)).toBe(s)
  })
})

describe("X-Devotel-Signature", () => {
  it("matches an independent HMAC computation", () => {
    const t = 1_700_000_000
    const secret = "whsec_" + "A".repeat(43) + "="
    expect(devotelSignature({ secrets: [secret], timestamp: t, body })).toBe(`t=${t},v1=${referenceHex(secret, t, body)}`)
    // Non-ASCII caller-chosen secret: key is its UTF-8 bytes.
    expect(devotelSignature({ secrets: ["sécret"], timestamp: t, body })).toBe(`t=${t},v1=${referenceHex("sécret", t, body)}`)
  })

  it("verifies a fresh signature and rejects old t, wrong secret, tampered body", () => {
    const secret = generateWebhookSecret()
    const t = now()
    const header = devotelSignature({ secrets: [secret], timestamp: t, body })
    expect(verifyDevotelSignature(header, secret, body, t)).toBe(true)
    expect(verifyDevotelSignature(header, secret, body, t + 300)).toBe(true)
    expect(verifyDevotelSignature(header, secret, body, t + 301)).toBe(false)
    expect(verifyDevotelSignature(header, secret, body, t - 301)).toBe(false) // far-future t
    expect(verifyDevotelSignature(header, secret, body, t + 3600, 7200)).toBe(true)
    expect(verifyDevotelSignature(header, generateWebhookSecret(), body, t)).toBe(false)
    expect(verifyDevotelSignature(header, secret, body + " ", t)).toBe(false)
    // A re-stamped t (replay with a fresh time) does not verify.
    expect(verifyDevotelSignature(header.replace(`t=${t}`, `t=${t + 1}`), secret, body, t)).toBe(false)
  })

  it("rejects malformed headers", () => {
    const secret = "s"
    for (const h of ["", "t=1", "v1=abc", "t=abc,v1=" + "0".repeat(64), "garbage"]) {
      expect(verifyDevotelSignature(h, secret, body, 1)).toBe(false)
    }
  })

  it("carries two v1 values during rotation, new first; each verifies with its own secret", () => {
    const [newer, older] = [generateWebhookSecret(), "caller-chosen-old-secret"]
    const t = now()
    const header = devotelSignature({ secrets: [newer, older], timestamp: t, body })
    expect(header).toBe(`t=${t},v1=${referenceHex(newer, t, body)},v1=${referenceHex(older, t, body)}`)
    expect(verifyDevotelSignature(header, newer, body, t)).toBe(true)
    expect(verifyDevotelSignature(header, older, body, t)).toBe(true)
    expect(verifyDevotelSignature(header, "neither", body, t)).toBe(false)
  })

  it("refuses to sign with no secret or a bad timestamp", () => {
    expect(() => devotelSignature({ secrets: [], timestamp: 1, body })).toThrow(RangeError)
    expect(() => devotelSignature({ secrets: ["s"], timestamp: 1.5, body })).toThrow(RangeError)
    expect(() => devotelSignature({ secrets: ["s"], timestamp: Date.now() / 1000, body })).toThrow(RangeError)
  })
})

describe("Standard Webhooks signature (verified with the standardwebhooks package)", () => {
  const verify = (receiverSecret: string, headers: Record<string, string>, raw = body) =>
    new Webhook(receiverSecret).verify(raw, headers)

  it("verifies for a whsec_ secret passed as-is", () => {
    const secret = generateWebhookSecret()
    const headers = signDelivery({ secrets: [secret], eventId: "evt_123", timestamp: now(), body })
    expect(verify(secret, headers)).toEqual(JSON.parse(body))
    expect(() => verify(generateWebhookSecret(), headers)).toThrow(/No matching signature/)
    expect(() => verify(secret, headers, body.replace("héllo", "hello"))).toThrow(/No matching signature/)
  })

  it("verifies for a caller-chosen secret passed as whsec_ + base64(UTF-8 bytes)", () => {
    for (const secret of ["my-own-secret-1234567890", "sécret with spaces ✓", "whsec_not base64!"]) {
      const headers = signDelivery({ secrets: [secret], eventId: "evt_123", timestamp: now(), body })
      const receiverSecret = "whsec_" + Buffer.from(secret, "utf8").toString("base64") // as the README says
      expect(receiverSecret).toBe(standardWebhooksSecret(secret))
      expect(verify(receiverSecret, headers)).toEqual(JSON.parse(body))
    }
  })

  it("both rotation signatures verify, each with its own secret", () => {
    const [newer, older] = [generateWebhookSecret(), "caller-chosen-old"]
    const headers = signDelivery({ secrets: [newer, older], eventId: "evt_9", timestamp: now(), body })
    expect(headers["webhook-signature"].split(" ")).toHaveLength(2)
    expect(verify(standardWebhooksSecret(newer), headers)).toBeDefined()
    expect(verify(standardWebhooksSecret(older), headers)).toBeDefined()
  })

  it("rejects an old timestamp", () => {
    const secret = generateWebhookSecret()
    const headers = signDelivery({ secrets: [secret], eventId: "evt_1", timestamp: now() - 600, body })
    expect(() => verify(secret, headers)).toThrow(/too old/)
  })

  it("matches the library's own signing byte for byte", () => {
    const secret = generateWebhookSecret()
    const t = 1_700_000_000
    expect(standardWebhooksSignature({ secrets: [secret], msgId: "evt_1", timestamp: t, body })).toBe(
      new Webhook(secret).sign("evt_1", new Date(t * 1000), body)
    )
  })
})

describe("signDelivery", () => {
  it("returns all signature headers of API.md §7", () => {
    const t = 1_700_000_000
    const headers = signDelivery({ secrets: ["s1", "s0"], eventId: "evt_abc", timestamp: t, body })
    expect(headers).toEqual({
      "X-Devotel-Signature": devotelSignature({ secrets: ["s1", "s0"], timestamp: t, body }),
      "webhook-id": "evt_abc",
      "webhook-timestamp": String(t),
      "webhook-signature": standardWebhooksSignature({ secrets: ["s1", "s0"], msgId: "evt_abc", timestamp: t, body })
    })
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]{43}= v1,[A-Za-z0-9+/]{43}=$/)
  })
})

describe("signingKey", () => {
  it("signs exactly like the secret strings it was prepared from (whsec_ and free-form)", () => {
    const t = 1_700_000_000
    const secrets = [generateWebhookSecret(), "a caller-chosen secret, sécret"]
    expect(signDelivery({ secrets: secrets.map(signingKey), eventId: "evt_k", timestamp: t, body }))
      .toEqual(signDelivery({ secrets, eventId: "evt_k", timestamp: t, body }))
  })
})
