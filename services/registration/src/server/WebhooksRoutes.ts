import { ENDPOINT_ID_PATTERN } from "@orbit/domain"
import { type KafkaUnavailable } from "@orbit/kafka"
import { NetGuard } from "@orbit/net-guard"
import { SecretBox } from "@orbit/crypto"
import { Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServerRequest } from "effect/http"
import {
  ApiError,
  insufficientPermissions,
  invalidApiKey,
  invalidCursor,
  invalidWebhookUrl,
  notFound,
  rateLimited,
  serviceUnavailable,
  validationError
} from "../api/ApiErrors.ts"
import { ListDeliveriesQuery } from "../api/DeliverySchemas.ts"
import { CreateEndpointRequest, DEFAULT_PAGE_SIZE, ListEndpointsQuery, RotateSecretRequest, SendTestEventRequest, UpdateEndpointRequest } from "../api/EndpointSchemas.ts"
import { ApiKeys, type Principal } from "../ApiKeys.ts"
import { RateLimiter } from "../RateLimiter.ts"
import { CursorKey } from "../CursorKey.ts"
import { decodeCursor, encodeCursor } from "../Cursor.ts"
import { DeliveryAttemptStore } from "../DeliveryAttemptStore.ts"
import { EndpointCommands } from "../EndpointCommands.ts"
import { EndpointStore } from "../EndpointStore.ts"
import { Idempotency } from "../Idempotency.ts"
import { TestEvents } from "../TestEvents.ts"
import { noContent, success } from "./Envelope.ts"
import { enveloped } from "./Middleware.ts"
import { decodeStrict, hasBody, readJsonBody } from "./RequestDecoding.ts"

const BASE = "/api/v1/webhooks"

/** Infrastructure failures become 503: the client did nothing wrong and may retry. */
const unavailableAs503 = <A, R>(effect: Effect.Effect<A, ApiError | KafkaUnavailable | { _tag: "DbUnavailable" }, R>) =>
  Effect.catchIf(effect, (e): e is Exclude<typeof e, ApiError> => !(e instanceof ApiError), (e) =>
    Effect.logWarning("backing service unavailable", { error: String((e as { message?: string }).message ?? e._tag) }).pipe(
      Effect.andThen(Effect.fail(serviceUnavailable()))
    ))

/**
 * The query string as a record (a repeated parameter becomes an array, which the schema refuses).
 * The record has no prototype: `__proto__`, `constructor` or `toString` are parameters like any
 * other (unknown, so refused), not members of Object.prototype to assign to or find already there.
 */
const queryOf = (request: HttpServerRequest.HttpServerRequest) => {
  const raw: Record<string, string | Array<string>> = Object.create(null)
  for (const [k, v] of new URL(request.url, "http://localhost").searchParams) raw[k] = Object.hasOwn(raw, k) ? [raw[k]!, v].flat() : v
  return raw
}

const IdempotencyKeyHeader = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(255))

export const WebhooksRoutes = HttpRouter.use(Effect.fn(function*(router) {
  const keys = yield* ApiKeys
  const limiter = yield* RateLimiter
  const store = yield* EndpointStore
  const commands = yield* EndpointCommands
  const guard = yield* NetGuard
  const idempotency = yield* Idempotency
  const box = yield* SecretBox
  const cursorKey = yield* CursorKey
  const attempts = yield* DeliveryAttemptStore
  const testEvents = yield* TestEvents

  const authenticate = (request: HttpServerRequest.HttpServerRequest, access: "read" | "write") =>
    keys.authenticate(request.headers["x-api-key"], { fresh: access === "write" }).pipe(
      Effect.catchTag("InvalidApiKey", () => Effect.fail(invalidApiKey())),
      Effect.flatMap((p) => {
        const limit = limiter.check(p.keyId)
        if (!limit.allowed) return Effect.fail(rateLimited(limit.retryAfterSeconds))
        return access === "write" && !p.canWrite ? Effect.fail(insufficientPermissions()) : Effect.succeed(p)
      })
    )

  const vetUrl = (url: string) =>
    guard.vetForRegistration(url).pipe(Effect.catchTag("ForbiddenUrl", (e) => Effect.fail(invalidWebhookUrl(e.reason, url))))

  const pathId = Effect.gen(function*() {
    const { id } = yield* HttpRouter.params
    // Malformed ids can't exist: answer exactly like an unknown id.
    if (id === undefined || !ENDPOINT_ID_PATTERN.test(id)) return yield* notFound("No webhook endpoint with this id.")
    return id
  })

  const findOwned = (p: Principal, id: string) =>
    store.get(p, id).pipe(
      Effect.flatMap((e) => (e === undefined ? Effect.fail(notFound("No webhook endpoint with this id.")) : Effect.succeed(e)))
    )

  const list = Effect.fn("Webhooks.list")(function*(request: HttpServerRequest.HttpServerRequest, requestId: string) {
    const p = yield* authenticate(request, "read")
    const q = request.url.includes("?") ? yield* decodeStrict(ListEndpointsQuery, queryOf(request)) : {}
    const after = q.cursor === undefined ? undefined : decodeCursor(cursorKey, p, q.cursor)
    if (q.cursor !== undefined && after === undefined) return yield* invalidCursor()
    const page = yield* store.list(p, q.limit ?? DEFAULT_PAGE_SIZE, after)
    const cursor = page.next ? encodeCursor(cursorKey, p, page.next) : null
    return success(requestId, page.items, { pagination: { cursor, has_more: cursor !== null } })
  }, unavailableAs503)

  const create = Effect.fn("Webhooks.create")(function*(request: HttpServerRequest.HttpServerRequest, requestId: string) {
    const p = yield* authenticate(request, "write")
    const body = yield* readJsonBody(request)
    const idemKeyRaw = request.headers["idempotency-key"]
    const req = yield* decodeStrict(CreateEndpointRequest, body)
    yield* vetUrl(req.url)
    const respond = (resource: object, signingSecret: string) =>
      success(requestId, { ...resource, signing_secret: signingSecret }, {
        status: 201,
        headers: { location: `${BASE}/${(resource as { id: string }).id}` }
      })
    if (idemKeyRaw === undefined) {
      const r = yield* commands.register(p, req)
      return respond(r.resource, r.signingSecret)
    }
    const idemKey = yield* Schema.decodeUnknownEffect(IdempotencyKeyHeader)(idemKeyRaw).pipe(
      Effect.mapError(() => validationError([{ field: "Idempotency-Key", value: idemKeyRaw.slice(0, 64), expected: "1–255 characters" }]))
    )
    const claim = yield* idempotency.claim(p, idemKey, body)
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
        return respond(stored.resource, yield* box.decrypt(stored.secret_box).pipe(Effect.orDie))
      }
      case "Claimed": {
        const r = yield* commands.register(p, req).pipe(Effect.tapError(() => idempotency.release(p, idemKey).pipe(Effect.ignore)))
        yield* idempotency.complete(p, idemKey, 201, { resource: r.resource, secret_box: r.secretBox })
        return respond(r.resource, r.signingSecret)
      }
    }
  }, unavailableAs503)

  const get = Effect.fn("Webhooks.get")(function*(request: HttpServerRequest.HttpServerRequest, requestId: string) {
    const p = yield* authenticate(request, "read")
    const id = yield* pathId
    return success(requestId, yield* findOwned(p, id))
  }, unavailableAs503)

  const update = Effect.fn("Webhooks.update")(function*(request: HttpServerRequest.HttpServerRequest, requestId: string) {
    const p = yield* authenticate(request, "write")
    const id = yield* pathId
    const body = yield* readJsonBody(request)
    const req = yield* decodeStrict(UpdateEndpointRequest, body)
    const existing = yield* findOwned(p, id)
    if (req.url !== existing.url) yield* vetUrl(req.url)
    return success(requestId, yield* commands.update(p, existing, req))
  }, unavailableAs503)

  const remove = Effect.fn("Webhooks.remove")(function*(request: HttpServerRequest.HttpServerRequest, requestId: string) {
    const p = yield* authenticate(request, "write")
    const id = yield* pathId
    yield* findOwned(p, id)
    yield* commands.remove(p, id)
    return noContent(requestId)
  }, unavailableAs503)

  /**
   * A new signing secret, returned once. The previous one keeps signing alongside it for the
   * grace period (default 24 h), so receivers can switch without dropping deliveries.
   */
  const rotateSecret = Effect.fn("Webhooks.rotateSecret")(function*(request: HttpServerRequest.HttpServerRequest, requestId: string) {
    const p = yield* authenticate(request, "write")
    const id = yield* pathId
    const req = hasBody(request) ? yield* decodeStrict(RotateSecretRequest, yield* readJsonBody(request)) : {}
    const existing = yield* findOwned(p, id)
    const currentBox = yield* store.secretBox(p, id)
    if (currentBox === undefined) return yield* notFound("No webhook endpoint with this id.")
    const r = yield* commands.rotateSecret(p, existing, currentBox, {
      ...(req.secret === undefined ? {} : { secret: req.secret }),
      graceSeconds: req.grace_period_seconds ?? 86400
    })
    return success(requestId, { ...r.resource, signing_secret: r.signingSecret })
  }, unavailableAs503)

  /**
   * Sends a `webhook.test` event to this endpoint only, whatever event types it subscribes to;
   * 202: the event is durable in Kafka and the dispatcher delivers it like any other event.
   */
  const sendTest = Effect.fn("Webhooks.sendTest")(function*(request: HttpServerRequest.HttpServerRequest, requestId: string) {
    const p = yield* authenticate(request, "write")
    const id = yield* pathId
    if (hasBody(request)) yield* decodeStrict(SendTestEventRequest, yield* readJsonBody(request))
    const existing = yield* findOwned(p, id)
    if (!existing.active) {
      return yield* validationError(
        [{ field: "active", value: false, expected: "true: an inactive endpoint receives no deliveries, test events included" }],
        "This endpoint is inactive."
      )
    }
    return success(requestId, yield* testEvents.send(p, id), { status: 202 })
  }, unavailableAs503)

  /** The attempt log of one endpoint, newest first; cursors are bound to the endpoint as well as the tenant and mode. */
  const deliveries = Effect.fn("Webhooks.deliveries")(function*(request: HttpServerRequest.HttpServerRequest, requestId: string) {
    const p = yield* authenticate(request, "read")
    const id = yield* pathId
    const raw = queryOf(request)
    const q = yield* decodeStrict(ListDeliveriesQuery, raw)
    yield* findOwned(p, id)
    const scope = { tenantId: p.tenantId, mode: p.mode, resource: `deliveries:${id}` }
    const after = q.cursor === undefined ? undefined : decodeCursor(cursorKey, scope, q.cursor)
    if (q.cursor !== undefined && after === undefined) return yield* invalidCursor()
    const page = yield* attempts.list({ tenantId: p.tenantId, mode: p.mode, endpointId: id }, q.limit ?? DEFAULT_PAGE_SIZE, after)
    const cursor = page.next ? encodeCursor(cursorKey, scope, page.next) : null
    return success(requestId, page.items, { pagination: { cursor, has_more: cursor !== null } })
  }, unavailableAs503)

  yield* router.add("GET", BASE, enveloped(list))
  yield* router.add("POST", BASE, enveloped(create))
  yield* router.add("GET", `${BASE}/:id`, enveloped(get))
  yield* router.add("PUT", `${BASE}/:id`, enveloped(update))
  yield* router.add("DELETE", `${BASE}/:id`, enveloped(remove))
  yield* router.add("POST", `${BASE}/:id/rotate-secret`, enveloped(rotateSecret))
  yield* router.add("GET", `${BASE}/:id/deliveries`, enveloped(deliveries))
  yield* router.add("POST", `${BASE}/:id/test`, enveloped(sendTest))
}))

