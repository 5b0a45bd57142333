/**
 * The pinned connector against real local servers (HTTPS with a self-signed
 * certificate for `hooks.test`, made with openssl at test time).
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer as createHttpServer } from "node:http"
import type { IncomingMessage, Server, ServerResponse } from "node:http"
import { createServer as createHttpsServer } from "node:https"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { TLSSocket } from "node:tls"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { fetch, request } from "undici"
import type { Agent } from "undici"
import { parseCidrList } from "../src/IpClassifier.ts"
import { NetGuard, NetGuardPolicy, Resolver } from "../src/NetGuard.ts"
import type { Policy, ResolvedAddress, ResolveHost } from "../src/NetGuard.ts"
import { isSsrfBlocked, makePinnedDispatcher, SSRF_BLOCKED } from "../src/PinnedAgent.ts"
import type { SsrfRefusal } from "../src/PinnedAgent.ts"
import { makeCaresResolver } from "../src/CaresResolver.ts"
import { startDnsServer } from "./support/DnsServer.ts"

const LOOPBACK_ALLOWED: Policy = { allowInsecureHttp: false, allowCidrs: parseCidrList("127.0.0.0/8") }
const STRICT: Policy = { allowInsecureHttp: false, allowCidrs: [] }

/** What the servers saw. */
interface Seen {
  connections: number
  sni: Array<string | false | null>
  hosts: Array<string | undefined>
  paths: Array<string | undefined>
}
const seen: Seen = { connections: 0, sni: [], hosts: [], paths: [] }

const handler = (req: IncomingMessage, res: ServerResponse) => {
  seen.hosts.push(req.headers.host)
  seen.paths.push(req.url)
  if (req.url === "/redirect") {
    res.writeHead(302, { location: "/target" }).end()
  } else {
    res.writeHead(200, { "content-type": "text/plain" }).end("hello")
  }
}

let dir: string
let cert: string
let https: Server
let http: Server
let httpsPort: number
let httpPort: number

const listen = (server: Server) =>
  new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)))

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "net-guard-tls-"))
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
    "-subj", "/CN=hooks.test", "-addext", "subjectAltName=DNS:hooks.test,IP:127.0.0.1",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")
  ], { stdio: "ignore" })
  cert = readFileSync(join(dir, "cert.pem"), "utf8")
  https = createHttpsServer({ key: readFileSync(join(dir, "key.pem")), cert }, handler)
  https.on("connection", () => seen.connections++)
  https.on("secureConnection", (socket: TLSSocket) => seen.sni.push(socket.servername))
  http = createHttpServer(handler)
  http.on("connection", () => seen.connections++)
  ;[httpsPort, httpPort] = await Promise.all([listen(https), listen(http)])
})

afterAll(async () => {
  for (const server of [https, http]) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
  rmSync(dir, { recursive: true, force: true })
})

beforeEach(() => {
  seen.connections = 0
  seen.sni = []
  seen.hosts = []
  seen.paths = []
})

/** Maps every name to the given answers, and counts lookups. */
const resolverOf = (pick: (host: string, call: number) => ReadonlyArray<string>) => {
  const calls: Array<string> = []
  const resolve: ResolveHost = async (host): Promise<ReadonlyArray<ResolvedAddress>> => {
    calls.push(host)
    return pick(host, calls.length).map((address) => ({ address, family: address.includes(":") ? 6 : 4 }))
  }
  return { calls, resolve }
}

/** Runs `f` with a fresh dispatcher and always closes it (no pooled connections leak between tests). */
const withAgent = async <A>(agent: Agent, f: (agent: Agent) => Promise<A>): Promise<A> => {
  try {
    return await f(agent)
  } finally {
    await agent.destroy()
  }
}

const errorOf = async (promise: Promise<unknown>): Promise<any> => {
  try {
    await promise
  } catch (e) {
    return e
  }
  throw new Error("expected the request to fail")
}

describe("makePinnedDispatcher", () => {
  it("connects to the vetted IP while SNI, certificate and Host use the name", async () => {
    const r = resolverOf(() => ["127.0.0.1"])
    const agent = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver: r.resolve, ca: cert })
    await withAgent(agent, async (dispatcher) => {
      const res = await request(`https://hooks.test:${httpsPort}/hook`, { method: "POST", body: "{}", dispatcher })
      expect(res.statusCode).toBe(200)
      expect(await res.body.text()).toBe("hello")
    })
    expect(seen.hosts).toEqual([`hooks.test:${httpsPort}`])
    expect(seen.sni).toEqual(["hooks.test"])
    expect(r.calls).toEqual(["hooks.test"]) // exactly one lookup per connection
  })

  it("refuses a name resolving to a forbidden address; the server sees no connection", async () => {
    const r = resolverOf(() => ["127.0.0.1"])
    const refusals: Array<SsrfRefusal> = []
    const agent = makePinnedDispatcher({ policy: STRICT, resolver: r.resolve, ca: cert, onRefused: (d) => refusals.push(d) })
    const error = await withAgent(agent, (dispatcher) => errorOf(request(`https://hooks.test:${httpsPort}/`, { dispatcher })))
    expect(error.code).toBe(SSRF_BLOCKED)
    expect(isSsrfBlocked(error)).toBe(true)
    // The message (what the attempt log shows) names no address or range; the operator hook does.
    expect(error.message).toBe("URL host is not allowed.")
    expect(refusals).toEqual([{ host: "hooks.test", address: "127.0.0.1", reason: "loopback address (127.0.0.0/8)" }])
    expect(seen.connections).toBe(0)
  })

  it("refuses when any one of several answers is forbidden", async () => {
    const r = resolverOf(() => ["127.0.0.1", "10.0.0.7"])
    const refusals: Array<SsrfRefusal> = []
    const agent = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver: r.resolve, ca: cert, onRefused: (d) => refusals.push(d) })
    const error = await withAgent(agent, (dispatcher) => errorOf(request(`https://hooks.test:${httpsPort}/`, { dispatcher })))
    expect(isSsrfBlocked(error)).toBe(true)
    expect(error.message).toBe("URL host is not allowed.")
    expect(refusals).toEqual([{ host: "hooks.test", address: "10.0.0.7", reason: "private address (10.0.0.0/8)" }])
    expect(seen.connections).toBe(0)
  })

  it.each([
    ["::ffff:0:a9fe:a9fe", "IPv4-translated (SIIT) address (::ffff:0:0:0/96)"],
    ["::ffff:0:7f00:1", "IPv4-translated (SIIT) address (::ffff:0:0:0/96)"],
    ["fec0::1", "site-local address (fec0::/10)"],
    ["3fff::1", "documentation address (3fff::/20)"],
    ["5f00::1", "non-global IPv6 address (outside 2000::/3)"]
  ])("refuses a name answering %s at connect time, with the same words (%s for the operator)", async (address, reason) => {
    // 127.0.0.1 is allowed and listening: only the IPv6 answer can stop the request.
    const r = resolverOf(() => ["127.0.0.1", address])
    const refusals: Array<SsrfRefusal> = []
    const agent = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver: r.resolve, ca: cert, onRefused: (d) => refusals.push(d) })
    const error = await withAgent(agent, (dispatcher) => errorOf(request(`https://hooks.test:${httpsPort}/`, { dispatcher })))
    expect(isSsrfBlocked(error)).toBe(true)
    expect(error.message).toBe("URL host is not allowed.")
    expect(refusals).toEqual([{ host: "hooks.test", address, reason }])
    expect(seen.connections).toBe(0)
  })

  it("refuses IPv6 literals outside 2000::/3 or excluded inside it, naming why and telling the hook nothing", async () => {
    const r = resolverOf(() => ["127.0.0.1"])
    const refusals: Array<SsrfRefusal> = []
    for (const [literal, reason] of [
      ["[::ffff:0:7f00:1]", "IPv4-translated (SIIT)"],
      ["[fec0::1]", "site-local"],
      ["[3fff::1]", "documentation"],
      ["[5f00::1]", "outside 2000::/3"]
    ] as const) {
      const agent = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver: r.resolve, ca: cert, onRefused: (d) => refusals.push(d) })
      const error = await withAgent(agent, (dispatcher) => errorOf(request(`https://${literal}:${httpsPort}/`, { dispatcher })))
      expect(isSsrfBlocked(error), literal).toBe(true)
      expect(error.message, literal).toMatch(/^URL targets a forbidden /)
      expect(error.message, literal).toContain(reason)
    }
    expect(refusals).toEqual([])
    expect(r.calls).toEqual([])
  })

  it("refuses port 0 at connect time without a lookup", async () => {
    const r = resolverOf(() => ["127.0.0.1"])
    const agent = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver: r.resolve, ca: cert })
    const error = await withAgent(agent, (dispatcher) => errorOf(request("https://hooks.test:0/", { dispatcher })))
    expect(isSsrfBlocked(error)).toBe(true)
    expect(error.message).toBe("Refusing to connect: the port must be between 1 and 65535")
    expect(r.calls).toEqual([])
  })

  it("connects to an IPv6 range outside 2000::/3 that the operator allows (::1/128)", async () => {
    const server = createHttpServer(handler)
    const port = await new Promise<number>((resolve, reject) => {
      server.once("error", reject)
      server.listen(0, "::1", () => resolve((server.address() as AddressInfo).port))
    }).catch(() => undefined)
    if (port === undefined) return // no IPv6 loopback on this machine
    try {
      const r = resolverOf(() => ["::1"])
      const policy = { allowInsecureHttp: true, allowCidrs: parseCidrList("::1/128") }
      const agent = makePinnedDispatcher({ policy, resolver: r.resolve })
      await withAgent(agent, async (dispatcher) => {
        for (const url of [`http://v6.test:${port}/name`, `http://[::1]:${port}/literal`]) {
          const res = await request(url, { dispatcher })
          expect(res.statusCode, url).toBe(200)
          await res.body.dump()
        }
      })
      expect(seen.paths).toEqual(["/name", "/literal"])
      const strict = makePinnedDispatcher({ policy: { ...policy, allowCidrs: [] }, resolver: r.resolve })
      const error = await withAgent(strict, (dispatcher) => errorOf(request(`http://v6.test:${port}/`, { dispatcher })))
      expect(isSsrfBlocked(error)).toBe(true)
    } finally {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })

  it("defeats DNS rebinding: public at registration, loopback at delivery → refused at connect", async () => {
    const r = resolverOf((_, call) => (call === 1 ? ["93.184.216.34"] : ["127.0.0.1"]))
    const url = `https://hooks.test:${httpsPort}/`
    const vetted = await Effect.runPromise(
      Effect.flatMap(NetGuard, (guard) => guard.vetForRegistration(url)).pipe(
        Effect.provide(NetGuard.layerNoDeps.pipe(
          Layer.provide(Layer.mergeAll(NetGuardPolicy.layerWith(STRICT), Resolver.layerFrom(r.resolve)))
        ))
      )
    )
    expect(vetted).toMatchObject({ resolved: true, addresses: ["93.184.216.34"] })

    const agent = makePinnedDispatcher({ policy: STRICT, resolver: r.resolve, ca: cert })
    const error = await withAgent(agent, (dispatcher) => errorOf(request(url, { dispatcher })))
    expect(isSsrfBlocked(error)).toBe(true)
    expect(r.calls).toEqual(["hooks.test", "hooks.test"])
    expect(seen.connections).toBe(0)
  })

  it("dials IP literals directly (no lookup, no SNI) and still vets them", async () => {
    const r = resolverOf(() => ["10.0.0.1"])
    const allowed = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver: r.resolve, ca: cert })
    await withAgent(allowed, async (dispatcher) => {
      const res = await request(`https://127.0.0.1:${httpsPort}/`, { dispatcher })
      expect(res.statusCode).toBe(200)
      await res.body.dump()
    })
    expect(seen.sni).toEqual([false])
    expect(seen.hosts).toEqual([`127.0.0.1:${httpsPort}`])

    for (const literal of ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "2130706433", "0x7f.1"]) {
      const strict = makePinnedDispatcher({ policy: STRICT, resolver: r.resolve, ca: cert })
      const error = await withAgent(strict, (dispatcher) => errorOf(request(`https://${literal}:${httpsPort}/`, { dispatcher })))
      expect(isSsrfBlocked(error), literal).toBe(true)
    }
    expect(r.calls).toEqual([])
  })

  it("refuses localhost names even when loopback is allowed, without a lookup", async () => {
    const r = resolverOf(() => ["127.0.0.1"])
    const agent = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver: r.resolve, ca: cert })
    const error = await withAgent(agent, (dispatcher) => errorOf(request(`https://api.localhost:${httpsPort}/`, { dispatcher })))
    expect(isSsrfBlocked(error)).toBe(true)
    expect(r.calls).toEqual([])
  })

  it("verifies the certificate against the name: a cert for hooks.test does not pass for other.test", async () => {
    const r = resolverOf(() => ["127.0.0.1"])
    const agent = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver: r.resolve, ca: cert })
    const error = await withAgent(agent, (dispatcher) => errorOf(request(`https://other.test:${httpsPort}/`, { dispatcher })))
    expect(error.code).toBe("ERR_TLS_CERT_ALTNAME_INVALID")
    expect(error.message).toContain("other.test")
  })

  it("keeps the default roots only: without the extra CA the self-signed cert is rejected", async () => {
    const r = resolverOf(() => ["127.0.0.1"])
    const agent = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver: r.resolve })
    const error = await withAgent(agent, (dispatcher) => errorOf(request(`https://hooks.test:${httpsPort}/`, { dispatcher })))
    expect(error.code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY/)
  })

  it("does not follow redirects: a 3xx comes back as is", async () => {
    const r = resolverOf(() => ["127.0.0.1"])
    const agent = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver: r.resolve, ca: cert })
    await withAgent(agent, async (dispatcher) => {
      const res = await request(`https://hooks.test:${httpsPort}/redirect`, { dispatcher })
      expect(res.statusCode).toBe(302)
      expect(res.headers.location).toBe("/target")
      await res.body.dump()
      // fetch follows by default; a caller must ask for manual redirects.
      const fetched = await fetch(`https://hooks.test:${httpsPort}/redirect`, { dispatcher, redirect: "manual" })
      expect(fetched.status).toBe(302)
      await fetched.body?.cancel()
    })
    expect(seen.paths).toEqual(["/redirect", "/redirect"])
  })

  it("undici 8: `maxRedirections: 0` is accepted and inert; any other value throws (use the redirect interceptor)", async () => {
    const r = resolverOf(() => ["127.0.0.1"])
    const agent = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver: r.resolve, ca: cert })
    await withAgent(agent, async (dispatcher) => {
      const res = await request(`https://hooks.test:${httpsPort}/redirect`, { dispatcher, maxRedirections: 0 } as never)
      expect(res.statusCode).toBe(302)
      await res.body.dump()
      const error = await errorOf(request(`https://hooks.test:${httpsPort}/redirect`, { dispatcher, maxRedirections: 5 } as never))
      expect(error.code).toBe("UND_ERR_INVALID_ARG")
    })
    expect(seen.paths).toEqual(["/redirect"])
  })

  it("refuses plain http unless the policy allows it", async () => {
    const r = resolverOf(() => ["127.0.0.1"])
    const strict = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver: r.resolve })
    const error = await withAgent(strict, (dispatcher) => errorOf(request(`http://hooks.test:${httpPort}/`, { dispatcher })))
    expect(isSsrfBlocked(error)).toBe(true)
    expect(seen.connections).toBe(0)

    const insecure = makePinnedDispatcher({ policy: { ...LOOPBACK_ALLOWED, allowInsecureHttp: true }, resolver: r.resolve })
    await withAgent(insecure, async (dispatcher) => {
      const res = await request(`http://hooks.test:${httpPort}/`, { dispatcher })
      expect(res.statusCode).toBe(200)
      await res.body.dump()
    })
    expect(seen.hosts).toEqual([`hooks.test:${httpPort}`])
  })

  it("bounds a hanging lookup by connectTimeoutMs; its late answer dials nothing", async () => {
    // The first lookup hangs until released; later lookups answer at once.
    let release: (answers: ReadonlyArray<ResolvedAddress>) => void = () => {}
    const calls: Array<string> = []
    const resolver: ResolveHost = (host) => {
      calls.push(host)
      return calls.length === 1
        ? new Promise((resolve) => { release = resolve })
        : Promise.resolve([{ address: "127.0.0.1", family: 4 }])
    }
    const agent = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver, ca: cert, connectTimeoutMs: 200 })
    await withAgent(agent, async (dispatcher) => {
      const error = await errorOf(request(`https://hooks.test:${httpsPort}/`, { dispatcher }))
      // The lookup's own timeout, not a connect or TLS one.
      expect(error.code).toBe("ETIMEDOUT")
      expect(error.message).toBe("DNS lookup of hooks.test timed out after 200 ms")
      expect(seen.connections).toBe(0)
      // The hung lookup answers late; then a sentinel request on the same agent goes through.
      release([{ address: "127.0.0.1", family: 4 }])
      const res = await request(`https://hooks.test:${httpsPort}/sentinel`, { dispatcher })
      expect(res.statusCode).toBe(200)
      await res.body.dump()
    })
    // Only the sentinel connected: the timed-out attempt was not resumed by its late answer.
    expect(seen.connections).toBe(1)
    expect(seen.paths).toEqual(["/sentinel"])
    expect(calls).toEqual(["hooks.test", "hooks.test"])
  })

  it("passes lookup failures through", async () => {
    const failing: ResolveHost = () => Promise.reject(Object.assign(new Error("getaddrinfo ENOTFOUND"), { code: "ENOTFOUND" }))
    const agent = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver: failing, ca: cert })
    const error = await withAgent(agent, (dispatcher) => errorOf(request(`https://hooks.test:${httpsPort}/`, { dispatcher })))
    expect(error.code).toBe("ENOTFOUND")
  })

  it("falls back to the next vetted address when one does not answer", async () => {
    // The server listens on 127.0.0.1 only, so ::1 is refused and the connector moves on.
    const r = resolverOf(() => ["::1", "127.0.0.1"])
    const agent = makePinnedDispatcher({ policy: { ...STRICT, allowCidrs: parseCidrList("127.0.0.0/8,::1/128") }, resolver: r.resolve, ca: cert })
    await withAgent(agent, async (dispatcher) => {
      const res = await request(`https://hooks.test:${httpsPort}/`, { dispatcher })
      expect(res.statusCode).toBe(200)
      await res.body.dump()
    })
    expect(r.calls).toEqual(["hooks.test"])
  })
})

describe("makePinnedDispatcher with the c-ares resolver and a real DNS server", () => {
  it("dials the DNS answer with SNI, certificate and Host for the name; a second connection uses the cache", async () => {
    const dns = await startDnsServer({ "hooks.test": { a: ["127.0.0.1"] }, "inside.test": { a: ["10.1.2.3"] } })
    try {
      const resolver = makeCaresResolver({ servers: [dns.address] })
      const agent = makePinnedDispatcher({ policy: LOOPBACK_ALLOWED, resolver, ca: cert })
      await withAgent(agent, async (dispatcher) => {
        for (const path of ["/one", "/two"]) {
          // A fresh connection each time: the receiver closes it.
          const res = await request(`https://hooks.test:${httpsPort}${path}`, { dispatcher, headers: { connection: "close" } })
          expect(res.statusCode).toBe(200)
          await res.body.dump()
        }
        const error = await errorOf(request(`https://inside.test:${httpsPort}/`, { dispatcher }))
        expect(isSsrfBlocked(error)).toBe(true)
      })
      expect(seen.connections).toBe(2)
      expect(seen.sni).toEqual(["hooks.test", "hooks.test"])
      expect(seen.hosts).toEqual([`hooks.test:${httpsPort}`, `hooks.test:${httpsPort}`])
      expect(dns.asked("hooks.test")).toBe(2) // one A and one AAAA question, for the first connection only
    } finally {
      await dns.close()
    }
  })
})
