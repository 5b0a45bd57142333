/**
 * Host name resolution through c-ares (`node:dns` `Resolver`), never `dns.lookup`.
 *
 * `dns.lookup` runs getaddrinfo on libuv's small thread pool, and a timeout around it only stops
 * waiting: a name whose nameserver never answers keeps a pool thread busy, and enough of them hold
 * up every new connection and all file I/O of the process. c-ares queries are plain UDP/TCP
 * sockets on the event loop: a query that never gets an answer costs a socket and a timer.
 *
 * On top of c-ares this resolver adds:
 * - a deadline per lookup (queue wait included); c-ares gets `timeout`/`tries` that end its own
 *   retries near the deadline, and the deadline cancels whatever is still outstanding;
 * - a cap on concurrent lookups: waiting lookups queue (first come, first served), and one that
 *   cannot start before its deadline fails as a timeout;
 * - coalescing: concurrent lookups of one name share one query, so a name that never answers
 *   occupies at most one slot however many connections wait on it;
 * - a bounded cache that keeps answers for their TTL (the smallest TTL of the answer set, capped).
 *
 * A and AAAA are asked in parallel; answers come back A first, then AAAA. A literal IP is
 * returned as is, and `localhost` / `*.localhost` map to the loopback addresses (RFC 6761), both
 * without DNS. c-ares does not read /etc/hosts: every other name goes to the DNS servers.
 */
import { promises as dns } from "node:dns"
import { isIP } from "node:net"
import type { ResolvedAddress } from "./NetGuard.ts"

export interface CaresResolverOptions {
  /** DNS servers (`1.2.3.4`, `1.2.3.4:53`, `[::1]:53`). Default: the system's (resolv.conf). */
  readonly servers?: ReadonlyArray<string> | undefined
  /** The whole lookup, queue wait included, in ms. Default 5000. */
  readonly timeoutMs?: number | undefined
  /** How many times c-ares asks each server. Default 2. */
  readonly tries?: number | undefined
  /** Lookups that may be outstanding at once. Default 64. */
  readonly maxConcurrent?: number | undefined
  /** Names kept in the cache. Default 1000; 0 turns the cache off. */
  readonly cacheSize?: number | undefined
  /** Upper bound on how long an answer is kept, in seconds. Default 300. */
  readonly maxTtlSeconds?: number | undefined
  /** The clock the cache reads, in ms (a test moves it). Default `Date.now`. */
  readonly now?: (() => number) | undefined
}

export interface CaresResolver {
  /** Every A and AAAA answer for a name (A first); rejects with `code` ENOTFOUND, ETIMEDOUT, … */
  (host: string): Promise<ReadonlyArray<ResolvedAddress>>
  /** Lookups holding a slot now. */
  readonly active: () => number
  /** Lookups waiting for a slot now. */
  readonly queued: () => number
}

export const DNS_DEFAULTS = {
  timeoutMs: 5000,
  tries: 2,
  maxConcurrent: 64,
  cacheSize: 1000,
  maxTtlSeconds: 300
} as const

const LOOPBACK: ReadonlyArray<ResolvedAddress> = [{ address: "127.0.0.1", family: 4 }, { address: "::1", family: 6 }]

const dnsError = (message: string, code: string, hostname: string): Error =>
  Object.assign(new Error(message), { code, hostname })

/** No record of this type (the other family may still have answers). */
const isNoData = (e: unknown): boolean => {
  const code = (e as { code?: unknown }).code
  return code === "ENODATA" || code === "ENOTFOUND"
}

export const makeCaresResolver = (options: CaresResolverOptions = {}): CaresResolver => {
  const timeoutMs = options.timeoutMs ?? DNS_DEFAULTS.timeoutMs
  const tries = options.tries ?? DNS_DEFAULTS.tries
  const maxConcurrent = options.maxConcurrent ?? DNS_DEFAULTS.maxConcurrent
  const cacheSize = options.cacheSize ?? DNS_DEFAULTS.cacheSize
  const maxTtlMs = (options.maxTtlSeconds ?? DNS_DEFAULTS.maxTtlSeconds) * 1000
  const now = options.now ?? Date.now
  // c-ares doubles its wait on each round: with `tries` rounds the first waits about
  // timeout / (2^tries - 1), so its own retries end near the deadline.
  const perTryMs = Math.max(1, Math.floor(timeoutMs / (2 ** tries - 1)))

  // One c-ares channel per slot: cancelling a late lookup cancels only that lookup's queries.
  const idle: Array<dns.Resolver> = []
  let active = 0
  const newChannel = (): dns.Resolver => {
    const channel = new dns.Resolver({ timeout: perTryMs, tries })
    if (options.servers !== undefined && options.servers.length > 0) channel.setServers([...options.servers])
    return channel
  }

  interface Waiter {
    readonly grant: (channel: dns.Resolver) => void
  }
  const waiting: Array<Waiter> = []

  /** A channel now, or once one is free; undefined when the deadline passes first. */
  const acquire = (deadline: number): Promise<dns.Resolver | undefined> => {
    if (active < maxConcurrent) {
      active++
      return Promise.resolve(idle.pop() ?? newChannel())
    }
    return new Promise((resolve) => {
      const waiter: Waiter = {
        grant: (channel) => {
          clearTimeout(timer)
          resolve(channel)
        }
      }
      const timer = setTimeout(() => {
        const i = waiting.indexOf(waiter)
        if (i >= 0) waiting.splice(i, 1)
        resolve(undefined)
      }, Math.max(0, deadline - now()))
      waiting.push(waiter)
    })
  }

  const release = (channel: dns.Resolver): void => {
    const next = waiting.shift()
    if (next !== undefined) next.grant(channel)
    else {
      active--
      idle.push(channel)
    }
  }

  // Least recently used first: a Map keeps insertion order, and a hit is re-inserted.
  const cache = new Map<string, { readonly addresses: ReadonlyArray<ResolvedAddress>; readonly expiresAt: number }>()
  const cached = (name: string): ReadonlyArray<ResolvedAddress> | undefined => {
    const entry = cache.get(name)
    if (entry === undefined) return undefined
    cache.delete(name)
    if (entry.expiresAt <= now()) return undefined
    cache.set(name, entry)
    return entry.addresses
  }
  const remember = (name: string, addresses: ReadonlyArray<ResolvedAddress>, ttlSeconds: number): void => {
    const keepMs = Math.min(ttlSeconds * 1000, maxTtlMs)
    if (cacheSize <= 0 || keepMs <= 0) return
    cache.delete(name)
    while (cache.size >= cacheSize) cache.delete(cache.keys().next().value!)
    cache.set(name, { addresses, expiresAt: now() + keepMs })
  }

  /** Asks A and AAAA on one channel, cancelling both at the deadline. */
  const query = async (channel: dns.Resolver, name: string, deadline: number): Promise<ReadonlyArray<ResolvedAddress>> => {
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      channel.cancel()
    }, Math.max(0, deadline - now()))
    const [a, aaaa] = await Promise.allSettled([
      channel.resolve4(name, { ttl: true }),
      channel.resolve6(name, { ttl: true })
    ]).finally(() => clearTimeout(timer))
    const answers: Array<ResolvedAddress> = []
    let ttl = Number.POSITIVE_INFINITY
    let complete = true
    const take = (r: PromiseSettledResult<Array<{ address: string; ttl: number }>>, family: 4 | 6) => {
      if (r.status === "fulfilled") {
        for (const { address, ttl: t } of r.value) {
          answers.push({ address, family })
          ttl = Math.min(ttl, t)
        }
      } else if (!isNoData(r.reason)) complete = false
    }
    take(a, 4)
    take(aaaa, 6)
    if (answers.length > 0) {
      // A family that failed (not merely empty) may have answers later: keep a partial set uncached.
      if (complete) remember(name, answers, ttl)
      return answers
    }
    if (timedOut) throw dnsError(`DNS lookup of ${name} timed out after ${timeoutMs} ms`, "ETIMEDOUT", name)
    const failure = [a, aaaa].find((r) => r.status === "rejected" && !isNoData(r.reason)) ??
      [a, aaaa].find((r) => r.status === "rejected")
    const reason = (failure as PromiseRejectedResult | undefined)?.reason as { code?: string; message?: string } | undefined
    const cares = reason?.code ?? "ENOTFOUND"
    if (cares === "ETIMEOUT") throw dnsError(`DNS lookup of ${name} timed out`, "ETIMEDOUT", name)
    // Codes as getaddrinfo gives them: no such name, or a temporary failure (the server failed,
    // refused or sent a bad answer), which callers already know.
    const code = cares === "ENOTFOUND" || cares === "ENODATA" ? "ENOTFOUND" : "EAI_AGAIN"
    throw dnsError(`DNS lookup of ${name} failed (${cares})`, code, name)
  }

  const lookup = async (name: string): Promise<ReadonlyArray<ResolvedAddress>> => {
    const deadline = now() + timeoutMs
    const channel = await acquire(deadline)
    if (channel === undefined) {
      throw dnsError(`DNS lookup of ${name} timed out after ${timeoutMs} ms waiting for a free lookup slot`, "ETIMEDOUT", name)
    }
    try {
      return await query(channel, name, deadline)
    } finally {
      release(channel)
    }
  }

  const inFlight = new Map<string, Promise<ReadonlyArray<ResolvedAddress>>>()

  const resolve = (host: string): Promise<ReadonlyArray<ResolvedAddress>> => {
    const family = isIP(host)
    if (family !== 0) return Promise.resolve([{ address: host, family }])
    const name = host.toLowerCase().replace(/\.$/, "")
    if (name === "localhost" || name.endsWith(".localhost")) return Promise.resolve(LOOPBACK)
    const hit = cached(name)
    if (hit !== undefined) return Promise.resolve(hit)
    const pending = inFlight.get(name)
    if (pending !== undefined) return pending
    const started = lookup(name).finally(() => inFlight.delete(name))
    inFlight.set(name, started)
    return started
  }

  return Object.assign(resolve, { active: () => active, queued: () => waiting.length })
}

/**
 * Parses a comma-separated list of DNS servers: `1.2.3.4`, `1.2.3.4:5353`, `::1`, `[::1]:5353`.
 * Throws an Error saying which entry is wrong.
 */
export const parseDnsServers = (text: string): ReadonlyArray<string> =>
  text.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map((entry) => {
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry)
    const v4WithPort = /^([\d.]+):(\d+)$/.exec(entry)
    const [address, port] = bracketed !== null
      ? [bracketed[1]!, bracketed[2]]
      : v4WithPort !== null
      ? [v4WithPort[1]!, v4WithPort[2]]
      : [entry, undefined]
    const family = isIP(address)
    if (family === 0 || (bracketed !== null && family !== 6) || (v4WithPort !== null && family !== 4)) {
      throw new Error(`"${entry}" is not an IP address (with an optional :port)`)
    }
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
      throw new Error(`"${entry}" has a port outside 1-65535`)
    }
    if (port === undefined) return address
    return family === 6 ? `[${address}]:${port}` : `${address}:${port}`
  })
