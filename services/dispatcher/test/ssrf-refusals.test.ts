/**
 * What a delivery refused by the SSRF rule records, through the real Deliverer and a real HTTPS
 * receiver (no broker): the attempt says only that the host is not allowed, whatever the name
 * resolved to; the operator's log line has the name, the address and the range.
 */
import { randomUUID } from "node:crypto"
import { encrypt, generateKeyRing, generateWebhookSecret, parseKeyRing, SecretBox } from "@orbit/crypto"
import { DEFAULT_RETRY_POLICY, type DeliveryTask, type Endpoint } from "@orbit/domain"
import { NetGuardPolicy, parseCidrList, type ResolveHost, Resolver } from "@orbit/net-guard"
import { ConfigProvider, Effect, Layer, Logger, ManagedRuntime } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Deliverer } from "../src/delivery/Deliverer.ts"
import { makeCert, type Receiver, startReceiver } from "./support.ts"

/** Scripted answers; 127.0.0.1 is allowed below, so only the other answer can refuse `doc.test`. */
const ANSWERS: Record<string, ReadonlyArray<string>> = {
  "hooks.test": ["127.0.0.1"],
  "private.test": ["10.1.2.3"],
  "metadata.test": ["169.254.169.254"],
  "siit.test": ["::ffff:0:a9fe:a9fe"],
  "site-local.test": ["fec0::1"],
  "doc.test": ["127.0.0.1", "3fff::1"],
  "srv6.test": ["5f00::1"]
}
const resolve: ResolveHost = async (host) =>
  (ANSWERS[host] ?? []).map((address) => ({ address, family: address.includes(":") ? 6 : 4 }))

let tls: ReturnType<typeof makeCert>
let receiver: Receiver
let runtime: ManagedRuntime.ManagedRuntime<Deliverer, unknown>
const ring = generateKeyRing("ssrf")
const lines: Array<{ level: string; message: unknown }> = []

beforeAll(async () => {
  tls = makeCert()
  receiver = await startReceiver(tls)
  const layer = Deliverer.layer.pipe(
    Layer.provide(Layer.mergeAll(
      SecretBox.layerFromKeyRing(ring),
      NetGuardPolicy.layerWith({ allowCidrs: parseCidrList("127.0.0.0/8") }),
      Resolver.layerFrom(resolve)
    )),
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ ORBIT_EXTRA_CA_FILE: tls.caFile }))),
    Layer.provide(Logger.layer([Logger.make(({ logLevel, message }) => void lines.push({ level: logLevel, message }))]))
  )
  runtime = ManagedRuntime.make(layer)
  await runtime.context()
})

afterAll(async () => {
  await runtime?.dispose()
  await receiver?.close()
  tls?.cleanup()
})

const endpointAt = (url: string, id = `ep_${randomUUID()}`): Endpoint => ({
  id,
  tenant_id: "ten_ssrf",
  mode: "live",
  url,
  events: ["*"],
  description: null,
  active: true,
  timeout_seconds: 5,
  retry_policy: DEFAULT_RETRY_POLICY,
  headers: {},
  rate_limit_per_second: null,
  disabled_reason: null,
  disabled_at: null,
  secret_box: encrypt(parseKeyRing(ring), generateWebhookSecret(), { tenant_id: "ten_ssrf", mode: "live", endpoint_id: id, slot: "current" }),
  previous_secret_box: null,
  previous_expires_at: null,
  created_at: new Date().toISOString(),
  updated_at: new Date().toISOString()
})

const taskFor = (endpoint: Endpoint): DeliveryTask => ({
  _tag: "DeliveryTask",
  schema_version: 1,
  event_id: randomUUID(),
  occurred_at: new Date().toISOString(),
  delivery_id: randomUUID(),
  endpoint_id: endpoint.id,
  tenant_id: endpoint.tenant_id,
  mode: "live",
  source_event_id: `evt_${randomUUID()}`,
  source_event_type: "message.delivered",
  body: "{}",
  attempt: 1,
  not_before: new Date().toISOString()
})

const attempt = (url: string) => {
  const endpoint = endpointAt(url)
  return runtime.runPromise(Effect.flatMap(Deliverer, (d) => d.attempt(taskFor(endpoint), endpoint)))
}

describe("a delivery refused because of what its host resolves to", () => {
  it.each([
    ["private.test", "10.1.2.3", "private address (10.0.0.0/8)"],
    ["metadata.test", "169.254.169.254", "link-local address (169.254.0.0/16)"],
    ["siit.test", "::ffff:0:a9fe:a9fe", "IPv4-translated (SIIT) address (::ffff:0:0:0/96)"],
    ["site-local.test", "fec0::1", "site-local address (fec0::/10)"],
    ["doc.test", "3fff::1", "documentation address (3fff::/20)"],
    ["srv6.test", "5f00::1", "non-global IPv6 address (outside 2000::/3)"]
  ])("%s (→ %s): the attempt says only \"URL host is not allowed.\"; the operator log names %s", async (host, address, reason) => {
    lines.length = 0
    const result = await attempt(`https://${host}:${receiver.port}/refused`)
    expect(result).toMatchObject({ ok: false, httpStatus: null, errorClass: "ssrf_blocked", errorMessage: "URL host is not allowed." })
    expect(lines).toContainEqual({
      level: "Warn",
      message: ["delivery refused: the endpoint's host resolves to a forbidden address", { host, address, reason }]
    })
    expect(receiver.received.filter((r) => r.path === "/refused")).toEqual([])
  })

  it("a literal IPv6 address in the URL is refused naming why, and not logged as a DNS refusal", async () => {
    for (const [literal, reason] of [["[::ffff:0:7f00:1]", "IPv4-translated (SIIT)"], ["[fec0::1]", "site-local"], ["[5f00::1]", "outside 2000::/3"]] as const) {
      lines.length = 0
      const result = await attempt(`https://${literal}:${receiver.port}/refused`)
      expect(result.errorClass, literal).toBe("ssrf_blocked")
      expect(result.errorMessage, literal).toContain(reason)
      expect(lines, literal).toEqual([])
    }
  })
})
