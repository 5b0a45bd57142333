// The c-ares resolver against a real DNS server on 127.0.0.1 (UDP, in this process): answers,
// deadline, the cap on concurrent lookups, coalescing, and the TTL cache, counted in packets.
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { afterAll, afterEach, beforeAll, vi } from "vitest"
import { makeCaresResolver, parseDnsServers } from "../src/CaresResolver.ts"
import type { CaresResolverOptions } from "../src/CaresResolver.ts"
import { DnsConfig, NetGuard, NetGuardPolicy, Resolver } from "../src/NetGuard.ts"
import { type DnsServer, startDnsServer } from "./support/DnsServer.ts"

let server: DnsServer

beforeAll(async () => {
  server = await startDnsServer({
    "good.test": { a: ["93.184.216.34"], aaaa: ["2606:2800:220:1::1"], ttl: 60 },
    "v4only.test": { a: ["93.184.216.35"] },
    "short.test": { a: ["93.184.216.36"], ttl: 0 },
    "a.test": { a: ["93.184.216.1"] },
    "b.test": { a: ["93.184.216.2"] },
    "c.test": { a: ["93.184.216.3"] },
    "hang.test": { hang: true },
    "hang2.test": { hang: true }
  })
})
afterAll(() => server.close())
afterEach(() => vi.useRealTimers())

const resolverWith = (options: Partial<CaresResolverOptions> = {}) =>
  makeCaresResolver({ servers: [server.address], timeoutMs: 5000, ...options })

/** Waits (on the event loop's check phase, which fake timers leave alone) until `f` holds. */
const until = async (what: string, f: () => boolean): Promise<void> => {
  for (let i = 0; i < 100_000; i++) {
    if (f()) return
    await new Promise((r) => setImmediate(r))
  }
  throw new Error(`never happened: ${what}`)
}

const codeOf = (p: Promise<unknown>) => p.then(() => "resolved", (e: { code?: string; message?: string }) => `${e.code}: ${e.message}`)

describe("makeCaresResolver", () => {
  it("asks A and AAAA of the configured server and returns A first", async () => {
    const resolve = resolverWith()
    expect(await resolve("good.test")).toEqual([
      { address: "93.184.216.34", family: 4 },
      { address: "2606:2800:220:1::1", family: 6 }
    ])
    expect(server.questions.filter((q) => q.name === "good.test").map((q) => q.type).sort()).toEqual(["A", "AAAA"])
    expect(await resolve("v4only.test")).toEqual([{ address: "93.184.216.35", family: 4 }])
  })

  it("a name that does not exist fails with ENOTFOUND", async () => {
    expect(await codeOf(resolverWith()("nope.test"))).toMatch(/^ENOTFOUND/)
  })

  it("answers literal IPs and localhost names without a packet", async () => {
    const resolve = resolverWith()
    const before = server.questions.length
    expect(await resolve("10.1.2.3")).toEqual([{ address: "10.1.2.3", family: 4 }])
    expect(await resolve("::1")).toEqual([{ address: "::1", family: 6 }])
    expect(await resolve("localhost")).toEqual([{ address: "127.0.0.1", family: 4 }, { address: "::1", family: 6 }])
    expect(await resolve("api.localhost.")).toHaveLength(2)
    expect(server.questions.length).toBe(before)
  })

  it("a name whose server never answers fails as a timeout", async () => {
    const resolve = resolverWith({ timeoutMs: 300 })
    expect(await codeOf(resolve("hang.test"))).toMatch(/^ETIMEDOUT: DNS lookup of hang\.test timed out/)
    expect(resolve.active()).toBe(0)
  })

  it("concurrent lookups of one name share one slot, so other names still resolve", async () => {
    const resolve = resolverWith({ maxConcurrent: 2, timeoutMs: 10_000 })
    const hung = Array.from({ length: 10 }, () => resolve("hang2.test"))
    await until("the hung name was asked", () => server.asked("hang2.test") > 0)
    expect(resolve.active()).toBe(1)
    expect(await resolve("a.test")).toEqual([{ address: "93.184.216.1", family: 4 }])
    expect(resolve.queued()).toBe(0)
    // Not left to run on after the test: these fail at their deadline.
    void Promise.allSettled(hung)
  })

  it("caps concurrent lookups: a waiting lookup starts when a slot frees, and fails as a timeout if none frees before its deadline", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] })
    const resolve = resolverWith({ maxConcurrent: 1, timeoutMs: 10_000 })
    const first = codeOf(resolve("hang.test"))
    const second = codeOf(resolve("b.test")) // queued behind the hung lookup, same deadline
    await until("the hung name was asked", () => server.asked("hang.test") > 0)
    expect([resolve.active(), resolve.queued()]).toEqual([1, 1])
    const bAsked = server.asked("b.test")
    vi.advanceTimersByTime(5_000)
    const third = resolve("c.test") // queued with 5 s of its deadline left when the first ends
    expect(resolve.queued()).toBe(2)
    vi.advanceTimersByTime(5_000)
    expect(await second).toMatch(/^ETIMEDOUT: DNS lookup of b\.test timed out after 10000 ms waiting for a free lookup slot/)
    expect(await first).toMatch(/^ETIMEDOUT: DNS lookup of hang\.test timed out/)
    expect(server.asked("b.test")).toBe(bAsked)
    expect(await third).toEqual([{ address: "93.184.216.3", family: 4 }])
    expect([resolve.active(), resolve.queued()]).toEqual([0, 0])
  })

  it("caches answers for their TTL: a hit sends no packet, an expired entry asks again", async () => {
    let clock = 1_000_000
    const resolve = resolverWith({ now: () => clock })
    const asked = server.asked("good.test")
    await resolve("good.test")
    expect(server.asked("good.test")).toBe(asked + 2)
    clock += 59_000
    await resolve("good.test")
    expect(server.asked("good.test")).toBe(asked + 2)
    clock += 1_000
    await resolve("good.test")
    expect(server.asked("good.test")).toBe(asked + 4)
  })

  it("never caches a TTL of 0, and caps a long TTL", async () => {
    let clock = 0
    const resolve = resolverWith({ now: () => clock, maxTtlSeconds: 10 })
    await resolve("short.test")
    await resolve("short.test")
    expect(server.asked("short.test")).toBe(4)
    const asked = server.asked("a.test")
    await resolve("a.test") // TTL 300, kept 10 s
    clock += 9_999
    await resolve("a.test")
    expect(server.asked("a.test")).toBe(asked + 2)
    clock += 1
    await resolve("a.test")
    expect(server.asked("a.test")).toBe(asked + 4)
  })

  it("keeps at most cacheSize names, evicting the least recently used", async () => {
    const resolve = resolverWith({ cacheSize: 2 })
    const count = () => ["a.test", "b.test", "c.test"].map((n) => server.asked(n))
    const start = count()
    await resolve("a.test")
    await resolve("b.test")
    await resolve("a.test") // hit: a is now the most recently used
    await resolve("c.test") // evicts b
    await resolve("a.test") // still cached
    await resolve("b.test") // asked again
    expect(count().map((n, i) => n - start[i]!)).toEqual([2, 4, 2])
  })
})

describe("parseDnsServers / DnsConfig", () => {
  it("accepts addresses with optional ports", () => {
    expect(parseDnsServers(" 10.0.0.53, 127.0.0.1:5353,::1,[2001:db8::1]:53 ")).toEqual([
      "10.0.0.53",
      "127.0.0.1:5353",
      "::1",
      "[2001:db8::1]:53"
    ])
    expect(parseDnsServers("")).toEqual([])
  })

  it.each(["dns.example", "127.0.0.1:0", "127.0.0.1:70000", "[10.0.0.1]:53", "::1:53x", "1.2.3:53"])("refuses %s", (entry) => {
    expect(() => parseDnsServers(entry)).toThrow(entry)
  })

  const load = (env: Record<string, string>) => DnsConfig.parse(ConfigProvider.fromEnvRecord(env))

  it.effect("defaults: system servers, 5 s, 64 lookups, 1000 names", () =>
    Effect.gen(function*() {
      expect(yield* load({})).toEqual({ servers: [], timeoutMs: 5000, maxConcurrent: 64, cacheSize: 1000 })
    }))

  it.effect("bad values are ConfigErrors naming the variable", () =>
    Effect.gen(function*() {
      for (const [variable, value] of [
        ["ORBIT_DNS_SERVERS", "127.0.0.1,resolver.local"],
        ["ORBIT_DNS_TIMEOUT_MS", "0"],
        ["ORBIT_DNS_MAX_CONCURRENT", "many"],
        ["ORBIT_DNS_CACHE_SIZE", "-1"]
      ] as const) {
        const error = yield* Effect.flip(load({ [variable]: value }))
        expect(error.message).toContain(variable)
      }
    }))

  it.effect("NetGuard.layer vets registrations through the configured DNS server", () =>
    Effect.gen(function*() {
      const guard = yield* NetGuard
      const vetted = yield* guard.vetForRegistration("https://good.test/hook")
      expect(vetted.addresses).toEqual(["93.184.216.34", "2606:2800:220:1::1"])
      const { resolve } = yield* Resolver
      expect(yield* Effect.promise(() => resolve("v4only.test"))).toEqual([{ address: "93.184.216.35", family: 4 }])
      expect((yield* NetGuardPolicy).allowInsecureHttp).toBe(false)
    }).pipe(
      Effect.provide(NetGuard.layer),
      Effect.provide(Layer.suspend(() => ConfigProvider.layer(ConfigProvider.fromEnvRecord({ ORBIT_DNS_SERVERS: server.address }))))
    ))
})
