import { Cause, Deferred, Effect, Queue, Schedule, Scope, Stream } from "effect"
import type { Batch, KafkajsConsumer as KafkaConsumer } from "./Kafkajs.ts"
import { logKafkaRetry } from "./BrokerSettling.ts"
import { KafkaClient } from "./KafkaClient.ts"
import { RECONNECT_MAX_DELAY_MS } from "./Reconnect.ts"
import { rejoinAs } from "./RejoinAsSameMember.ts"

/**
 * One fetched batch of one partition. The kafkajs callback waits until `done` is completed,
 * so the next batch of that partition is only fetched after this one is handled.
 */
export interface ConsumedBatch {
  readonly batch: Batch
  /** Keep the group membership alive during long work (between records). */
  readonly heartbeat: Effect.Effect<void>
  /** Commit `offset` (the next offset to read) for this batch's partition. */
  commit(offset: string): Effect.Effect<void, unknown>
  readonly done: Deferred.Deferred<void, unknown>
}

export interface ConsumeOptions {
  readonly groupId: string
  readonly topics: ReadonlyArray<string>
  readonly fromBeginning?: boolean
  readonly sessionTimeout?: number
  readonly partitionsConsumedConcurrently?: number
  readonly maxBytesPerPartition?: number
  /** Bytes one fetch brings at most, across partitions (kafkajs' default: 10 MiB). */
  readonly maxBytes?: number
  /** How long the broker holds a fetch open when nothing new is there (default `FETCH_MAX_WAIT_MS`). */
  readonly maxWaitTimeInMs?: number
}

/**
 * How long a fetch may wait at the broker for a record: how often an idle consumer wakes, and the
 * longest a paused partition's resume or a graceful stop waits for the fetch in flight. Waits of
 * several seconds raised the publish-to-receipt p99 under steady load in bench:dispatch although
 * a fetch returns when a record arrives (docs/BENCHMARKS.md, bench:idle), so it is one second.
 */
export const FETCH_MAX_WAIT_MS = 1_000

/**
 * One kafkajs consumer as a Stream of batches; the stream fails when kafkajs crashes. `member`
 * carries the group member id from one consumer to the one that replaces it after a crash, which
 * rejoins as that member (`RejoinAsSameMember.ts`) instead of waiting out its session.
 */
const consumeOnce = (
  options: ConsumeOptions,
  member: { id?: string }
): Stream.Stream<ConsumedBatch, unknown, KafkaClient> =>
  Stream.callback<ConsumedBatch, unknown, KafkaClient | Scope.Scope>((queue) =>
    Effect.gen(function*() {
      const { kafka } = yield* KafkaClient
      const consumer: KafkaConsumer = kafka.consumer({
        groupId: options.groupId,
        sessionTimeout: options.sessionTimeout ?? 30000,
        heartbeatInterval: 3000,
        // A long poll: the broker answers when a record arrives, and an idle consumer (and the
        // broker) wakes once per wait instead of ten times a second.
        maxWaitTimeInMs: options.maxWaitTimeInMs ?? FETCH_MAX_WAIT_MS,
        allowAutoTopicCreation: false,
        ...(options.maxBytesPerPartition ? { maxBytesPerPartition: options.maxBytesPerPartition } : {}),
        ...(options.maxBytes ? { maxBytes: options.maxBytes } : {}),
        retry: {
          retries: 5,
          initialRetryTime: 300,
          maxRetryTime: RECONNECT_MAX_DELAY_MS,
          // kafkajs' own restart after a crash can leave the consumer silently stuck (seen after
          // a broker restart). Instead the stream fails and its owner builds a fresh consumer.
          restartOnFailure: async () => false
        }
      })
      if (member.id !== undefined) rejoinAs(options.groupId, member.id)
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        member.id = payload.memberId
      })
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        Queue.failCauseUnsafe(queue, Cause.fail(payload.error))
      })
      // Batches handed out but not yet done; failed on shutdown so kafkajs can leave the group.
      const pending = new Set<Deferred.Deferred<void, unknown>>()
      yield* Effect.acquireRelease(
        Effect.tryPromise(async () => {
          await consumer.connect()
          await consumer.subscribe({ topics: [...options.topics], fromBeginning: options.fromBeginning ?? true })
          await consumer.run({
            autoCommit: false,
            eachBatchAutoResolve: false,
            partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 1,
            eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
              if (!isRunning() || isStale() || batch.messages.length === 0) return
              const done = Deferred.makeUnsafe<void, unknown>()
              Queue.offerUnsafe(queue, {
                batch,
                heartbeat: Effect.promise(() => heartbeat().catch(() => undefined)),
                commit: (offset) =>
                  Effect.tryPromise(() =>
                    consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset }])
                  ),
                done
              })
              pending.add(done)
              try {
                await Effect.runPromise(Deferred.await(done))
                // Advance the fetch position: with auto-resolve off, kafkajs would otherwise fetch
                // this same batch again (committing does not move it). A failed batch is re-fetched.
                resolveOffset(batch.lastOffset())
              } finally {
                pending.delete(done)
              }
            }
          })
        }),
        () =>
          Effect.forEach([...pending], (d) => Deferred.fail(d, new Error("consumer stopped")), { discard: true }).pipe(
            Effect.andThen(Effect.promise(() => consumer.disconnect().catch(() => undefined)).pipe(Effect.timeoutOption("10 seconds")))
          )
      )
    }), { bufferSize: 64 })

/**
 * A consumer group member as a Stream of batches. Offsets are never committed automatically: the
 * stream's consumer decides when a batch's effects are durable and commits then. If kafkajs
 * crashes (broker restart, coordinator still loading...), the consumer is closed and a fresh one
 * joins the group a second later, resuming from the committed offsets: the stream does not fail.
 * Closing the scope stops the consumer (leaving the group cleanly).
 */
export const consumeBatches = (options: ConsumeOptions): Stream.Stream<ConsumedBatch, never, KafkaClient> => {
  const member: { id?: string } = {}
  return consumeOnce(options, member).pipe(
    Stream.tapError((error) => logKafkaRetry("kafka consumer crashed; starting a new one", error, { group: options.groupId })),
    Stream.retry(Schedule.spaced(RECONNECT_MAX_DELAY_MS))
  ) as Stream.Stream<ConsumedBatch, never, KafkaClient>
}
