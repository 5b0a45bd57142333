import { Db, isDataError, type Queryable, type Tx, unboundedStatements } from "@orbit/db"
import { decodeEndpointEvent, type EndpointEvent, topicsFor } from "@orbit/domain"
import { KafkaClient } from "@orbit/kafka"
import { Context, Effect, Layer } from "effect"
import type { KafkaMessage } from "@orbit/kafka"
import { applyEndpointEvents, copyFailed, copyNewRows, endpointChanges, endpointWrites, selectEndpointRows } from "./EndpointRows.ts"
import { nextOffsetOf, OFFSETS_CHANNEL, selectNextOffset, writeNextOffset } from "./OffsetStore.ts"
import { runProjection } from "./ProjectionRunner.ts"

export const PROJECTION = "endpoints"

/**
 * The projection lock, exclusive: held by the rebuild's swap of the tables and by the reset of
 * the read model, so neither meets a batch (live or rebuilding) half applied.
 */
export const projectionLock = (sql: Queryable) => sql`SELECT pg_advisory_xact_lock(hashtext(${"orbit-projection:endpoints"}))`

/**
 * The same lock, shared: held by every batch, live or rebuilding. Batches of different partitions
 * touch different endpoints (events are keyed by endpoint id) and different offset rows, and a
 * rebuilding batch writes another table, so they apply side by side; each still waits for the
 * exclusive holders above.
 */
export const projectionSharedLock = (sql: Queryable) =>
  sql`SELECT pg_advisory_xact_lock_shared(hashtext(${"orbit-projection:endpoints"}))`

/**
 * New rows in a batch from which they go in by COPY rather than with the upsert: the extra round
 * trip costs less than the per-row work it saves (a rebuild's batches, a bulk of registrations).
 */
const COPY_AT_LEAST = 500

/** Awaits pending queries sent back to back on the transaction's connection: one round trip. */
const pipelined = <T extends ReadonlyArray<PromiseLike<unknown>>>(queries: T) =>
  Promise.all(queries) as Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }>

/**
 * Applies a batch of endpoint events to `table`, skipping records below the stored offset, and
 * stores the new offset in the same transaction: each event changes the table exactly once,
 * whatever Kafka redelivers after a crash. It takes the projection lock first, shared (a caller
 * may hold it already, exclusive or shared); `notify` announces the new offset to read-your-writes waiters
 * (ProjectionWatcher) at commit.
 *
 * The statements go out pipelined, in two round trips: (lock, offset, rows) and (writes, offset,
 * notify). With `careful` (after Postgres refused some event's data, SQLSTATE class 22/23, as it
 * would forever) events are applied one by one, each in a savepoint, and the refused one is
 * skipped rather than stalling the partition.
 */
export const applyBatch = async (options: {
  readonly tx: Tx
  readonly projection: string
  readonly table: string
  readonly topic: string
  readonly partition: number
  readonly messages: ReadonlyArray<KafkaMessage>
  readonly onPoison: (offset: string, error: unknown) => void
  readonly careful?: boolean
  readonly notify?: boolean
}): Promise<bigint | undefined> => {
  const { tx, projection, table, topic, partition } = options
  const decoded = options.messages.map((message) => {
    try {
      return { offset: message.offset, event: decodeEndpointEvent(message.value?.toString("utf8") ?? "") }
    } catch (error) {
      return { offset: message.offset, error }
    }
  })
  const ids = options.careful ? [] : [...new Set(decoded.flatMap((d) => (d.event ? [d.event.endpoint_id] : [])))]
  const [, offsetRows, rows] = await pipelined([
    projectionSharedLock(tx),
    selectNextOffset(tx, projection, topic, partition),
    selectEndpointRows(tx, table, ids)
  ])
  const next = nextOffsetOf(offsetRows)
  const fresh = decoded.filter((d) => BigInt(d.offset) >= next)
  if (fresh.length === 0) return undefined
  const last = BigInt(fresh[fresh.length - 1]!.offset) + 1n
  const events: Array<{ offset: string; event: EndpointEvent }> = []
  for (const d of fresh) {
    // A record we cannot read must not stop the read model; it is logged and skipped.
    if (d.event) events.push({ offset: d.offset, event: d.event })
    else options.onPoison(d.offset, d.error)
  }
  const writes = []
  let copied = false
  if (!options.careful) {
    const { deletes, changed, created } = endpointChanges(rows, events.map((e) => e.event))
    // COPY allows no other statement on the connection until it ends: it goes first, alone.
    if (created.length >= COPY_AT_LEAST) {
      await copyNewRows(tx, table, created)
      copied = true
    } else {
      changed.push(...created)
    }
    writes.push(...endpointWrites(tx, table, deletes, changed))
  } else {
    for (const { offset, event } of events) {
      try {
        await tx.savepoint((sp) => applyEndpointEvents(sp, table, [event]))
      } catch (error) {
        if (!isDataError(error)) throw error
        options.onPoison(offset, error)
      }
    }
  }
  writes.push(writeNextOffset(tx, projection, topic, partition, last))
  if (options.notify) writes.push(tx`SELECT pg_notify(${OFFSETS_CHANNEL}, ${`${topic}|${partition}|${last}`})`)
  await pipelined(writes).catch((error) => Promise.reject(copied ? copyFailed(error) : error))
  return last
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
        label: "endpoints",
        projection: PROJECTION,
        reset: async (tx) => {
          await unboundedStatements(tx)
          await projectionLock(tx)
          await tx`DELETE FROM endpoints`
        },
        // The group id names the schema: a fresh read model starts from offset 0.
        groupId: `${topicPrefix}orbit-projection.${schema}`,
        topic: topicsFor(topicPrefix).endpointEvents.name,
        // Each partition's batch in its own transaction at the same time: a registration waits
        // for its own partition's batch, not for the others' before it.
        partitionsConcurrently: topicsFor(topicPrefix).endpointEvents.partitions,
        apply: (tx, batch, onPoison, careful) =>
          applyBatch({
            tx,
            projection: PROJECTION,
            table: "endpoints",
            topic: batch.topic,
            partition: batch.partition,
            messages: batch.messages,
            onPoison,
            careful,
            // Read-your-writes: the API waits for this notification (ProjectionWatcher).
            notify: true
          })
      })
      return EndpointProjection.of({})
    })
  )
}
