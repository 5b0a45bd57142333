import { Db, query, transactCarefullyOnDataError } from "@orbit/db"
import { topicsFor } from "@orbit/domain"
import { consumeBatches, KafkaClient, TopicAdmin } from "@orbit/kafka"
import { Deferred, Effect, Fiber, Ref } from "effect"
import { applyBatch, PROJECTION, projectionLock, projectionSharedLock } from "./EndpointProjection.ts"
import { partitionWorkers, transactionRetries } from "./ProjectionRunner.ts"

const REBUILD = "endpoints_rebuild"
/**
 * Bytes fetched per partition per request while rebuilding (kafkajs' default is 1 MiB): every
 * record from offset 0 is read once, so large fetches make fewer, larger transactions. The total
 * per request has room for a batch of each of the topic's partitions (a partition limit above the
 * total would fill a fetch with the first partition alone).
 */
const REBUILD_FETCH_BYTES_PER_PARTITION = 4 * 1024 * 1024
/**
 * Fetched batches each partition holds while its transaction runs: the next fetch and its
 * decoding overlap Postgres applying the batch before.
 */
const REBUILD_QUEUED_BATCHES = 2

/**
 * Rebuilds the endpoint read model from offset 0 into a fresh table, then swaps it in.
 *
 * The API keeps reading the old table throughout. The swap runs under the projection's
 * advisory lock, so the live projection is paused for that one transaction, and only once the
 * rebuilt table has reached the live projection's offsets: no event is lost or applied twice
 * across the swap. Rebuilding twice gives identical tables (a test compares them).
 */
export const rebuildEndpoints = Effect.fn("Rebuild.endpoints")(function*() {
  const { sql } = yield* Db
  const { topicPrefix } = yield* KafkaClient
  const admin = yield* TopicAdmin
  const topic = topicsFor(topicPrefix).endpointEvents.name

  yield* query(() =>
    sql.begin(async (tx) => {
      await tx`DROP TABLE IF EXISTS endpoints_rebuild`
      await tx`CREATE TABLE endpoints_rebuild (LIKE endpoints INCLUDING ALL)`
      await tx`DELETE FROM projection_offsets WHERE projection = ${REBUILD}`
    })
  )

  const rebuilt = yield* Ref.make(new Map<number, bigint>())
  const swapped = yield* Deferred.make<void>()
  const applied = yield* Ref.make(0)

  const partitions = topicsFor(topicPrefix).endpointEvents.partitions
  // Partitions apply side by side, each batch in its own transaction: while one waits for
  // Postgres another is decoded. A partition's batches apply in order, and events are keyed by
  // endpoint, so no two transactions at once touch the same endpoint.
  const feed = yield* partitionWorkers({ queued: REBUILD_QUEUED_BATCHES, merged: 1 }, (records) =>
    query(() =>
      transactCarefullyOnDataError(sql, async (tx, careful) => {
        // Shared: batches of other partitions and the live projection's go on beside this one;
        // the swap (and a reset of the read model) wait for it, and it for them.
        await projectionSharedLock(tx)
        if (await Effect.runPromise(Deferred.isDone(swapped))) return undefined
        return await applyBatch({
          tx,
          projection: REBUILD,
          table: "endpoints_rebuild",
          topic: records.topic,
          partition: records.partition,
          messages: records.messages,
          onPoison: () => undefined,
          careful
        })
      })
    ).pipe(
      Effect.tap((next) =>
        next === undefined
          ? Effect.void
          : Ref.update(rebuilt, (m) => new Map(m).set(records.partition, next)).pipe(
            Effect.andThen(Ref.update(applied, (n) => n + records.messages.length))
          )
      ),
      Effect.tapCause((cause) => Effect.logError("rebuild: applying a batch to Postgres failed; it is tried again", cause)),
      Effect.retry(transactionRetries),
      Effect.orDie
    ))
  const consumer = yield* feed(consumeBatches({
    groupId: `${topicPrefix}orbit-rebuild-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    topics: [topic],
    fromBeginning: true,
    maxBytesPerPartition: REBUILD_FETCH_BYTES_PER_PARTITION,
    maxBytes: partitions * REBUILD_FETCH_BYTES_PER_PARTITION,
    partitionsConsumedConcurrently: partitions
  })).pipe(Effect.forkScoped)

  let ends = yield* admin.endOffsets(topic)
  // Try the swap whenever the rebuilt offsets have reached the live projection's.
  while (true) {
    const mine = yield* Ref.get(rebuilt)
    const caughtUpToEnds = ends.every(({ partition, offset }) => (mine.get(partition) ?? 0n) >= BigInt(offset))
    if (caughtUpToEnds) {
      const done = yield* query(() =>
        sql.begin(async (tx) => {
          await projectionLock(tx)
          const live = await tx<Array<{ partition: number; next_offset: string }>>`
            SELECT partition, next_offset FROM projection_offsets WHERE projection = ${PROJECTION} AND topic = ${topic}`
          const behind = live.some((l) => (mine.get(l.partition) ?? 0n) < BigInt(l.next_offset))
          if (behind) return false
          await tx`DROP TABLE endpoints`
          await tx`ALTER TABLE endpoints_rebuild RENAME TO endpoints`
          await tx`DELETE FROM projection_offsets WHERE projection = ${PROJECTION} AND topic = ${topic}`
          await tx`UPDATE projection_offsets SET projection = ${PROJECTION} WHERE projection = ${REBUILD}`
          return true
        })
      )
      if (done) break
      // The live projection moved on meanwhile: catch up to its new position and try again.
      ends = yield* admin.endOffsets(topic)
    }
    yield* Effect.sleep("50 millis")
  }
  yield* Deferred.succeed(swapped, undefined)
  yield* Fiber.interrupt(consumer)
  return { events: yield* Ref.get(applied) }
})
