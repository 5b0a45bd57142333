export {
  classifyAddress,
  isForbiddenName,
  parseCidr,
  parseCidrList,
  parseHost
} from "./IpClassifier.ts"
export type { Cidr, Classification, IpFamily, ParsedHost } from "./IpClassifier.ts"
export { checkWebhookUrl, HOST_NOT_ALLOWED, MAX_URL_LENGTH } from "./UrlPolicy.ts"
export type { UrlCheck, UrlPolicy } from "./UrlPolicy.ts"
export {
  configError,
  ForbiddenUrl,
  NetGuard,
  NetGuardPolicy,
  PolicyConfig,
  DnsConfig,
  REGISTRATION_DNS_TIMEOUT,
  Resolver
} from "./NetGuard.ts"
export { DNS_DEFAULTS, makeCaresResolver, parseDnsServers } from "./CaresResolver.ts"
export type { CaresResolver, CaresResolverOptions } from "./CaresResolver.ts"
export type { Policy, ResolvedAddress, ResolveHost, VettedUrl } from "./NetGuard.ts"
export {
  ExtraCaConfig,
  isSsrfBlocked,
  makePinnedDispatcher,
  SSRF_BLOCKED,
  SsrfBlockedError,
  vetTarget
} from "./PinnedAgent.ts"
export type { PinnedDispatcherOptions, SsrfRefusal } from "./PinnedAgent.ts"
// undici, the HTTP client the pinned connector plugs into, for a loop that measures it bare (the
// dispatch benchmark's ceiling); everything that reaches endpoints goes through the connector.
export { Agent, request } from "undici"
