import { randomUUID } from "node:crypto"
import { type DeliveryTask, deliveryIdFor, encodeDeliveryTask, topicsFor } from "@orbit/domain"
import { consumeBatches, KafkaClient, type TopicMessages } from "@orbit/kafka"
import { Cause, Context, Deferred, Effect, Layer, Option, Schedule, Stream } from "effect"
import type { IHeaders, KafkaMessage } from "kafkajs"
import { DispatcherConfig } from "./DispatcherConfig.ts"
import { EndpointIndex } from "./EndpointIndex.ts"
import { Publisher } from "./Publisher.ts"
import { classifySourceRecord, MAX_SOURCE_RECORD_BYTES } from "./SourceRecord.ts"
import { buildWebhookBody } from "./WebhookBody.ts"

export const INVALID_REASON_HEADER = "orbit-invalid-reason"

/** The records one source batch turns into (pure): delivery tasks and invalid-record copies. */
export const fanOutBatch = (input: {
  readonly topic: string
  readonly partition: number
  readonly messages: ReadonlyArray<KafkaMessage>
  readonly topics: { readonly deliveries: string; readonly invalid: string }
  readonly matching: EndpointIndex["Service"]["matching"]
  readonly now: number
}): { readonly out: ReadonlyArray<TopicMessages>; readonly tasks: number; readonly invalid: number } => {
  const tasks: Array<TopicMessages["messages"][number]> = []
  const invalid: Array<TopicMessages["messages"][number]> = []
  const at = new Date(input.now).toISOString()
  for (const message of input.messages) {
    const verdict = classifySourceRecord(message.value)
    if (verdict._tag === "Invalid") {
      const headers: IHeaders = {
        ...message.headers,
        [INVALID_REASON_HEADER]: verdict.reason,
        "orbit-invalid-detail": verdict.detail,
        "orbit-source-topic": input.topic,
        "orbit-source-partition": String(input.partition),
        "orbit-source-offset": message.offset
      }
      // The broker would refuse to store an oversized record again; keep its identity, not its bytes.
      const tooLarge = (message.value?.length ?? 0) > MAX_SOURCE_RECORD_BYTES
      invalid.push({ key: message.key, value: tooLarge ? null : message.value, headers })
      continue
    }
    const event = verdict.event
    const mode = event.mode ?? "live"
    const endpoints = input.matching(event.tenant_id, mode, event.type)
    if (endpoints.length === 0) continue
    const body = buildWebhookBody(event)
    for (const endpoint of endpoints) {
      const task: DeliveryTask = {
        _tag: "DeliveryTask",
        schema_version: 1,
        event_id: randomUUID(),
        occurred_at: at,
        delivery_id: deliveryIdFor(event.id, endpoint.id),
        endpoint_id: endpoint.id,
        tenant_id: event.tenant_id,
        mode,
        source_event_id: event.id,
        source_event_type: event.type,
        body,
        attempt: 1,
        not_before: at
      }
      tasks.push({ key: endpoint.id, value: encodeDeliveryTask(task) })
    }
  }
  const out: Array<TopicMessages> = []
  if (tasks.length > 0) out.push({ topic: input.topics.deliveries, messages: tasks })
  if (invalid.length > 0) out.push({ topic: input.topics.invalid, messages: invalid })
  return { out, tasks: tasks.length, invalid: invalid.length }
}

/**
 * Consumes the source topics and produces one delivery task per (event, subscribed endpoint).
 * A batch's offset is committed only after its tasks (and invalid copies) are acknowledged.
 */
export class FanOut extends Context.Service<FanOut, {}>()("@orbit/dispatcher/FanOut") {
  static readonly layer = Layer.effect(
    FanOut,
    Effect.gen(function*() {
      const { topicPrefix } = yield* KafkaClient
      const config = yield* DispatcherConfig
      const index = yield* EndpointIndex
      const publisher = yield* Publisher
      const topics = topicsFor(topicPrefix)
      const sourceTopics = Option.getOrElse(config.sourceTopics, () => [topics.sourceEvents.name])

      const stream = consumeBatches({
        groupId: `${topicPrefix}orbit-dispatcher-fanout`,
        topics: sourceTopics,
        fromBeginning: true,
        partitionsConsumedConcurrently: 6,
        sessionTimeout: config.sessionTimeoutMs
      }).pipe(
        Stream.mapEffect((consumed) =>
          Effect.gen(function*() {
            const { batch } = consumed
            // Every endpoint event appended before this batch arrived is in the index after this.
            yield* index.sync(Date.now())
            const { out, tasks, invalid } = fanOutBatch({
              topic: batch.topic,
              partition: batch.partition,
              messages: batch.messages,
              topics: { deliveries: topics.deliveries.name, invalid: topics.invalidEvents.name },
              matching: index.matching,
              now: Date.now()
            })
            yield* publisher.publish(out).pipe(
              Effect.retry({ schedule: Schedule.spaced("500 millis"), times: 20 })
            )
            if (invalid > 0) yield* Effect.logWarning("moved invalid source records", { topic: batch.topic, partition: batch.partition, count: invalid })
            yield* consumed.commit((BigInt(batch.lastOffset()) + 1n).toString())
            yield* Effect.logDebug("fanned out", { partition: batch.partition, records: batch.messages.length, tasks })
          }).pipe(
            Effect.matchCauseEffect({
              onSuccess: () => Deferred.succeed(consumed.done, undefined),
              // kafkajs fetches the batch again after a back-off; nothing was committed.
              onFailure: (cause) =>
                Effect.logError("fan-out batch failed; it will be retried", cause).pipe(
                  Effect.andThen(Deferred.fail(consumed.done, Cause.squash(cause)))
                )
            })
          ), { concurrency: 6, unordered: true }),
        Stream.runDrain
      )
      yield* Effect.forkScoped(stream.pipe(
        Effect.tapError((e) => Effect.logWarning("fan-out consumer failed; restarting", { error: String(e) })),
        Effect.retry(Schedule.spaced("1 second"))
      ))
      yield* Effect.logInfo("fan-out started", { sourceTopics })
      return FanOut.of({})
    })
  )
}
