import { CustomHeaders, EventSubscription, RetryPolicy } from "@orbit/domain"
import { Schema, SchemaTransformation } from "effect"

const between = (min: number, max: number) =>
  Schema.Int.check(Schema.isBetween({ minimum: min, maximum: max })).annotate({ expected: `integer ${min}–${max}` })

/**
 * Text that can be stored as given: Postgres refuses U+0000 in text/jsonb (so such a value
 * would be accepted here, published, and then stall the projection), and a lone surrogate
 * would be silently replaced by U+FFFD (so the stored value would differ from the 201).
 */
const storableText = Schema.makeFilter(
  (s: string) => !s.includes("\u0000") && s.isWellFormed(),
  { expected: "text without NUL characters or unpaired surrogates" }
)

const Events = Schema.Array(EventSubscription)
  .check(
    Schema.isMinLength(1),
    Schema.isMaxLength(100),
    Schema.isUnique(),
    Schema.makeFilter((events) => !events.includes("*") || events.length === 1, {
      expected: "[\"*\"] alone, or event types from the catalog"
    })
  )
  .annotate({ expected: "1–100 distinct event types from the catalog, or [\"*\"]" })

const Url = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(2048), storableText).annotate({
  expected: "absolute https:// URL, at most 2048 characters, without NUL characters or unpaired surrogates"
})

const RETRY_POLICY_EXPECTED = "null, or an object whose strategy is \"exponential\", \"fixed\" or \"custom\""
// `message` (not `expected`): the formatter prefers a schema's identifier over `expected`.
const OBJECT_BODY = { message: "Expected a JSON object" }

/** Body of `POST /api/v1/webhooks` (API.md §3). Decoded strictly: unknown fields are errors. */
export const CreateEndpointRequest = Schema.Struct({
  url: Url,
  events: Events,
  secret: Schema.optionalKey(
    Schema.String.check(Schema.isMinLength(24), Schema.isMaxLength(128), storableText).annotate({
      expected: "string of 24–128 characters, without NUL characters or unpaired surrogates"
    })
  ),
  active: Schema.optionalKey(Schema.Boolean),
  description: Schema.optionalKey(
    Schema.NullOr(Schema.String.check(Schema.isMaxLength(512), storableText)).annotate({ expected: "string of at most 512 characters, or null" })
  ),
  timeout_seconds: Schema.optionalKey(between(1, 30)),
  retry_policy: Schema.optionalKey(
    Schema.NullOr(RetryPolicy.annotate({ expected: RETRY_POLICY_EXPECTED })).annotate({ expected: RETRY_POLICY_EXPECTED })
  ),
  headers: Schema.optionalKey(CustomHeaders),
  /** Attempts per second at most, across dispatcher instances; `null` or absent: no limit. */
  rate_limit_per_second: Schema.optionalKey(
    Schema.NullOr(between(1, 10_000)).annotate({ expected: "integer 1–10000, or null" })
  )
}).annotate({ identifier: "CreateEndpointRequest", ...OBJECT_BODY })
export type CreateEndpointRequest = typeof CreateEndpointRequest.Type

/** Body of `PUT /api/v1/webhooks/{id}`: a full replacement; omitted optional fields get their defaults. */
export const UpdateEndpointRequest = CreateEndpointRequest.mapFields(({ secret: _secret, ...fields }) => fields).annotate({
  identifier: "UpdateEndpointRequest",
  ...OBJECT_BODY
})
export type UpdateEndpointRequest = typeof UpdateEndpointRequest.Type

/** The page size of a list when the query names no `limit` (API.md §3). */
export const DEFAULT_PAGE_SIZE = 25

/** The query of a cursor-paged list: an optional `cursor` and an optional `limit` of 1 to `maximum`. */
export const pageQuery = (maximum: number) =>
  Schema.Struct({
    cursor: Schema.optionalKey(Schema.String.annotate({ expected: "a cursor from meta.pagination.cursor" })),
    // Digits only: `Number()` would also take "0x10", "1e1", " 5" or "".
    limit: Schema.optionalKey(
      Schema.String.check(Schema.isPattern(/^[0-9]{1,9}$/, { expected: `integer 1–${maximum}` })).pipe(
        Schema.decodeTo(between(1, maximum), SchemaTransformation.numberFromString)
      ).annotate({ expected: `integer 1–${maximum}` })
    )
  })

/** Query of `GET /api/v1/webhooks` (API.md §3: limit ≤ 200). */
export const ListEndpointsQuery = pageQuery(200)

/** Body of `POST /api/v1/webhooks/{id}/rotate-secret` (optional: an empty body generates a secret). */
export const RotateSecretRequest = Schema.Struct({
  secret: CreateEndpointRequest.fields.secret,
  grace_period_seconds: Schema.optionalKey(between(0, 7 * 86400))
}).annotate({ identifier: "RotateSecretRequest" })
export type RotateSecretRequest = typeof RotateSecretRequest.Type

/**
 * Body of `POST /api/v1/webhooks/{id}/test`: optional, and when sent an empty object (no options
 * yet). A record of nothing rather than `Struct({})`, which accepts any value that is not null.
 */
export const SendTestEventRequest = Schema.Record(Schema.String, Schema.Never.annotate({ message: "no such field (this request takes no options)" }))
  .annotate({ identifier: "SendTestEventRequest", expected: "an empty JSON object, or no body" })
