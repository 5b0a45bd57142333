import { describe, expect, it } from "@effect/vitest"
import { parseCidrList } from "../src/IpClassifier.ts"
import { checkWebhookUrl, MAX_URL_LENGTH } from "../src/UrlPolicy.ts"
import type { UrlPolicy } from "../src/UrlPolicy.ts"

const strict: UrlPolicy = { allowInsecureHttp: false, allowCidrs: [] }
const reasonOf = (raw: string, policy: UrlPolicy = strict) => {
  const result = checkWebhookUrl(raw, policy)
  return result.ok ? undefined : result.reason
}

describe("checkWebhookUrl", () => {
  it.each([
    "https://example.com/hook",
    "https://Hooks.Example.COM:8443/path?x=1#frag",
    "https://example.com./hook",
    "https://93.184.216.34/hook",
    "https://[2606:4700:4700::1111]/hook",
    "https://bücher.de/"
  ])("accepts %s", (raw) => {
    expect(checkWebhookUrl(raw, strict)).toMatchObject({ ok: true })
  })

  it("returns the parsed URL and host", () => {
    const result = checkWebhookUrl("https://Hooks.Example.com./x", strict)
    expect(result.ok && result.host).toEqual({ kind: "name", name: "hooks.example.com" })
    const literal = checkWebhookUrl("https://[2606:4700:4700::1111]:444/", strict)
    expect(literal.ok && literal.host).toEqual({ kind: "ip", family: 6, address: "2606:4700:4700::1111" })
    expect(literal.ok && literal.url.port).toBe("444")
  })

  describe("scheme", () => {
    it("refuses http by default and allows it only when allowInsecureHttp", () => {
      expect(reasonOf("http://example.com/")).toBe("URL must use https.")
      expect(checkWebhookUrl("http://example.com/", { ...strict, allowInsecureHttp: true }).ok).toBe(true)
    })
    it.each(["ftp://example.com/", "file:///etc/passwd", "javascript:alert(1)", "ws://example.com/", "data:text/plain,hi"])(
      "refuses %s",
      (raw) => {
        expect(reasonOf(raw, { ...strict, allowInsecureHttp: true })).toBe("URL must use https.")
      }
    )
  })

  it.each(["", "/hook", "example.com/hook", "https://", "https://exa mple.com/", "https://1.2.3.4.5/", "https://[::1/", "https://[fe80::1%25eth0]/"])(
    "refuses malformed %j",
    (raw) => {
      expect(reasonOf(raw)).toMatch(/^URL must (be a valid absolute URL|not contain spaces)/)
    }
  )

  it.each([" https://example.com/", "https://example.com/\n", "https://exa\tmple.com/", "https://example.com/\u0000"])(
    "refuses whitespace/control characters in %j (URL parsing would silently drop them)",
    (raw) => {
      expect(reasonOf(raw)).toBe("URL must not contain spaces or control characters.")
    }
  )

  describe("userinfo", () => {
    it.each(["https://user@example.com/", "https://user:s3cr3t@example.com/", "https://:s3cr3t@example.com/"])(
      "refuses %s without echoing it",
      (raw) => {
        const reason = reasonOf(raw)
        expect(reason).toBe("URL must not contain credentials.")
        expect(reason).not.toContain("s3cr3t")
      }
    )
  })

  describe("length", () => {
    const prefix = "https://example.com/"
    it("accepts exactly 2048 characters", () => {
      const raw = prefix + "a".repeat(MAX_URL_LENGTH - prefix.length)
      expect(raw.length).toBe(2048)
      expect(checkWebhookUrl(raw, strict).ok).toBe(true)
    })
    it("refuses 2049 characters", () => {
      const raw = prefix + "a".repeat(MAX_URL_LENGTH - prefix.length + 1)
      expect(reasonOf(raw)).toBe("URL must be at most 2048 characters.")
    })
  })

  describe("IP literals in every spelling", () => {
    it.each([
      ["https://127.0.0.1/", "loopback"],
      ["https://2130706433/", "loopback"],
      ["https://0177.0.0.1/", "loopback"],
      ["https://0x7f.1/", "loopback"],
      ["https://0X7F.1/", "loopback"],
      ["https://0x7f000001/", "loopback"],
      ["https://127.1/", "loopback"],
      ["https://0x7f.0.0.01/", "loopback"],
      ["https://127.0.0.1./", "loopback"],
      ["https://%31%32%37.0.0.1/", "loopback"],
      ["https://127.0.0.1:8443/x", "loopback"],
      ["https://10.1.1/", "private"],
      ["https://0300.0250.0.1/", "private"],
      ["https://169.254.169.254/latest/meta-data/", "link-local"],
      ["https://0/", "this-network"],
      ["https://0.0.0.0/", "this-network"],
      ["https://[::1]/", "loopback"],
      ["https://[0:0:0:0:0:0:0:1]/", "loopback"],
      ["https://[::]/", "unspecified"],
      ["https://[::ffff:127.0.0.1]/", "IPv4-mapped loopback"],
      ["https://[::ffff:7f00:1]/", "IPv4-mapped loopback"],
      ["https://[::FFFF:A9FE:A9FE]/", "IPv4-mapped link-local"],
      ["https://[fe80::1]/", "link-local"],
      ["https://[FD00::1]/", "unique local"],
      ["https://[64:ff9b::7f00:1]/", "NAT64"],
      ["https://[2001:db8::1]/", "documentation"],
      ["https://[ff02::1]/", "multicast"],
      ["https://255.255.255.255/", "broadcast"],
      ["https://224.0.0.1/", "multicast"],
      // IPv6 is allowed only inside 2000::/3, and there only outside the exclusions
      ["https://[::ffff:0:7f00:1]/", "IPv4-translated (SIIT)"],
      ["https://[::ffff:0:a9fe:a9fe]/", "IPv4-translated (SIIT)"],
      ["https://[::ffff:0:8.8.8.8]/", "IPv4-translated (SIIT)"],
      ["https://[fec0::1]/", "site-local"],
      ["https://[3fff::1]/", "documentation address (3fff::/20)"],
      ["https://[3fff:fff:ffff::1]/", "documentation address (3fff::/20)"],
      ["https://[5f00::1]/", "non-global IPv6 address (outside 2000::/3)"],
      ["https://[4000::1]/", "non-global IPv6 address (outside 2000::/3)"],
      ["https://[1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/", "non-global IPv6 address (outside 2000::/3)"],
      ["https://[::1:0:0]/", "non-global IPv6 address (outside 2000::/3)"],
      ["https://[2001::1]/", "IETF protocol assignment"],
      ["https://[2002:7f00:1::1]/", "6to4"]
    ])("refuses %s (%s)", (raw, kind) => {
      const reason = reasonOf(raw)
      expect(reason).toMatch(/^URL targets a forbidden /)
      expect(reason).toContain(kind)
    })
  })

  describe("ports", () => {
    it.each(["https://example.com:0/", "https://example.com:00000/x", "https://93.184.216.34:0/", "https://[2606:4700::1]:0/"])(
      "refuses port 0 in %s",
      (raw) => {
        expect(reasonOf(raw)).toBe("URL port must be between 1 and 65535.")
      }
    )
    it.each(["https://example.com:65536/", "https://example.com:99999/", "https://example.com:-1/"])(
      "refuses %s (the URL parser rejects it)",
      (raw) => {
        expect(reasonOf(raw)).toBe("URL must be a valid absolute URL.")
      }
    )
    it.each([
      ["https://example.com:1/", "1"],
      ["https://example.com:65535/", "65535"],
      ["https://example.com:443/", ""],
      ["https://example.com:8443/", "8443"]
    ])("accepts %s", (raw, port) => {
      const result = checkWebhookUrl(raw, strict)
      expect(result.ok && result.url.port).toBe(port)
    })
  })

  describe("localhost names", () => {
    it.each(["https://localhost/", "https://LOCALHOST./", "https://localhost:8443/x", "https://api.localhost/", "https://a.b.LocalHost./"])(
      "refuses %s",
      (raw) => {
        expect(reasonOf(raw)).toBe("URL must not target localhost.")
      }
    )
    it("localhost stays refused even when 127.0.0.0/8 is allowed", () => {
      expect(reasonOf("https://localhost/", { ...strict, allowCidrs: parseCidrList("127.0.0.0/8") })).toBeDefined()
    })
  })

  describe("allowed CIDRs", () => {
    const dev: UrlPolicy = { allowInsecureHttp: false, allowCidrs: parseCidrList("127.0.0.0/8,fd00::/8") }
    it.each(["https://127.0.0.1:8443/", "https://0x7f.1/", "https://[::ffff:127.0.0.1]/", "https://[fd00::5]/"])(
      "accepts %s when allowed",
      (raw) => {
        expect(checkWebhookUrl(raw, dev).ok).toBe(true)
      }
    )
    it.each(["https://10.0.0.1/", "https://[::1]/", "https://[fc00::1]/", "https://[fec0::1]/", "https://[5f00::1]/"])("still refuses %s", (raw) => {
      expect(reasonOf(raw, dev)).toBeDefined()
    })
    it("opens IPv6 outside 2000::/3 only where the operator lists it", () => {
      const v6: UrlPolicy = { allowInsecureHttp: false, allowCidrs: parseCidrList("::1/128, fec0::/10") }
      expect(checkWebhookUrl("https://[::1]:8443/", v6).ok).toBe(true)
      expect(checkWebhookUrl("https://[fec0::1]/", v6).ok).toBe(true)
      expect(reasonOf("https://[::2]/", v6)).toBeDefined()
      expect(reasonOf("https://[5f00::1]/", v6)).toBeDefined()
    })
  })

  it("never echoes the URL (which may carry a token) in the reason", () => {
    for (const raw of [
      "http://example.com/?token=s3cr3t",
      "https://127.0.0.1/?token=s3cr3t",
      "https://u:s3cr3t@example.com/",
      "https://s3cr3t.localhost/",
      "https://example.com/" + "s3cr3t".repeat(400)
    ]) {
      const reason = reasonOf(raw)
      expect(reason, raw).toBeDefined()
      expect(reason).not.toContain("s3cr3t")
    }
  })
})
