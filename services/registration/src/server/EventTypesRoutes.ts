import { EVENT_CATALOG } from "@orbit/domain"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../api/Api.ts"
import { success } from "./Envelope.ts"
import { callOf } from "./WebhooksRoutes.ts"

/**
 * The event catalog (Api.ts `eventTypes`): every type with its group, description, the JSON Schema
 * of its data and an example, all from @orbit/domain. Any valid key may read it; ApiKeyAuth has
 * authenticated the key and applied its rate limit before the handler runs.
 */
export const EventTypesRoutes = HttpApiBuilder.group(Api, "eventTypes", (handlers) =>
  Effect.succeed(
    handlers.handle("list", ({ request }) => Effect.succeed(success(callOf(request).requestId, EVENT_CATALOG)))
  ))
