/**
 * API.md §6 at registration, through the API: every spelling of a forbidden address is refused
 * with 422 INVALID_WEBHOOK_URL, public addresses are accepted, names resolving to refused
 * addresses are refused, a failing DNS lookup does not block, and the operator's allow-list
 * and insecure-http switch work (in a separate platform started with them).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { HOST_NOT_ALLOWED } from "@orbit/net-guard"
import { type HttpsReceiver, makeSelfSignedCert, type SelfSignedCert, startHttpsReceiver } from "../src/HttpsReceiver.ts"
import { startDnsServer } from "../../packages/net-guard/test/support/DnsServer.ts"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

const BASE = "/api/v1/webhooks"
const events = ["message.delivered"]

let platform: Platform
let key: string
beforeAll(async () => {
  platform = await startPlatform({ env: DNS_ENV })
  key = (await platform.createKey(uniqueTenant())).key
})
afterAll(() => platform?.close())

/**
 * Names that resolve to loopback addresses, served by a DNS server inside this test (the platform's
 * resolver asks only the servers of ORBIT_DNS_SERVERS; /etc/hosts is not read).
 */
const dns = await startDnsServer({
  "loopback.orbit.test": { a: ["127.0.0.1"], aaaa: ["::1"] },
  "loopback4.orbit.test": { a: ["127.0.0.1"] }
})
afterAll(() => dns.close())
const DNS_ENV = { ORBIT_DNS_SERVERS: dns.address }
const loopbackName = "loopback.orbit.test"
const loopbackV4Name = "loopback4.orbit.test"

type Res = Awaited<ReturnType<Platform["api"]>>

/** A service's log line (one JSON object), or undefined for anything else on its output. */
const parseJson = (line: string): any => {
  try {
    return JSON.parse(line)
  } catch {
    return undefined
  }
}

const register = (p: Platform, k: string, url: string) => p.api("POST", BASE, { key: k, body: { url, events } })

const expectRefused = (res: Res, url: string) => {
  expect(res.status, `${url}: ${res.text}`).toBe(422)
  expect(res.json.error).toMatchObject({ code: "INVALID_WEBHOOK_URL", status: 422 })
  expect(res.json.error.details).toEqual([expect.objectContaining({ field: "url" })])
  expect(res.headers.get("x-request-id")).toBe(res.json.meta.request_id)
}

const expectAccepted = (res: Res, url: string) => {
  expect(res.status, `${url}: ${res.text}`).toBe(201)
  expect(res.json.data.url).toBe(url)
}

/** Every spelling §6 names, plus each blocked range (first/last addresses where it proves the mask). */
const refused: ReadonlyArray<[string, string]> = [
  // loopback, in every IPv4 spelling a URL parser understands
  ["loopback", "https://127.0.0.1/"],
  ["loopback, other port", "https://127.0.0.1:8443/hooks"],
  ["loopback, end of 127/8", "https://127.255.255.254/"],
  ["decimal", "https://2130706433/"],
  ["octal", "https://0177.0.0.1/"],
  ["octal, all parts", "https://0177.0000.0000.0001/"],
  ["hex, short", "https://0x7f.1/"],
  ["hex, whole", "https://0x7f000001/"],
  ["octal, whole", "https://017700000001/"],
  ["short form", "https://127.1/"],
  ["three-part form", "https://127.0.1/"],
  ["leading zeros", "https://127.000.000.001/"],
  ["trailing dot", "https://127.0.0.1./"],
  ["percent-encoded", "https://%31%32%37.0.0.1/"],
  ["fullwidth digits", "https://１２７.０.０.１/"],
  // IPv6 spellings
  ["IPv6 loopback", "https://[::1]/"],
  ["IPv6 loopback, long form", "https://[0:0:0:0:0:0:0:1]/"],
  ["IPv6 unspecified", "https://[::]/"],
  ["IPv4-mapped dotted", "https://[::ffff:127.0.0.1]/"],
  ["IPv4-mapped hex", "https://[::ffff:7f00:1]/"],
  ["IPv4-mapped long form", "https://[0:0:0:0:0:ffff:127.0.0.1]/"],
  ["IPv4-mapped metadata", "https://[::ffff:169.254.169.254]/"],
  ["IPv4-mapped private", "https://[::ffff:10.0.0.1]/"],
  ["IPv4-compatible loopback", "https://[::127.0.0.1]/"],
  ["NAT64 of loopback", "https://[64:ff9b::7f00:1]/"],
  ["NAT64 dotted", "https://[64:ff9b::127.0.0.1]/"],
  ["local-use NAT64", "https://[64:ff9b:1::1]/"],
  ["6to4 of loopback", "https://[2002:7f00:1::]/"],
  ["6to4", "https://[2002:c000:204::1]/"],
  ["discard-only", "https://[100::1]/"],
  ["IETF protocol assignments", "https://[2001::1]/"],
  ["documentation v6", "https://[2001:db8::1]/"],
  ["unique local fc00", "https://[fc00::1]/"],
  ["unique local fd00", "https://[fd12:3456::1]/"],
  ["link-local v6", "https://[fe80::1]/"],
  ["link-local v6, end of /10", "https://[febf:ffff::1]/"],
  ["multicast v6", "https://[ff02::1]/"],
  ["zone id", "https://[fe80::1%25eth0]/"],
  // IPv6 is allowed only inside 2000::/3 (global unicast), and there only outside the exclusions
  ["SIIT (IPv4-translated) loopback", "https://[::ffff:0:7f00:1]/"],
  ["SIIT (IPv4-translated) metadata", "https://[::ffff:0:a9fe:a9fe]/"],
  ["SIIT of a public IPv4", "https://[::ffff:0:8.8.8.8]/"],
  ["site-local", "https://[fec0::1]/"],
  ["documentation v6 (RFC 9637)", "https://[3fff::1]/"],
  ["documentation v6 (RFC 9637), end of /20", "https://[3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff]/"],
  ["SRv6 SIDs, outside 2000::/3", "https://[5f00::1]/"],
  ["outside 2000::/3, above", "https://[4000::1]/"],
  ["outside 2000::/3, below", "https://[1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/"],
  ["Teredo", "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/"],
  ["ORCHIDv2", "https://[2001:20::1]/"],
  // ports outside 1-65535 (URL parsing rejects those above 65535 itself)
  ["port 0", "https://example.com:0/"],
  ["port 0, zero-padded", "https://example.com:00000/hooks"],
  ["port 0 on a public literal", "https://93.184.216.34:0/"],
  ["port above 65535", "https://example.com:65536/"],
  // IPv4 ranges
  ["0.0.0.0", "https://0.0.0.0/"],
  ["0 alone", "https://0/"],
  ["this network", "https://0.1.2.3/"],
  ["10/8 start", "https://10.0.0.1/"],
  ["10/8 end", "https://10.255.255.255/"],
  ["172.16/12 start", "https://172.16.0.1/"],
  ["172.16/12 end", "https://172.31.255.255/"],
  ["192.168/16 start", "https://192.168.0.1/"],
  ["192.168/16 end", "https://192.168.255.255/"],
  ["cloud metadata", "https://169.254.169.254/latest/meta-data/"],
  ["link-local start", "https://169.254.0.0/"],
  ["CGNAT start", "https://100.64.0.1/"],
  ["CGNAT end", "https://100.127.255.255/"],
  ["IETF protocol assignments v4", "https://192.0.0.8/"],
  ["TEST-NET-1", "https://192.0.2.1/"],
  ["6to4 relay anycast", "https://192.88.99.1/"],
  ["benchmarking start", "https://198.18.0.1/"],
  ["benchmarking end", "https://198.19.255.255/"],
  ["TEST-NET-2", "https://198.51.100.7/"],
  ["TEST-NET-3", "https://203.0.113.9/"],
  ["multicast", "https://224.0.0.1/"],
  ["multicast end", "https://239.255.255.255/"],
  ["reserved 240/4", "https://240.0.0.1/"],
  ["broadcast", "https://255.255.255.255/"],
  // names
  ["localhost", "https://localhost/"],
  ["localhost with port", "https://localhost:8443/"],
  ["localhost, trailing dot", "https://localhost./"],
  ["LOCALHOST.", "https://LOCALHOST./"],
  ["*.localhost", "https://foo.localhost/"],
  ["deep *.localhost", "https://a.b.LocalHost/"],
  ["malformed name", "https://localhost../"]
]

describe("registration refuses every forbidden address (422 INVALID_WEBHOOK_URL)", () => {
  it.each(refused)("%s: %s", async (_what, url) => {
    expectRefused(await register(platform, key, url), url)
  })

  it("registered none of them, and the refusal message does not echo the URL", async () => {
    const list = await platform.api("GET", `${BASE}?limit=200`, { key })
    expect(list.status).toBe(200)
    expect(list.json.data).toEqual([])
    const res = await register(platform, key, "https://10.0.0.1/secret-token-abc")
    expectRefused(res, "https://10.0.0.1/secret-token-abc")
    expect(res.json.error.message).not.toContain("secret-token-abc")
  })
})

describe("registration accepts public addresses", () => {
  const accepted = [
    "https://93.184.216.34/",
    "https://8.8.8.8/hooks",
    "https://[2606:4700::1111]/",
    "https://[2001:4860:4860::8888]/",
    "https://[::ffff:8.8.8.8]/",
    // the edges of 2000::/3 and of the exclusions inside it
    "https://[2000::1]/",
    "https://[3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/",
    "https://[3fff:1000::1]/",
    "https://[2001:200::1]/",
    "https://example.com:1/",
    "https://example.com:65535/",
    "https://example.com/",
    "https://hooks.example.com:8443/orbit?x=1",
    // just outside each blocked IPv4 range: the masks are exact
    "https://11.0.0.0/",
    "https://9.255.255.255/",
    "https://172.15.255.255/",
    "https://172.32.0.0/",
    "https://192.167.255.255/",
    "https://192.169.0.0/",
    "https://169.253.255.255/",
    "https://169.255.0.0/",
    "https://100.63.255.255/",
    "https://100.128.0.0/",
    "https://198.17.255.255/",
    "https://198.20.0.0/",
    "https://223.255.255.255/",
    "https://126.255.255.255/",
    "https://128.0.0.0/",
    "https://1.0.0.0/"
  ]
  it.each(accepted)("%s → 201", async (url) => {
    const { key: k } = await platform.createKey(uniqueTenant())
    expectAccepted(await register(platform, k, url), url)
  })
})

describe("host names and DNS", () => {
  it(`refuses a host name that resolves to a loopback address (${loopbackName})`, async () => {
    for (const url of [`https://${loopbackName}/`, `https://${loopbackName}./hooks`, `https://${loopbackName.toUpperCase()}:8443/`]) {
      expectRefused(await register(platform, key, url), url)
    }
  })

  it(
    `a refusal by DNS says only that the host is not allowed; the operator's log says where ${loopbackName} points`,
    async () => {
      const { key: k } = await platform.createKey(uniqueTenant())
      const res = await register(platform, k, `https://${loopbackName}/hooks`)
      expectRefused(res, `https://${loopbackName}/hooks`)
      expect(res.json.error.message).toBe(HOST_NOT_ALLOWED)
      // Nothing about the address, the range or its kind reaches the tenant.
      // (The name itself may be echoed back: the tenant typed it.)
      expect(res.text.replaceAll(loopbackName, "<name>")).not.toMatch(/127\.|::1|loopback|private|forbidden|resolve/i)
      const line = await platform.eventually("the operator's log line", () =>
        platform.logs.get("registration")?.map(parseJson).find((l) => l?.message?.[0]?.startsWith("webhook URL refused at registration")))
      expect(line).toMatchObject({
        level: "WARN",
        message: [expect.any(String), { host: loopbackName.toLowerCase(), address: "127.0.0.1", reason: expect.stringContaining("loopback") }]
      })
      expect((await platform.api("GET", BASE, { key: k })).json.data).toEqual([])
    }
  )

  // How long registration waits for DNS (2 s, then it goes on) is pinned with a test clock in
  // packages/net-guard/test/NetGuard.test.ts; here: the outcome through the API.
  it("a DNS lookup that fails does not block registration (the dispatcher re-checks)", async () => {
    const { key: k } = await platform.createKey(uniqueTenant())
    for (const url of ["https://does-not-exist.invalid/", "https://hooks.orbit-webhooks-test.example/"]) {
      expectAccepted(await register(platform, k, url), url)
    }
    expect((await platform.api("GET", BASE, { key: k })).json.data).toHaveLength(2)
  })
})

describe("PUT applies the same rule to a new URL", () => {
  it("refuses moving an endpoint to a forbidden address and leaves it unchanged", async () => {
    const { key: k } = await platform.createKey(uniqueTenant())
    const created = await register(platform, k, "https://hooks.example.com/a")
    expect(created.status).toBe(201)
    const id = created.json.data.id
    const before = (await platform.api("GET", `${BASE}/${id}`, { key: k })).json.data
    for (const url of ["https://127.0.0.1/", "https://2130706433/", "https://[::ffff:7f00:1]/", "https://localhost/", "http://hooks.example.com/"]) {
      expectRefused(await platform.api("PUT", `${BASE}/${id}`, { key: k, body: { url, events } }), url)
    }
    // A refused change that still reached the log would be in the read model once the projection
    // has caught up with the log's end.
    await platform.projectionCaughtUp("endpointEvents")
    expect((await platform.api("GET", `${BASE}/${id}`, { key: k })).json.data).toEqual(before)
    const moved = await platform.api("PUT", `${BASE}/${id}`, { key: k, body: { url: "https://93.184.216.34/b", events } })
    expect(moved.status).toBe(200)
    expect(moved.json.data.url).toBe("https://93.184.216.34/b")
  })
})

describe("operator overrides (a platform started with ORBIT_ALLOW_PRIVATE_CIDRS=127.0.0.0/8, ORBIT_ALLOW_INSECURE_HTTP=true)", () => {
  let open: Platform
  let openKey: string
  beforeAll(async () => {
    open = await startPlatform({ env: { ...DNS_ENV, ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8", ORBIT_ALLOW_INSECURE_HTTP: "true" } })
    openKey = (await open.createKey(uniqueTenant())).key
  })
  afterAll(() => open?.close())

  it("accepts addresses inside the allowed CIDR, in any spelling", async () => {
    for (const url of ["https://127.0.0.1/", "https://127.1/", "https://2130706433/", "https://[::ffff:127.0.0.1]/", "https://127.9.9.9:8443/x"]) {
      expectAccepted(await register(open, openKey, url), url)
    }
  })

  it(`accepts a name resolving into the allowed CIDR (${loopbackV4Name})`, async () => {
    const url = `https://${loopbackV4Name}/`
    expectAccepted(await register(open, openKey, url), url)
  })

  it("accepts http:// and still refuses everything outside the allowed CIDR", async () => {
    expectAccepted(await register(open, openKey, "http://hooks.example.com/"), "http://hooks.example.com/")
    expectAccepted(await register(open, openKey, "http://127.0.0.1:8080/"), "http://127.0.0.1:8080/")
    for (const url of ["https://10.0.0.1/", "http://10.0.0.1/", "https://[::1]/", "https://169.254.169.254/", "https://128.0.0.0.1/", "ftp://hooks.example.com/", "https://user:pw@hooks.example.com/"]) {
      expectRefused(await register(open, openKey, url), url)
    }
  })

  it("the default platform still refuses both (the overrides are per deployment)", async () => {
    expectRefused(await register(platform, key, "https://127.0.0.1/"), "https://127.0.0.1/")
    expectRefused(await register(platform, key, "http://hooks.example.com/"), "http://hooks.example.com/")
  })
})

describe(
  `at delivery: a platform whose registration allows 127.0.0.0/8 but whose dispatcher does not (${loopbackV4Name})`,
  () => {
    // The operator narrowed the dispatcher's allow-list after the endpoint was registered: the
    // dispatcher's own check at connect time is all that stands between the tenant and loopback.
    let split: Platform
    let tls: SelfSignedCert
    let receiver: HttpsReceiver
    beforeAll(async () => {
      tls = makeSelfSignedCert()
      receiver = await startHttpsReceiver(tls)
      split = await startPlatform({ env: { ...DNS_ENV, ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8,::1/128", ORBIT_EXTRA_CA_FILE: tls.caFile } })
      split.start("dispatcher", { ORBIT_ALLOW_PRIVATE_CIDRS: "" })
    })
    afterAll(async () => {
      await split?.close()
      await receiver?.close()
      tls?.cleanup()
    })

    it("refuses the connection and the attempt log says only that the host is not allowed; the operator's log says why", async () => {
      const { key: k } = await split.createKey(uniqueTenant())
      const url = `https://${loopbackV4Name}:${receiver.port}/refused`
      const created = await register(split, k, url)
      expectAccepted(created, url)
      const id = created.json.data.id
      expect((await split.api("POST", `${BASE}/${id}/test`, { key: k })).status).toBe(202)

      const attempt = await split.eventually("the refused attempt in the attempt log", async () => {
        const res = await split.api("GET", `${BASE}/${id}/deliveries`, { key: k })
        return res.status === 200 && res.json.data[0]
      })
      expect(attempt).toMatchObject({ outcome: "failed", error_class: "ssrf_blocked", http_status: null, error_message: HOST_NOT_ALLOWED })
      expect(receiver.received.filter((r) => r.path === "/refused")).toEqual([])

      const line = await split.eventually("the dispatcher's log line", () =>
        split.logs.get("dispatcher")?.map(parseJson).find((l) => l?.message?.[0]?.startsWith("delivery refused")))
      expect(line).toMatchObject({
        level: "WARN",
        message: [expect.any(String), { host: loopbackV4Name.toLowerCase(), address: "127.0.0.1", reason: "loopback address (127.0.0.0/8)" }]
      })
    })
  }
)
