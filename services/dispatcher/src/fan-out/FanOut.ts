import { randomUUID } from "node:crypto"
import { type DeliveryTask, deliveryIdFor, topicsFor } from "@orbit/domain"
import {
  DecoupledConsumer,
  type IHeaders,
  KafkaClient,
  type KafkaMessage,
  logKafkaRetry,
  type Message,
  Producer,
  type TopicMessages,
  traceContextOf,
  traceHeaders,
  untilDone
} from "@orbit/kafka"
import { promiseSpans } from "@orbit/runtime"
import { Context, Effect, Layer, Option, Schedule } from "effect"
import { DeliveryWorker } from "../delivery/DeliveryWorker.ts"
import { DispatcherConfig } from "../DispatcherConfig.ts"
import { DispatcherMetrics } from "../DispatcherMetrics.ts"
import { EndpointIndex, encodeIndexOffsets, INDEX_OFFSETS_HEADER, type IndexOffsets } from "../endpoints/EndpointIndex.ts"
import { taskJson } from "../RecordJson.ts"
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
  /** The endpoint-topic offsets the index had applied when `matching` was read (header of every task). */
  readonly indexOffsets: IndexOffsets
  /** Refuse events whose `data` fails their type's schema (ORBIT_STRICT_EVENT_DATA). */
  readonly strictData?: boolean
  /** Trace-context headers of every task (the fan-out span as their parent), when tracing. */
  readonly traceHeaders?: IHeaders | undefined
}): {
  readonly out: ReadonlyArray<TopicMessages>
  readonly tasks: number
  readonly invalid: number
  /** Endpoints given a task. */
  readonly endpoints: ReadonlyArray<string>
  /** Each task with its record (the records of `out`'s deliveries topic, in order). */
  readonly deliveries: ReadonlyArray<{ readonly task: DeliveryTask; readonly message: Message }>
  /** The invalid-record copies (the records of `out`'s invalid topic). */
  readonly invalidMessages: ReadonlyArray<Message>
} => {
  const endpointIds: Array<string> = []
  const deliveries: Array<{ readonly task: DeliveryTask; readonly message: Message }> = []
  const tasks: Array<TopicMessages["messages"][number]> = []
  const invalid: Array<TopicMessages["messages"][number]> = []
  const at = new Date(input.now).toISOString()
  const taskHeaders: IHeaders = { ...input.traceHeaders, [INDEX_OFFSETS_HEADER]: encodeIndexOffsets(input.indexOffsets) }
  for (const message of input.messages) {
    const verdict = classifySourceRecord(message.value, { strictData: input.strictData ?? false })
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
    const endpoints = input.matching(event.tenant_id, mode, event.type, event.endpoint_id)
    if (endpoints.length === 0) continue
    const body = buildWebhookBody(event)
    for (const endpoint of endpoints) {
      endpointIds.push(endpoint.id)
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
        not_before: at,
        // Last, in schema order: taskJson must produce the encoder's exact bytes.
        ...(event.endpoint_id === undefined ? {} : { addressed: true as const })
      }
      const record: Message = { key: endpoint.id, value: taskJson(task), headers: taskHeaders }
      tasks.push(record)
      deliveries.push({ task, message: record })
    }
  }
  const out: Array<TopicMessages> = []
  if (tasks.length > 0) out.push({ topic: input.topics.deliveries, messages: tasks })
  if (invalid.length > 0) out.push({ topic: input.topics.invalid, messages: invalid })
  return { out, tasks: tasks.length, invalid: invalid.length, endpoints: endpointIds, deliveries, invalidMessages: invalid }
}

/**
 * Consumes the source topics and produces one delivery task per (event, subscribed endpoint).
 * A record's offset is committed only after its tasks (or invalid copy) are acknowledged.
 *
 * The kafkajs callback only hands records out (`DecoupledConsumer`), so fetching the next batch
 * overlaps with the index sync and the produce of the previous ones, and offsets are committed
 * in the background (every 200 ms) rather than one round trip per batch. Records of one batch
 * share one index sync and, through the `Producer`, one produce request.
 */
export class FanOut extends Context.Service<FanOut, {
  /** Source records taken and not yet fanned out durably. */
  readonly outstanding: () => number
}>()("@orbit/dispatcher/FanOut") {
  static readonly layer = Layer.effect(
    FanOut,
    Effect.gen(function*() {
      const { kafka, topicPrefix } = yield* KafkaClient
      const config = yield* DispatcherConfig
      const index = yield* EndpointIndex
      const producer = yield* Producer
      const worker = yield* DeliveryWorker
      const metrics = yield* DispatcherMetrics
      const run = Effect.runPromiseWith(yield* Effect.context<never>())
      const spans = yield* promiseSpans
      const topics = topicsFor(topicPrefix)
      const sourceTopics = Option.getOrElse(config.sourceTopics, () => [topics.sourceEvents.name])
      const outTopics = { deliveries: topics.deliveries.name, invalid: topics.invalidEvents.name }
      const warn = (message: string, extra: Record<string, unknown>) => void run(Effect.logWarning(message, extra))

      const retrying = (what: string) => (error: unknown) => warn(`${what} failed; retrying`, { error: String(error).slice(0, 300) })

      /**
       * Read-your-writes: the record is matched only once the index has applied the endpoint
       * topic up to its end offsets measured after the record arrived, so every endpoint write
       * acknowledged before the event was published is reflected in its tasks. The tasks carry
       * those offsets, and the worker that takes one catches its own index up to them before it
       * decides to deliver and signs. Records of one fetched batch share one measurement.
       *
       * Fewer hops: a task whose endpoint may start an attempt now (`DeliveryWorker.deliverNow`)
       * is attempted here, and only the others are written to `webhooks.deliveries` to wait there.
       * The record is finished (its offset committable) once every task is either in the topic or
       * attempted with its outcome acknowledged; a crash before that takes the record again and
       * fans it out again (at-least-once, same delivery ids), so nothing read is ever dropped.
       */
      const handle = async (topic: string, partition: number, message: KafkaMessage, signal: AbortSignal): Promise<void> => {
        if (spans === undefined) {
          await fanOut(topic, partition, message, signal, undefined)
          return
        }
        // The upstream record's trace context, if any, is the parent of this span, and this span
        // the parent of every attempt of its deliveries (the tasks carry it in their headers).
        const upstream = traceContextOf(message.headers)
        const span = spans.start("dispatcher.fan-out", {
          parent: upstream,
          kind: "consumer",
          attributes: {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": topic,
            "messaging.destination.partition.id": String(partition),
            "messaging.kafka.offset": Number(message.offset)
          }
        })
        try {
          const fanned = await fanOut(topic, partition, message, signal, traceHeaders(span, upstream?.traceState))
          span.attribute("orbit.delivery_tasks", fanned.tasks)
          if (fanned.invalid > 0) span.attribute("orbit.invalid_records", fanned.invalid)
          spans.end(span)
        } catch (error) {
          spans.end(span, String(error))
          throw error
        }
      }

      const fanOut = async (
        topic: string,
        partition: number,
        message: KafkaMessage,
        signal: AbortSignal,
        trace: IHeaders | undefined
      ) => {
        const indexOffsets = await untilDone(() => index.syncNow(), signal, retrying("endpoint index sync"))
        const fanned = fanOutBatch({
          topic,
          partition,
          messages: [message],
          topics: outTopics,
          matching: index.matching,
          now: Date.now(),
          indexOffsets,
          strictData: config.strictEventData,
          traceHeaders: trace
        })
        if (!config.directDelivery) {
          await untilDone(() => producer.sendNow(fanned.out, "prompt"), signal, retrying("producing delivery tasks"))
        } else {
          const queued: Array<Message> = []
          const attempts: Array<Promise<void>> = []
          for (const { message, task } of fanned.deliveries) {
            const started = worker.deliverNow(task, indexOffsets, signal, trace === undefined ? undefined : traceContextOf(trace))
            if (started === undefined) queued.push(message)
            else attempts.push(started)
          }
          const attempted = Promise.all(attempts)
          attempted.catch(() => undefined) // awaited below; a failing produce must not leave it unhandled
          const out: Array<TopicMessages> = []
          if (queued.length > 0) out.push({ topic: outTopics.deliveries, messages: queued })
          if (fanned.invalidMessages.length > 0) out.push({ topic: outTopics.invalid, messages: [...fanned.invalidMessages] })
          if (out.length > 0) await untilDone(() => producer.sendNow(out, "prompt"), signal, retrying("producing delivery tasks"))
          await attempted
        }
        metrics.fannedOut(fanned.tasks, fanned.invalid)
        if (fanned.invalid > 0) warn("moved an invalid source record", { topic, partition, offset: message.offset })
        return fanned
      }

      const consumer = new DecoupledConsumer({
        kafka,
        groupId: `${topicPrefix}orbit-dispatcher-fanout`,
        topics: sourceTopics,
        handle,
        maxOutstanding: config.maxBuffered,
        sessionTimeoutMs: config.sessionTimeoutMs,
        onError: (message, error) => void run(logKafkaRetry(message, error)),
        onJoin: (info) => void run(Effect.logInfo("consumer group joined", info))
      })
      yield* Effect.acquireRelease(
        Effect.tryPromise(() => consumer.start()).pipe(
          Effect.tapError((e) => logKafkaRetry("fan-out consumer cannot start yet; retrying", e)),
          Effect.retry(Schedule.spaced("1 second"))
        ),
        () =>
          Effect.logInfo("fan-out stopping", { outstanding: consumer.outstanding }).pipe(
            Effect.andThen(Effect.promise(() => consumer.stop(config.shutdownGraceMs)))
          )
      )
      yield* Effect.logInfo("fan-out started", { sourceTopics })
      return FanOut.of({ outstanding: () => consumer.outstanding })
    })
  )
}
