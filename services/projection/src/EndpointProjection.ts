import { Db, query, type Queryable, type Tx } from "@orbit/db"
import { decodeEndpointEvent, type EndpointEvent, topicsFor } from "@orbit/domain"
import { consumeBatches, KafkaClient } from "@orbit/kafka"
import { Cause, Context, Deferred, Effect, Layer, Schedule, Stream } from "effect"
import type { KafkaMessage } from "kafkajs"
import { applyEndpointEvents } from "./EndpointTable.ts"
import { OFFSETS_CHANNEL, readNextOffset, writeNextOffset } from "./OffsetStore.ts"

export const PROJECTION = "endpoints"

const isDataError = (error: unknown) =>
  typeof error === "object" && error !== null && "code" in error && /^2[23]/.test(String(error.code))
/** Held by every transaction that writes the endpoints table, and by the rebuild's swap. */
export const projectionLock = (sql: Queryable) => sql`SELECT pg_advisory_xact_lock(hashtext(${"orbit-projection:endpoints"}))`

/**
 * Applies a batch of endpoint events to `table`, skipping records below the stored offset, and
 * stores the new offset in the same transaction: each event changes the table exactly once,
 * whatever Kafka redelivers after a crash.
 */
export const applyBatch = async (options: {
  readonly tx: Tx
  readonly projection: string
  readonly table: string
  readonly topic: string
  readonly partition: number
  readonly messages: ReadonlyArray<KafkaMessage>
  readonly onPoison: (offset: string, error: unknown) => void
}): Promise<bigint | undefined> => {
  const { tx, projection, table, topic, partition } = options
  const next = await readNextOffset(tx, projection, topic, partition)
  let last: bigint | undefined
  const events: Array<{ offset: string; event: EndpointEvent }> = []
  for (const message of options.messages) {
    const offset = BigInt(message.offset)
    if (offset < next) continue
    last = offset
    try {
      events.push({ offset: message.offset, event: decodeEndpointEvent(message.value?.toString("utf8") ?? "") })
    } catch (error) {
      // A record we cannot read must not stop the read model; it is logged and skipped.
      options.onPoison(message.offset, error)
    }
  }
  try {
    await tx.savepoint((sp) => applyEndpointEvents(sp, table, events.map((e) => e.event)))
  } catch (error) {
    if (!isDataError(error)) throw error
    // Postgres refuses some event's data (SQLSTATE class 22/23), and would forever: apply one
    // by one and skip just that event, rather than stall the partition. Anything else
    // (connection lost...) fails the batch, which is retried.
    for (const { offset, event } of events) {
      try {
        await tx.savepoint((sp) => applyEndpointEvents(sp, table, [event]))
      } catch (error) {
        if (!isDataError(error)) throw error
        options.onPoison(offset, error)
      }
    }
  }
  if (last === undefined) return undefined
  await writeNextOffset(tx, projection, topic, partition, last + 1n)
  return last + 1n
}

/** The live projection: a consumer-group member that keeps the `endpoints` table current. */
export class EndpointProjection extends Context.Service<EndpointProjection, {}>()("@orbit/projection/EndpointProjection") {
  static readonly layer = Layer.effect(
    EndpointProjection,
    Effect.gen(function*() {
      const { sql, schema } = yield* Db
      const { topicPrefix } = yield* KafkaClient
      const topic = topicsFor(topicPrefix).endpointEvents.name

      const handle = consumeBatches({
        // The group id names the schema: a fresh read model starts from offset 0.
        groupId: `${topicPrefix}orbit-projection.${schema}`,
        topics: [topic],
        fromBeginning: true,
        // Batches are short database transactions, so a crashed member can be declared dead
        // quickly and its partitions handed to the restarted process.
        sessionTimeout: 10_000
      }).pipe(
        Stream.runForEach((consumed) =>
          Effect.gen(function*() {
            const { batch } = consumed
            const poison: Array<{ offset: string; error: string }> = []
            const next = yield* query(() =>
              sql.begin(async (tx) => {
                await projectionLock(tx)
                const next = await applyBatch({
                  tx,
                  projection: PROJECTION,
                  table: "endpoints",
                  topic: batch.topic,
                  partition: batch.partition,
                  messages: batch.messages,
                  onPoison: (offset, error) => poison.push({ offset, error: String(error) })
                })
                if (next !== undefined) {
                  await tx`SELECT pg_notify(${OFFSETS_CHANNEL}, ${`${batch.topic}|${batch.partition}|${next}`})`
                }
                return next
              })
            )
            for (const p of poison) {
              yield* Effect.logWarning("skipped an unreadable endpoint event", { topic, partition: batch.partition, ...p })
            }
            // Kafka's committed offset is only a hint for where to fetch; Postgres holds the truth.
            yield* consumed.commit((BigInt(batch.lastOffset()) + 1n).toString()).pipe(Effect.ignore)
            yield* Effect.logDebug("applied endpoint events", { partition: batch.partition, next: String(next) })
          }).pipe(
            Effect.matchCauseEffect({
              onSuccess: () => Deferred.succeed(consumed.done, undefined),
              // Failing the batch makes kafkajs fetch it again after a back-off (e.g. Postgres down).
              onFailure: (cause) =>
                Effect.logError("projection batch failed; it will be retried", cause).pipe(
                  Effect.andThen(Deferred.fail(consumed.done, Cause.squash(cause)))
                )
            })
          )
        )
      )
      yield* Effect.forkScoped(handle.pipe(
        Effect.tapCause((cause) => Effect.logWarning("endpoint consumer stopped; starting a new one", { cause: String(Cause.squash(cause)) })),
        Effect.retry(Schedule.spaced("1 second"))
      ))
      yield* Effect.logInfo("endpoint projection started", { topic, schema })
      return EndpointProjection.of({})
    })
  )
}
