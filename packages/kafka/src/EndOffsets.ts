import { createRequire } from "node:module"
import type { Kafka } from "./Kafkajs.ts"
import { unavailable } from "./KafkaClient.ts"

const require = createRequire(import.meta.url)

/** The part of kafkajs' (internal) Cluster used here. */
interface KafkajsCluster {
  connect(): Promise<void>
  disconnect(): Promise<void>
  addTargetTopic(topic: string): Promise<void>
  refreshMetadataIfNecessary(): Promise<void>
  findTopicPartitionMetadata(topic: string): ReadonlyArray<{ readonly partitionId: number }>
  fetchTopicsOffset(topics: ReadonlyArray<{
    readonly topic: string
    readonly fromBeginning: boolean
    readonly partitions: ReadonlyArray<{ readonly partition: number }>
  }>): Promise<ReadonlyArray<{ readonly topic: string; readonly partitions: ReadonlyArray<{ partition: number; offset: string }> }>>
}

type ClusterConstructor = new(options: Record<string, unknown>) => KafkajsCluster

/**
 * The end offsets (high watermarks) of one topic in ONE round trip: a ListOffsets(latest) request
 * over a kafkajs cluster whose metadata is cached.
 *
 * kafkajs' `admin.fetchTopicOffsets` costs three sequential round trips per call: its admin client
 * never caches metadata (it is built with `metadataMaxAge` 0), so every call refreshes metadata,
 * then lists the latest offsets and then the earliest. The endpoint index measures end offsets
 * for every fan-out batch (read-your-writes), so that was most of the fan-out latency and a third
 * of the broker's requests. kafkajs 2.2.4 is pinned and unmaintained; its `Cluster` is internal,
 * hence the `require` (as in `KafkajsPatch.ts`).
 *
 * Any failure drops the cluster (a broker restart closes its connection); the next call builds a
 * fresh one with fresh metadata.
 */
export const makeEndOffsets = (kafka: Kafka, brokers: ReadonlyArray<string>) => {
  const Cluster = require("kafkajs/src/cluster/index.js") as ClusterConstructor
  const socketFactory = require("kafkajs/src/network/socketFactory.js") as () => unknown
  let cluster: KafkajsCluster | undefined

  const endOffsets = async (topic: string): Promise<ReadonlyArray<{ partition: number; offset: string }>> => {
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
      await c.addTargetTopic(topic)
      await c.refreshMetadataIfNecessary()
      const partitions = c.findTopicPartitionMetadata(topic).map((p) => ({ partition: p.partitionId }))
      const [result] = await c.fetchTopicsOffset([{ topic, fromBeginning: false, partitions }])
      return result?.partitions ?? []
    } catch (error) {
      if (cluster === c) cluster = undefined
      void c.disconnect().catch(() => undefined)
      throw unavailable("listOffsets")(error)
    }
  }

  const close = async () => {
    const c = cluster
    cluster = undefined
    await c?.disconnect().catch(() => undefined)
  }

  return { endOffsets, close }
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
