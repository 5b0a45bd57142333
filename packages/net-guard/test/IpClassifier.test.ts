import { describe, expect, it } from "@effect/vitest"
import { classifyAddress, isForbiddenName, parseCidr, parseCidrList, parseHost } from "../src/IpClassifier.ts"
import type { IpFamily } from "../src/IpClassifier.ts"

const familyOf = (address: string): IpFamily => (address.includes(":") ? 6 : 4)
const classify = (address: string, allow: Array<string> = []) =>
  classifyAddress(address, familyOf(address), allow.map((c) => parseCidr(c)!))

/**
 * Every §6 range: [cidr, first, last, just below (or null), just above (or null)].
 * null where the neighbour is itself blocked or does not exist.
 */
const RANGES: Array<[string, string, string, string | null, string | null]> = [
  ["0.0.0.0/8", "0.0.0.0", "0.255.255.255", null, "1.0.0.0"],
  ["10.0.0.0/8", "10.0.0.0", "10.255.255.255", "9.255.255.255", "11.0.0.0"],
  ["100.64.0.0/10", "100.64.0.0", "100.127.255.255", "100.63.255.255", "100.128.0.0"],
  ["127.0.0.0/8", "127.0.0.0", "127.255.255.255", "126.255.255.255", "128.0.0.0"],
  ["169.254.0.0/16", "169.254.0.0", "169.254.255.255", "169.253.255.255", "169.255.0.0"],
  ["172.16.0.0/12", "172.16.0.0", "172.31.255.255", "172.15.255.255", "172.32.0.0"],
  ["192.0.0.0/24", "192.0.0.0", "192.0.0.255", "191.255.255.255", "192.0.1.0"],
  ["192.0.2.0/24", "192.0.2.0", "192.0.2.255", "192.0.1.255", "192.0.3.0"],
  ["192.88.99.0/24", "192.88.99.0", "192.88.99.255", "192.88.98.255", "192.88.100.0"],
  ["192.168.0.0/16", "192.168.0.0", "192.168.255.255", "192.167.255.255", "192.169.0.0"],
  ["198.18.0.0/15", "198.18.0.0", "198.19.255.255", "198.17.255.255", "198.20.0.0"],
  ["198.51.100.0/24", "198.51.100.0", "198.51.100.255", "198.51.99.255", "198.51.101.0"],
  ["203.0.113.0/24", "203.0.113.0", "203.0.113.255", "203.0.112.255", "203.0.114.0"],
  ["224.0.0.0/4", "224.0.0.0", "239.255.255.255", "223.255.255.255", null],
  ["240.0.0.0/4", "240.0.0.0", "255.255.255.254", null, null],
  ["255.255.255.255/32", "255.255.255.255", "255.255.255.255", null, null],
  ["::/128", "::", "::", null, null],
  ["::1/128", "::1", "::1", null, null],
  ["64:ff9b::/96", "64:ff9b::", "64:ff9b::ffff:ffff", "64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", "64:ff9b::1:0:0"],
  ["64:ff9b:1::/48", "64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "64:ff9b:0:ffff:ffff:ffff:ffff:ffff", "64:ff9b:2::"],
  ["100::/64", "100::", "100::ffff:ffff:ffff:ffff", "ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "100:0:0:1::"],
  ["2001::/23", "2001::", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:200::"],
  ["2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::"],
  ["2002::/16", "2002::", "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2003::"],
  ["fc00::/7", "fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe00::"],
  ["fe80::/10", "fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fec0::"],
  ["ff00::/8", "ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", null],
  ["3fff::/20", "3fff::", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "3fff:1000::"],
  // Our additions, all outside 2000::/3 (refused by the global-unicast rule; the entry names why).
  ["::/96", "::2", "::ffff:ffff", null, "::1:0:0"],
  ["::ffff:0:0:0/96", "::ffff:0:0:0", "::ffff:0:ffff:ffff", "::fffe:ffff:ffff:ffff", "::ffff:1:0:0"],
  ["fec0::/10", "fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ff00::"]
]

/** Whether an address is IPv4 or inside 2000::/3, the only IPv6 that can be public. */
const globalOrV4 = (address: string) => !address.includes(":") || parseCidr(`${address}/3`)?.text === "2000::/3"

describe("classifyAddress: every §6 range boundary", () => {
  for (const [cidr, first, last, below, above] of RANGES) {
    it(`${cidr}: ${first} and ${last} refused`, () => {
      for (const address of [first, last]) {
        const verdict = classify(address)
        expect(verdict.allowed, address).toBe(false)
        if (!verdict.allowed) expect(verdict.reason).toContain(cidr)
      }
    })
    if (below !== null || above !== null) {
      it(`${cidr}: neighbours ${[below, above].filter(Boolean).join(", ")} not judged by it`, () => {
        for (const address of [below, above]) {
          if (address === null) continue
          // Outside 2000::/3 a neighbour is still refused, by the global-unicast rule, not by this range.
          const verdict = classify(address)
          if (globalOrV4(address)) expect(verdict, address).toEqual({ allowed: true })
          else expect(verdict, address).toEqual({ allowed: false, reason: expect.not.stringContaining(cidr) })
        }
      })
    }
  }

  it.each([
    "8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.0.1", "172.32.0.1", "223.255.255.255",
    "2606:4700:4700::1111", "2a00:1450:4001::1", "2001:4860:4860::8888", "2000::", "2000::1",
    "2001:200::", "2003::1", "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "3fff:1000::",
    "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
  ])("public unicast %s allowed", (address) => {
    expect(classify(address)).toEqual({ allowed: true })
  })

  it.each([
    // no blocklist entry names these: only the 2000::/3 rule refuses them
    "5f00::1", "5f00:ffff::1", "4000::", "4000::1", "8000::1", "e000::1", "f000::1", "fe00::1",
    "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "1000::1", "::1:0:0", "::2:0:0", "::1:2:3:4",
    "101::1", "64:ff9a::1", "64:ff9b::1:0:0", "100:0:0:1::"
  ])("IPv6 outside 2000::/3 refused: %s", (address) => {
    expect(classify(address)).toEqual({ allowed: false, reason: "non-global IPv6 address (outside 2000::/3)" })
  })

  it.each([
    ["fec0::1", "site-local address (fec0::/10)"],
    ["FEC0::1", "site-local address (fec0::/10)"],
    ["::ffff:0:7f00:1", "IPv4-translated (SIIT) address (::ffff:0:0:0/96)"],
    ["::ffff:0:a9fe:a9fe", "IPv4-translated (SIIT) address (::ffff:0:0:0/96)"],
    ["::ffff:0:127.0.0.1", "IPv4-translated (SIIT) address (::ffff:0:0:0/96)"],
    ["::ffff:0:808:808", "IPv4-translated (SIIT) address (::ffff:0:0:0/96)"],
    ["3fff::1", "documentation address (3fff::/20)"],
    ["3fff:abc::1", "documentation address (3fff::/20)"]
  ])("%s refused: %s", (address, reason) => {
    expect(classify(address)).toEqual({ allowed: false, reason })
  })

  it.each([
    // IPv6 forms that embed an IPv4 address are refused whatever the IPv4 (except IPv4-mapped,
    // which reaches the IPv4 itself and is judged by it)
    "::127.0.0.1", "::8.8.8.8", "::ffff:0:8.8.8.8", "64:ff9b::8.8.8.8", "64:ff9b::808:808", "64:ff9b:1::808:808",
    "2002:808:808::1", "2002:7f00:1::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:10::1", "2001:20::1"
  ])("IPv6 embedding an IPv4 address refused: %s", (address) => {
    expect(classify(address).allowed).toBe(false)
  })

  it.each([
    ["::ffff:127.0.0.1", "127.0.0.0/8"],
    ["::ffff:7f00:1", "127.0.0.0/8"],
    ["::ffff:10.1.2.3", "10.0.0.0/8"],
    ["::ffff:0.0.0.0", "0.0.0.0/8"],
    ["::ffff:169.254.169.254", "169.254.0.0/16"],
    ["::ffff:255.255.255.255", "255.255.255.255/32"],
    ["::FFFF:C0A8:0101", "192.168.0.0/16"]
  ])("IPv4-mapped %s is judged by its IPv4 (%s)", (address, cidr) => {
    const verdict = classify(address)
    expect(verdict).toEqual({ allowed: false, reason: expect.stringContaining(`IPv4-mapped`) })
    if (!verdict.allowed) expect(verdict.reason).toContain(cidr)
  })

  it.each(["::ffff:8.8.8.8", "::ffff:808:808", "::ffff:93.184.216.34"])("IPv4-mapped public %s allowed", (address) => {
    expect(classify(address)).toEqual({ allowed: true })
  })

  it("refuses malformed input, family mismatches and zone ids", () => {
    expect(classifyAddress("not-an-ip", 4).allowed).toBe(false)
    expect(classifyAddress("", 4).allowed).toBe(false)
    expect(classifyAddress("8.8.8.8", 6)).toEqual({ allowed: false, reason: "address family mismatch" })
    expect(classifyAddress("2606:4700::1", 4).allowed).toBe(false)
    expect(classifyAddress("fe80::1%eth0", 6).allowed).toBe(false)
    expect(classifyAddress("2606:4700::1%1", 6).allowed).toBe(false)
  })

  it("judges odd spellings of the same address identically", () => {
    for (const spelling of ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0x7F000001"]) {
      expect(classifyAddress(spelling, 4).allowed, spelling).toBe(false)
    }
    expect(classifyAddress("0:0:0:0:0:0:0:1", 6).allowed).toBe(false)
    expect(classifyAddress("[::1]", 6).allowed).toBe(false)
    expect(classifyAddress("FE80::ABCD", 6).allowed).toBe(false)
  })
})

describe("classifyAddress: allowed CIDRs", () => {
  it.each([
    ["127.0.0.1", ["127.0.0.0/8"], true],
    ["127.0.0.1", ["127.0.0.1/32"], true],
    ["127.0.0.2", ["127.0.0.1/32"], false],
    ["127.0.0.1", ["10.0.0.0/8"], false],
    ["10.1.255.255", ["10.1.0.0/16"], true],
    ["10.2.0.0", ["10.1.0.0/16"], false],
    ["192.168.1.10", ["10.0.0.0/8", "192.168.1.0/24"], true],
    ["::ffff:127.0.0.1", ["127.0.0.0/8"], true],
    ["::1", ["::1/128"], true],
    ["::1", ["127.0.0.0/8"], false],
    ["fd00::1", ["fd00::/8"], true],
    ["fc00::1", ["fd00::/8"], false],
    ["169.254.169.254", ["0.0.0.0/0"], true],
    ["fe80::1", ["0.0.0.0/0"], false],
    // the operator's list also opens IPv6 outside 2000::/3, and only what it lists
    ["::1", ["::1/128", "fd00::/8"], true],
    ["::2", ["::1/128"], false],
    ["fec0::1", ["fec0::/10"], true],
    ["fec0::1", ["fe80::/10"], false],
    ["5f00::1", ["5f00::/16"], true],
    ["5f01::1", ["5f00::/16"], false],
    ["::ffff:0:7f00:1", ["::ffff:0:0:0/96"], true],
    ["::ffff:0:7f00:1", ["127.0.0.0/8"], false],
    ["3fff::1", ["3fff::/20"], true],
    ["3fff::1", ["2000::/3"], true]
  ] as const)("%s with allow %j → allowed=%s", (address, allow, expected) => {
    expect(classify(address, [...allow]).allowed).toBe(expected)
  })
})

describe("parseHost", () => {
  it.each([
    ["2130706433", "127.0.0.1"],
    ["0177.0.0.1", "127.0.0.1"],
    ["0x7f.1", "127.0.0.1"],
    ["0X7F.1", "127.0.0.1"],
    ["0x7f000001", "127.0.0.1"],
    ["0x7F000001", "127.0.0.1"],
    ["127.1", "127.0.0.1"],
    ["10.1.1", "10.1.0.1"],
    ["0x7f.0.0.01", "127.0.0.1"],
    ["0x7f.0.1", "127.0.0.1"],
    ["0300.0250.0.1", "192.168.0.1"],
    ["0xa9.0376.43518", "169.254.169.254"],
    ["127.0.0.1.", "127.0.0.1"],
    ["0x7f.1.", "127.0.0.1"],
    ["0", "0.0.0.0"],
    ["0x", "0.0.0.0"],
    ["4294967295", "255.255.255.255"],
    ["%31%32%37.0.0.1", "127.0.0.1"],
    [" 127.0.0.1 ", "127.0.0.1"],
    ["8.8.8.8", "8.8.8.8"]
  ])("IPv4 spelling %j → %s", (raw, address) => {
    expect(parseHost(raw)).toEqual({ kind: "ip", family: 4, address })
  })

  it.each([
    ["[::1]", "::1"],
    ["::1", "::1"],
    ["[0:0:0:0:0:0:0:1]", "::1"],
    ["[::]", "::"],
    ["[::ffff:127.0.0.1]", "::ffff:7f00:1"],
    ["::ffff:7f00:1", "::ffff:7f00:1"],
    ["[::FFFF:7F00:1]", "::ffff:7f00:1"],
    ["[2001:DB8:0:0:1:0:0:1]", "2001:db8::1:0:0:1"],
    ["[2001:db8:0:0:0:0:2:1]", "2001:db8::2:1"],
    ["[1:2:3:4:5:6:7::]", "1:2:3:4:5:6:7:0"],
    ["[::1:2:3:4:5:6:7]", "0:1:2:3:4:5:6:7"],
    ["[1:0:0:2:0:0:0:3]", "1:0:0:2::3"],
    ["[64:ff9b::192.0.2.33]", "64:ff9b::c000:221"]
  ])("IPv6 spelling %j → %s", (raw, address) => {
    expect(parseHost(raw)).toEqual({ kind: "ip", family: 6, address })
  })

  it.each([
    ["Example.COM", "example.com"],
    ["example.com.", "example.com"],
    ["hooks.test", "hooks.test"],
    ["LOCALHOST.", "localhost"],
    ["bücher.de", "xn--bcher-kva.de"],
    ["a_b.example", "a_b.example"],
    ["1.2.3.example", "1.2.3.example"]
  ])("name %j → %s", (raw, name) => {
    expect(parseHost(raw)).toEqual({ kind: "name", name })
  })

  it.each([
    "", "1.2.3.4.5", "256.0.0.1.2", "4294967296", "1.0x1000000", "127.0.0.256", "09.1", "0x7g.1", "a.0x",
    "1..2", "foo..bar", "-foo.com", "a b.com", "example.com..", "[fe80::1%25eth0]", "fe80::1%eth0",
    "[::1", ":::", "[1::2::3]", "1:2:3:4:5:6:7:8:9", "[12345::]", "[::1.2.3]", "[::256.0.0.1]", "[::01.2.3.4]",
    "example.com:443", "%zz"
  ])("invalid %j", (raw) => {
    expect(parseHost(raw).kind).toBe("invalid")
  })
})

describe("parseCidr / parseCidrList", () => {
  it.each([
    ["10.0.0.0/8", "10.0.0.0/8"],
    ["10.0.0.1/8", "10.0.0.0/8"],
    [" 127.0.0.0/8 ", "127.0.0.0/8"],
    ["8.8.8.8", "8.8.8.8/32"],
    ["0.0.0.0/0", "0.0.0.0/0"],
    ["fd00::/8", "fd00::/8"],
    ["FD12:3456::1/32", "fd12:3456::/32"],
    ["::1", "::1/128"],
    ["::/0", "::/0"]
  ])("%j → %s", (text, canonical) => {
    expect(parseCidr(text)?.text).toBe(canonical)
  })

  it.each([
    "", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/8/8", "10.0.0.0/-1", "10.0.0.0/a",
    "10.0.0.0/1e1", "localhost/8", "example.com", "fe80::1%eth0/64", "1.2.3.4.5/8"
  ])("rejects %j", (text) => {
    expect(parseCidr(text)).toBeUndefined()
  })

  it("parses comma-separated lists, ignoring blanks", () => {
    expect(parseCidrList("").map((c) => c.text)).toEqual([])
    expect(parseCidrList(" 127.0.0.0/8 , ,fd00::/8,").map((c) => c.text)).toEqual(["127.0.0.0/8", "fd00::/8"])
  })

  it("throws naming the bad entry", () => {
    expect(() => parseCidrList("127.0.0.0/8,10.0.0.0/99")).toThrow(/"10\.0\.0\.0\/99" is not a valid CIDR/)
  })
})

describe("isForbiddenName", () => {
  it.each(["localhost", "LOCALHOST", "localhost.", "LocalHost.", "foo.localhost", "a.b.LOCALHOST.", "x.localhost"])(
    "%j forbidden",
    (name) => expect(isForbiddenName(name)).toBe(true)
  )
  it.each(["localhost.com", "mylocalhost", "localhostx", "localhost.example", "example.com", "local"])(
    "%j not forbidden",
    (name) => expect(isForbiddenName(name)).toBe(false)
  )
})
