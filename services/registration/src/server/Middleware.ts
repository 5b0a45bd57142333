import { Cause, Effect, type Types } from "effect"
import type { IncomingMessage } from "node:http"
import { HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { internalError, isApiError, malformedRequest, notFound } from "../api/ApiErrors.ts"
import { failure, newRequestId, UNHANDLED } from "./Envelope.ts"

/**
 * Runs a route handler with a fresh request id and turns every failure into the error
 * envelope: ApiErrors as they are, anything unexpected logged and answered 500 with no
 * internals in the body. Handlers only ever fail with the classes of ApiErrors.ts on purpose. The id is passed as
 * an argument rather than provided as a service: one more service per request would push the
 * fiber's context past its overlay depth and copy it whole, on every request.
 */
export const enveloped = <E, R>(
  handler: (request: HttpServerRequest.HttpServerRequest, requestId: string) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) =>
(request: HttpServerRequest.HttpServerRequest): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> => {
  const requestId = newRequestId()
  return handler(request, requestId).pipe(
    Effect.catchCause((cause) => {
      const error = Cause.squash(cause)
      if (isApiError(error)) return Effect.succeed(failure(requestId, error))
      if (Cause.hasInterruptsOnly(cause)) return Effect.interrupt
      return Effect.logError(UNHANDLED, { request_id: requestId, cause: Cause.pretty(cause) }).pipe(
        Effect.as(failure(requestId, internalError()))
      )
    })
  )
}

/** Every path no other route matches: the 404 envelope (FindMyWay ranks wildcards last). */
export const NotFoundRoutes = HttpRouter.use(Effect.fn(function*(router) {
  yield* router.add("*", "/*", enveloped(() => Effect.fail(notFound("No such route."))))
}))

/**
 * Paths the router cannot match at all, not even against the wildcard above (a percent-encoding
 * that does not decode, e.g. `/api/v1/webhooks/%E0%A4%A`, or a parameter over its length limit),
 * fail with RouteNotFound before any route runs; without this they get a bare 404 with no body.
 * They are unknown routes like any other: the 404 envelope.
 */
const isRouteNotFound = (e: unknown): e is HttpServerError.HttpServerError =>
  HttpServerError.isHttpServerError(e) && e.reason._tag === "RouteNotFound"

export const UnroutableAsNotFound = HttpRouter.middleware(
  (httpEffect): Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled> =>
    Effect.catchIf(httpEffect, isRouteNotFound, () => Effect.succeed(failure(newRequestId(), notFound("No such route.")))),
  { global: true }
)

/**
 * An HTTP/1.1 request without `Host` is malformed (RFC 9112 §3.2): `400 MALFORMED_REQUEST` in the
 * envelope, then the connection closes, before any route runs. Node's own check, which answers
 * with a bare status line, is off (ApiServer.ts); HTTP/1.0 requests need no `Host`.
 */
export const HostRequired = HttpRouter.middleware(
  (httpEffect): Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled, HttpServerRequest.HttpServerRequest> =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const source = request.source as IncomingMessage
      if (request.headers.host !== undefined || source.httpVersionMajor !== 1 || source.httpVersionMinor !== 1) return httpEffect
      return Effect.succeed(HttpServerResponse.setHeader(failure(newRequestId(), malformedRequest()), "connection", "close"))
    }),
  { global: true }
)
