import type { IncomingMessage, ServerResponse } from "node:http"
import { Context, Effect, Layer } from "effect"
import { FindMyWay } from "effect/http"
import { HttpApi } from "effect/http-api"
import { Api, ApiKeyAuth } from "../api/Api.ts"
import { addressRateLimited, type ApiError, invalidApiKey, type RateLimited } from "../api/ApiErrors.ts"
import { ApiKeys } from "../ApiKeys.ts"
import { addressBucket, clientAddress, TrustProxy } from "../ClientAddress.ts"
import { countRefusedEarly } from "../RegistrationMetrics.ts"
import { errorEnvelope, newRequestId } from "./Envelope.ts"

/** Answers a request itself and says so (true), or leaves it to the router (false). */
export type EarlyAnswer = (req: IncomingMessage, res: ServerResponse) => boolean

/**
 * The routes of Api.ts, each marked by whether it takes the `apiKey` security (ApiKeyAuth), in a
 * router of the kind and configuration HttpRouter matches with, so a path matches here exactly when
 * it matches there (percent-encoding, parameter length, trailing and duplicate slashes). No other
 * route of the service shares a path with a keyed one.
 */
const keyedRoutes = () => {
  const router = FindMyWay.make<{ readonly path: string; readonly keyed: boolean }>()
  HttpApi.reflect(Api, {
    onGroup: () => {},
    onEndpoint: ({ endpoint, middleware }) =>
      router.on(endpoint.method, endpoint.path as FindMyWay.PathInput, {
        path: endpoint.path,
        keyed: [...middleware].some((m) => m.key === ApiKeyAuth.key)
      })
  })
  return router
}

/** Node joins repeated `X-Forwarded-For` headers into one value, as the router's request shows it; an array is joined the same way. */
const forwardedFor = (value: string | Array<string> | undefined) => (Array.isArray(value) ? value.join(", ") : value)

/**
 * Refusals of API keys answered by the node:http server itself, before the request enters the
 * Effect HTTP stack: a request to a keyed route whose key ApiKeys refuses without a lookup
 * (`ApiKeys.refusal`: malformed, a wrong checksum, a key found unknown or revoked recently, or an
 * unknown key from an address with no lookups left). Under a flood of invented keys each such
 * request costs a map lookup or two and one write instead of a trip through routing, middleware
 * and fibers, so the thread stays free for real keys' requests.
 *
 * The answer is the one the `apiKey` security (WebhooksRoutes.ts) gives the same request: the
 * same status, error envelope and headers (X-Request-Id, Retry-After, Content-Type,
 * Content-Length; a HEAD gets the headers only), counted under the same series of
 * orbit_http_requests_total and under orbit_http_refused_early_total. The decision comes from the
 * same caches and per-address buckets `authenticate` uses; whatever is not refused here goes to
 * the router untouched, and `authenticate` decides as before. Left to the router: requests with a
 * body or an `Expect` header (the router's handling of an unread body and of 100-continue applies),
 * an HTTP/1.1 request without `Host` (HostRequired answers 400), and any path no keyed route matches.
 */
export class EarlyRefusals extends Context.Service<EarlyRefusals, { readonly answer: EarlyAnswer }>()(
  "@orbit/registration/EarlyRefusals"
) {
  static readonly layer = Layer.effect(
    EarlyRefusals,
    Effect.gen(function*() {
      const keys = yield* ApiKeys
      const trustProxy = yield* TrustProxy
      const context = yield* Effect.context<never>()
      const routes = keyedRoutes()
      const invalid = invalidApiKey()
      // One error per Retry-After value: the answers differ only by it.
      const exhausted = new Map<number, RateLimited>()

      const answer: EarlyAnswer = (req, res) => {
        const started = performance.now()
        const headers = req.headers
        if (headers["content-length"] !== undefined || headers["transfer-encoding"] !== undefined || headers.expect !== undefined) return false
        if (headers.host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor === 1) return false
        // A HEAD is routed as a GET (ApiServer.ts); Node sends its answer without the body.
        const method = req.method === "HEAD" ? "GET" : req.method!
        const route = routes.find(method, req.url!)?.handler
        if (route === undefined || !route.keyed) return false
        const key = headers["x-api-key"]
        const refusal = keys.refusal(
          typeof key === "string" ? key : undefined,
          addressBucket(clientAddress(req.socket.remoteAddress, forwardedFor(headers["x-forwarded-for"]), trustProxy))
        )
        if (refusal === undefined) return false
        let error: ApiError = invalid
        if (refusal.refused === "exhausted") {
          let limited = exhausted.get(refusal.retryAfterSeconds)
          if (limited === undefined) {
            limited = addressRateLimited(refusal.retryAfterSeconds)
            exhausted.set(refusal.retryAfterSeconds, limited)
          }
          error = limited
        }
        const envelope = errorEnvelope(newRequestId(), error)
        const text = JSON.stringify(envelope.body)
        res.writeHead(envelope.status, {
          ...envelope.headers,
          "content-type": "application/json",
          "content-length": String(Buffer.byteLength(text))
        })
        res.end(text)
        countRefusedEarly(refusal.refused, { method, route: route.path, status: envelope.status, seconds: (performance.now() - started) / 1000 }, context)
        return true
      }
      return EarlyRefusals.of({ answer })
    })
  )
}
