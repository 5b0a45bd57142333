import { KafkaUnavailable, Producer, type TopicMessages } from "@orbit/kafka"
import { Context, Effect, Layer } from "effect"

/** At most this many callers' records go into one produce request. */
const MAX_CALLERS_PER_REQUEST = 500

interface Waiting {
  readonly batch: ReadonlyArray<TopicMessages>
  readonly resolve: () => void
  readonly reject: (error: KafkaUnavailable) => void
}

/**
 * Group commit over the idempotent producer: callers that publish while a produce request is in
 * flight are merged into the next request. The producer allows one request in flight (ordering
 * with idempotence), so without this, throughput would be one round trip per delivery.
 */
export class Publisher extends Context.Service<Publisher, {
  /** Resolves once every record is acknowledged by all in-sync replicas. */
  publish(batch: ReadonlyArray<TopicMessages>): Effect.Effect<void, KafkaUnavailable>
}>()("@orbit/dispatcher/Publisher") {
  static readonly layer = Layer.effect(
    Publisher,
    Effect.gen(function*() {
      const producer = yield* Producer
      const context = yield* Effect.context<never>()
      const run = Effect.runPromiseWith(context)
      const queue: Array<Waiting> = []
      let flushing = false

      const flush = async () => {
        flushing = true
        while (queue.length > 0) {
          const taken = queue.splice(0, MAX_CALLERS_PER_REQUEST)
          const byTopic = new Map<string, Array<TopicMessages["messages"][number]>>()
          for (const w of taken) {
            for (const tm of w.batch) {
              const list = byTopic.get(tm.topic) ?? []
              list.push(...tm.messages)
              byTopic.set(tm.topic, list)
            }
          }
          const merged = [...byTopic].map(([topic, messages]) => ({ topic, messages }))
          try {
            await run(producer.sendBatch(merged))
            for (const w of taken) w.resolve()
          } catch (error) {
            const failure = error instanceof KafkaUnavailable
              ? error
              : new KafkaUnavailable({ operation: "produce", message: String(error) })
            for (const w of taken) w.reject(failure)
          }
        }
        flushing = false
      }

      const publish = (batch: ReadonlyArray<TopicMessages>) =>
        batch.every((b) => b.messages.length === 0)
          ? Effect.void
          : Effect.callback<void, KafkaUnavailable>((resume) => {
            queue.push({
              batch,
              resolve: () => resume(Effect.void),
              reject: (e) => resume(Effect.fail(e))
            })
            if (!flushing) void flush()
          })

      return Publisher.of({ publish: Effect.fn("Publisher.publish")(publish) })
    })
  )
}
