import {
  CustomHeaders,
  DEFAULT_RETRY_POLICY,
  DisabledReason,
  ENDPOINT_ID_PATTERN,
  EVENT_CATALOG,
  EVENT_GROUPS,
  EventSubscription,
  EventType,
  RetryPolicy
} from "@orbit/domain"
import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, HttpApiSecurity, OpenApi } from "effect/http-api"
import {
  type ApiErrorClass,
  codeOfClass,
  ErrorDetail,
  InsufficientPermissions,
  InternalError,
  InvalidApiKey,
  InvalidCursor,
  InvalidJson,
  InvalidWebhookUrl,
  NotFound,
  PayloadTooLarge,
  RateLimited,
  ServiceUnavailable,
  statusOfClass,
  ValidationError
} from "./ApiErrors.ts"
import { DeliveryAttemptResource, ListDeliveriesQuery } from "./DeliverySchemas.ts"
import {
  CreateEndpointRequest,
  DEFAULT_PAGE_SIZE,
  ListEndpointsQuery,
  RotateSecretRequest,
  SendTestEventRequest,
  UpdateEndpointRequest
} from "./EndpointSchemas.ts"
import { DEFAULT_STATS_WINDOW, EndpointStatsQuery, EndpointStatsResource } from "./StatsSchemas.ts"
import { DELIVERY_ID_PATTERN, RecoverRequest, RecoveryResource, RetryDeliveryRequest, RetryStartedResource } from "./RecoverySchemas.ts"

/**
 * The schema-first declaration of the public API: HttpApiBuilder serves these groups (../server
 * implements their handlers), so routes, request schemas, the responses each operation declares and
 * the OpenAPI document at /api/v1/openapi.json all come from here.
 * Each operation lists every status its route can answer (API.md §2), 429 and 503 included.
 */
const Meta = Schema.Struct({ request_id: Schema.String, timestamp: Schema.String })

const RequestIdHeader = Schema.String.annotate({ description: "Equal to meta.request_id; quote it when reporting a problem." })

/** Every response carries X-Request-Id (API.md §2); `extra` adds a response's own headers. */
const withRequestId = <S extends Schema.Top>(schema: S, extra: Schema.Struct.Fields = {}) =>
  HttpApiSchema.WithHeaders(schema, { "x-request-id": RequestIdHeader, ...extra })

const EXAMPLE_ENDPOINT = {
  id: "wh_3kTq9ZcV7mXw2bRf8LpN4s",
  url: "https://hooks.example.com/orbit",
  events: ["message.delivered", "message.failed"],
  description: "Delivery receipts",
  active: true,
  timeout_seconds: 30,
  retry_policy: DEFAULT_RETRY_POLICY,
  headers: { "X-Orbit-Account": "acme-eu" },
  rate_limit_per_second: null,
  disabled_reason: null,
  disabled_at: null,
  created_at: "2026-11-27T10:00:00.000Z",
  updated_at: "2026-11-27T10:00:00.000Z"
}
const EXAMPLE_META = { request_id: "req_Qm9yYml0V2ViaG9v", timestamp: "2026-11-27T10:00:00.000Z" }

export const EndpointResource = Schema.Struct({
  id: Schema.String,
  url: Schema.String,
  events: Schema.Array(EventSubscription),
  description: Schema.NullOr(Schema.String),
  active: Schema.Boolean,
  timeout_seconds: Schema.Int,
  retry_policy: RetryPolicy,
  headers: CustomHeaders,
  rate_limit_per_second: Schema.NullOr(Schema.Int).annotate({
    description: "Attempts per second at most, across every dispatcher instance; null: no limit."
  }),
  disabled_reason: Schema.NullOr(DisabledReason).annotate({
    description: "Why the platform disabled the endpoint (failing: every attempt failed for the auto-disable period); null unless it did. PUT with active: true clears it."
  }),
  disabled_at: Schema.NullOr(Schema.String).annotate({ description: "When the platform disabled the endpoint; null unless it did." }),
  created_at: Schema.String,
  updated_at: Schema.String
}).annotate({ identifier: "Endpoint" })

const EndpointWithSecret = Schema.Struct({
  ...EndpointResource.fields,
  signing_secret: Schema.String.annotate({ description: "The cleartext signing secret: returned in this response only, never again." })
}).annotate({ identifier: "EndpointWithSecret" })

const ok = <S extends Schema.Top>(data: S, status = 200, description = "Success", examples?: ReadonlyArray<unknown>) =>
  withRequestId(
    Schema.Struct({ data, meta: Meta }).annotate({ description, ...(examples ? { examples: examples as never } : {}) }),
    status === 201 ? { location: Schema.String.annotate({ description: "The new endpoint's URL." }) } : {}
  ).pipe(HttpApiSchema.status(status))

const page = <S extends Schema.Top>(item: S) =>
  withRequestId(
    Schema.Struct({
      data: Schema.Array(item),
      meta: Schema.Struct({
        request_id: Schema.String,
        timestamp: Schema.String,
        pagination: Schema.Struct({ cursor: Schema.NullOr(Schema.String), has_more: Schema.Boolean })
      })
    }).annotate({ description: "One page, newest first; meta.pagination.cursor is null exactly when has_more is false." })
  )

/**
 * The error response of one status: the envelope whose `code` is one of the given classes' codes.
 * Status and codes come from the classes themselves (ApiErrors.ts), so a class's status is stated once.
 */
const errorResponse = (
  classes: readonly [ApiErrorClass, ...Array<ApiErrorClass>],
  identifier: string,
  description: string,
  extra?: Schema.Struct.Fields
) => {
  const status = statusOfClass(classes[0])
  const stray = classes.find((c) => statusOfClass(c) !== status)
  if (stray !== undefined) throw new Error(`${identifier}: ${stray.identifier} has status ${statusOfClass(stray)}, not ${status}`)
  const codes = classes.map(codeOfClass)
  return withRequestId(
    Schema.Struct({
      error: Schema.Struct({
        code: codes.length === 1 ? Schema.Literal(codes[0]!) : Schema.Literals(codes),
        message: Schema.String,
        status: Schema.Literal(status),
        details: Schema.optionalKey(Schema.Array(ErrorDetail))
      }),
      meta: Meta
    }).annotate({ identifier, description }),
    extra
  ).pipe(HttpApiSchema.status(status))
}

const E = {
  400: errorResponse([InvalidJson, InvalidCursor], "BadRequest", "The body is not JSON (or not sent as JSON), or the cursor was not produced by this API for this key."),
  401: errorResponse([InvalidApiKey], "InvalidApiKey", "X-API-Key is missing, unknown or revoked."),
  403: errorResponse([InsufficientPermissions], "InsufficientPermissions", "A public (read-only) key attempted a write."),
  404: errorResponse([NotFound], "NotFound", "No webhook endpoint with this id for this key's tenant and mode."),
  413: errorResponse([PayloadTooLarge], "PayloadTooLarge", "The request body is larger than 64 KiB."),
  422: errorResponse([ValidationError, InvalidWebhookUrl], "ValidationError", "The body, query or a header fails the schema; one details entry per problem."),
  429: errorResponse([RateLimited], "RateLimited", "Too many requests for this API key, or too many lookups of unknown keys from this address.", {
    "retry-after": Schema.String.annotate({ description: "Seconds to wait before retrying (an integer)." })
  }),
  500: errorResponse([InternalError], "InternalError", "An unexpected error; the body carries no internals."),
  503: errorResponse(
    [ServiceUnavailable],
    "ServiceUnavailable",
    "Kafka or Postgres is unreachable, or too many writes are in flight (then with Retry-After). A write that " +
      "reached Kafka but timed out may have taken effect: retry it with the same Idempotency-Key.",
    { "retry-after": Schema.optionalKey(Schema.String.annotate({ description: "Seconds to wait before retrying (an integer); sent when too many writes are in flight." })) }
  )
}

/** Every route authenticates (401), is rate limited (429) and depends on the backing services (503). */
const always = [E[401], E[429], E[500], E[503]] as const
const reads = [...always] as const
const readsById = [E[404], ...always] as const
const writesById = [E[400], E[403], E[404], E[413], E[422], ...always] as const

/**
 * Query parameters travel as text, so their OpenAPI schema would otherwise be the wire string
 * (`limit`: a string of digits). The document types each one by what the server decodes it to
 * (`limit`: an integer and its range), plus the default the route applies when it is absent.
 */
const typedQuery = (query: Schema.Struct<Schema.Struct.Fields>, defaults: Record<string, unknown>) => {
  const properties = (Schema.toJsonSchemaDocument(Schema.toType(query)).schema as { properties: Record<string, object> }).properties
  return (op: Record<string, any>) => ({
    ...op,
    parameters: op.parameters.map((p: { name: string; in: string }) =>
      p.in === "query" && properties[p.name]
        ? { ...p, schema: { ...properties[p.name], ...(p.name in defaults ? { default: defaults[p.name] } : {}) } }
        : p
    )
  })
}

/** rotate-secret and test take an optional body: none at all is as good as the empty object. */
const optionalBody = (op: Record<string, any>) => ({ ...op, requestBody: { ...op.requestBody, required: false } })

/**
 * Path ids are decoded before the query, headers and body: a malformed id answers 404 like an
 * unknown one (server/WebhooksRoutes.ts), whatever else is wrong with the request.
 */
const IdParams = {
  id: Schema.String.check(Schema.isPattern(ENDPOINT_ID_PATTERN)).annotate({
    description: "The endpoint's id: `wh_` and 20–64 letters or digits. Any other id answers 404, like an unknown one."
  })
}

/** The path of a single delivery: the endpoint's id and a delivery id (a UUID); any other id answers 404. */
const DeliveryParams = {
  ...IdParams,
  delivery_id: Schema.String.check(Schema.isPattern(DELIVERY_ID_PATTERN)).annotate({
    description: "The delivery's id (X-Devotel-Delivery-Id, delivery_id in the attempt log): a lowercase UUID. Any other id answers 404."
  })
}

const CREATE_EXAMPLE = {
  url: "https://hooks.example.com/orbit",
  events: ["message.delivered", "message.failed"],
  description: "Delivery receipts",
  timeout_seconds: 30,
  headers: { "X-Orbit-Account": "acme-eu" }
}

/** Declares that every operation it is applied to takes the X-API-Key header. */
export const ApiKeySecurity = HttpApiSecurity.apiKey({ key: "X-API-Key", in: "header" }).pipe(
  HttpApiSecurity.annotate(
    OpenApi.Description,
    "An API key of the tenant: dv_live_sk_… (live, read and write), dv_test_sk_… (test mode, read and write) or dv_live_pk_… (live, read-only). " +
      "After the type prefix come 43 random base62 characters and a 6-character checksum (CRC32 of the rest of the key, base62), so a mistyped key is refused without a lookup; " +
      "keys issued without a checksum (43 characters) still work. Too many unknown keys from one address are answered 429 RATE_LIMITED with Retry-After."
  )
)
export class ApiKeyAuth extends HttpApiMiddleware.Service<ApiKeyAuth>()("ApiKeyAuth", { security: { apiKey: ApiKeySecurity } }) {}

export class WebhooksGroup extends HttpApiGroup.make("webhooks")
  .add(
    HttpApiEndpoint.get("list", "/", { query: ListEndpointsQuery, success: page(EndpointResource), error: [E[400], E[422], ...reads] })
      .annotate(OpenApi.Transform, typedQuery(ListEndpointsQuery, { limit: DEFAULT_PAGE_SIZE }))
      .annotate(OpenApi.Summary, "List endpoints")
      .annotate(
        OpenApi.Description,
        "The tenant's webhook endpoints in this key's mode, newest first, cursor-paginated. Never returns a signing secret."
      ),
    HttpApiEndpoint.post("create", "/", {
      payload: CreateEndpointRequest.annotate({ examples: [CREATE_EXAMPLE] as never }),
      headers: {
        "idempotency-key": Schema.optionalKey(
          Schema.String.annotate({ description: "1–255 characters. A repeat with the same body within 24 h returns the original 201." })
        )
      },
      success: ok(EndpointWithSecret, 201, "Registered", [{
        data: { ...EXAMPLE_ENDPOINT, signing_secret: "whsec_MfKQ9r8GKYqQ7l6WQ1H3sZrOp4ZT0d2c" },
        meta: EXAMPLE_META
      }]),
      error: [E[400], E[403], E[413], E[422], ...always]
    })
      .annotate(OpenApi.Summary, "Register an endpoint")
      .annotate(
        OpenApi.Description,
        "Registers an https:// URL for the listed event types. The 201 carries the signing secret, once; a GET right after already lists the endpoint. `rate_limit_per_second` (1–10,000, or null for none) caps the endpoint's delivery attempts per second across every dispatcher. Unknown fields are refused (422); so is each bad entry of headers (one details item per entry). An endpoint whose every attempt has failed for the auto-disable period (5 days by default) with at least 10 failed attempts is disabled by the platform (active: false, disabled_reason: failing) and a webhook.endpoint.disabled event goes to the tenant's endpoints that subscribe to it."
      ),
    HttpApiEndpoint.get("get", "/:id", { params: IdParams, success: ok(EndpointResource), error: readsById })
      .annotate(OpenApi.Summary, "Get an endpoint")
      .annotate(OpenApi.Description, "One endpoint of the tenant. Another tenant's id answers 404, like an unknown one."),
    HttpApiEndpoint.put("update", "/:id", {
      params: IdParams,
      payload: UpdateEndpointRequest.annotate({ examples: [{ ...CREATE_EXAMPLE, active: false }] as never }),
      success: ok(EndpointResource),
      error: writesById
    })
      .annotate(OpenApi.Summary, "Replace an endpoint")
      .annotate(
        OpenApi.Description,
        "A full replacement: omitted optional fields get their defaults (headers: none). The signing secret is unchanged. An endpoint the platform disabled (disabled_reason: failing) is turned on again by a PUT with active: true, which clears disabled_reason and disabled_at."
      ),
    HttpApiEndpoint.delete("delete", "/:id", {
      params: IdParams,
      success: withRequestId(HttpApiSchema.NoContent.annotate({ description: "Deleted" })),
      error: [E[403], E[404], ...always]
    })
      .annotate(OpenApi.Summary, "Delete an endpoint")
      .annotate(OpenApi.Description, "Deletes the endpoint; its pending deliveries are cancelled."),
    HttpApiEndpoint.post("rotateSecret", "/:id/rotate-secret", {
      params: IdParams,
      payload: RotateSecretRequest.annotate({ examples: [{ grace_period_seconds: 3600 }] as never }),
      success: ok(EndpointWithSecret),
      error: writesById
    })
      .annotate(OpenApi.Transform, optionalBody)
      .annotate(OpenApi.Summary, "Rotate the signing secret")
      .annotate(
        OpenApi.Description,
        "Returns a new signing secret, once. The previous secret keeps signing alongside it for grace_period_seconds (default 24 h). The body is optional."
      ),
    HttpApiEndpoint.post("sendTest", "/:id/test", {
      params: IdParams,
      payload: SendTestEventRequest.annotate({ examples: [{}] as never }),
      success: ok(
        Schema.Struct({
          event_id: Schema.String,
          delivery_id: Schema.String,
          endpoint_id: Schema.String,
          type: Schema.Literal("webhook.test")
        }).annotate({ identifier: "TestEventSent" }),
        202,
        "Accepted: the event is durable"
      ),
      error: writesById
    })
      .annotate(OpenApi.Transform, optionalBody)
      .annotate(OpenApi.Summary, "Send a test event")
      .annotate(
        OpenApi.Description,
        "Sends a webhook.test event to this endpoint only, whatever event types it subscribes to. 202 once the event is durable; the delivery then appears in /deliveries under delivery_id. An inactive endpoint answers 422."
      ),
    HttpApiEndpoint.get("deliveries", "/:id/deliveries", {
      params: IdParams,
      query: ListDeliveriesQuery,
      success: page(DeliveryAttemptResource),
      error: [E[400], E[422], ...readsById]
    })
      .annotate(OpenApi.Transform, typedQuery(ListDeliveriesQuery, { limit: DEFAULT_PAGE_SIZE }))
      .annotate(OpenApi.Summary, "List delivery attempts")
      .annotate(
        OpenApi.Description,
        "The endpoint's delivery-attempt log of the last 30 days, newest first, cursor-paginated (limit 1–100, default 25)."
      ),
    HttpApiEndpoint.get("stats", "/:id/stats", {
      params: IdParams,
      query: EndpointStatsQuery,
      success: ok(EndpointStatsResource),
      error: [E[422], ...readsById]
    })
      .annotate(OpenApi.Transform, typedQuery(EndpointStatsQuery, { window: DEFAULT_STATS_WINDOW }))
      .annotate(OpenApi.Summary, "Endpoint stats")
      .annotate(
        OpenApi.Description,
        "The endpoint's delivery attempts over the last 24 h or 7 d (window, default 24h), from the attempt log: counts by outcome, success rate, p50/p95/p99 latency, the latest success and failure, and the state. The state is decided in this order: disabled when the endpoint is inactive; healthy when there are no attempts in the window; unresponsive when no attempt in the window got an HTTP response (timeouts, connection and TLS errors only); failing when the latest attempt failed or fewer than half succeeded; healthy otherwise. Any key of the tenant may read it."
      ),
    HttpApiEndpoint.post("recover", "/:id/recover", {
      params: IdParams,
      payload: RecoverRequest.annotate({ examples: [{ since: "2026-11-26T10:00:00Z", until: "2026-11-27T10:00:00Z" }] as never }),
      success: ok(RecoveryResource, 202, "Accepted: the deliveries to send again are durable", [{
        data: {
          recovery_id: "rcv_7HcQm2LwX9pR4tZk8VbN3sYd",
          endpoint_id: EXAMPLE_ENDPOINT.id,
          since: "2026-11-26T10:00:00.000Z",
          until: "2026-11-27T10:00:00.000Z",
          deliveries: 12,
          created_at: "2026-11-27T10:05:00.000Z"
        },
        meta: EXAMPLE_META
      }]),
      error: writesById
    })
      .annotate(OpenApi.Summary, "Recover failed deliveries")
      .annotate(
        OpenApi.Description,
        "Sends again every delivery of this endpoint that has an attempt between since and until (default now) and whose latest attempt failed with no retry left (dead-lettered, or a failed single retry): each once, as a new attempt chain (attempt 1, retried per the endpoint's current policy) with the same delivery id, so receivers can dedupe on X-Devotel-Delivery-Id / webhook-id. Deliveries that succeeded since, or still have a retry scheduled, are not sent. The window is at most 14 days, since < until ≤ now; otherwise 422 with details. A repeat of the same window (same since, and the same until or again none) within 24 h starts nothing and answers with the first recovery (same recovery_id and deliveries). 202 once the deliveries are durable in Kafka; they then appear in /deliveries. Deliveries are sent only while the endpoint exists, is active and subscribes to their event type."
      ),
    HttpApiEndpoint.post("retryDelivery", "/:id/deliveries/:delivery_id/retry", {
      params: DeliveryParams,
      payload: RetryDeliveryRequest.annotate({ examples: [{}] as never }),
      success: ok(RetryStartedResource, 202, "Accepted: the attempt is durable", [{
        data: {
          delivery_id: "5f0c2a8e-3b1d-5e47-9c6a-0d2f4b8e1a73",
          endpoint_id: EXAMPLE_ENDPOINT.id,
          event_id: "evt_0f8fad5bd9cb469fa16570867728950e",
          event_type: "message.delivered",
          attempt: 4
        },
        meta: EXAMPLE_META
      }]),
      error: writesById
    })
      .annotate(OpenApi.Transform, optionalBody)
      .annotate(OpenApi.Summary, "Retry one delivery")
      .annotate(
        OpenApi.Description,
        "Makes one attempt of this delivery now, whatever its last outcome, with the same delivery id and body, signed with the endpoint's current secret(s). The attempt is recorded in /deliveries with the next attempt number; a failure schedules no further retry and writes no dead letter. An unknown delivery (or one older than the 30-day attempt log) answers 404; an inactive endpoint 422. The body is optional."
      )
  )
  .middleware(ApiKeyAuth)
  .prefix("/api/v1/webhooks")
  // Strict, as for bodies: an unknown query parameter is refused, and every problem is reported.
  .annotate(HttpApi.QueryParseOptions, { errors: "all", onExcessProperty: "error" })
  .annotateMerge(OpenApi.annotations({
    title: "Webhook endpoints",
    description: "Register, inspect, change and delete the HTTPS endpoints that receive the tenant's events, and read their delivery log."
  }))
{}

export const EventTypeResource = Schema.Struct({
  type: EventType,
  group: Schema.Literals(EVENT_GROUPS).annotate({ description: "The part of the type before the dot" }),
  description: Schema.String,
  schema: Schema.Record(Schema.String, Schema.Unknown).annotate({ description: "The JSON Schema (draft 2020-12) of the event's data" }),
  example: Schema.Record(Schema.String, Schema.Unknown).annotate({ description: "An example data object; it validates against schema" })
}).annotate({ identifier: "EventType" })

/** The event catalog: readable with any valid key, public ones included. */
export class EventTypesGroup extends HttpApiGroup.make("eventTypes")
  .add(
    HttpApiEndpoint.get("list", "/", {
      success: ok(Schema.Array(EventTypeResource), 200, "Every event type, in catalog order", [{ data: EVENT_CATALOG.slice(0, 1), meta: EXAMPLE_META }]),
      error: reads
    })
      .annotate(OpenApi.Summary, "List event types")
      .annotate(
        OpenApi.Description,
        "Every event type an endpoint can subscribe to, with its group, a description, the JSON Schema of its data and an example. Not paginated: the catalog is small."
      )
  )
  .middleware(ApiKeyAuth)
  .prefix("/api/v1/event-types")
  .annotateMerge(OpenApi.annotations({
    title: "Event types",
    description: "The catalog of event types: what each one means and the shape of its data."
  }))
{}

const ReadinessChecks = Schema.Struct({ postgres: Schema.String, kafka: Schema.String, projection_lag: Schema.String })
const Ready = Schema.Struct({ status: Schema.Literal("ready"), checks: ReadinessChecks })
  .annotate({ identifier: "Ready", description: "Postgres and Kafka answer and the projection is caught up" })
const NotReady = Schema.Struct({ status: Schema.Literal("not_ready"), checks: ReadinessChecks })
  .annotate({ identifier: "NotReady", description: "A check failed; checks says which" })

/** Probes for load balancers and supervisors: no key, no rate limit, no envelope. */
export class HealthGroup extends HttpApiGroup.make("health")
  .add(
    HttpApiEndpoint.get("healthz", "/healthz", { success: Schema.Struct({ status: Schema.Literal("ok") }).annotate({ description: "The process is up" }) })
      .annotate(OpenApi.Summary, "Liveness")
      .annotate(OpenApi.Description, "Answers 200 while the process runs; checks nothing else."),
    HttpApiEndpoint.get("readyz", "/readyz", {
      success: Ready,
      error: NotReady.pipe(HttpApiSchema.status(503))
    })
      .annotate(OpenApi.Summary, "Readiness")
      .annotate(
        OpenApi.Description,
        "200 when Postgres and Kafka answer and the projection has applied every endpoint event; 503 otherwise. Computed every second in the background."
      )
  )
  .annotateMerge(OpenApi.annotations({ title: "Health", description: "Liveness and readiness probes. No API key." }))
{}

/** This document and the page that renders it. */
export class DocsGroup extends HttpApiGroup.make("docs")
  .add(
    HttpApiEndpoint.get("openapi", "/api/v1/openapi.json", {
      success: Schema.Record(Schema.String, Schema.Unknown).annotate({ description: "The OpenAPI 3.1 document" })
    })
      .annotate(OpenApi.Summary, "OpenAPI document")
      .annotate(OpenApi.Description, "This document, generated from the schemas the server validates requests with."),
    HttpApiEndpoint.get("reference", "/api/v1/docs", {
      success: Schema.String.pipe(HttpApiSchema.asText({ contentType: "text/html" })).annotate({ description: "The reference page" })
    })
      .annotate(OpenApi.Summary, "API reference page")
      .annotate(OpenApi.Description, "An interactive reference of this document; \"try it\" sends X-API-Key.")
  )
  .annotateMerge(OpenApi.annotations({ title: "Documentation", description: "This OpenAPI document and its interactive reference. No API key." }))
{}

export class Api extends HttpApi.make("orbit-webhooks")
  .add(WebhooksGroup)
  .add(EventTypesGroup)
  .add(HealthGroup)
  .add(DocsGroup)
  .annotateMerge(OpenApi.annotations({
    title: "Orbit Webhooks API",
    version: "1.0.0",
    description: "Register HTTPS endpoints and receive signed domain events. Every request to /api/v1/webhooks carries X-API-Key."
  }))
{}
