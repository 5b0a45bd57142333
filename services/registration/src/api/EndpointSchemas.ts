import { EventSubscription, RetryPolicy } from "@orbit/domain"
import { Schema } from "effect"

const between = (min: number, max: number) =>
  Schema.Int.check(Schema.isBetween({ minimum: min, maximum: max })).annotate({ expected: `integer ${min}–${max}` })

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

const Url = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(2048)).annotate({
  expected: "absolute https:// URL, at most 2048 characters"
})

/** Body of `POST /api/v1/webhooks` (API.md §3). Decoded strictly: unknown fields are errors. */
export const CreateEndpointRequest = Schema.Struct({
  url: Url,
  events: Events,
  secret: Schema.optionalKey(
    Schema.String.check(Schema.isMinLength(24), Schema.isMaxLength(128)).annotate({ expected: "string of 24–128 characters" })
  ),
  active: Schema.optionalKey(Schema.Boolean),
  description: Schema.optionalKey(
    Schema.NullOr(Schema.String.check(Schema.isMaxLength(512))).annotate({ expected: "string of at most 512 characters, or null" })
  ),
  timeout_seconds: Schema.optionalKey(between(1, 30)),
  retry_policy: Schema.optionalKey(Schema.NullOr(RetryPolicy))
}).annotate({ identifier: "CreateEndpointRequest" })
export type CreateEndpointRequest = typeof CreateEndpointRequest.Type

/** Body of `PUT /api/v1/webhooks/{id}`: a full replacement; omitted optional fields get their defaults. */
export const UpdateEndpointRequest = CreateEndpointRequest.mapFields(({ secret: _secret, ...fields }) => fields).annotate({
  identifier: "UpdateEndpointRequest"
})
export type UpdateEndpointRequest = typeof UpdateEndpointRequest.Type

/** Query of `GET /api/v1/webhooks`. */
export const ListEndpointsQuery = Schema.Struct({
  cursor: Schema.optionalKey(Schema.String.annotate({ expected: "a cursor from meta.pagination.cursor" })),
  limit: Schema.optionalKey(
    Schema.NumberFromString.pipe(Schema.decodeTo(between(1, 200))).annotate({ expected: "integer 1–200" })
  )
})
