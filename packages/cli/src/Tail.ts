import { randomBytes } from "node:crypto"
import { type DeliveryAttempted, DeliveryAttemptedJson, topicsFor } from "@orbit/domain"
import { consumeBatches, KafkaClient, TopicAdmin } from "@orbit/kafka"
import { Deferred, Effect, Exit, Schema, Stream } from "effect"

const decodeAttempt = Schema.decodeUnknownExit(DeliveryAttemptedJson)

/** One attempt as one tab-separated line: time, endpoint, event type, outcome, status, latency. */
export const formatAttempt = (a: DeliveryAttempted): string =>
  [
    a.occurred_at,
    a.endpoint_id,
    a.source_event_type,
    a.outcome,
    // The HTTP status when there was a response, else why there was none (timeout, dns, ...).
    a.http_status === null ? (a.error_class ?? "-") : String(a.http_status),
    `${a.duration_ms}ms`
  ].join("\t")

/**
 * `tail`: prints every delivery attempt recorded from now on, until interrupted (Ctrl-C).
 *
 * It reads as a throwaway consumer group whose offsets are first set to the topic's end offsets:
 * every attempt appended after the "tailing" line is printed, none from before, and the group is
 * deleted when the tail stops.
 */
export const tail = (filter: { readonly tenant: string | undefined; readonly endpoint: string | undefined }) =>
  Effect.gen(function*() {
    const admin = yield* TopicAdmin
    const { topicPrefix } = yield* KafkaClient
    const topic = topicsFor(topicPrefix).attempts.name
    const groupId = `orbit-cli-tail-${randomBytes(8).toString("hex")}`

    const ends = yield* admin.endOffsets(topic)
    yield* admin.setGroupOffsets(groupId, topic, ends)
    yield* Effect.addFinalizer(() => admin.deleteGroup(groupId).pipe(Effect.ignore))
    process.stderr.write(`tailing ${topic} from its end as group ${groupId} (Ctrl-C to stop)\n`)

    yield* consumeBatches({ groupId, topics: [topic], fromBeginning: false }).pipe(
      Stream.runForEach(({ batch, done }) =>
        Effect.gen(function*() {
          for (const message of batch.messages) {
            const decoded = decodeAttempt(message.value?.toString("utf8") ?? "")
            if (Exit.isFailure(decoded)) {
              yield* Effect.logWarning("skipped a record that is not a delivery attempt", { topic, offset: message.offset })
              continue
            }
            const a = decoded.value
            if (filter.tenant !== undefined && a.tenant_id !== filter.tenant) continue
            if (filter.endpoint !== undefined && a.endpoint_id !== filter.endpoint) continue
            process.stdout.write(`${formatAttempt(a)}\n`)
          }
          yield* Deferred.succeed(done, undefined)
        })
      )
    )
  }).pipe(Effect.scoped)
