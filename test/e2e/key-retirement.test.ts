/**
 * Retiring an encryption key, the documented way (packages/crypto/README.md): endpoints registered
 * under key A; key B put first in ORBIT_SECRET_KEYS; `orbit secrets reseal`; the services restarted
 * with key B alone; `orbit rebuild endpoints`; then every endpoint's deliveries are still signed
 * with its own secrets, checked at a real HTTPS receiver. On the way: an endpoint whose box is of
 * the previous version is sealed anew by its next write, and a cursor issued under the old ring
 * keeps working under the new one. Real processes, real Kafka, real Postgres.
 */
import { execFile } from "node:child_process"
import { createCipheriv, createHmac, createSecretKey, randomBytes, randomUUID } from "node:crypto"
import path from "node:path"
import { generateKeyRing } from "@orbit/crypto"
import { encodeEndpointEvent, type EndpointEvent, newEndpointId, newEventId, topicsFor } from "@orbit/domain"
import { Kafka, logLevel, type KafkajsProducer as Producer } from "@orbit/kafka"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { brokers } from "../../infra/kafka.ts"
import { type HttpsReceiver, makeSelfSignedCert, type Received, type SelfSignedCert, startHttpsReceiver } from "../src/HttpsReceiver.ts"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

const ROOT = path.join(import.meta.dirname, "..", "..")
const SERVICES = ["projection", "registration", "dispatcher"] as const
const KEY_A = generateKeyRing("keya")
const KEY_B = generateKeyRing("keyb")

let tls: SelfSignedCert
let receiver: HttpsReceiver
let platform: Platform
let kafka: Kafka
let producer: Producer

beforeAll(async () => {
  tls = makeSelfSignedCert()
  receiver = await startHttpsReceiver(tls)
  platform = await startPlatform({
    services: [...SERVICES],
    env: { ORBIT_SECRET_KEYS: KEY_A, ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8", ORBIT_EXTRA_CA_FILE: tls.caFile }
  })
  kafka = new Kafka({ clientId: "e2e-key-retirement", brokers: brokers(), logLevel: logLevel.NOTHING })
  producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
})

afterAll(async () => {
  await producer?.disconnect()
  await platform?.close()
  await receiver?.close()
  tls?.cleanup()
})

/** A box as the previous box version sealed it (AAD `v1.<keyId>`, bound to no endpoint). */
const sealV1 = (ring: string, plain: string): string => {
  const [keyId, b64] = ring.split(":") as [string, string]
  const iv = randomBytes(12)
  const cipher = createCipheriv("aes-256-gcm", createSecretKey(Buffer.from(b64, "base64")), iv, { authTagLength: 16 })
  cipher.setAAD(Buffer.from(`v1.${keyId}`))
  const ct = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()])
  return ["v1", keyId, iv.toString("base64url"), ct.toString("base64url"), cipher.getAuthTag().toString("base64url")].join(".")
}

const runCli = (...args: Array<string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [path.join(ROOT, "packages/cli/src/main.ts"), ...args], { env: platform.env, timeout: 120_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1
      resolve({ code, stdout, stderr })
    })
  })

/** Stops every service, sets the key ring, and starts them again with it. */
const restartWith = async (keyRing: string, between: () => Promise<void> = async () => {}) => {
  await Promise.all(SERVICES.map((s) => platform.stop(s)))
  platform.env.ORBIT_SECRET_KEYS = keyRing
  await between()
  for (const s of SERVICES) platform.start(s)
  await platform.ready()
}

const secretBoxes = async () =>
  new Map((await platform.sql<Array<{ id: string; secret_box: string; previous_secret_box: string | null }>>`
    SELECT id, secret_box, previous_secret_box FROM endpoints`).map((r) => [r.id, r]))

/** Is `secret`'s signature among the request's X-Devotel-Signature values? Computed from scratch. */
const signedWith = (got: Received, secret: string) => {
  const header = got.headers["x-devotel-signature"]!
  const t = /(?:^|,)t=(\d+)/.exec(header)![1]!
  const v1 = [...header.matchAll(/v1=([0-9a-f]{64})/g)].map((m) => m[1])
  return v1.includes(createHmac("sha256", Buffer.from(secret, "utf8")).update(`${t}.${got.body}`).digest("hex"))
}

describe("retiring an encryption key", () => {
  it("add key B, reseal, drop key A, rebuild: deliveries are still signed with each endpoint's secrets", async () => {
    const tenant = uniqueTenant()
    const { key } = await platform.createKey(tenant)
    const api = platform.client(key).webhooks
    const body = (p: string) => ({ url: receiver.url(p), events: ["message.delivered" as const] })

    // Under key A: three endpoints through the API, one of them rotated (its previous secret signs
    // for the grace window), and one whose registration carries a box of the previous version.
    const rotated = (await api.create(body("/rotated"))).data
    const plain = (await api.create(body("/plain"))).data
    const third = (await api.create(body("/third"))).data
    const next = (await platform.api("POST", `/api/v1/webhooks/${rotated.id}/rotate-secret`, { key })).json.data
    const legacyId = newEndpointId()
    const legacySecret = `legacy-secret-${randomUUID()}`
    const legacy: EndpointEvent = {
      _tag: "EndpointRegistered",
      schema_version: 1,
      event_id: newEventId(),
      occurred_at: new Date().toISOString(),
      endpoint_id: legacyId,
      tenant_id: tenant,
      mode: "live",
      ...body("/legacy"),
      description: null,
      active: true,
      timeout_seconds: 10,
      retry_policy: { strategy: "fixed", max_attempts: 1, delay_seconds: 1 },
      secret_box: sealV1(KEY_A, legacySecret)
    }
    const topic = topicsFor(platform.topicPrefix).endpointEvents.name
    await producer.send({ topic, acks: -1, messages: [{ key: legacyId, value: encodeEndpointEvent(legacy) }] })
    await platform.projectionCaughtUp("endpointEvents")
    // A page of one: its cursor is issued under the ring of key A alone.
    const page = await platform.api("GET", "/api/v1/webhooks?limit=1", { key })
    const cursor = page.json.meta.pagination.cursor as string
    expect(cursor).toEqual(expect.any(String))

    // Key B first in the ring: new boxes use it, A still opens the old ones.
    await restartWith(`${KEY_B},${KEY_A}`)
    const nextPage = await platform.api("GET", `/api/v1/webhooks?limit=1&cursor=${encodeURIComponent(cursor)}`, { key })
    expect(nextPage.status, nextPage.text).toBe(200)
    expect(nextPage.json.data).toHaveLength(1)
    // The legacy endpoint's next write seals its box anew: the current version, key B, bound to it.
    expect((await platform.api("PUT", `/api/v1/webhooks/${legacyId}`, { key, body: body("/legacy") })).status).toBe(200)
    await platform.projectionCaughtUp("endpointEvents")
    expect((await secretBoxes()).get(legacyId)!.secret_box).toMatch(/^v2\.keyb\./)

    // Reseal: the three endpoints still under A; the legacy one is already current.
    const reseal = await runCli("secrets", "reseal")
    expect(reseal.code, reseal.stderr).toBe(0)
    expect(reseal.stdout).toBe("resealed 3 endpoints; 1 already current; 0 failed\n")
    const again = await runCli("secrets", "reseal")
    expect(again.stdout).toBe("resealed 0 endpoints; 4 already current; 0 failed\n")

    // Key A dropped; the read model rebuilt from the topic, whose older events hold A's boxes.
    await restartWith(KEY_B, async () => {
      const rebuild = await runCli("rebuild", "endpoints")
      expect(rebuild.code, rebuild.stderr).toBe(0)
    })
    const boxes = await secretBoxes()
    expect(boxes.size).toBe(4)
    for (const row of boxes.values()) {
      expect(row.secret_box).toMatch(/^v2\.keyb\./)
      if (row.previous_secret_box !== null) expect(row.previous_secret_box).toMatch(/^v2\.keyb\./)
    }
    expect(boxes.get(rotated.id)!.previous_secret_box).not.toBeNull()

    // One event; every endpoint receives it signed with its own secrets, the rotated one with both.
    const event = { id: newEventId(), type: "message.delivered", tenant_id: tenant, mode: "live", created_at: new Date().toISOString(), data: { message_id: randomUUID() } }
    await producer.send({ topic: `${platform.topicPrefix}orbit.events`, acks: -1, messages: [{ key: tenant, value: JSON.stringify(event) }] })
    const delivered = (p: string) =>
      platform.eventually(`the delivery to ${p}`, () => receiver.received.find((r) => r.path === p && r.headers["x-devotel-event-id"] === event.id))
    const atRotated = await delivered("/rotated")
    expect(signedWith(atRotated, next.signing_secret)).toBe(true)
    expect(signedWith(atRotated, rotated.signing_secret)).toBe(true)
    expect(signedWith(await delivered("/plain"), plain.signing_secret)).toBe(true)
    expect(signedWith(await delivered("/third"), third.signing_secret)).toBe(true)
    expect(signedWith(await delivered("/legacy"), legacySecret)).toBe(true)
  }, 300_000)

  it("reseal names an endpoint whose box does not open, reseals the others, and exits 1", async () => {
    const tenant = uniqueTenant()
    const { key } = await platform.createKey(tenant)
    const ok = (await platform.client(key).webhooks.create({ url: receiver.url("/ok"), events: ["message.delivered"] })).data
    // A box under a key the ring never had (key A's is retired by now).
    const lost: EndpointEvent = {
      _tag: "EndpointRegistered",
      schema_version: 1,
      event_id: newEventId(),
      occurred_at: new Date().toISOString(),
      endpoint_id: newEndpointId(),
      tenant_id: tenant,
      mode: "live",
      url: receiver.url("/lost"),
      events: ["message.delivered"],
      description: null,
      active: true,
      timeout_seconds: 10,
      retry_policy: { strategy: "fixed", max_attempts: 1, delay_seconds: 1 },
      secret_box: sealV1(KEY_A, "lost-secret")
    }
    const topic = topicsFor(platform.topicPrefix).endpointEvents.name
    await producer.send({ topic, acks: -1, messages: [{ key: lost.endpoint_id, value: encodeEndpointEvent(lost) }] })
    await platform.projectionCaughtUp("endpointEvents")

    const reseal = await runCli("secrets", "reseal")
    expect(reseal.code).toBe(1)
    // The first test's four endpoints and the new one are current; the lost one is named.
    expect(reseal.stdout).toBe("resealed 0 endpoints; 5 already current; 1 failed\n")
    expect(reseal.stderr).toContain(lost.endpoint_id)
    expect(reseal.stderr).toContain("unknown-key")
    expect(reseal.stderr).not.toContain("lost-secret")
    expect((await secretBoxes()).get(lost.endpoint_id)!.secret_box).toBe(lost.secret_box)
    expect((await secretBoxes()).get(ok.id)!.secret_box).toMatch(/^v2\.keyb\./)
  })
})
