import { Result, Schema } from "effect"
import { EVENT_TYPE_EXAMPLES } from "./EventExamples.ts"
import { IsoInstant } from "./Instant.ts"
import { type SchemaProblem, schemaProblems } from "./SchemaProblems.ts"
import { type EventType, WEBHOOK_EVENT_TYPES } from "./EventTypes.ts"

/**
 * The schema of each catalog event type's `data`, its group and description: the one source of
 * the API's event catalog and of strict validation of source events. Each schema lists the keys a
 * receiver can rely on; other keys are allowed (producers may add fields without breaking anyone).
 */

const Id = (prefix: string, description: string) =>
  Schema.String.check(Schema.isMinLength(1)).annotate({ description: `${description} (${prefix}_…)` })
const Phone = Schema.String.annotate({ description: "A phone number in E.164 form" })
const Channel = Schema.String.annotate({ description: "The channel: sms, whatsapp, rcs, email, voice, …" })
const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Text = Schema.String

const message = {
  message_id: Id("msg", "The message's id"),
  conversation_id: Schema.optionalKey(Id("conv", "The conversation's id")),
  contact_id: Schema.optionalKey(Id("ct", "The contact's id")),
  channel: Channel,
  from: Phone,
  to: Phone
}
const call = {
  call_id: Id("call", "The call's id"),
  contact_id: Schema.optionalKey(Id("ct", "The contact's id")),
  from: Phone,
  to: Phone,
  direction: Schema.Literals(["inbound", "outbound"])
}
const verification = {
  verification_id: Id("ver", "The verification's id"),
  contact_id: Schema.optionalKey(Id("ct", "The contact's id")),
  channel: Channel,
  to: Schema.String.annotate({ description: "Where the code was sent: a phone number or an e-mail address" })
}
const contact = {
  contact_id: Id("ct", "The contact's id"),
  phone: Schema.optionalKey(Phone),
  email: Schema.optionalKey(Schema.String),
  name: Schema.optionalKey(Schema.String)
}
const campaign = {
  campaign_id: Id("cmp", "The campaign's id"),
  name: Schema.String,
  channel: Channel,
  audience_size: Schema.optionalKey(Count)
}
const status = <S extends string>(s: S) => Schema.Literal(s)

export const EVENT_GROUPS = ["message", "call", "verification", "contact", "campaign", "webhook"] as const
export type EventGroup = typeof EVENT_GROUPS[number]

interface CatalogEntry {
  readonly description: string
  readonly data: Schema.Codec<Record<string, unknown>, Record<string, unknown>>
}

const entry = (description: string, fields: Schema.Struct.Fields): CatalogEntry => ({
  description,
  data: Schema.Struct(fields) as unknown as CatalogEntry["data"]
})

/** Keyed by the catalog's type, so a type added to the catalog needs an entry here. */
const ENTRIES: { readonly [T in EventType]: CatalogEntry } = {
  "message.created": entry("A message was accepted for sending.", { ...message, status: status("created"), body: Schema.optionalKey(Text) }),
  "message.sent": entry("A message was handed to the carrier.", { ...message, status: status("sent"), segments: Schema.optionalKey(Count) }),
  "message.delivered": entry("The carrier confirmed delivery to the handset.", { ...message, status: status("delivered"), delivered_at: Schema.optionalKey(IsoInstant) }),
  "message.failed": entry("A message could not be delivered.", {
    ...message,
    status: status("failed"),
    error_code: Schema.optionalKey(Schema.String),
    error_message: Schema.optionalKey(Schema.String)
  }),
  "message.read": entry("The recipient read the message (channels with read receipts).", { ...message, status: status("read"), read_at: Schema.optionalKey(IsoInstant) }),
  "message.received": entry("An inbound message arrived.", { ...message, direction: status("inbound"), body: Schema.optionalKey(Text) }),
  "message.replied": entry("A contact replied to a message.", {
    ...message,
    direction: status("inbound"),
    body: Schema.optionalKey(Text),
    in_reply_to: Schema.optionalKey(Id("msg", "The message replied to"))
  }),
  "message.recipient_deactivated": entry("The recipient's number was deactivated by its carrier.", { ...message, reason: Schema.String }),
  "call.initiated": entry("A call was started.", { ...call, status: status("initiated") }),
  "call.ringing": entry("The called party's phone is ringing.", { ...call, status: status("ringing") }),
  "call.answered": entry("The call was answered.", { ...call, status: status("answered"), answered_at: Schema.optionalKey(IsoInstant) }),
  "call.completed": entry("The call ended after being answered.", { ...call, status: status("completed"), duration_seconds: Count }),
  "call.failed": entry("The call could not be connected.", { ...call, status: status("failed"), reason: Schema.optionalKey(Schema.String) }),
  "call.recording_ready": entry("A call's recording can be downloaded.", {
    ...call,
    recording_id: Id("rec", "The recording's id"),
    recording_url: Schema.String.annotate({ description: "Where to download the recording" }),
    duration_seconds: Schema.optionalKey(Count)
  }),
  "verification.started": entry("A verification code was sent.", { ...verification, status: status("pending") }),
  "verification.approved": entry("The correct code was entered.", { ...verification, status: status("approved") }),
  "verification.failed": entry("The verification failed.", { ...verification, status: status("failed"), reason: Schema.optionalKey(Schema.String) }),
  "verification.expired": entry("The code expired before it was entered.", { ...verification, status: status("expired") }),
  "contact.created": entry("A contact was created.", contact),
  "contact.updated": entry("A contact was changed.", { ...contact, changed: Schema.optionalKey(Schema.Array(Schema.String)) }),
  "contact.deleted": entry("A contact was deleted.", { contact_id: contact.contact_id }),
  "contact.opted_in": entry("A contact consented to messages on a channel.", { contact_id: contact.contact_id, channel: Channel }),
  "contact.opted_out": entry("A contact withdrew consent on a channel.", {
    contact_id: contact.contact_id,
    channel: Channel,
    keyword: Schema.optionalKey(Schema.String)
  }),
  "campaign.created": entry("A campaign was created as a draft.", { ...campaign, status: status("draft") }),
  "campaign.started": entry("A campaign started sending.", { ...campaign, status: status("running") }),
  "campaign.completed": entry("A campaign finished sending.", {
    ...campaign,
    status: status("completed"),
    sent: Schema.optionalKey(Count),
    delivered: Schema.optionalKey(Count),
    failed: Schema.optionalKey(Count)
  }),
  "campaign.paused": entry("A campaign was paused.", { ...campaign, status: status("paused") }),
  "campaign.failed": entry("A campaign stopped on an error.", { ...campaign, status: status("failed"), reason: Schema.optionalKey(Schema.String) }),
  "webhook.test": entry("A test event, sent by the API's test operation or the CLI.", {
    message: Schema.String,
    endpoint_id: Schema.optionalKey(Schema.String)
  }),
  "webhook.endpoint.disabled": entry(
    "The platform disabled one of the tenant's endpoints: every attempt to it failed for the auto-disable period. Re-enable it with PUT and active: true.",
    {
      endpoint_id: Id("wh", "The disabled endpoint's id"),
      reason: Schema.Literal("failing").annotate({ description: "Why it was disabled: every attempt failed for the auto-disable period" }),
      disabled_at: IsoInstant,
      last_status: Schema.NullOr(Schema.Int).annotate({ description: "The HTTP status of the last failed attempt; null when it got no response" })
    }
  )
}

/** The schema of a catalog type's `data`. */
export const eventDataSchema = (type: EventType) => ENTRIES[type].data

const groupOf = (type: EventType) => type.slice(0, type.indexOf(".")) as EventGroup

/** One event type as the catalog describes it: the JSON Schema (draft 2020-12) of its `data` and an example. */
export interface EventTypeDescription {
  readonly type: EventType
  readonly group: EventGroup
  readonly description: string
  readonly schema: Record<string, unknown>
  readonly example: Readonly<Record<string, unknown>>
}

const jsonSchemaOf = (schema: Schema.Top): Record<string, unknown> => {
  const doc = Schema.toJsonSchemaDocument(schema)
  return Object.keys(doc.definitions).length === 0
    ? { $schema: "https://json-schema.org/draft/2020-12/schema", ...doc.schema }
    : { $schema: "https://json-schema.org/draft/2020-12/schema", ...doc.schema, $defs: doc.definitions }
}

/** Every catalog event type in catalog order, computed once. */
export const EVENT_CATALOG: ReadonlyArray<EventTypeDescription> = WEBHOOK_EVENT_TYPES.map((type) => ({
  type,
  group: groupOf(type),
  description: ENTRIES[type].description,
  schema: jsonSchemaOf(ENTRIES[type].data),
  example: EVENT_TYPE_EXAMPLES[type]
}))

const decoders = Object.fromEntries(
  WEBHOOK_EVENT_TYPES.map((type) => [type, Schema.decodeUnknownResult(ENTRIES[type].data)])
) as { readonly [T in EventType]: (u: unknown, options?: { errors?: "all" }) => Result.Result<unknown, Schema.SchemaError> }

/** The problems of `data` against its type's schema (every one of them), or `[]` when it conforms. */
export const eventDataProblems = (type: EventType, data: unknown): ReadonlyArray<SchemaProblem> => {
  const r = decoders[type](data, { errors: "all" })
  return Result.isFailure(r) ? schemaProblems(r.failure.issue) : []
}
