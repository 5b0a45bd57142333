import { Context, Duration, Effect, Layer } from "effect"
import "./KafkajsPatch.ts" // before kafkajs loads: it replaces parts of kafkajs (CRC, partition grouping, varints)
import { CompressionTypes, type Message, type RecordMetadata } from "kafkajs"
import { KafkaClient, KafkaUnavailable, unavailable } from "./KafkaClient.ts"
import { KeyPartitioner } from "./KeyPartitioner.ts"

export interface TopicMessages {
  readonly topic: string
  readonly messages: ReadonlyArray<Message>
}

/**
 * An idempotent producer with acks=all: once `send` succeeds the records are durable on the
 * broker and a retried request can't write them twice. A send that can't finish within
 * `sendTimeout` fails with KafkaUnavailable so callers can answer 503 instead of hanging.
 */
export class Producer extends Context.Service<Producer, {
  send(topic: string, messages: ReadonlyArray<Message>): Effect.Effect<ReadonlyArray<RecordMetadata>, KafkaUnavailable>
  sendBatch(batch: ReadonlyArray<TopicMessages>): Effect.Effect<ReadonlyArray<RecordMetadata>, KafkaUnavailable>
}>()("@orbit/kafka/Producer") {
  static readonly layer = (options: { readonly sendTimeout?: Duration.Input } = {}) =>
    Layer.effect(
      Producer,
      Effect.gen(function*() {
        const { kafka } = yield* KafkaClient
        const producer = kafka.producer({
          idempotent: true,
          maxInFlightRequests: 1,
          allowAutoTopicCreation: false,
          createPartitioner: KeyPartitioner
        })
        let connected: Promise<void> | undefined
        // Connect on first use and again after a failure, so start-up does not need a broker.
        const ensureConnected = () => {
          connected ??= producer.connect().catch((e: unknown) => {
            connected = undefined
            throw e
          })
          return connected
        }
        producer.on(producer.events.DISCONNECT, () => {
          connected = undefined
        })
        yield* Effect.addFinalizer(() => Effect.promise(() => producer.disconnect().catch(() => undefined)))
        const timeout = options.sendTimeout ?? "5 seconds"

        const sendBatch = (batch: ReadonlyArray<TopicMessages>) =>
          Effect.tryPromise({
            try: async () => {
              await ensureConnected()
              return await producer.sendBatch({
                acks: -1,
                compression: CompressionTypes.None,
                topicMessages: batch.map((b) => ({ topic: b.topic, messages: [...b.messages] }))
              })
            },
            catch: unavailable("produce")
          }).pipe(
            Effect.timeoutOrElse({
              duration: timeout,
              orElse: () => Effect.fail(new KafkaUnavailable({ operation: "produce", message: "timed out" }))
            })
          )

        return Producer.of({
          sendBatch: Effect.fn("Producer.sendBatch")(sendBatch),
          send: Effect.fn("Producer.send")((topic: string, messages: ReadonlyArray<Message>) =>
            sendBatch([{ topic, messages }])
          )
        })
      })
    )
}
