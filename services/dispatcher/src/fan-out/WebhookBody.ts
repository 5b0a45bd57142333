import type { DomainEvent } from "@orbit/domain"

/** API.md §7: `data` larger than this (serialised, UTF-8) is replaced by a truncation marker. */
export const MAX_DATA_BYTES = 256 * 1024

/** Identifier fields kept in a truncated `data`, so a receiver can still fetch the full object. */
const KEPT_IDS = ["id", "message_id", "conversation_id", "contact_id", "campaign_id", "channel"] as const

/**
 * The exact request body sent to a receiver (pure). It is computed once at fan-out and carried in
 * the delivery task, so every attempt of a delivery sends identical bytes.
 */
export const buildWebhookBody = (event: DomainEvent): string => {
  const data = JSON.stringify(event.data)
  const bytes = Buffer.byteLength(data, "utf8")
  if (bytes <= MAX_DATA_BYTES) {
    return JSON.stringify({ id: event.id, type: event.type, created_at: event.created_at, data: event.data })
  }
  const kept: Record<string, unknown> = { _truncated: true, _original_bytes: bytes }
  for (const key of KEPT_IDS) if (key in event.data) kept[key] = event.data[key]
  return JSON.stringify({ id: event.id, type: event.type, created_at: event.created_at, truncated: true, data: kept })
}
