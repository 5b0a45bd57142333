import type { EventType } from "./EventTypes.ts"

const message = { message_id: "msg_01HZX3K4Q2", conversation_id: "conv_01HZX3K0AB", contact_id: "ct_01HZX2Y7MN", channel: "sms", from: "+15005550006", to: "+15005550001" }
const call = { call_id: "call_01HZX4A9RT", contact_id: "ct_01HZX2Y7MN", from: "+15005550006", to: "+15005550001", direction: "outbound" }
const verification = { verification_id: "ver_01HZX5C2LP", contact_id: "ct_01HZX2Y7MN", channel: "sms", to: "+15005550001" }
const contact = { contact_id: "ct_01HZX2Y7MN", phone: "+15005550001", email: "ada@example.com", name: "Ada Lovelace" }
const campaign = { campaign_id: "cmp_01HZX6D3QS", name: "Spring launch", channel: "sms", audience_size: 1200 }

/**
 * Example `data` of each catalog event type: what `orbit trigger <type>` publishes unless given
 * `--data`. Keyed by the catalog's type, so a type added to the catalog needs an example here.
 */
export const EVENT_TYPE_EXAMPLES: { readonly [T in EventType]: Readonly<Record<string, unknown>> } = {
  "message.created": { ...message, status: "created", body: "Your code is 123456" },
  "message.sent": { ...message, status: "sent", segments: 1 },
  "message.delivered": { ...message, status: "delivered", delivered_at: "2026-11-27T10:00:02.000Z" },
  "message.failed": { ...message, status: "failed", error_code: "30003", error_message: "Unreachable destination handset" },
  "message.read": { ...message, status: "read", read_at: "2026-11-27T10:01:00.000Z" },
  "message.received": { ...message, direction: "inbound", body: "Hi, is my order on its way?" },
  "message.replied": { ...message, direction: "inbound", body: "Thanks!", in_reply_to: "msg_01HZX3K4Q1" },
  "message.recipient_deactivated": { ...message, reason: "number_deactivated" },
  "call.initiated": { ...call, status: "initiated" },
  "call.ringing": { ...call, status: "ringing" },
  "call.answered": { ...call, status: "answered", answered_at: "2026-11-27T10:00:05.000Z" },
  "call.completed": { ...call, status: "completed", duration_seconds: 42 },
  "call.failed": { ...call, status: "failed", reason: "busy" },
  "call.recording_ready": { ...call, recording_id: "rec_01HZX4B0ZZ", recording_url: "https://media.example.com/rec_01HZX4B0ZZ.mp3", duration_seconds: 42 },
  "verification.started": { ...verification, status: "pending" },
  "verification.approved": { ...verification, status: "approved" },
  "verification.failed": { ...verification, status: "failed", reason: "max_attempts_reached" },
  "verification.expired": { ...verification, status: "expired" },
  "contact.created": { ...contact },
  "contact.updated": { ...contact, changed: ["email"] },
  "contact.deleted": { contact_id: contact.contact_id },
  "contact.opted_in": { contact_id: contact.contact_id, channel: "sms" },
  "contact.opted_out": { contact_id: contact.contact_id, channel: "sms", keyword: "STOP" },
  "campaign.created": { ...campaign, status: "draft" },
  "campaign.started": { ...campaign, status: "running" },
  "campaign.completed": { ...campaign, status: "completed", sent: 1200, delivered: 1187, failed: 13 },
  "campaign.paused": { ...campaign, status: "paused" },
  "campaign.failed": { ...campaign, status: "failed", reason: "insufficient_balance" },
  "webhook.test": { message: "A test event sent with the Orbit CLI." },
  "webhook.endpoint.disabled": {
    endpoint_id: "wh_3kTq9ZcV7mXw2bRf8LpN4s",
    reason: "failing",
    disabled_at: "2026-11-27T10:00:00.000Z",
    last_status: 503
  }
}
