/**
 * An undici Agent whose connector enforces the SSRF rule at connect time
 * (API.md §6): it resolves the host once, refuses if ANY answer is
 * forbidden, then dials the vetted IP itself — so no later DNS lookup can
 * swap the target (DNS rebinding). TLS still verifies the certificate for
 * the host name (SNI/servername), and the HTTP Host header is untouched.
 *
 * Redirects: undici's `request`/`dispatch` never follow them unless a
 * redirect interceptor is composed in, so this Agent returns a 3xx as is.
 * (`fetch` follows redirects by default; every hop still goes through this
 * connector, but callers should pass `redirect: "manual"`.)
 */
import { readFile } from "node:fs/promises"
import { createSecureContext, rootCertificates } from "node:tls"
import { Config, Effect, Option } from "effect"
import { Agent, buildConnector } from "undici"
import { classifyAddress, isForbiddenName, parseHost } from "./IpClassifier.ts"
import type { IpFamily } from "./IpClassifier.ts"
import { makeCaresResolver } from "./CaresResolver.ts"
import { configError } from "./NetGuard.ts"
import type { Policy, ResolvedAddress, ResolveHost } from "./NetGuard.ts"
import { HOST_NOT_ALLOWED } from "./UrlPolicy.ts"

export const SSRF_BLOCKED = "ORBIT_SSRF_BLOCKED"

/** Why a host name was refused: for the operator's log, never for the tenant. */
export interface SsrfRefusal {
  readonly host: string
  readonly address: string
  readonly reason: string
}

/**
 * Raised (as the request's error) when the connector refuses a target. The message is what the
 * attempt log shows; `refusal` holds the detail of a refusal that depends on DNS.
 */
export class SsrfBlockedError extends Error {
  readonly code = SSRF_BLOCKED
  override readonly name = "SsrfBlockedError"
  readonly refusal: SsrfRefusal | undefined
  constructor(message: string, refusal?: SsrfRefusal) {
    super(message)
    this.refusal = refusal
  }
}

export const isSsrfBlocked = (u: unknown): u is SsrfBlockedError =>
  typeof u === "object" && u !== null && (u as { code?: unknown }).code === SSRF_BLOCKED

export interface PinnedDispatcherOptions {
  readonly policy: Policy
  /** Defaults to a c-ares resolver with the system's DNS servers (`makeCaresResolver()`). */
  readonly resolver?: ResolveHost
  /** Extra trusted CA(s) in PEM, added to Node's default roots. */
  readonly ca?: string | Buffer
  /** Bounds DNS resolution and TCP+TLS connect (each). Default 10 s. */
  readonly connectTimeoutMs?: number
  /** Told the detail of every refusal that depends on DNS, for the operator's log. */
  readonly onRefused?: (refusal: SsrfRefusal) => void
}

const withTimeout = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { code: "ETIMEDOUT" })), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Resolves `hostname` (unless it is an IP literal) and vets every address.
 * Returns the addresses to dial, in resolver order; rejects with
 * `SsrfBlockedError` when the target is forbidden.
 */
export const vetTarget = async (
  hostname: string,
  policy: Policy,
  resolve: ResolveHost,
  timeoutMs: number
): Promise<{ readonly name: string | undefined; readonly addresses: ReadonlyArray<string> }> => {
  const host = parseHost(hostname)
  if (host.kind === "invalid") throw new SsrfBlockedError(`Refusing to connect: ${host.reason}`)
  if (host.kind === "name" && isForbiddenName(host.name)) {
    throw new SsrfBlockedError("Refusing to connect: localhost names are forbidden")
  }
  const answers: ReadonlyArray<ResolvedAddress> = host.kind === "ip"
    ? [host]
    : await withTimeout(resolve(host.name), timeoutMs, `DNS lookup of ${host.name}`)
  if (answers.length === 0) {
    throw Object.assign(new Error(`DNS lookup of ${hostname} returned no addresses`), { code: "ENOTFOUND" })
  }
  for (const { address, family } of answers) {
    const verdict = classifyAddress(address, family as IpFamily, policy.allowCidrs)
    if (!verdict.allowed) {
      // A literal IP may be named (the tenant typed it); a name's answers stay with the operator.
      throw host.kind === "ip"
        ? new SsrfBlockedError(`URL targets a forbidden ${verdict.reason}.`)
        : new SsrfBlockedError(HOST_NOT_ALLOWED, { host: host.name, address, reason: verdict.reason })
    }
  }
  return { name: host.kind === "name" ? host.name : undefined, addresses: answers.map((a) => a.address) }
}

export const makePinnedDispatcher = (options: PinnedDispatcherOptions): Agent => {
  const { policy, resolver = makeCaresResolver(), ca, connectTimeoutMs = 10_000, onRefused } = options
  // undici's own connector does the TCP/TLS work, given an IP as `hostname`. Extra CAs go into one
  // secure context built here: a `ca` option would make Node parse all ~150 roots again on every
  // connection (milliseconds of CPU each), enough to time out a burst of new connections.
  const dial = buildConnector({
    timeout: connectTimeoutMs,
    allowH2: false, // HTTP/1.1 only: receivers see a plain Host header
    ...(ca === undefined ? {} : { secureContext: createSecureContext({ ca: [...rootCertificates, ca] }) })
  })

  const connect: buildConnector.connector = (opts, callback) => {
    if (opts.protocol !== "https:" && !(opts.protocol === "http:" && policy.allowInsecureHttp)) {
      callback(new SsrfBlockedError(`Refusing to connect: ${opts.protocol} is not allowed`), null)
      return
    }
    const port = Number(opts.port === "" ? (opts.protocol === "https:" ? 443 : 80) : opts.port)
    if (!(Number.isInteger(port) && port >= 1 && port <= 65535)) {
      callback(new SsrfBlockedError("Refusing to connect: the port must be between 1 and 65535"), null)
      return
    }
    vetTarget(opts.hostname, policy, resolver, connectTimeoutMs).then(
      ({ name, addresses }) => {
        // Try the vetted addresses in order; never look the name up again.
        const attempt = (i: number): void => {
          dial({
            ...opts,
            hostname: addresses[i] ?? "",
            // Verify the certificate for the name; an IP literal has no SNI.
            ...(opts.protocol === "https:" ? { servername: name ?? "" } : { servername: undefined })
          }, (err, socket) => {
            if (err !== null && i + 1 < addresses.length) attempt(i + 1)
            else if (err !== null) callback(err, null)
            else callback(null, socket)
          })
        }
        attempt(0)
      },
      (err: Error) => {
        if (err instanceof SsrfBlockedError && err.refusal !== undefined) onRefused?.(err.refusal)
        callback(err, null)
      }
    )
  }

  return new Agent({ connect })
}

// ------------------------------------------------------------- extra CA --

/**
 * `ORBIT_EXTRA_CA_FILE`: optional path to a PEM bundle of extra trusted CAs
 * (e.g. a test receiver's self-signed cert). Yields the file's contents, or
 * undefined when the variable is unset.
 */
export const ExtraCaConfig: Config.Config<string | undefined> = Config.option(
  Config.String("ORBIT_EXTRA_CA_FILE")
).pipe(
  Config.mapEffect(Option.match({
    onNone: () => Effect.succeed(undefined),
    onSome: (path) =>
      Effect.tryPromise({
        try: () => readFile(path, "utf8"),
        catch: (e) => configError("ORBIT_EXTRA_CA_FILE", `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? e})`)
      }).pipe(
        Effect.filterOrFail(
          (pem) => pem.includes("-----BEGIN CERTIFICATE-----"),
          () => configError("ORBIT_EXTRA_CA_FILE", `${path} contains no PEM certificate`)
        )
      )
  }))
)
