/**
 * Pure, DNS-free checks on a webhook URL (API.md §3 `url` and §6).
 * Reasons are short sentences meant for an API error message; they never
 * echo the URL, since it may carry secrets (tokens in paths or queries).
 */
import { classifyAddress, isForbiddenName, parseHost } from "./IpClassifier.ts"
import type { Cidr, ParsedHost } from "./IpClassifier.ts"

export interface UrlPolicy {
  readonly allowInsecureHttp: boolean
  readonly allowCidrs: ReadonlyArray<Cidr>
}

export type UrlCheck =
  | { readonly ok: true; readonly url: URL; readonly host: Exclude<ParsedHost, { kind: "invalid" }> }
  | { readonly ok: false; readonly reason: string }

export const MAX_URL_LENGTH = 2048

/**
 * The one answer to every refusal that depends on DNS (a name whose answers include a forbidden
 * address), at registration and in the attempt log alike. It names neither the address nor its
 * range, so a tenant cannot map internal names; the operator's log carries the detail.
 */
export const HOST_NOT_ALLOWED = "URL host is not allowed."

const refuse = (reason: string): UrlCheck => ({ ok: false, reason })

export const checkWebhookUrl = (raw: string, policy: UrlPolicy): UrlCheck => {
  if (raw.length > MAX_URL_LENGTH) return refuse(`URL must be at most ${MAX_URL_LENGTH} characters.`)
  // `new URL` silently strips surrounding whitespace and tabs/newlines inside; refuse them instead.
  if (/[\u0000-\u0020\u007f]/.test(raw)) return refuse("URL must not contain spaces or control characters.")
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return refuse("URL must be a valid absolute URL.")
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && policy.allowInsecureHttp)) {
    return refuse("URL must use https.")
  }
  if (url.username !== "" || url.password !== "") return refuse("URL must not contain credentials.")
  if (url.hostname === "") return refuse("URL must include a host.")
  // The URL parser drops a default port and rejects one above 65535; 0 is what remains.
  if (url.port !== "" && !(Number(url.port) >= 1 && Number(url.port) <= 65535)) {
    return refuse("URL port must be between 1 and 65535.")
  }
  const host = parseHost(url.hostname)
  if (host.kind === "invalid") return refuse("URL host is not valid.")
  if (host.kind === "name") {
    if (isForbiddenName(host.name)) return refuse("URL must not target localhost.")
    return { ok: true, url, host }
  }
  const verdict = classifyAddress(host.address, host.family, policy.allowCidrs)
  if (!verdict.allowed) return refuse(`URL targets a forbidden ${verdict.reason}.`)
  return { ok: true, url, host }
}
