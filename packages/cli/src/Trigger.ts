import { type DomainEvent, DomainEvent as DomainEventSchema, encodeDomainEvent, EVENT_TYPE_EXAMPLES, isEventType, type Mode, newEventId, topicsFor } from "@orbit/domain"
import { KafkaClient, Producer } from "@orbit/kafka"
import { Effect, Exit, Schema } from "effect"
import { UsageError } from "./UsageError.ts"

/**
 * `trigger`'s input, checked before anything is published: the type must be in the catalog and
 * `--data`, when given, a JSON object (an event's `data` is one). Refusals are usage errors (exit 2).
 */
export const buildEvent = (options: {
  readonly type: string
  readonly tenant: string
  readonly mode: Mode
  readonly data: string | undefined
}): Effect.Effect<DomainEvent, UsageError> =>
  Effect.gen(function*() {
    const { type } = options
    if (!isEventType(type)) {
      return yield* new UsageError({ message: `unknown event type: ${JSON.stringify(type)} (trigger --help lists the catalog)` })
    }
    let data: Record<string, unknown> = { ...EVENT_TYPE_EXAMPLES[type] }
    if (options.data !== undefined) {
      let parsed: unknown
      try {
        parsed = JSON.parse(options.data)
      } catch (e) {
        return yield* new UsageError({ message: `invalid --data: not JSON (${e instanceof Error ? e.message : String(e)})` })
      }
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
        return yield* new UsageError({ message: "invalid --data: must be a JSON object" })
      }
      data = parsed as Record<string, unknown>
    }
    const event = {
      id: newEventId(),
      type,
      tenant_id: options.tenant,
      mode: options.mode,
      created_at: new Date().toISOString(),
      data
    }
    // The same schema the dispatcher reads the topic with: what is published is well-formed.
    const checked = Schema.decodeUnknownExit(DomainEventSchema)(event)
    if (Exit.isFailure(checked)) return yield* new UsageError({ message: `invalid event: ${String(checked.cause)}` })
    return checked.value
  })

/** Publishes the event on the source topic, keyed by tenant as every upstream producer does (API.md §8). */
export const publishEvent = Effect.fn("Trigger.publish")(function*(event: DomainEvent) {
  const producer = yield* Producer
  const { topicPrefix } = yield* KafkaClient
  yield* producer.send(topicsFor(topicPrefix).sourceEvents.name, [{ key: event.tenant_id, value: encodeDomainEvent(event) }])
  return event.id
})
