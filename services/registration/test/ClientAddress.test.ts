import { describe, expect, it } from "vitest"
import { addressBucket, clientAddress } from "../src/ClientAddress.ts"

describe("clientAddress", () => {
  it("is the socket's peer unless a trusted proxy forwarded the request", () => {
    expect(clientAddress("127.0.0.1", undefined, false)).toBe("127.0.0.1")
    expect(clientAddress("127.0.0.1", "203.0.113.7", false)).toBe("127.0.0.1")
    expect(clientAddress("10.0.0.2", "203.0.113.7", true)).toBe("203.0.113.7")
    expect(clientAddress(undefined, undefined, false)).toBe("unknown")
  })

  it("behind a trusted proxy takes the entry the proxy appended (the last), not what the client wrote", () => {
    expect(clientAddress("10.0.0.2", "198.51.100.1, 203.0.113.7", true)).toBe("203.0.113.7")
    expect(clientAddress("10.0.0.2", "198.51.100.1,2001:db8::5", true)).toBe("2001:db8::5")
  })

  it("ignores a forwarded value that is not an IP address", () => {
    expect(clientAddress("10.0.0.2", "203.0.113.7, not-an-ip", true)).toBe("10.0.0.2")
    expect(clientAddress("10.0.0.2", "", true)).toBe("10.0.0.2")
  })
})

describe("addressBucket", () => {
  it("keeps IPv4 addresses, also IPv4-mapped ones", () => {
    expect(addressBucket("203.0.113.7")).toBe("203.0.113.7")
    expect(addressBucket("::ffff:127.0.0.1")).toBe("127.0.0.1")
    expect(addressBucket("::ffff:7f00:1")).toBe("127.0.0.1")
  })

  it("groups IPv6 addresses by /64", () => {
    expect(addressBucket("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64")
    expect(addressBucket("2001:db8:1:2:bbbb:cccc:dddd:eeee")).toBe("2001:db8:1:2::/64")
    expect(addressBucket("2001:db8::1")).toBe("2001:db8:0:0::/64")
    expect(addressBucket("::1")).toBe("0:0:0:0::/64")
    expect(addressBucket("fe80::1%eth0")).toBe("fe80:0:0:0::/64")
  })
})
