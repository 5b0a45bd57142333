/**
 * Effect services for the SSRF rule (API.md §6): the operator policy (from
 * Config), an injectable DNS resolver, and `NetGuard.vetForRegistration`.
 */
import { Config, ConfigProvider, Context, Effect, Layer, Option, Schema } from "effect"
import { DNS_DEFAULTS, makeCaresResolver, parseDnsServers } from "./CaresResolver.ts"
import type { CaresResolverOptions } from "./CaresResolver.ts"
import { classifyAddress, parseCidrList } from "./IpClassifier.ts"
import type { IpFamily, ParsedHost } from "./IpClassifier.ts"
import { checkWebhookUrl, HOST_NOT_ALLOWED } from "./UrlPolicy.ts"
import type { UrlPolicy } from "./UrlPolicy.ts"

// ---------------------------------------------------------------- policy --

export type Policy = UrlPolicy

/** Builds a ConfigError whose message names the variable at fault. */
export const configError = (variable: string, problem: string): Config.ConfigError =>
  new Config.ConfigError(new ConfigProvider.SourceError({ message: `${variable}: ${problem}` }))

/** `ORBIT_ALLOW_PRIVATE_CIDRS` (comma-separated, default none) and `ORBIT_ALLOW_INSECURE_HTTP` (default false). */
export const PolicyConfig: Config.Config<Policy> = Config.all({
  allowCidrs: Config.String("ORBIT_ALLOW_PRIVATE_CIDRS").pipe(
    Config.withDefault(""),
    Config.mapEffect((text) =>
      Effect.try({
        try: () => parseCidrList(text),
        catch: (e) => configError("ORBIT_ALLOW_PRIVATE_CIDRS", (e as Error).message)
      })
    )
  ),
  allowInsecureHttp: Config.Boolean("ORBIT_ALLOW_INSECURE_HTTP").pipe(Config.withDefault(false))
})

export class NetGuardPolicy extends Context.Service<NetGuardPolicy, Policy>()("@orbit/net-guard/NetGuardPolicy") {
  static readonly layer = Layer.effect(NetGuardPolicy, PolicyConfig)
  /** A fixed policy, for tests. */
  static readonly layerWith = (policy: Partial<Policy> = {}) =>
    Layer.succeed(NetGuardPolicy, { allowInsecureHttp: false, allowCidrs: [], ...policy })
}

// -------------------------------------------------------------- resolver --

export interface ResolvedAddress {
  readonly address: string
  readonly family: number
}

/** Every A and AAAA answer for a host name. Also what `makePinnedDispatcher` takes. */
export type ResolveHost = (host: string) => Promise<ReadonlyArray<ResolvedAddress>>

/** A setting that is a whole number at least `min`; the ConfigError names the variable. */
const intAtLeast = (variable: string, min: number, fallback: number): Config.Config<number> =>
  Config.Int(variable).pipe(
    Config.withDefault(fallback),
    Config.mapEffect((n) =>
      n >= min ? Effect.succeed(n) : Effect.fail(configError(variable, `must be at least ${min}, got ${n}`))
    )
  )

/**
 * The resolver's settings: `ORBIT_DNS_SERVERS` (comma-separated, default the system's
 * resolv.conf servers), `ORBIT_DNS_TIMEOUT_MS`, `ORBIT_DNS_MAX_CONCURRENT`, `ORBIT_DNS_CACHE_SIZE`.
 */
export const DnsConfig: Config.Config<CaresResolverOptions> = Config.all({
  servers: Config.String("ORBIT_DNS_SERVERS").pipe(
    Config.withDefault(""),
    Config.mapEffect((text) =>
      Effect.try({
        try: () => parseDnsServers(text),
        catch: (e) => configError("ORBIT_DNS_SERVERS", (e as Error).message)
      })
    )
  ),
  timeoutMs: intAtLeast("ORBIT_DNS_TIMEOUT_MS", 1, DNS_DEFAULTS.timeoutMs),
  maxConcurrent: intAtLeast("ORBIT_DNS_MAX_CONCURRENT", 1, DNS_DEFAULTS.maxConcurrent),
  cacheSize: intAtLeast("ORBIT_DNS_CACHE_SIZE", 0, DNS_DEFAULTS.cacheSize)
})

export class Resolver extends Context.Service<Resolver, { readonly resolve: ResolveHost }>()(
  "@orbit/net-guard/Resolver"
) {
  /** c-ares lookups (see `makeCaresResolver`) with the settings of `DnsConfig`. */
  static readonly layer = Layer.effect(
    Resolver,
    Effect.map(DnsConfig, (options) => ({ resolve: makeCaresResolver(options) }))
  )
  /** A scripted resolver, for tests (e.g. public at registration, private at delivery). */
  static readonly layerFrom = (resolve: ResolveHost) => Layer.succeed(Resolver, { resolve })
}

// -------------------------------------------------------------- NetGuard --

export class ForbiddenUrl extends Schema.TaggedError<ForbiddenUrl>()("ForbiddenUrl", {
  /** A short sentence safe to show to the API caller. */
  reason: Schema.String
}) {
  // So logs and `String(error)` say why, not just the tag.
  override get message(): string {
    return this.reason
  }
}

export interface VettedUrl {
  readonly url: URL
  readonly host: Exclude<ParsedHost, { kind: "invalid" }>
  /** false when DNS failed or timed out: the dispatcher re-checks at every delivery anyway. */
  readonly resolved: boolean
  /** The addresses that were checked (the literal IP, or every DNS answer). */
  readonly addresses: ReadonlyArray<string>
}

/** Registration must not hang on slow DNS (API.md §6: delivery re-checks). */
export const REGISTRATION_DNS_TIMEOUT = "2 seconds"

export class NetGuard extends Context.Service<NetGuard, {
  readonly policy: Policy
  vetForRegistration(url: string): Effect.Effect<VettedUrl, ForbiddenUrl>
}>()("@orbit/net-guard/NetGuard") {
  /** Needs `NetGuardPolicy` and `Resolver`. */
  static readonly layerNoDeps = Layer.effect(
    NetGuard,
    Effect.gen(function*() {
      const policy = yield* NetGuardPolicy
      const { resolve } = yield* Resolver

      const vetForRegistration = Effect.fn("NetGuard.vetForRegistration")(function*(raw: string) {
        const checked = checkWebhookUrl(raw, policy)
        if (!checked.ok) return yield* new ForbiddenUrl({ reason: checked.reason })
        const { url, host } = checked
        if (host.kind === "ip") return { url, host, resolved: true, addresses: [host.address] }

        const answers = yield* Effect.tryPromise(() => resolve(host.name)).pipe(
          Effect.timeoutOption(REGISTRATION_DNS_TIMEOUT),
          Effect.orElseSucceed(() => Option.none<ReadonlyArray<ResolvedAddress>>())
        )
        if (Option.isNone(answers) || answers.value.length === 0) {
          yield* Effect.logDebug("registration DNS lookup failed or timed out; deferring to delivery")
          return { url, host, resolved: false, addresses: [] }
        }
        for (const { address, family } of answers.value) {
          const verdict = classifyAddress(address, family as IpFamily, policy.allowCidrs)
          if (!verdict.allowed) {
            // The caller learns only that the host is refused; where it points is for the operator.
            yield* Effect.logWarning("webhook URL refused at registration: its host resolves to a forbidden address", {
              host: host.name,
              address,
              reason: verdict.reason
            })
            return yield* new ForbiddenUrl({ reason: HOST_NOT_ALLOWED })
          }
        }
        return { url, host, resolved: true, addresses: answers.value.map((a) => a.address) }
      })

      return NetGuard.of({ policy, vetForRegistration })
    })
  )

  /** Policy and DNS settings from Config; also exposes `NetGuardPolicy` and `Resolver` to the dispatcher. */
  static readonly layer = NetGuard.layerNoDeps.pipe(
    Layer.provideMerge(Layer.mergeAll(NetGuardPolicy.layer, Resolver.layer))
  )
}
