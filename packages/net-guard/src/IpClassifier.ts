/**
 * Pure IP/host classification for the SSRF rule (API.md §6).
 *
 * Addresses are held as bigint so that IPv4 and IPv6 CIDR matching share one
 * code path. Parsing follows the WHATWG URL host parser for IPv4 (so every
 * spelling a URL could carry — decimal, octal, hex, short forms — is
 * understood), but does not depend on `new URL()`: the same functions judge
 * the addresses DNS returns.
 */
import { domainToASCII } from "node:url"

export type IpFamily = 4 | 6

export type ParsedHost =
  | { readonly kind: "ip"; readonly family: IpFamily; readonly address: string }
  | { readonly kind: "name"; readonly name: string }
  | { readonly kind: "invalid"; readonly reason: string }

export interface Cidr {
  readonly family: IpFamily
  readonly network: bigint
  readonly prefix: number
  /** Canonical text, e.g. `10.0.0.0/8`. */
  readonly text: string
}

export type Classification =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: string }

const BITS = { 4: 32, 6: 128 } as const

// ---------------------------------------------------------------- IPv4 --

/** One IPv4 part, WHATWG style: `0x..` hex, leading `0` octal, else decimal. */
const parseIpv4Number = (part: string): number | undefined => {
  if (part === "") return undefined
  let radix = 10
  let digits = part
  if (/^0x/i.test(part)) {
    radix = 16
    digits = part.slice(2)
  } else if (part.length > 1 && part.startsWith("0")) {
    radix = 8
    digits = part.slice(1)
  }
  if (digits === "") return 0 // "0x" alone is zero in WHATWG
  const valid = radix === 16 ? /^[0-9a-f]+$/i : radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/
  return valid.test(digits) ? parseInt(digits, radix) : undefined
}

/**
 * WHATWG IPv4 parser. `undefined` means "not an IPv4 address, treat as a
 * name"; `"invalid"` means it looks numeric (ends in a number) but is not a
 * valid address, which URL parsers reject — so must we.
 */
const parseIpv4 = (host: string): number | "invalid" | undefined => {
  let parts = host.split(".")
  if (parts.length > 1 && parts[parts.length - 1] === "") parts = parts.slice(0, -1)
  const last = parts[parts.length - 1] ?? ""
  const endsInNumber = /^[0-9]+$/.test(last) || (last !== "" && parseIpv4Number(last) !== undefined)
  if (!endsInNumber) return undefined
  if (parts.length > 4) return "invalid"
  const numbers = parts.map(parseIpv4Number)
  let value = 0
  for (let i = 0; i < numbers.length; i++) {
    const n = numbers[i]
    if (n === undefined) return "invalid"
    const isLast = i === numbers.length - 1
    // The last part fills all remaining bytes (so `127.1` = 127.0.0.1).
    const limit = isLast ? 256 ** (5 - numbers.length) : 256
    if (n >= limit) return "invalid"
    value += isLast ? n : n * 256 ** (3 - i)
  }
  return value
}

const formatIpv4 = (value: number): string =>
  [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".")

// ---------------------------------------------------------------- IPv6 --

const DOTTED_OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/

/** Parses colon-hex groups (with at most one `::` and an optional dotted IPv4 tail) into 8 groups. */
const parseIpv6 = (text: string): Array<number> | undefined => {
  const compress = text.indexOf("::")
  if (compress !== -1 && text.indexOf("::", compress + 1) !== -1) return undefined
  const toGroups = (part: string, isTail: boolean): Array<number> | undefined => {
    if (part === "") return []
    const out: Array<number> = []
    const pieces = part.split(":")
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i] ?? ""
      if (isTail && i === pieces.length - 1 && piece.includes(".")) {
        const octets = piece.split(".")
        if (octets.length !== 4 || !octets.every((o) => DOTTED_OCTET.test(o))) return undefined
        const [a, b, c, d] = octets.map(Number) as [number, number, number, number]
        out.push(a * 256 + b, c * 256 + d)
      } else if (/^[0-9a-f]{1,4}$/i.test(piece)) {
        out.push(parseInt(piece, 16))
      } else {
        return undefined
      }
    }
    return out
  }
  if (compress === -1) {
    const groups = toGroups(text, true)
    return groups?.length === 8 ? groups : undefined
  }
  const head = toGroups(text.slice(0, compress), false)
  const tail = toGroups(text.slice(compress + 2), true)
  if (head === undefined || tail === undefined || head.length + tail.length > 7) return undefined
  return [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail]
}

const groupsToBigint = (groups: ReadonlyArray<number>): bigint =>
  groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n)

const bigintToGroups = (value: bigint): Array<number> =>
  Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(16 * (7 - i))) & 0xffffn))

/** RFC 5952 text: lowercase, no leading zeros, longest zero run (≥ 2) as `::`. */
const formatIpv6 = (value: bigint): string => {
  const groups = bigintToGroups(value)
  let bestStart = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) {
      bestStart = i
      bestLen = j - i
    }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestStart === -1) return hex.join(":")
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`
}

// ---------------------------------------------------------------- hosts --

const LABEL = /^(?!-)[a-z0-9_-]{1,63}$/

interface IpValue {
  readonly family: IpFamily
  readonly value: bigint
}

const toParsed = (ip: IpValue): ParsedHost => ({
  kind: "ip",
  family: ip.family,
  address: ip.family === 4 ? formatIpv4(Number(ip.value)) : formatIpv6(ip.value)
})

/** IPv6 literal (brackets optional), or undefined. Zone ids are refused: they only scope link-local/multicast. */
const parseIpv6Literal = (host: string): IpValue | "zone" | undefined => {
  const inner = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host
  if (inner.includes("%")) return "zone"
  const groups = parseIpv6(inner)
  return groups && { family: 6, value: groupsToBigint(groups) }
}

/**
 * Parses the host part of a URL (as `new URL().hostname` gives it) or raw
 * input such as a DNS answer. IPs come back canonical; names lowercased with
 * one trailing dot removed. Anything a URL parser would reject is `invalid`.
 */
export const parseHost = (raw: string): ParsedHost => {
  let host = raw.trim()
  if (host === "") return { kind: "invalid", reason: "empty host" }
  if (host.startsWith("[") || host.includes(":")) {
    const v6 = parseIpv6Literal(host)
    if (v6 === "zone") return { kind: "invalid", reason: "IPv6 zone identifiers are not allowed" }
    return v6 ? toParsed(v6) : { kind: "invalid", reason: "malformed IPv6 address" }
  }
  if (host.includes("%")) {
    try {
      host = decodeURIComponent(host) // URL hosts may be percent-encoded (`%31%32%37.0.0.1`)
    } catch {
      return { kind: "invalid", reason: "malformed percent-encoding in host" }
    }
  }
  host = domainToASCII(host) || host // IDNA to punycode; also lowercases
  host = host.toLowerCase()
  const v4 = parseIpv4(host)
  if (v4 === "invalid") return { kind: "invalid", reason: "malformed IPv4 address" }
  if (v4 !== undefined) return toParsed({ family: 4, value: BigInt(v4) })
  const name = host.endsWith(".") ? host.slice(0, -1) : host
  if (name.length > 253 || !name.split(".").every((label) => LABEL.test(label))) {
    return { kind: "invalid", reason: "malformed host name" }
  }
  return { kind: "name", name }
}

/** Parses an IP in any spelling `parseHost` accepts. */
const parseIp = (text: string): IpValue | undefined => {
  const parsed = parseHost(text)
  if (parsed.kind !== "ip") return undefined
  return parsed.family === 4
    ? { family: 4, value: BigInt(parseIpv4(parsed.address) as number) }
    : { family: 6, value: groupsToBigint(parseIpv6(parsed.address) ?? []) }
}

// ---------------------------------------------------------------- CIDRs --

const hostMask = (family: IpFamily, prefix: number): bigint => (1n << BigInt(BITS[family] - prefix)) - 1n

/** Parses `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128). Host bits are masked off. */
export const parseCidr = (text: string): Cidr | undefined => {
  const [addressText = "", prefixText, ...rest] = text.trim().split("/")
  if (rest.length > 0) return undefined
  const ip = parseIp(addressText)
  if (ip === undefined) return undefined
  const bits = BITS[ip.family]
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined
  const prefix = prefixText === undefined ? bits : Number(prefixText)
  if (prefix > bits) return undefined
  const network = ip.value & ~hostMask(ip.family, prefix)
  const address = ip.family === 4 ? formatIpv4(Number(network)) : formatIpv6(network)
  return { family: ip.family, network, prefix, text: `${address}/${prefix}` }
}

/** Parses a comma-separated CIDR list (empty entries ignored); throws naming the bad entry. */
export const parseCidrList = (text: string): ReadonlyArray<Cidr> =>
  text.split(",").map((s) => s.trim()).filter((s) => s !== "").map((entry) => {
    const cidr = parseCidr(entry)
    if (cidr === undefined) {
      throw new Error(`"${entry}" is not a valid CIDR (expected e.g. 10.0.0.0/8 or fd00::/8)`)
    }
    return cidr
  })

const contains = (cidr: Cidr, ip: IpValue): boolean =>
  cidr.family === ip.family && (ip.value & ~hostMask(cidr.family, cidr.prefix)) === cidr.network

// ------------------------------------------------------------ blocklist --

const range = (text: string, what: string) => {
  const cidr = parseCidr(text)
  if (cidr === undefined) throw new Error(`bad built-in CIDR ${text}`)
  return { cidr, reason: `${what} address (${cidr.text})` }
}

/**
 * API.md §6. Order matters only for the reason reported (most specific first). IPv6 entries
 * outside 2000::/3 only name the reason: the global-unicast rule refuses those addresses anyway.
 */
const BLOCKED = [
  range("255.255.255.255/32", "broadcast"),
  range("0.0.0.0/8", "this-network"),
  range("10.0.0.0/8", "private"),
  range("100.64.0.0/10", "carrier-grade NAT"),
  range("127.0.0.0/8", "loopback"),
  range("169.254.0.0/16", "link-local"),
  range("172.16.0.0/12", "private"),
  range("192.0.0.0/24", "IETF protocol assignment"),
  range("192.0.2.0/24", "documentation"),
  range("192.88.99.0/24", "6to4 relay anycast"),
  range("192.168.0.0/16", "private"),
  range("198.18.0.0/15", "benchmarking"),
  range("198.51.100.0/24", "documentation"),
  range("203.0.113.0/24", "documentation"),
  range("224.0.0.0/4", "multicast"),
  range("240.0.0.0/4", "reserved"),
  range("::/128", "unspecified"),
  range("::1/128", "loopback"),
  // Not in the §6 list, but not public unicast either (deprecated
  // IPv4-compatible addresses, RFC 4291 §2.5.5.1), so refused per §6's rule.
  range("::/96", "IPv4-compatible"),
  range("::ffff:0:0:0/96", "IPv4-translated (SIIT)"),
  range("64:ff9b::/96", "NAT64"),
  range("64:ff9b:1::/48", "local-use NAT64"),
  range("100::/64", "discard-only"),
  range("2001::/23", "IETF protocol assignment"),
  range("2001:db8::/32", "documentation"),
  range("2002::/16", "6to4"),
  range("3fff::/20", "documentation"),
  range("fc00::/7", "unique local"),
  range("fe80::/10", "link-local"),
  range("fec0::/10", "site-local"),
  range("ff00::/8", "multicast")
]

const MAPPED = range("::ffff:0:0/96", "IPv4-mapped").cidr

/**
 * IPv6 is judged by an allowlist: only global unicast is public, so every address outside it is
 * refused whether or not a blocklist entry names it (site-local fec0::/10, SIIT ::ffff:0:0:0/96,
 * ranges assigned after this list was written, …). The blocklist then carves the non-public
 * parts out of 2000::/3.
 */
const GLOBAL_UNICAST = range("2000::/3", "global unicast").cidr

const classifyIp = (ip: IpValue, allow: ReadonlyArray<Cidr>): Classification => {
  if (allow.some((cidr) => contains(cidr, ip))) return { allowed: true }
  if (contains(MAPPED, ip)) {
    // ::ffff:a.b.c.d reaches a.b.c.d on dual-stack sockets: judge the IPv4.
    const inner = classifyIp({ family: 4, value: ip.value & 0xffffffffn }, allow)
    return inner.allowed ? inner : { allowed: false, reason: `IPv4-mapped ${inner.reason}` }
  }
  const hit = BLOCKED.find((entry) => contains(entry.cidr, ip))
  if (hit) return { allowed: false, reason: hit.reason }
  if (ip.family === 6 && !contains(GLOBAL_UNICAST, ip)) {
    return { allowed: false, reason: `non-global IPv6 address (outside ${GLOBAL_UNICAST.text})` }
  }
  return { allowed: true }
}

/**
 * Judges one address (any spelling `parseHost` accepts) by API.md §6: IPv4
 * against the blocklist; IPv6 must be global unicast (2000::/3) and outside
 * the blocklist, IPv4-mapped IPv6 is judged by its IPv4. Addresses inside one
 * of the `allow` CIDRs are exempt.
 */
export const classifyAddress = (
  address: string,
  family: IpFamily,
  allow: ReadonlyArray<Cidr> = []
): Classification => {
  if (address.includes("%")) return { allowed: false, reason: "scoped (zone id) IPv6 address" }
  const ip = parseIp(address)
  if (ip === undefined) return { allowed: false, reason: "not a valid IP address" }
  if (ip.family !== family) return { allowed: false, reason: "address family mismatch" }
  return classifyIp(ip, allow)
}

/** `localhost` and `*.localhost` (RFC 6761), any case, with or without a trailing dot. */
export const isForbiddenName = (name: string): boolean => {
  const n = name.toLowerCase().replace(/\.$/, "")
  return n === "localhost" || n.endsWith(".localhost")
}
