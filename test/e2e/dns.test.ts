/**
 * A tenant's host name whose nameserver never answers must not hold up anyone else's deliveries.
 * The platform resolves through a DNS server inside this test (ORBIT_DNS_SERVERS); a tenant's name
 * stops being answered, an event fans out to that tenant's endpoints on the name (one origin each,
 * so one connection and one lookup of the silent name each), and another tenant's endpoint must
 * still get its delivery on the first attempt. The dispatcher allows only as many concurrent lookups as libuv's thread pool has
 * threads (ORBIT_DNS_MAX_CONCURRENT=4), the pool `dns.lookup` used to run on. Real dispatcher,
 * broker, Postgres and HTTPS receiver.
 */
import { randomUUID } from "node:crypto"
import { newEventId } from "@orbit/domain"
import { Kafka, logLevel, type KafkajsProducer as Producer } from "@orbit/kafka"
import type { CreateEndpointRequest } from "@orbit/client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { brokers } from "../../infra/kafka.ts"
import { type DnsServer, startDnsServer } from "../../packages/net-guard/test/support/DnsServer.ts"
import { type HttpsReceiver, makeSelfSignedCert, type SelfSignedCert, startHttpsReceiver } from "../src/HttpsReceiver.ts"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

const GOOD = "good.orbit.test"
const SILENT = "silent.orbit.test"
/** Endpoints on the silent name, each on its own port: each delivery is a connection of its own. */
const SILENT_ENDPOINTS = 8

let dns: DnsServer
let tls: SelfSignedCert
let receiver: HttpsReceiver
let platform: Platform
let kafka: Kafka
let producer: Producer

beforeAll(async () => {
  // The silent name answers at first, so that registration sees its address; it goes silent later.
  dns = await startDnsServer({ [GOOD]: { a: ["127.0.0.1"] }, [SILENT]: { a: ["127.0.0.1"], ttl: 0 } })
  tls = makeSelfSignedCert([GOOD, SILENT])
  receiver = await startHttpsReceiver(tls)
  platform = await startPlatform({
    services: ["projection", "registration", "dispatcher"],
    env: {
      ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8",
      ORBIT_EXTRA_CA_FILE: tls.caFile,
      ORBIT_DNS_SERVERS: dns.address,
      ORBIT_DNS_MAX_CONCURRENT: "4",
      // Longer than the test: a lookup of the silent name stays outstanding throughout.
      ORBIT_DNS_TIMEOUT_MS: "300000"
    }
  })
  kafka = new Kafka({ clientId: "e2e-dns", brokers: brokers(), logLevel: logLevel.NOTHING })
  producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
})

afterAll(async () => {
  await producer?.disconnect()
  await platform?.close()
  await receiver?.close()
  await dns?.close()
  tls?.cleanup()
})

/** Publishes like an upstream producer (API.md §8): topic `orbit.events`, key = tenant id. */
const publish = (tenantId: string, count: number) => {
  const ids = Array.from({ length: count }, () => newEventId())
  return producer.send({
    topic: `${platform.topicPrefix}orbit.events`,
    acks: -1,
    messages: ids.map((id) => ({
      key: tenantId,
      value: JSON.stringify({
        id,
        type: "message.delivered",
        tenant_id: tenantId,
        mode: "live",
        created_at: new Date().toISOString(),
        data: { message_id: randomUUID(), channel: "sms" }
      })
    }))
  }).then(() => ids)
}

const register = async (tenant: string, url: string) => {
  const { key } = await platform.createKey(tenant)
  const { data } = await platform.client(key).webhooks.create({ url, events: ["message.delivered"], timeout_seconds: 5 } as CreateEndpointRequest)
  return { key, id: data.id }
}

describe("a host name whose nameserver never answers", () => {
  it("does not hold up other endpoints' deliveries", async () => {
    const silentTenant = uniqueTenant()
    const goodTenant = uniqueTenant()
    const silent = await register(silentTenant, `https://${SILENT}:${receiver.port}/silent`)
    for (let i = 1; i < SILENT_ENDPOINTS; i++) await register(silentTenant, `https://${SILENT}:${10_000 + i}/silent`)
    const good = await register(goodTenant, `https://${GOOD}:${receiver.port}/good`)
    expect(dns.asked(SILENT)).toBeGreaterThan(0) // registration vetted the name through this server

    dns.set(SILENT, { hang: true })
    const askedBefore = dns.asked(SILENT)
    await publish(silentTenant, 1)
    await platform.waitFor("the dispatcher to ask for the silent name", async () => dns.asked(SILENT) > askedBefore)

    const [eventId] = await publish(goodTenant, 1)
    const delivered = await platform.eventually(
      "the good endpoint's delivery",
      () => receiver.received.find((r) => r.headers["x-devotel-event-id"] === eventId)
    )
    expect(delivered.path).toBe("/good")

    // It arrived on the first attempt, and nothing reached the silent endpoint.
    const attempts = await platform.eventually("the good endpoint's attempt in the API", async () => {
      const page = await platform.client(good.key).webhooks.deliveries(good.id, { limit: 10 }).catch(() => undefined)
      return page !== undefined && page.data.length > 0 ? page.data : undefined
    })
    expect(attempts.map((a) => [a.attempt, a.outcome])).toEqual([[1, "succeeded"]])
    expect(receiver.received.filter((r) => r.path === "/silent")).toEqual([])

    // The silent endpoint's attempts time out (the attempt's bound, shorter than the lookup's).
    const failed = await platform.eventually("a failed attempt of the silent endpoint", async () => {
      const page = await platform.client(silent.key).webhooks.deliveries(silent.id, { limit: 10 }).catch(() => undefined)
      return page?.data.find((a) => a.outcome === "failed")
    })
    expect(failed.error_class).toBe("timeout")
  })
})
