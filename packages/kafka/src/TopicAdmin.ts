import type { TopicSpec } from "@orbit/domain"
import { Context, Effect, Layer } from "effect"
import { type GroupPosition, makeEndOffsets } from "./EndOffsets.ts"
import { KafkaClient, KafkaUnavailable, unavailable } from "./KafkaClient.ts"
import {
  partitionsOf,
  replicationFixCommand,
  resolveTopicSettings,
  TopicSettingsConfig,
  type UnderReplicatedTopic
} from "./TopicSettings.ts"

/** Existing topics with fewer replicas than the configured factor, and the command that raises them. */
export interface ReplicationShortfall {
  readonly topics: ReadonlyArray<UnderReplicatedTopic>
  readonly replicationFactor: number
  readonly command: string
}

/**
 * Creates topics idempotently with explicit partitions, retention and replication (`TopicSettings`:
 * the factor defaults to the smaller of 3 and the brokers in the cluster), and reads watermarks.
 */
export class TopicAdmin extends Context.Service<TopicAdmin, {
  ensureTopics(specs: ReadonlyArray<TopicSpec>): Effect.Effect<void, KafkaUnavailable>
  /** Those of `specs` that exist with fewer replicas than the factor (none: undefined). */
  replicationShortfall(specs: ReadonlyArray<TopicSpec>): Effect.Effect<ReplicationShortfall | undefined, KafkaUnavailable>
  /** The names of the topics that exist. */
  listTopics: Effect.Effect<ReadonlyArray<string>, KafkaUnavailable>
  /** The first offset still stored (`low`) and the next one to be written (`high`), per partition. */
  offsetRange(topic: string): Effect.Effect<ReadonlyArray<{ partition: number; low: string; high: string }>, KafkaUnavailable>
  /** Next offset to be written, per partition (the "high watermark"): one request, metadata cached. */
  endOffsets(topic: string): Effect.Effect<ReadonlyArray<{ partition: number; offset: string }>, KafkaUnavailable>
  ping: Effect.Effect<void, KafkaUnavailable>
  /** The cluster's id: a new or reset broker has a new one, and numbers its offsets from 0 again. */
  clusterId: Effect.Effect<string, KafkaUnavailable>
  /** Moves a consumer group's committed offsets on `topic` to the earliest; fails while it has members. */
  resetGroupOffsets(groupId: string, topic: string): Effect.Effect<void, KafkaUnavailable>
  /** Sets a (memberless) consumer group's committed offsets on `topic`, e.g. to the end offsets read just before. */
  setGroupOffsets(
    groupId: string,
    topic: string,
    offsets: ReadonlyArray<{ partition: number; offset: string }>
  ): Effect.Effect<void, KafkaUnavailable>
  /** Deletes a consumer group that has no members (a throwaway group, when its reader stops). */
  deleteGroup(groupId: string): Effect.Effect<void, KafkaUnavailable>
  /**
   * Per topic and partition: its end offset and the group's committed offset (the log's first
   * stored offset when the group has committed none there). For lag and backlog metrics: four
   * requests for all of `topics` (`EndOffsets.ts`).
   */
  groupPositions(
    groupId: string,
    topics: ReadonlyArray<string>
  ): Effect.Effect<ReadonlyMap<string, ReadonlyArray<GroupPosition>>, KafkaUnavailable>
}>()("@orbit/kafka/TopicAdmin") {
  static readonly layer = Layer.effect(
    TopicAdmin,
    Effect.gen(function*() {
      const { kafka, brokers } = yield* KafkaClient
      const settings = yield* TopicSettingsConfig
      const admin = kafka.admin()
      // Connect lazily (and reconnect) so a service can start while the broker is down.
      const withAdmin = <A>(operation: string, f: () => Promise<A>) =>
        Effect.tryPromise({ try: async () => { await admin.connect(); return await f() }, catch: unavailable(operation) })
      yield* Effect.addFinalizer(() => Effect.promise(() => admin.disconnect().catch(() => undefined)))
      const offsets = makeEndOffsets(kafka, brokers)
      yield* Effect.addFinalizer(() => Effect.promise(offsets.close))
      /** A read of `offsets`, which fails with KafkaUnavailable only. */
      const read = <A>(f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: (e) => e as KafkaUnavailable })

      /** The factor and min.insync.replicas for this cluster, and its broker ids. */
      const replication = Effect.gen(function*() {
        const cluster = yield* withAdmin("describeCluster", () => admin.describeCluster())
        const resolved = resolveTopicSettings(settings, cluster.brokers.length)
        if (resolved.replicationFactor > cluster.brokers.length) {
          return yield* new KafkaUnavailable({
            operation: "createTopics",
            message: `ORBIT_TOPIC_REPLICATION_FACTOR is ${resolved.replicationFactor}, but the cluster has ${cluster.brokers.length} broker(s)`
          })
        }
        return { ...resolved, brokerIds: cluster.brokers.map((b) => b.nodeId) }
      })

      const ensureTopics = Effect.fn("TopicAdmin.ensureTopics")(function*(specs: ReadonlyArray<TopicSpec>) {
        const existing = new Set(yield* withAdmin("listTopics", () => admin.listTopics()))
        const missing = specs.filter((s) => !existing.has(s.name))
        if (missing.length === 0) return
        const { replicationFactor, minInsyncReplicas } = yield* replication
        yield* withAdmin("createTopics", () =>
          admin.createTopics({
            waitForLeaders: true,
            topics: missing.map((s) => ({
              topic: s.name,
              numPartitions: partitionsOf(s, settings),
              replicationFactor,
              configEntries: [
                { name: "retention.ms", value: String(s.retentionMs) },
                { name: "min.insync.replicas", value: String(minInsyncReplicas) }
              ]
            }))
          }).catch((e: unknown) => {
            // Another service may have created it between list and create: that is fine.
            if (e instanceof Error && /already exists/i.test(e.message)) return false
            throw e
          }))
        yield* Effect.logInfo("created topics", { topics: missing.map((s) => s.name), replicationFactor, minInsyncReplicas })
      })

      const replicationShortfall = Effect.fn("TopicAdmin.replicationShortfall")(function*(specs: ReadonlyArray<TopicSpec>) {
        const { replicationFactor, minInsyncReplicas, brokerIds } = yield* replication
        const metadata = yield* withAdmin("fetchTopicMetadata", () => admin.fetchTopicMetadata({ topics: specs.map((s) => s.name) }))
        const topics: Array<UnderReplicatedTopic> = metadata.topics
          .filter((t) => t.partitions.some((p) => p.replicas.length < replicationFactor))
          .map((t) => ({
            topic: t.name,
            partitions: [...t.partitions].sort((a, b) => a.partitionId - b.partitionId)
              .map((p) => ({ partition: p.partitionId, replicas: p.replicas }))
          }))
        if (topics.length === 0) return undefined
        const command = replicationFixCommand(topics, brokerIds, replicationFactor, minInsyncReplicas, brokers)
        return { topics, replicationFactor, command }
      })

      const listTopics = withAdmin("listTopics", () => admin.listTopics())

      const offsetRange = Effect.fn("TopicAdmin.offsetRange")(function*(topic: string) {
        const offsets = yield* withAdmin("fetchTopicOffsets", () => admin.fetchTopicOffsets(topic))
        return offsets.map((o) => ({ partition: o.partition, low: o.low, high: o.high }))
      })

      const endOffsets = Effect.fn("TopicAdmin.endOffsets")(function*(topic: string) {
        return yield* read(() => offsets.endOffsets(topic))
      })

      const clusterId = withAdmin("describeCluster", () => admin.describeCluster()).pipe(Effect.map((c) => c.clusterId))
      const ping = Effect.asVoid(clusterId)

      const resetGroupOffsets = (groupId: string, topic: string) =>
        withAdmin("resetOffsets", () => admin.resetOffsets({ groupId, topic, earliest: true }))

      const setGroupOffsets = (groupId: string, topic: string, offsets: ReadonlyArray<{ partition: number; offset: string }>) =>
        withAdmin("setOffsets", () => admin.setOffsets({ groupId, topic, partitions: [...offsets] }))

      const deleteGroup = (groupId: string) => withAdmin("deleteGroups", () => admin.deleteGroups([groupId])).pipe(Effect.asVoid)

      const groupPositions = Effect.fn("TopicAdmin.groupPositions")(function*(groupId: string, topics: ReadonlyArray<string>) {
        return yield* read(() => offsets.groupPositions(groupId, topics))
      })

      return TopicAdmin.of({
        ensureTopics,
        replicationShortfall,
        listTopics,
        offsetRange,
        endOffsets,
        ping,
        clusterId,
        resetGroupOffsets,
        setGroupOffsets,
        deleteGroup,
        groupPositions
      })
    })
  )
}
