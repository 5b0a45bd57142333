import { isEndpointRejection } from "@orbit/domain"
import { Effect } from "effect"
import { type ApiError, endpointNotFound, invalidWebhookUrl } from "../api/ApiErrors.ts"
import type { CommandRejection } from "../EndpointCommands.ts"

/** The API error (API.md §2) that answers a command the endpoint decider refused. */
export const rejectionAsApiError = (rejection: CommandRejection): ApiError => {
  switch (rejection._tag) {
    case "EndpointNotFound":
      return endpointNotFound()
    case "UrlRefused":
      return invalidWebhookUrl(rejection.reason, rejection.url)
  }
}

/** Answers a command's rejections as API errors; infrastructure failures pass through (they become 503). */
export const answerRejections = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Exclude<E, CommandRejection> | ApiError, R> =>
  Effect.catchIf(
    effect,
    (e): e is Extract<E, CommandRejection> => isEndpointRejection(e),
    (rejection) => Effect.fail(rejectionAsApiError(rejection as CommandRejection))
  ) as Effect.Effect<A, Exclude<E, CommandRejection> | ApiError, R>
