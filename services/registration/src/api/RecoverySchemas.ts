import { ISO_INSTANT_PATTERN } from "@orbit/domain"
import { Schema } from "effect"
import type { ErrorDetail } from "./ApiErrors.ts"

/** The longest window one recovery may cover. */
export const MAX_RECOVERY_WINDOW_MS = 14 * 24 * 3600_000

/** JavaScript reads 2026-02-30 as 2 March: the date part must survive the round trip. */
const isCalendarTime = (s: string) => {
  const [y, m, d] = s.slice(0, 10).split("-").map(Number) as [number, number, number]
  const date = new Date(Date.UTC(y, m - 1, d))
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d
}

/** An ISO 8601 instant with a time zone that names a real time (`2026-02-30T…` does not). */
const Instant = Schema.String.check(
  Schema.makeFilter((s) => ISO_INSTANT_PATTERN.test(s) && !Number.isNaN(Date.parse(s)) && isCalendarTime(s), {
    expected: "an ISO 8601 time with a time zone, e.g. 2026-11-27T10:00:00Z"
  })
)

/** Body of `POST /api/v1/webhooks/{id}/recover`. */
export const RecoverRequest = Schema.Struct({
  since: Instant.annotate({ description: "The window's start (inclusive)." }),
  until: Schema.optionalKey(Instant.annotate({ description: "The window's end (inclusive); default now. At most 14 days after since." }))
}).annotate({ identifier: "RecoverRequest" })
export type RecoverRequest = typeof RecoverRequest.Type

/**
 * The window's rules beyond the shape (pure): since < until ≤ now, at most 14 days. Returns the
 * resolved window, or one `details` entry per broken rule.
 */
export const recoveryWindow = (req: RecoverRequest, now: number):
  | { readonly since: Date; readonly until: Date; readonly untilRequested: boolean }
  | { readonly problems: ReadonlyArray<ErrorDetail> } =>
{
  const since = Date.parse(req.since)
  const until = req.until === undefined ? now : Date.parse(req.until)
  const problems: Array<ErrorDetail> = []
  if (req.until !== undefined && until > now) problems.push({ field: "until", value: req.until, expected: "a time not in the future" })
  if (since >= until) {
    problems.push({ field: "since", value: req.since, expected: `a time before until (${new Date(until).toISOString()})` })
  } else if (until - since > MAX_RECOVERY_WINDOW_MS) {
    problems.push({ field: "since", value: req.since, expected: "at most 14 days before until" })
  }
  return problems.length > 0
    ? { problems }
    : { since: new Date(since), until: new Date(until), untilRequested: req.until !== undefined }
}

export const RecoveryResource = Schema.Struct({
  recovery_id: Schema.String.annotate({ description: "rcv_…; a repeat of the same window within 24 h answers with the same id." }),
  endpoint_id: Schema.String,
  since: Schema.String,
  until: Schema.String.annotate({ description: "The window's end: until as sent, or the time of the request when omitted." }),
  deliveries: Schema.Int.annotate({
    description: "How many deliveries this recovery sends again. A repeat within 24 h starts nothing and answers with the first recovery's count."
  }),
  created_at: Schema.String.annotate({ description: "When the recovery started." })
}).annotate({ identifier: "Recovery" })

export const RetryStartedResource = Schema.Struct({
  delivery_id: Schema.String,
  endpoint_id: Schema.String,
  event_id: Schema.String,
  event_type: Schema.String,
  attempt: Schema.Int.annotate({ description: "The attempt's number in the attempt log: one more than the delivery's latest attempt." })
}).annotate({ identifier: "RetryStarted" })

/** Delivery ids are UUIDs (`X-Devotel-Delivery-Id`); any other id cannot name a delivery. */
export const DELIVERY_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** Body of `POST …/deliveries/{delivery_id}/retry`: optional, and when sent an empty object (no options yet). */
export const RetryDeliveryRequest = Schema.Record(Schema.String, Schema.Never.annotate({ message: "no such field (this request takes no options)" }))
  .annotate({ identifier: "RetryDeliveryRequest", expected: "an empty JSON object, or no body" })
