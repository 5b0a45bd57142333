import { Db, type Queryable, type Tx } from "@orbit/db"
import { decodeEndpointEvent, type EndpointEvent, topicsFor } from "@orbit/domain"
import { KafkaClient } from "@orbit/kafka"
import { Context, Effect, Layer } from "effect"
import type { KafkaMessage } from "kafkajs"
import { applyEndpointEvents } from "./EndpointTable.ts"
import { OFFSETS_CHANNEL, readNextOffset, writeNextOffset } from "./OffsetStore.ts"
import { runProjection } from "./ProjectionRunner.ts"

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
      const { schema } = yield* Db
      const { topicPrefix } = yield* KafkaClient
      yield* runProjection({
        name: "endpoint projection",
        // The group id names the schema: a fresh read model starts from offset 0.
        groupId: `${topicPrefix}orbit-projection.${schema}`,
        topic: topicsFor(topicPrefix).endpointEvents.name,
        apply: async (tx, batch, onPoison) => {
          await projectionLock(tx)
          const next = await applyBatch({
            tx,
            projection: PROJECTION,
            table: "endpoints",
            topic: batch.topic,
            partition: batch.partition,
            messages: batch.messages,
            onPoison
          })
          // Read-your-writes: the API waits for this notification (ProjectionWatcher).
          if (next !== undefined) await tx`SELECT pg_notify(${OFFSETS_CHANNEL}, ${`${batch.topic}|${batch.partition}|${next}`})`
        }
      })
      return EndpointProjection.of({})
    })
  )
}
