/**
 * A quiet and useful start: the platform started on a healthy broker and Postgres,
 * with fresh topics and consumer groups (what makes the broker elect leaders and load group
 * coordinators), prints no ERROR line; a broker that cannot be reached is one ERROR line naming
 * the setting to fix.
 */
import net from "node:net"
import { once } from "node:events"
import { SETTLING_ERROR_MESSAGES } from "@orbit/kafka"
import { afterAll, describe, expect, it } from "vitest"
import { makeSelfSignedCert, startHttpsReceiver } from "../src/HttpsReceiver.ts"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

const platforms: Array<Platform> = []
const cleanups: Array<() => unknown> = []
afterAll(async () => {
  await Promise.all(platforms.map((p) => p.close()))
  for (const c of cleanups) await c()
})

/** Every line of every service whose level is ERROR (kafkajs' lines and the services' own). */
const errorLines = (platform: Platform) =>
  [...platform.logs].flatMap(([name, lines]) => lines.filter((l) => /"level":"ERROR"/i.test(l)).map((l) => `[${name}] ${l}`))

/** WARN lines about a broker that is only settling: retried, so at most Debug. */
const settlingWarnings = (platform: Platform) =>
  [...platform.logs].flatMap(([name, lines]) =>
    lines.filter((l) => /"level":"WARN"/i.test(l) && SETTLING_ERROR_MESSAGES.some((m) => l.includes(m))).map((l) => `[${name}] ${l}`))

const logged = (platform: Platform, name: "registration" | "projection" | "dispatcher", message: string) =>
  (platform.logs.get(name) ?? []).some((l) => l.includes(message))

describe("a clean start", () => {
  it("prints no ERROR line (nor a WARN about the broker settling) from start-up through a first registration → delivery → listed attempt", async () => {
    const tls = makeSelfSignedCert()
    const receiver = await startHttpsReceiver(tls)
    cleanups.push(() => receiver.close(), () => tls.cleanup())
    // As `npm start` runs them: the three services at the default log level, on fresh topics and groups.
    const platform = await startPlatform({
      services: ["projection", "registration", "dispatcher"],
      env: { LOG_LEVEL: "Info", ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8", ORBIT_EXTRA_CA_FILE: tls.caFile }
    })
    platforms.push(platform)

    // Start-up is over once every consumer group has joined and every service has done its part
    // of one round trip: the dispatcher logs "fan-out started" and "delivery worker started" after
    // its groups joined (and its endpoint index caught up); the registration's 201 waits for the
    // endpoint projection to apply the write; the attempt listed by the API was delivered by the
    // dispatcher and applied by the attempt projection. Nothing of start-up is left to go wrong
    // after that, so the 30 s the issue names end here when start-up is faster.
    await platform.waitFor("the dispatcher's consumers to start", async () =>
      logged(platform, "dispatcher", "fan-out started") && logged(platform, "dispatcher", "delivery worker started"))
    const { key } = await platform.createKey(uniqueTenant())
    const created = await platform.api("POST", "/api/v1/webhooks", {
      key,
      body: { url: receiver.url("/hook"), events: ["message.delivered"] }
    })
    expect(created.status, created.text).toBe(201)
    const id = created.json.data.id as string
    const sent = await platform.api("POST", `/api/v1/webhooks/${id}/test`, { key })
    expect(sent.status, sent.text).toBe(202)
    await platform.waitFor("the test event's attempt to be listed", async () => {
      const res = await platform.api("GET", `/api/v1/webhooks/${id}/deliveries`, { key })
      return res.status === 200 && res.json.data.some((a: { outcome: string }) => a.outcome === "succeeded")
    })
    expect(receiver.received.length).toBeGreaterThan(0)

    expect(errorLines(platform), "ERROR lines during a clean start").toEqual([])
    expect(settlingWarnings(platform), "WARN lines about a settling broker").toEqual([])
  })
})

describe("a broker that cannot be reached", () => {
  it("is one ERROR line per service naming KAFKA_BROKERS, and the retries after it stay quiet", async () => {
    // A port nothing listens on: bound, then closed.
    const server = net.createServer().listen(0, "127.0.0.1")
    await once(server, "listening")
    const deadPort = (server.address() as net.AddressInfo).port
    await new Promise((r) => server.close(r))

    const platform = await startPlatform({
      services: [],
      // Both settings, naming the same dead broker: an inherited KAFKA_PORT would disagree with it.
      env: { LOG_LEVEL: "Debug", KAFKA_BROKERS: `127.0.0.1:${deadPort}`, KAFKA_PORT: String(deadPort) }
    })
    platforms.push(platform)
    platform.start("dispatcher")
    platform.start("registration")
    // The sentinel: a second failed attempt of each service, logged after its ERROR line.
    const retries = (name: "registration" | "dispatcher") =>
      (platform.logs.get(name) ?? []).filter((l) => l.includes("cannot create topics yet; retrying")).length
    await platform.waitFor("two retries of each service after its first failure", async () =>
      retries("dispatcher") >= 2 && retries("registration") >= 2)

    const errors = errorLines(platform)
    for (const name of ["dispatcher", "registration"]) {
      const mine = errors.filter((l) => l.startsWith(`[${name}]`))
      expect(mine, `${name}: exactly one ERROR line\n${errors.join("\n")}`).toHaveLength(1)
      expect(mine[0]).toContain(`127.0.0.1:${deadPort}`)
      expect(mine[0]).toContain("KAFKA_BROKERS")
    }
  })
})
