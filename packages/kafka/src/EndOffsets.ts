import { createRequire } from "node:module"
import type { Kafka } from "./Kafkajs.ts"
import { unavailable } from "./KafkaClient.ts"

const require = createRequire(import.meta.url)

/** The part of kafkajs' (internal) Cluster used here. */
interface KafkajsCluster {
  connect(): Promise<void>
  disconnect(): Promise<void>
  addMultipleTargetTopics(topics: ReadonlyArray<string>): Promise<void>
  refreshMetadataIfNecessary(): Promise<void>
  findTopicPartitionMetadata(topic: string): ReadonlyArray<{ readonly partitionId: number }>
  fetchTopicsOffset(topics: ReadonlyArray<{
    readonly topic: string
    readonly fromBeginning: boolean
    readonly partitions: ReadonlyArray<{ readonly partition: number }>
  }>): Promise<ReadonlyArray<{ readonly topic: string; readonly partitions: ReadonlyArray<{ partition: number; offset: string }> }>>
  findGroupCoordinator(options: { readonly groupId: string }): Promise<{
    offsetFetch(request: {
      readonly groupId: string
      readonly topics: ReadonlyArray<{ readonly topic: string; readonly partitions: ReadonlyArray<{ readonly partition: number }> }>
    }): Promise<{ readonly responses: ReadonlyArray<{ readonly topic: string; readonly partitions: ReadonlyArray<{ partition: number; offset: string }> }> }>
  }>
}

/** Where a consumer group stands on one partition: `end - committed` records are not yet done. */
export interface GroupPosition {
  readonly partition: number
  readonly end: bigint
  readonly committed: bigint
}

type ClusterConstructor = new(options: Record<string, unknown>) => KafkajsCluster

/**
 * Offsets read over a kafkajs cluster whose metadata is cached: the end offsets (high watermarks)
 * of one topic in ONE round trip (a ListOffsets request), and where a consumer group stands on
 * several topics in four (FindCoordinator, OffsetFetch and two ListOffsets, each for all of them).
 *
 * kafkajs' `admin.fetchTopicOffsets` costs three sequential round trips per call: its admin client
 * never caches metadata (it is built with `metadataMaxAge` 0), so every call refreshes metadata,
 * then lists the latest offsets and then the earliest; `admin.fetchOffsets` refreshes metadata
 * again for each topic. The endpoint index measures end offsets for every fan-out batch
 * (read-your-writes), and the lag metrics read every group's positions every few seconds, idle or
 * not (docs/BENCHMARKS.md has what the extra round trips cost). kafkajs 2.2.4 is
 * pinned and unmaintained; its `Cluster` is internal, hence the `require` (as in `KafkajsPatch.ts`).
 *
 * Any failure drops the cluster (a broker restart closes its connection); the next call builds a
 * fresh one with fresh metadata.
 */
export const makeEndOffsets = (kafka: Kafka, brokers: ReadonlyArray<string>) => {
  const Cluster = require("kafkajs/src/cluster/index.js") as ClusterConstructor
  const socketFactory = require("kafkajs/src/network/socketFactory.js") as () => unknown
  let cluster: KafkajsCluster | undefined

  /** Runs `f` on the cluster with metadata for `topics`; a failure drops the cluster. */
  const withCluster = async <A>(operation: string, topics: ReadonlyArray<string>, f: (c: KafkajsCluster) => Promise<A>): Promise<A> => {
    const c = cluster ??= new Cluster({
      logger: kafka.logger(),
      socketFactory: socketFactory(),
      brokers: [...brokers],
      clientId: "orbit-end-offsets",
      connectionTimeout: 3_000,
      requestTimeout: 10_000,
      enforceRequestTimeout: true,
      // Partitions of a topic do not move on a single broker; a missing topic still refreshes at once.
      metadataMaxAge: 60_000,
      allowAutoTopicCreation: false,
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1_000 }
    })
    try {
      await c.connect()
      // Topics not seen before refresh the metadata once, together.
      await c.addMultipleTargetTopics(topics)
      await c.refreshMetadataIfNecessary()
      return await f(c)
    } catch (error) {
      if (cluster === c) cluster = undefined
      void c.disconnect().catch(() => undefined)
      throw unavailable(operation)(error)
    }
  }

  const partitionsOf = (c: KafkajsCluster, topic: string) => c.findTopicPartitionMetadata(topic).map((p) => ({ partition: p.partitionId }))

  const endOffsets = (topic: string): Promise<ReadonlyArray<{ partition: number; offset: string }>> =>
    withCluster("listOffsets", [topic], async (c) => {
      const [result] = await c.fetchTopicsOffset([{ topic, fromBeginning: false, partitions: partitionsOf(c, topic) }])
      return result?.partitions ?? []
    })

  /**
   * Per topic and partition: its end offset and the group's committed offset (the log's first
   * stored offset when the group has committed none there, or what it committed was deleted).
   */
  const groupPositions = (groupId: string, topics: ReadonlyArray<string>): Promise<ReadonlyMap<string, ReadonlyArray<GroupPosition>>> =>
    withCluster("groupPositions", topics, async (c) => {
      const partitions = topics.map((topic) => ({ topic, partitions: partitionsOf(c, topic) }))
      const coordinator = await c.findGroupCoordinator({ groupId })
      const [ends, starts, committed] = await Promise.all([
        c.fetchTopicsOffset(partitions.map((t) => ({ ...t, fromBeginning: false }))),
        c.fetchTopicsOffset(partitions.map((t) => ({ ...t, fromBeginning: true }))),
        coordinator.offsetFetch({ groupId, topics: partitions })
      ])
      const byTopic = (results: ReadonlyArray<{ readonly topic: string; readonly partitions: ReadonlyArray<{ partition: number; offset: string }> }>) =>
        new Map(results.map((r) => [r.topic, new Map(r.partitions.map((p) => [p.partition, BigInt(p.offset)]))]))
      const [end, start, done] = [byTopic(ends), byTopic(starts), byTopic(committed.responses)]
      return new Map(topics.map((topic) => [
        topic,
        partitionsOf(c, topic).map(({ partition }): GroupPosition => {
          const low = start.get(topic)?.get(partition) ?? 0n
          const at = done.get(topic)?.get(partition) ?? -1n
          return { partition, end: end.get(topic)?.get(partition) ?? 0n, committed: at < low ? low : at }
        })
      ]))
    })

  const close = async () => {
    const c = cluster
    cluster = undefined
    await c?.disconnect().catch(() => undefined)
  }

  return { endOffsets, groupPositions, close }
}

export interface PartitionOffset {
  readonly partition: number
  readonly offset: string
}

/**
 * Records not yet applied (pure): per partition, the end offset minus `applied` (the next offset
 * to apply; 0 when absent), summed over the partitions.
 */
export const lagOf = (ends: ReadonlyArray<PartitionOffset>, applied: ReadonlyMap<number, bigint>): bigint => {
  let lag = 0n
  for (const { partition, offset } of ends) lag += BigInt(offset) - (applied.get(partition) ?? 0n)
  return lag
}
