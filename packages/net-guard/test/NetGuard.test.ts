import { mkdtemp, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Fiber, Layer, Logger } from "effect"
import { TestClock } from "effect/testing"
import { parseCidrList } from "../src/IpClassifier.ts"
import { NetGuard, NetGuardPolicy, PolicyConfig, Resolver } from "../src/NetGuard.ts"
import type { Policy, ResolvedAddress, ResolveHost } from "../src/NetGuard.ts"
import { ExtraCaConfig } from "../src/PinnedAgent.ts"

/** A resolver that records the names it was asked for. */
const scripted = (answer: (host: string, call: number) => Promise<ReadonlyArray<ResolvedAddress>>) => {
  const calls: Array<string> = []
  const resolve: ResolveHost = (host) => {
    calls.push(host)
    return answer(host, calls.length)
  }
  return { calls, resolve }
}
const answers = (...addresses: Array<string>) => async () =>
  addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }))

const guard = (resolve: ResolveHost, policy: Partial<Policy> = {}) =>
  NetGuard.layerNoDeps.pipe(Layer.provide(Layer.mergeAll(NetGuardPolicy.layerWith(policy), Resolver.layerFrom(resolve))))

const vet = (url: string) => Effect.flatMap(NetGuard, (g) => g.vetForRegistration(url))

/** A logger that keeps every line (level and message) for the test to read. */
const capturedLogs = () => {
  const lines: Array<{ level: string; message: unknown }> = []
  const layer = Logger.layer([Logger.make(({ logLevel, message }) => void lines.push({ level: logLevel, message }))])
  return { lines, layer }
}

describe("NetGuard.vetForRegistration", () => {
  it.effect("accepts a name whose every address is public", () => {
    const r = scripted(answers("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"))
    return Effect.gen(function*() {
      const vetted = yield* vet("https://Example.com/hook")
      expect(vetted.resolved).toBe(true)
      expect(vetted.addresses).toEqual(["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
      expect(vetted.host).toEqual({ kind: "name", name: "example.com" })
      expect(r.calls).toEqual(["example.com"])
    }).pipe(Effect.provide(guard(r.resolve)))
  })

  it.effect.each([
    [["93.184.216.34", "10.0.0.5"], "10.0.0.5", "private address (10.0.0.0/8)"],
    [["10.1.2.3"], "10.1.2.3", "private address (10.0.0.0/8)"],
    [["127.0.0.1"], "127.0.0.1", "loopback address (127.0.0.0/8)"],
    [["2606:4700::1", "fd00::1"], "fd00::1", "unique local address (fc00::/7)"],
    [["::ffff:169.254.169.254"], "::ffff:169.254.169.254", "IPv4-mapped link-local address (169.254.0.0/16)"],
    [["::ffff:0:a9fe:a9fe"], "::ffff:0:a9fe:a9fe", "IPv4-translated (SIIT) address (::ffff:0:0:0/96)"],
    [["fec0::1"], "fec0::1", "site-local address (fec0::/10)"],
    [["3fff::1"], "3fff::1", "documentation address (3fff::/20)"],
    [["2606:4700::1", "5f00::1"], "5f00::1", "non-global IPv6 address (outside 2000::/3)"],
    [["93.184.216.34", "not-an-address"], "not-an-address", "not a valid IP address"]
  ] as const)("refuses when any answer is forbidden, saying only that the host is not allowed: %j", ([addresses, address, reason]) => {
    const r = scripted(answers(...addresses))
    const logs = capturedLogs()
    return Effect.gen(function*() {
      const error = yield* Effect.flip(vet("https://rebind.example/"))
      expect(error._tag).toBe("ForbiddenUrl")
      // The same words whatever the answer: no address, no range, no kind of range.
      expect(error.reason).toBe("URL host is not allowed.")
      // The operator's log has the detail.
      expect(logs.lines).toEqual([{
        level: "Warn",
        message: [
          "webhook URL refused at registration: its host resolves to a forbidden address",
          { host: "rebind.example", address, reason }
        ]
      }])
    }).pipe(Effect.provide(Layer.mergeAll(guard(r.resolve), logs.layer)))
  })

  it.effect("refuses a literal naming why (the caller typed it), and logs nothing", () => {
    const r = scripted(answers("93.184.216.34"))
    const logs = capturedLogs()
    return Effect.gen(function*() {
      for (const [url, reason] of [
        ["https://[::ffff:0:7f00:1]/", "URL targets a forbidden IPv4-translated (SIIT) address (::ffff:0:0:0/96)."],
        ["https://[fec0::1]/", "URL targets a forbidden site-local address (fec0::/10)."],
        ["https://[3fff::1]/", "URL targets a forbidden documentation address (3fff::/20)."],
        ["https://[5f00::1]/", "URL targets a forbidden non-global IPv6 address (outside 2000::/3)."],
        ["https://example.com:0/", "URL port must be between 1 and 65535."]
      ] as const) {
        expect((yield* Effect.flip(vet(url))).reason, url).toBe(reason)
      }
      expect(r.calls).toEqual([])
      expect(logs.lines).toEqual([])
    }).pipe(Effect.provide(Layer.mergeAll(guard(r.resolve), logs.layer)))
  })

  it.effect("ORBIT_ALLOW_PRIVATE_CIDRS opens the IPv6 ranges it lists, and only those", () => {
    const r = scripted((host) => answers(host === "v6.test" ? "::1" : "fd00::1")())
    return Effect.gen(function*() {
      expect((yield* vet("https://[::1]:8443/")).addresses).toEqual(["::1"])
      expect((yield* vet("https://v6.test/")).addresses).toEqual(["::1"])
      expect((yield* Effect.flip(vet("https://other.test/"))).reason).toBe("URL host is not allowed.")
      expect((yield* Effect.flip(vet("https://[fec0::1]/"))).reason).toContain("site-local")
    }).pipe(Effect.provide(guard(r.resolve, { allowCidrs: parseCidrList("::1/128") })))
  })

  it.effect("refuses literals and names without asking DNS", () => {
    const r = scripted(answers("93.184.216.34"))
    return Effect.gen(function*() {
      for (const url of ["https://0x7f.1/", "https://[::1]/", "https://localhost/", "https://x.localhost/", "http://example.com/", "https://u:p@example.com/"]) {
        const error = yield* Effect.flip(vet(url))
        expect(error._tag, url).toBe("ForbiddenUrl")
        expect(error.message).toBe(error.reason)
      }
      expect(r.calls).toEqual([])
    }).pipe(Effect.provide(guard(r.resolve)))
  })

  it.effect("accepts a public literal without asking DNS", () => {
    const r = scripted(answers("10.0.0.1"))
    return Effect.gen(function*() {
      const vetted = yield* vet("https://93.184.216.34:8443/x")
      expect(vetted).toMatchObject({ resolved: true, addresses: ["93.184.216.34"] })
      expect(r.calls).toEqual([])
    }).pipe(Effect.provide(guard(r.resolve)))
  })

  it.effect("honours the policy: allowed CIDRs and insecure http", () => {
    const r = scripted(answers("127.0.0.1"))
    return Effect.gen(function*() {
      expect((yield* vet("http://hooks.test:8080/")).resolved).toBe(true)
      expect((yield* vet("https://127.0.0.1/")).addresses).toEqual(["127.0.0.1"])
    }).pipe(Effect.provide(guard(r.resolve, { allowInsecureHttp: true, allowCidrs: parseCidrList("127.0.0.0/8") })))
  })

  it.effect("a failing lookup does not block registration (resolved: false)", () => {
    const r = scripted(() => Promise.reject(Object.assign(new Error("getaddrinfo ENOTFOUND"), { code: "ENOTFOUND" })))
    return Effect.gen(function*() {
      const vetted = yield* vet("https://nxdomain.example/")
      expect(vetted).toMatchObject({ resolved: false, addresses: [] })
    }).pipe(Effect.provide(guard(r.resolve)))
  })

  it.effect("an empty answer does not block registration (resolved: false)", () => {
    const r = scripted(answers())
    return Effect.gen(function*() {
      expect((yield* vet("https://empty.example/")).resolved).toBe(false)
    }).pipe(Effect.provide(guard(r.resolve)))
  })

  it.effect("a lookup slower than 2 s does not block registration, and is not waited for", () => {
    // The lookup never answers: only the registration timeout can end the vetting.
    const r = scripted(() => new Promise(() => {}))
    return Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(vet("https://slow.example/"))
      yield* TestClock.adjust("1999 millis")
      expect(r.calls).toEqual(["slow.example"])
      expect(fiber.pollUnsafe()).toBeUndefined() // still waiting for DNS just before the timeout
      yield* TestClock.adjust("1 millis")
      const vetted = yield* Fiber.join(fiber)
      expect(vetted).toMatchObject({ resolved: false, addresses: [] })
    }).pipe(Effect.provide(guard(r.resolve)))
  })
})

describe("PolicyConfig / NetGuard.layer", () => {
  const load = (env: Record<string, string>) => PolicyConfig.parse(ConfigProvider.fromEnvRecord(env))

  it.effect("defaults: nothing allowed, https only", () =>
    Effect.gen(function*() {
      expect(yield* load({})).toEqual({ allowCidrs: [], allowInsecureHttp: false })
    }))

  it.effect("reads ORBIT_ALLOW_PRIVATE_CIDRS and ORBIT_ALLOW_INSECURE_HTTP", () =>
    Effect.gen(function*() {
      const policy = yield* load({ ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8, fd00::/8", ORBIT_ALLOW_INSECURE_HTTP: "true" })
      expect(policy.allowCidrs.map((c) => c.text)).toEqual(["127.0.0.0/8", "fd00::/8"])
      expect(policy.allowInsecureHttp).toBe(true)
    }))

  it.effect("a bad CIDR is a ConfigError naming the variable and the entry", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(load({ ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8,10.0.0.0/40" }))
      expect(error._tag).toBe("ConfigError")
      expect(error.message).toContain("ORBIT_ALLOW_PRIVATE_CIDRS")
      expect(error.message).toContain("10.0.0.0/40")
    }))

  it.effect("a bad boolean is a ConfigError naming the variable", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(load({ ORBIT_ALLOW_INSECURE_HTTP: "maybe" }))
      expect(error.message).toContain("ORBIT_ALLOW_INSECURE_HTTP")
    }))

  it.effect("NetGuard.layer builds from config and exposes the policy", () =>
    Effect.gen(function*() {
      const guard = yield* NetGuard
      const policy = yield* NetGuardPolicy
      expect(policy.allowCidrs.map((c) => c.text)).toEqual(["127.0.0.0/8"])
      expect((yield* guard.vetForRegistration("https://127.0.0.1/")).resolved).toBe(true)
    }).pipe(
      Effect.provide(NetGuard.layer),
      Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8" })))
    ))

  it.effect("NetGuard.layer fails to build on bad config, naming the variable", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.scoped(Layer.build(NetGuard.layer)).pipe(
          Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ ORBIT_ALLOW_PRIVATE_CIDRS: "localhost" })))
        )
      )
      expect(error.message).toContain("ORBIT_ALLOW_PRIVATE_CIDRS")
    }))
})

describe("ExtraCaConfig (ORBIT_EXTRA_CA_FILE)", () => {
  const load = (env: Record<string, string>) => ExtraCaConfig.parse(ConfigProvider.fromEnvRecord(env))
  const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

  it.effect("unset → undefined", () =>
    Effect.gen(function*() {
      expect(yield* load({})).toBeUndefined()
    }))

  it.effect("reads the file", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "net-guard-ca-")))
      const file = join(dir, "ca.pem")
      yield* Effect.promise(() => writeFile(file, PEM))
      expect(yield* load({ ORBIT_EXTRA_CA_FILE: file })).toBe(PEM)
    }))

  it.effect("a missing file is a ConfigError naming the variable", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(load({ ORBIT_EXTRA_CA_FILE: "/nonexistent/ca.pem" }))
      expect(error.message).toContain("ORBIT_EXTRA_CA_FILE")
      expect(error.message).toContain("/nonexistent/ca.pem")
    }))

  it.effect("a file without a PEM certificate is a ConfigError", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "net-guard-ca-")))
      const file = join(dir, "ca.pem")
      yield* Effect.promise(() => writeFile(file, "not a cert"))
      const error = yield* Effect.flip(load({ ORBIT_EXTRA_CA_FILE: file }))
      expect(error.message).toContain("ORBIT_EXTRA_CA_FILE")
    }))
})
