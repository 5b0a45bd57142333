import { Cause, Effect } from "effect"
import type { HttpServerResponse } from "effect/http"
import { ApiError, internalError, notFound } from "../api/ApiErrors.ts"
import { CurrentRequestId, failure, newRequestId } from "./Envelope.ts"

/**
 * Wraps every route: assigns the request id, and turns every failure into the error envelope.
 * Unknown routes are 404 NOT_FOUND; anything unexpected is logged and answered 500 with no
 * internals in the body.
 */
export const envelopeMiddleware = <E, R>(
  effect: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> => {
  const requestId = newRequestId()
  return effect.pipe(
    Effect.provideService(CurrentRequestId, requestId),
    Effect.catchCause((cause) => {
      const error = Cause.squash(cause)
      if (error instanceof ApiError) return Effect.succeed(failure(requestId, error))
      if (error !== null && typeof error === "object" && "_tag" in error && error._tag === "RouteNotFound") {
        return Effect.succeed(failure(requestId, notFound("No such route.")))
      }
      if (Cause.hasInterruptsOnly(cause)) return Effect.interrupt
      return Effect.logError("unhandled error", { request_id: requestId, cause: Cause.pretty(cause) }).pipe(
        Effect.as(failure(requestId, internalError()))
      )
    })
  ) as Effect.Effect<HttpServerResponse.HttpServerResponse, never, R>
}
