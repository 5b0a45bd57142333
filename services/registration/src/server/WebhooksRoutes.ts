import { decodeEndpointEvent, encodeEndpointEvent } from "@orbit/domain"
import { type KafkaUnavailable } from "@orbit/kafka"
import { SecretBox } from "@orbit/crypto"
import { Cause, Context, Effect, Layer, Option, Schema } from "effect"
import { HttpServerRequest, type HttpServerResponse } from "effect/http"
import { HttpApiBuilder, HttpApiError } from "effect/http-api"
import {
  addressRateLimited,
  type ApiError,
  internalError,
  isApiError,
  insufficientPermissions,
  invalidApiKey,
  invalidCursor,
  endpointNotFound,
  notFound,
  rateLimited,
  serviceUnavailable,
  validationError,
  writeOutcomeUnknown,
  writesBusy
} from "../api/ApiErrors.ts"
import { Api, ApiKeyAuth } from "../api/Api.ts"
import { CreateEndpointRequest, DEFAULT_PAGE_SIZE, RotateSecretRequest, SendTestEventRequest, UpdateEndpointRequest } from "../api/EndpointSchemas.ts"
import { ApiKeys, type Principal } from "../ApiKeys.ts"
import { RateLimiter } from "../RateLimiter.ts"
import { addressBucket, clientAddress, TrustProxy } from "../ClientAddress.ts"
import { CursorKey } from "../CursorKey.ts"
import { decodeCursor, encodeCursor } from "../Cursor.ts"
import { DeliveryAttemptStore } from "../DeliveryAttemptStore.ts"
import { DEFAULT_STATS_WINDOW, endpointState, STATS_WINDOWS } from "../api/StatsSchemas.ts"
import { EndpointCommands, type WritesBusy } from "../EndpointCommands.ts"
import { EndpointStore } from "../EndpointStore.ts"
import { Idempotency } from "../Idempotency.ts"
import { TestEvents } from "../TestEvents.ts"
import { Redeliveries } from "../Redeliveries.ts"
import { RecoverRequest, recoveryWindow, RetryDeliveryRequest } from "../api/RecoverySchemas.ts"
import { answerRejections } from "./Rejections.ts"
import { failure, newRequestId, noContent, success, UNHANDLED } from "./Envelope.ts"
import { decodeStrict, hasBody, issueDetails, readJsonBody } from "./RequestDecoding.ts"

const BASE = "/api/v1/webhooks"

/** Infrastructure failures become 503: the client did nothing wrong and may retry. */
const unavailableAs503 = <A, R>(effect: Effect.Effect<A, ApiError | KafkaUnavailable | WritesBusy | { _tag: "DbUnavailable" }, R>) =>
  Effect.catchIf(effect, (e): e is Exclude<typeof e, ApiError> => !isApiError(e), (e) =>
    e._tag === "WritesBusy"
      ? Effect.fail(writesBusy(e.retryAfterSeconds))
      : Effect.logWarning("backing service unavailable", { error: String((e as { message?: string }).message ?? e._tag) }).pipe(
        // Kafka is only written to: a produce that failed or timed out may still have been recorded.
        Effect.andThen(Effect.fail(e._tag === "KafkaUnavailable" ? writeOutcomeUnknown() : serviceUnavailable()))
      ))

/**
 * The query string as a record (a repeated parameter becomes an array, which the schema refuses).
 * The record has no prototype: `__proto__`, `constructor` or `toString` are parameters like any
 * other (unknown, so refused), not members of Object.prototype to assign to or find already there.
 * HttpApiBuilder decodes the declared query itself; this raw record is what a refused query is
 * reported against.
 */
const queryOf = (request: HttpServerRequest.HttpServerRequest) => {
  const raw: Record<string, string | Array<string>> = Object.create(null)
  for (const [k, v] of new URL(request.url, "http://localhost").searchParams) raw[k] = Object.hasOwn(raw, k) ? [raw[k]!, v].flat() : v
  return raw
}

const IdempotencyKeyHeader = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(255))

/** What a claimed Idempotency-Key keeps until its answer is stored: the answer's parts and the event. */
interface PendingRegistration {
  readonly resource: object
  readonly secret_box: string
  /** The encoded EndpointRegistered event. */
  readonly event: string
}


/**
 * What the security middleware established for one request: its id (X-Request-Id, meta.request_id)
 * and the authenticated key. It travels on the request object itself (under a private symbol)
 * rather than as a provided service, which would copy the fiber's context on every request, or in
 * a WeakMap, whose short-lived entries each cost the garbage collector an ephemeron.
 */
interface Call {
  readonly requestId: string
  readonly principal: Principal
}
const CALL = Symbol("orbit/registration/Call")
type WithCall = HttpServerRequest.HttpServerRequest & { [CALL]?: Call }
export const callOf = (request: HttpServerRequest.HttpServerRequest) => (request as WithCall)[CALL]!

/** The security middleware wraps a handler's failures in an object holding the original as `error`. */
const unwrapHandlerError = (e: unknown): unknown =>
  typeof e === "object" && e !== null && "~effect/http-api/HttpApiBuilder/HandlerError" in e ? (e as unknown as { error: unknown }).error : e

/**
 * A handler's ApiError becomes its error envelope here, so the endpoint itself never fails: the
 * errors each operation declares in Api.ts describe these responses.
 */
const fromCall = <R>(
  effect: Effect.Effect<HttpServerResponse.HttpServerResponse, ApiError, R>,
  { request }: { readonly request: HttpServerRequest.HttpServerRequest }
) => Effect.catch(effect, (e) => Effect.succeed(failure(callOf(request).requestId, e)))

/**
 * The `apiKey` security of every webhook operation (Api.ts): authenticates X-API-Key, applies the
 * key's rate limit and, for writes, its permission, then runs the endpoint. A key that must be
 * looked up is charged to the client's address first (KeyLookupLimiter; the address is the
 * socket's peer, or the proxy's X-Forwarded-For entry when ORBIT_TRUST_PROXY is set), and an
 * address out of lookups is answered 429 with Retry-After. It is also the one
 * place where a failure becomes the error envelope: ApiErrors as they are, a query the declared
 * schema refuses as 422 with one details entry per problem, anything unexpected logged and
 * answered 500 with no internals in the body.
 */
export const ApiKeyAuthLive = Layer.effect(
  ApiKeyAuth,
  Effect.gen(function*() {
    const keys = yield* ApiKeys
    const limiter = yield* RateLimiter
    const trustProxy = yield* TrustProxy
    const clientOf = (request: HttpServerRequest.HttpServerRequest) =>
      addressBucket(clientAddress(Option.getOrUndefined(request.remoteAddress), request.headers["x-forwarded-for"], trustProxy))

    const envelope = (request: HttpServerRequest.HttpServerRequest, requestId: string, query: Schema.Top | undefined) =>
      (cause: Cause.Cause<unknown>): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
        if (Cause.hasInterruptsOnly(cause)) return Effect.interrupt
        const error = unwrapHandlerError(Cause.squash(cause))
        if (isApiError(error)) return Effect.succeed(failure(requestId, error))
        // A malformed path id cannot name an endpoint: the same 404 as an unknown one.
        if (HttpApiError.HttpApiSchemaError.is(error) && error.kind === "Params") return Effect.succeed(failure(requestId, endpointNotFound()))
        if (HttpApiError.HttpApiSchemaError.is(error) && error.kind === "Query" && query !== undefined) {
          const raw = queryOf(request)
          return Effect.succeed(failure(requestId, validationError(issueDetails(error.cause.issue, raw))))
        }
        return Effect.logError(UNHANDLED, { request_id: requestId, cause: Cause.pretty(cause) }).pipe(
          Effect.as(failure(requestId, internalError()))
        )
      }

    return ApiKeyAuth.of({
      apiKey: (httpEffect, { endpoint }) =>
        Effect.withFiber((fiber) => {
          const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
          const requestId = newRequestId()
          const write = endpoint.method !== "GET"
          // A read by a key the cache holds, within its rate: no lookup to wait for, so no effect of its own.
          const known = write ? undefined : keys.cached(request.headers["x-api-key"])
          if (known !== undefined) {
            const limit = limiter.check(known.keyId)
            if (!limit.allowed) return Effect.succeed(failure(requestId, rateLimited(limit.retryAfterSeconds)))
            ;(request as WithCall)[CALL] = { requestId, principal: known }
            return Effect.catchCause(httpEffect, envelope(request, requestId, endpoint.query))
          }
          const principal = keys.authenticate(request.headers["x-api-key"], { fresh: write, client: clientOf(request) }).pipe(
            Effect.catchTag("InvalidApiKey", () => Effect.fail(invalidApiKey())),
            Effect.catchTag("KeyLookupsExhausted", (e) => Effect.fail(addressRateLimited(e.retryAfterSeconds))),
            Effect.flatMap((principal): Effect.Effect<Principal, ApiError> => {
              const limit = limiter.check(principal.keyId)
              if (!limit.allowed) return Effect.fail(rateLimited(limit.retryAfterSeconds))
              return write && !principal.canWrite ? Effect.fail(insufficientPermissions()) : Effect.succeed(principal)
            }),
            unavailableAs503
          )
          return Effect.flatMap(principal, (principal): Effect.Effect<HttpServerResponse.HttpServerResponse, unknown> => {
            (request as WithCall)[CALL] = { requestId, principal }
            return httpEffect
          }).pipe(Effect.catchCause(envelope(request, requestId, endpoint.query)))
        })
    })
  })
)

/**
 * The webhook operations of Api.ts. Each answers with a response built here (Envelope.ts: the JSON
 * text is written once, with no schema encoding pass); a test validates these bodies against the
 * operation's declared schema. Bodies are read by the handler (handleRaw) so that the 64 KiB limit,
 * the JSON content type and strict decoding report as API.md §2 says.
 */
export const WebhooksRoutes = HttpApiBuilder.group(Api, "webhooks", Effect.fn(function*(handlers) {
  const store = yield* EndpointStore
  const commands = yield* EndpointCommands
  const idempotency = yield* Idempotency
  const box = yield* SecretBox
  const cursorKey = yield* CursorKey
  const attempts = yield* DeliveryAttemptStore
  const testEvents = yield* TestEvents
  const redeliveries = yield* Redeliveries


  const findOwned = (p: Principal, id: string) =>
    store.get(p, id).pipe(
      Effect.flatMap((e) => (e === undefined ? Effect.fail(endpointNotFound()) : Effect.succeed(e)))
    )

  // The reads are untraced: a named Effect.fn captures a stack trace and opens a span on every
  // call, a measurable share of a cached read's time. Writes keep theirs.
  return handlers
    .handle("list", Effect.fnUntraced(function*({ query: q, request }) {
      const { principal: p, requestId } = callOf(request)
      const after = q.cursor === undefined ? undefined : decodeCursor(cursorKey, p, q.cursor)
      if (q.cursor !== undefined && after === undefined) return yield* invalidCursor()
      const page = yield* store.list(p, q.limit ?? DEFAULT_PAGE_SIZE, after)
      const cursor = page.next ? encodeCursor(cursorKey, p, page.next) : null
      return success(requestId, page.items, { pagination: { cursor, has_more: cursor !== null } })
    }, unavailableAs503, fromCall))
    .handleRaw("create", Effect.fn("Webhooks.create")(function*({ request }) {
      const { principal: p, requestId } = callOf(request)
      const body = yield* readJsonBody(request)
      const idemKeyRaw = request.headers["idempotency-key"]
      const req = yield* decodeStrict(CreateEndpointRequest, body)
      const { registered: r, event, append } = yield* answerRejections(commands.register(p, req))
      const respond = (resource: object, signingSecret: string) =>
        success(requestId, { ...resource, signing_secret: signingSecret }, {
          status: 201,
          headers: { location: `${BASE}/${(resource as { id: string }).id}` }
        })
      if (idemKeyRaw === undefined) {
        yield* append
        return respond(r.resource, r.signingSecret)
      }
      const idemKey = yield* Schema.decodeUnknownEffect(IdempotencyKeyHeader)(idemKeyRaw).pipe(
        Effect.mapError(() => validationError([{ field: "Idempotency-Key", value: idemKeyRaw.slice(0, 64), expected: "1–255 characters" }]))
      )
      const pending: PendingRegistration = { resource: r.resource, secret_box: r.secretBox, event: encodeEndpointEvent(event) }
      const claim = yield* idempotency.claim(p, idemKey, body, JSON.stringify(pending))
      const secretOf = (stored: { resource: { id: string }; secret_box: string }) =>
        box.decrypt(stored.secret_box, { tenant_id: p.tenantId, mode: p.mode, endpoint_id: stored.resource.id, slot: "current" as const }).pipe(
          Effect.orDie
        )
      // A write refused before anything was produced frees the key; any other failure leaves its
      // outcome unknown, so the next request with the key appends the same event again.
      const giveUp = (e: { readonly _tag: string }) =>
        (e._tag === "WritesBusy" ? idempotency.release(p, idemKey) : idempotency.abandon(p, idemKey)).pipe(Effect.ignore)
      switch (claim._tag) {
        case "Mismatch":
          return yield* validationError(
            [{ field: "Idempotency-Key", value: idemKey, expected: "the same request body as the first use of this key" }],
            "This Idempotency-Key was already used with a different request body."
          )
        case "InProgress":
          return yield* serviceUnavailable()
        case "Replay": {
          const stored = claim.response as { resource: { id: string }; secret_box: string }
          return respond(stored.resource, yield* secretOf(stored))
        }
        case "TakenOver": {
          const stored = JSON.parse(claim.pending) as PendingRegistration & { resource: { id: string } }
          yield* commands.appendAgain(decodeEndpointEvent(stored.event)).pipe(
            Effect.tapError(() => idempotency.abandon(p, idemKey).pipe(Effect.ignore))
          )
          yield* idempotency.complete(p, idemKey, 201, { resource: stored.resource, secret_box: stored.secret_box })
          return respond(stored.resource, yield* secretOf(stored))
        }
        case "Claimed": {
          yield* append.pipe(Effect.tapError(giveUp))
          yield* idempotency.complete(p, idemKey, 201, { resource: r.resource, secret_box: r.secretBox })
          return respond(r.resource, r.signingSecret)
        }
      }
    }, unavailableAs503, fromCall))
    .handle("get", Effect.fnUntraced(function*({ params, request }) {
      const { principal: p, requestId } = callOf(request)
      const id = params.id
      return success(requestId, yield* findOwned(p, id))
    }, unavailableAs503, fromCall))
    .handleRaw("update", Effect.fn("Webhooks.update")(function*({ params, request }) {
      const { principal: p, requestId } = callOf(request)
      const id = params.id
      const body = yield* readJsonBody(request)
      const req = yield* decodeStrict(UpdateEndpointRequest, body)
      return success(requestId, yield* answerRejections(commands.update(p, id, req)))
    }, unavailableAs503, fromCall))
    .handle("delete", Effect.fn("Webhooks.remove")(function*({ params, request }) {
      const { principal: p, requestId } = callOf(request)
      const id = params.id
      yield* answerRejections(commands.remove(p, id))
      return noContent(requestId)
    }, unavailableAs503, fromCall))
    /**
     * A new signing secret, returned once. The previous one keeps signing alongside it for the
     * grace period (default 24 h), so receivers can switch without dropping deliveries.
     */
    .handleRaw("rotateSecret", Effect.fn("Webhooks.rotateSecret")(function*({ params, request }) {
      const { principal: p, requestId } = callOf(request)
      const id = params.id
      const req = hasBody(request) ? yield* decodeStrict(RotateSecretRequest, yield* readJsonBody(request)) : {}
      const r = yield* answerRejections(commands.rotateSecret(p, id, { secret: req.secret, graceSeconds: req.grace_period_seconds }))
      return success(requestId, { ...r.resource, signing_secret: r.signingSecret })
    }, unavailableAs503, fromCall))
    /**
     * Sends a `webhook.test` event to this endpoint only, whatever event types it subscribes to;
     * 202: the event is durable in Kafka and the dispatcher delivers it like any other event.
     */
    .handleRaw("sendTest", Effect.fn("Webhooks.sendTest")(function*({ params, request }) {
      const { principal: p, requestId } = callOf(request)
      const id = params.id
      if (hasBody(request)) yield* decodeStrict(SendTestEventRequest, yield* readJsonBody(request))
      const existing = yield* findOwned(p, id)
      if (!existing.active) {
        return yield* validationError(
          [{ field: "active", value: false, expected: "true: an inactive endpoint receives no deliveries, test events included" }],
          "This endpoint is inactive."
        )
      }
      return success(requestId, yield* testEvents.send(p, id), { status: 202 })
    }, unavailableAs503, fromCall))
    /** The attempt log of one endpoint, newest first; cursors are bound to the endpoint as well as the tenant and mode. */
    .handle("deliveries", Effect.fnUntraced(function*({ params, query: q, request }) {
      const { principal: p, requestId } = callOf(request)
      const id = params.id
      yield* findOwned(p, id)
      const scope = { tenantId: p.tenantId, mode: p.mode, resource: `deliveries:${id}` }
      const after = q.cursor === undefined ? undefined : decodeCursor(cursorKey, scope, q.cursor)
      if (q.cursor !== undefined && after === undefined) return yield* invalidCursor()
      const page = yield* attempts.list({ tenantId: p.tenantId, mode: p.mode, endpointId: id }, q.limit ?? DEFAULT_PAGE_SIZE, after)
      const cursor = page.next ? encodeCursor(cursorKey, scope, page.next) : null
      return success(requestId, page.items, { pagination: { cursor, has_more: cursor !== null } })
    }, unavailableAs503, fromCall))
    /**
     * Sends again the endpoint's deliveries in the window whose chain ended failed, each once, as a
     * new attempt chain with the same delivery id; a repeat of the window within 24 h starts nothing.
     */
    .handleRaw("recover", Effect.fn("Webhooks.recover")(function*({ params, request }) {
      const { principal: p, requestId } = callOf(request)
      const id = params.id
      const req = yield* decodeStrict(RecoverRequest, yield* readJsonBody(request))
      yield* findOwned(p, id)
      const window = recoveryWindow(req, Date.now())
      if ("problems" in window) return yield* validationError(window.problems, "The recovery window is invalid.")
      return success(requestId, yield* redeliveries.recover(p, id, window), { status: 202 })
    }, unavailableAs503, fromCall))
    /** One attempt of one delivery now, whatever its last outcome, recorded in the attempt log. */
    .handleRaw("retryDelivery", Effect.fn("Webhooks.retryDelivery")(function*({ params, request }) {
      const { principal: p, requestId } = callOf(request)
      const id = params.id
      if (hasBody(request)) yield* decodeStrict(RetryDeliveryRequest, yield* readJsonBody(request))
      const endpoint = yield* findOwned(p, id)
      if (!endpoint.active) {
        return yield* validationError(
          [{ field: "active", value: false, expected: "true: an inactive endpoint receives no deliveries, retries included" }],
          "This endpoint is inactive."
        )
      }
      const started = yield* redeliveries.retry(p, id, params.delivery_id)
      if (started === undefined) return yield* notFound("No delivery with this id for this endpoint.")
      return success(requestId, started, { status: 202 })
    }, unavailableAs503, fromCall))
    /** The endpoint's attempts over a window, summed up, and the state they put it in. */
    .handle("stats", Effect.fnUntraced(function*({ params, query: q, request }) {
      const { principal: p, requestId } = callOf(request)
      const id = params.id
      const endpoint = yield* findOwned(p, id)
      const window = q.window ?? DEFAULT_STATS_WINDOW
      const until = new Date()
      const since = new Date(until.getTime() - STATS_WINDOWS[window])
      const s = yield* attempts.stats({ tenantId: p.tenantId, mode: p.mode, endpointId: id }, since, until)
      return success(requestId, {
        endpoint_id: id,
        window,
        since: since.toISOString(),
        until: until.toISOString(),
        state: endpointState(endpoint.active, s),
        attempts: { total: s.total, succeeded: s.succeeded, failed: s.failed, no_response: s.noResponse },
        success_rate: s.total === 0 ? null : s.succeeded / s.total,
        latency_ms: { p50: s.p50, p95: s.p95, p99: s.p99 },
        last_success_at: s.lastSuccessAt?.toISOString() ?? null,
        last_failure_at: s.lastFailureAt?.toISOString() ?? null
      })
    }, unavailableAs503, fromCall))
}))
