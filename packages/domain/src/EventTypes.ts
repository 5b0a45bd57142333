import { Schema } from "effect"

/** The event-type catalog (API.md §5): one constant shared by validation, matching and docs. */
export const WEBHOOK_EVENT_TYPES = [
  "message.created",
  "message.sent",
  "message.delivered",
  "message.failed",
  "message.read",
  "message.received",
  "message.replied",
  "message.recipient_deactivated",
  "call.initiated",
  "call.ringing",
  "call.answered",
  "call.completed",
  "call.failed",
  "call.recording_ready",
  "verification.started",
  "verification.approved",
  "verification.failed",
  "verification.expired",
  "contact.created",
  "contact.updated",
  "contact.deleted",
  "contact.opted_in",
  "contact.opted_out",
  "campaign.created",
  "campaign.started",
  "campaign.completed",
  "campaign.paused",
  "campaign.failed",
  "webhook.test",
  "webhook.endpoint.disabled"
] as const

export type EventType = typeof WEBHOOK_EVENT_TYPES[number]

export const EventType = Schema.Literals(WEBHOOK_EVENT_TYPES).annotate({
  description: "A name from the event-type catalog"
})

/** `"*"` subscribes an endpoint to every event type. */
export const EventSubscription = Schema.Union([EventType, Schema.Literal("*")])
export type EventSubscription = typeof EventSubscription.Type

export const isEventType = (s: string): s is EventType => (WEBHOOK_EVENT_TYPES as ReadonlyArray<string>).includes(s)
