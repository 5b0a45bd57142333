import { Config } from "effect"
import { isIPv4, isIPv6 } from "node:net"

/** `ORBIT_TRUST_PROXY`: the service runs behind a proxy that appends the client's address to `X-Forwarded-For`. */
export const TrustProxy = Config.Boolean("ORBIT_TRUST_PROXY").pipe(Config.withDefault(false))

/**
 * The address a request came from, for limits that apply before authentication: the socket's
 * peer or, only when the service runs behind a proxy it trusts (`ORBIT_TRUST_PROXY`), the last
 * `X-Forwarded-For` entry — the one that proxy appended; entries to its left were written by the
 * client and prove nothing. A forwarded value that is not an IP address is ignored.
 */
export const clientAddress = (
  socketAddress: string | undefined,
  forwardedFor: string | undefined,
  trustProxy: boolean
): string => {
  if (trustProxy && forwardedFor !== undefined) {
    const last = forwardedFor.split(",").at(-1)!.trim()
    if (isIPv4(last) || isIPv6(last)) return last
  }
  return socketAddress ?? "unknown"
}

/**
 * The key of an address's bucket: an IPv4 address as it is (also when written IPv4-mapped,
 * `::ffff:a.b.c.d`, as dual-stack sockets report it), an IPv6 address by its /64, the smallest
 * network handed to one subscriber, so that one host cannot get a fresh bucket per address.
 */
export const addressBucket = (address: string): string => {
  if (isIPv4(address)) return address
  if (!isIPv6(address)) return address
  const groups = expandIpv6(address)
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`
}

/** The eight 16-bit groups of a valid IPv6 address (zone removed, a dotted IPv4 tail converted). */
const expandIpv6 = (address: string): Array<number> => {
  let text = address.split("%")[0]!
  const tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (tail !== null) {
    const [a, b, c, d] = tail.slice(1).map(Number) as [number, number, number, number]
    text = text.slice(0, tail.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head, rest] = text.split("::") as [string, string | undefined]
  const parse = (s: string) => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)))
  const h = parse(head)
  if (rest === undefined) return h
  const t = parse(rest)
  return [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t]
}
