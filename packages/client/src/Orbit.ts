import createClient, { type Client } from "openapi-fetch"
import type { components, operations, paths } from "./generated/openapi.ts"

/**
 * The SDK face of the Orbit Webhooks API, over the `openapi-fetch` client typed by the generated
 * `paths`: every request and response type below comes from the served OpenAPI document, so a
 * change of the contract that the code here does not follow fails the typecheck.
 *
 *   const orbit = new Orbit({ apiKey: process.env.ORBIT_API_KEY!, baseUrl: "http://localhost:8080" })
 *   const { data: endpoint } = await orbit.webhooks.create({ url, events: ["message.delivered"] })
 *   for await (const e of orbit.webhooks.all()) console.log(e.id)
 *
 * A method resolves to the response envelope (`{ data, meta }`; a page adds `meta.pagination`)
 * and rejects with an `OrbitError` carrying the error envelope whenever the status is not 2xx.
 */

type Schemas = components["schemas"]
type Json<Op extends keyof operations, Status extends number> = operations[Op]["responses"] extends
  { [S in Status]: { content: { "application/json": infer Body } } } ? Body : never

export type Endpoint = Schemas["Endpoint"]
export type EndpointWithSecret = Schemas["EndpointWithSecret"]
export type DeliveryAttempt = Schemas["DeliveryAttempt"]
export type TestEventSent = Schemas["TestEventSent"]
export type CreateEndpointRequest = Schemas["CreateEndpointRequest"]
export type UpdateEndpointRequest = Schemas["UpdateEndpointRequest"]
export type RotateSecretRequest = Schemas["RotateSecretRequest"]
export type SendTestEventRequest = Schemas["SendTestEventRequest"]
export type EventTypeDescription = Schemas["EventType"]
export type RecoverRequest = Schemas["RecoverRequest"]
export type Recovery = Schemas["Recovery"]
export type RetryStarted = Schemas["RetryStarted"]

/** `{ cursor, limit }` of `GET /api/v1/webhooks` (limit 1–200, default 25). */
export type ListParams = NonNullable<operations["webhooks.list"]["parameters"]["query"]>
/** `{ cursor, limit }` of `GET /api/v1/webhooks/{id}/deliveries` (limit 1–100, default 25). */
export type DeliveriesParams = NonNullable<operations["webhooks.deliveries"]["parameters"]["query"]>

export type EndpointPage = Json<"webhooks.list", 200>
export type DeliveryPage = Json<"webhooks.deliveries", 200>
/** `{ window }` of `GET /api/v1/webhooks/{id}/stats` ("24h" or "7d", default "24h"). */
export type StatsParams = NonNullable<operations["webhooks.stats"]["parameters"]["query"]>
export type EndpointStats = Json<"webhooks.stats", 200>
export type Created = Json<"webhooks.create", 201>
export type Envelope<T> = { data: T; meta: Created["meta"] }

/** Every error envelope the document declares, and so every `error.code` an operation lists. */
type ErrorEnvelope = Extract<Schemas[keyof Schemas], { error: { code: string } }>
export type ErrorCode = ErrorEnvelope["error"]["code"]
export type ErrorDetail = NonNullable<ErrorEnvelope["error"]["details"]>[number]

/**
 * A non-2xx answer. `code`, `status`, `message`, `details` and `request_id` are the error
 * envelope's (API.md §2); `retry_after` is the `Retry-After` header of a 429, in seconds. A body
 * that is not an error envelope (a proxy's HTML page, say) gives `UNEXPECTED_RESPONSE` with the
 * HTTP status.
 */
export class OrbitError extends Error {
  override readonly name = "OrbitError"
  readonly code: ErrorCode | "UNEXPECTED_RESPONSE"
  readonly status: number
  /** One entry per problem (422 VALIDATION_ERROR); empty when the envelope has none. */
  readonly details: ReadonlyArray<ErrorDetail>
  /** `meta.request_id`, also the `X-Request-Id` header: quote it when reporting a problem. */
  readonly request_id: string | undefined
  readonly retry_after: number | undefined

  constructor(fields: {
    code: OrbitError["code"]
    status: number
    message: string
    details?: ReadonlyArray<ErrorDetail> | undefined
    request_id?: string | undefined
    retry_after?: number | undefined
  }) {
    super(fields.message)
    this.code = fields.code
    this.status = fields.status
    this.details = fields.details ?? []
    this.request_id = fields.request_id
    this.retry_after = fields.retry_after
  }

  /** Reads the error envelope of a non-2xx response (`body` is what openapi-fetch parsed). */
  static fromResponse(response: Response, body: unknown): OrbitError {
    const retryAfter = response.headers.get("retry-after")
    const common = {
      status: response.status,
      request_id: response.headers.get("x-request-id") ?? undefined,
      retry_after: retryAfter !== null && /^\d+$/.test(retryAfter) ? Number(retryAfter) : undefined
    }
    const envelope = body as Partial<ErrorEnvelope> | undefined
    const error = envelope?.error
    if (typeof error?.code !== "string" || typeof error.message !== "string") {
      return new OrbitError({ ...common, code: "UNEXPECTED_RESPONSE", message: `Unexpected HTTP ${response.status} without an error envelope` })
    }
    return new OrbitError({
      ...common,
      code: error.code,
      status: error.status ?? response.status,
      message: error.message,
      details: error.details,
      request_id: envelope?.meta?.request_id ?? common.request_id
    })
  }
}

type Result<T> = { data?: T; error?: unknown; response: Response }

/** The body of a 2xx answer, or the `OrbitError` of any other. */
const unwrap = async <T>(call: Promise<Result<T>>): Promise<T> => {
  const { data, error, response } = await call
  if (!response.ok) throw OrbitError.fromResponse(response, error)
  return data as T
}

/**
 * Every item of every page, fetching the next page only when the previous one is used up.
 * Stops when `meta.pagination.has_more` is false (then `cursor` is null, API.md §2).
 */
async function* paginate<T, P extends { cursor?: string }>(
  fetchPage: (params: P) => Promise<{ data: ReadonlyArray<T>; meta: { pagination: { cursor: string | null; has_more: boolean } } }>,
  params: P
): AsyncGenerator<T, void, undefined> {
  let next: P | undefined = params
  while (next !== undefined) {
    const page = await fetchPage(next)
    yield* page.data
    const { cursor, has_more } = page.meta.pagination
    next = has_more && cursor !== null ? { ...params, cursor } : undefined
  }
}

export interface OrbitOptions {
  /** An API key of the tenant: dv_live_sk_…, dv_test_sk_… or dv_live_pk_… (read-only). */
  readonly apiKey: string
  /** Where the API answers; default http://localhost:8080, where `npm start` serves it. */
  readonly baseUrl?: string
  /** A fetch to send requests with (default the global one). */
  readonly fetch?: (request: Request) => Promise<Response>
}

export const DEFAULT_BASE_URL = "http://localhost:8080"

/** `/api/v1/webhooks`: the tenant's endpoints, in the mode of the API key. */
export class Webhooks {
  readonly #http: Client<paths>
  constructor(http: Client<paths>) {
    this.#http = http
  }

  /** One page, newest first. Pass `meta.pagination.cursor` of a page to get the next one. */
  list(params: ListParams = {}): Promise<EndpointPage> {
    return unwrap(this.#http.GET("/api/v1/webhooks", { params: { query: params } }))
  }

  /** Every endpoint, page by page (`limit` is the page size): `for await (const e of orbit.webhooks.all())`. */
  all(params: ListParams = {}): AsyncGenerator<Endpoint, void, undefined> {
    return paginate((p: ListParams) => this.list(p), params)
  }

  /**
   * Registers an endpoint; `data.signing_secret` is returned here only. With `idempotencyKey`, a
   * repeat with the same body within 24 h returns the original response and registers nothing.
   */
  create(body: CreateEndpointRequest, options: { idempotencyKey?: string } = {}): Promise<Created> {
    const header = options.idempotencyKey === undefined ? undefined : { "idempotency-key": options.idempotencyKey }
    return unwrap(this.#http.POST("/api/v1/webhooks", { body, params: { header } }))
  }

  get(id: string): Promise<Json<"webhooks.get", 200>> {
    return unwrap(this.#http.GET("/api/v1/webhooks/{id}", { params: { path: { id } } }))
  }

  /** Replaces the endpoint: omitted optional fields get their defaults; the secret is unchanged. */
  update(id: string, body: UpdateEndpointRequest): Promise<Json<"webhooks.update", 200>> {
    return unwrap(this.#http.PUT("/api/v1/webhooks/{id}", { params: { path: { id } }, body }))
  }

  /** Deletes the endpoint (204); its pending deliveries are cancelled. */
  async delete(id: string): Promise<void> {
    await unwrap(this.#http.DELETE("/api/v1/webhooks/{id}", { params: { path: { id } } }))
  }

  /** A new signing secret, returned once; the previous one keeps signing for the grace period. */
  rotateSecret(id: string, body?: RotateSecretRequest): Promise<Json<"webhooks.rotateSecret", 200>> {
    return unwrap(this.#http.POST("/api/v1/webhooks/{id}/rotate-secret", { params: { path: { id } }, body }))
  }

  /** Sends a `webhook.test` event to this endpoint only; 202 once the event is durable. */
  test(id: string, body?: SendTestEventRequest): Promise<Json<"webhooks.sendTest", 202>> {
    return unwrap(this.#http.POST("/api/v1/webhooks/{id}/test", { params: { path: { id } }, body }))
  }

  /** One page of the endpoint's delivery-attempt log, newest first. */
  deliveries(id: string, params: DeliveriesParams = {}): Promise<DeliveryPage> {
    return unwrap(this.#http.GET("/api/v1/webhooks/{id}/deliveries", { params: { path: { id }, query: params } }))
  }

  /** The endpoint's attempts over the window summed up (counts, success rate, latency, state). */
  stats(id: string, params: StatsParams = {}): Promise<EndpointStats> {
    return unwrap(this.#http.GET("/api/v1/webhooks/{id}/stats", { params: { path: { id }, query: params } }))
  }

  /**
   * Sends again the endpoint's deliveries in `[since, until]` (default until: now; at most 14 days)
   * whose latest attempt failed with no retry left, each once, with the same delivery id. A repeat
   * of the same window within 24 h starts nothing and resolves to the first recovery.
   */
  recover(id: string, body: RecoverRequest): Promise<Json<"webhooks.recover", 202>> {
    return unwrap(this.#http.POST("/api/v1/webhooks/{id}/recover", { params: { path: { id } }, body }))
  }

  /** One attempt of the delivery now, whatever its last outcome; recorded in the attempt log. */
  retryDelivery(id: string, deliveryId: string): Promise<Json<"webhooks.retryDelivery", 202>> {
    return unwrap(this.#http.POST("/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry", { params: { path: { id, delivery_id: deliveryId } } }))
  }

  /** Every delivery attempt of the endpoint, page by page. */
  allDeliveries(id: string, params: DeliveriesParams = {}): AsyncGenerator<DeliveryAttempt, void, undefined> {
    return paginate((p: DeliveriesParams) => this.deliveries(id, p), params)
  }
}

/** `/api/v1/event-types`: the event catalog, readable with any key of the tenant. */
export class EventTypes {
  readonly #http: Client<paths>
  constructor(http: Client<paths>) {
    this.#http = http
  }

  /** Every event type with its group, description, the JSON Schema of its `data` and an example. */
  list(): Promise<Json<"eventTypes.list", 200>> {
    return unwrap(this.#http.GET("/api/v1/event-types"))
  }
}

export class Orbit {
  /** The typed `openapi-fetch` client underneath, with the API key set, for anything not wrapped here. */
  readonly http: Client<paths>
  readonly webhooks: Webhooks
  readonly eventTypes: EventTypes

  constructor(options: OrbitOptions) {
    this.http = createClient<paths>({
      baseUrl: options.baseUrl ?? DEFAULT_BASE_URL,
      headers: { "x-api-key": options.apiKey },
      ...(options.fetch ? { fetch: options.fetch } : {})
    })
    this.webhooks = new Webhooks(this.http)
    this.eventTypes = new EventTypes(this.http)
  }
}
