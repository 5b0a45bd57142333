import { EventSubscription, RetryPolicy } from "@orbit/domain"
import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, HttpApiSecurity, OpenApi } from "effect/http-api"
import { ErrorDetail } from "./ApiErrors.ts"
import { DeliveryAttemptResource, ListDeliveriesQuery } from "./DeliverySchemas.ts"
import { CreateEndpointRequest, ListEndpointsQuery, RotateSecretRequest, SendTestEventRequest, UpdateEndpointRequest } from "./EndpointSchemas.ts"

/**
 * The schema-first declaration of the public API. The server (../server) decodes requests with
 * these same schemas, and the OpenAPI document at /api/v1/openapi.json is generated from here.
 */
const Meta = Schema.Struct({ request_id: Schema.String, timestamp: Schema.String })

export const EndpointResource = Schema.Struct({
  id: Schema.String,
  url: Schema.String,
  events: Schema.Array(EventSubscription),
  description: Schema.NullOr(Schema.String),
  active: Schema.Boolean,
  timeout_seconds: Schema.Int,
  retry_policy: RetryPolicy,
  created_at: Schema.String,
  updated_at: Schema.String
}).annotate({ identifier: "Endpoint" })

const ok = <S extends Schema.Top>(data: S, status = 200) =>
  Schema.Struct({ data, meta: Meta }).pipe(HttpApiSchema.status(status))

const ErrorEnvelope = (status: number, identifier: string) =>
  Schema.Struct({
    error: Schema.Struct({
      code: Schema.String,
      message: Schema.String,
      status: Schema.Int,
      details: Schema.optionalKey(Schema.Array(ErrorDetail))
    }),
    meta: Meta
  }).annotate({ identifier }).pipe(HttpApiSchema.status(status))

const errors = [
  ErrorEnvelope(400, "BadRequest"),
  ErrorEnvelope(401, "InvalidApiKey"),
  ErrorEnvelope(403, "InsufficientPermissions"),
  ErrorEnvelope(404, "NotFound"),
  ErrorEnvelope(413, "PayloadTooLarge"),
  ErrorEnvelope(422, "ValidationError"),
  ErrorEnvelope(503, "ServiceUnavailable")
]

const IdParams = { id: Schema.String.annotate({ description: "wh_…" }) }

export class WebhooksGroup extends HttpApiGroup.make("webhooks")
  .add(
    HttpApiEndpoint.get("list", "/", {
      query: ListEndpointsQuery,
      success: Schema.Struct({
        data: Schema.Array(EndpointResource),
        meta: Schema.Struct({
          request_id: Schema.String,
          timestamp: Schema.String,
          pagination: Schema.Struct({ cursor: Schema.NullOr(Schema.String), has_more: Schema.Boolean })
        })
      }),
      error: errors
    }),
    HttpApiEndpoint.post("create", "/", {
      payload: CreateEndpointRequest,
      headers: { "idempotency-key": Schema.optionalKey(Schema.String) },
      success: ok(Schema.Struct({ ...EndpointResource.fields, signing_secret: Schema.String }), 201),
      error: errors
    }),
    HttpApiEndpoint.get("get", "/:id", { params: IdParams, success: ok(EndpointResource), error: errors }),
    HttpApiEndpoint.put("update", "/:id", {
      params: IdParams,
      payload: UpdateEndpointRequest,
      success: ok(EndpointResource),
      error: errors
    }),
    HttpApiEndpoint.delete("delete", "/:id", { params: IdParams, error: errors }),
    HttpApiEndpoint.post("rotateSecret", "/:id/rotate-secret", {
      params: IdParams,
      payload: RotateSecretRequest,
      success: ok(Schema.Struct({ ...EndpointResource.fields, signing_secret: Schema.String })),
      error: errors
    }),
    HttpApiEndpoint.post("sendTest", "/:id/test", {
      params: IdParams,
      payload: SendTestEventRequest,
      success: ok(
        Schema.Struct({
          event_id: Schema.String,
          delivery_id: Schema.String,
          endpoint_id: Schema.String,
          type: Schema.Literal("webhook.test")
        }).annotate({ identifier: "TestEventSent" }),
        202
      ),
      error: errors
    }).annotate(
      OpenApi.Description,
      "Sends a webhook.test event to this endpoint only, whatever event types it subscribes to. 202 once the event is durable; the delivery then appears in /deliveries under delivery_id. An inactive endpoint answers 422."
    ),
    HttpApiEndpoint.get("deliveries", "/:id/deliveries", {
      params: IdParams,
      query: ListDeliveriesQuery,
      success: Schema.Struct({
        data: Schema.Array(DeliveryAttemptResource),
        meta: Schema.Struct({
          request_id: Schema.String,
          timestamp: Schema.String,
          pagination: Schema.Struct({ cursor: Schema.NullOr(Schema.String), has_more: Schema.Boolean })
        })
      }),
      error: errors
    }).annotate(OpenApi.Description, "The endpoint's delivery-attempt log of the last 30 days, newest first, cursor-paginated (limit 1–100, default 25).")
  )
  .prefix("/api/v1/webhooks")
  .annotateMerge(OpenApi.annotations({ title: "Webhook endpoints" }))
{}

export const ApiKeySecurity = HttpApiSecurity.apiKey({ key: "X-API-Key", in: "header" })

export class Api extends HttpApi.make("orbit-webhooks")
  .add(WebhooksGroup)
  .annotateMerge(OpenApi.annotations({
    title: "Orbit Webhooks API",
    version: "1.0.0",
    description: "Register HTTPS endpoints and receive signed domain events. Every request carries X-API-Key."
  }))
{}
