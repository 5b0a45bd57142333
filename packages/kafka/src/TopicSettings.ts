import type { TopicSpec } from "@orbit/domain"
import { Config, ConfigProvider, Effect, Option } from "effect"

/**
 * How the platform's topics are created: replicas per partition, the replicas that must have a
 * record before a write with `acks=all` is acknowledged, and the partitions of the topics that
 * spread work (default: each topic's own, from `@orbit/domain`).
 */
export interface TopicSettings {
  /** `ORBIT_TOPIC_REPLICATION_FACTOR`; none: the smaller of 3 and the brokers in the cluster. */
  readonly replicationFactor: Option.Option<number>
  /** `ORBIT_TOPIC_MIN_INSYNC_REPLICAS`; none: the factor minus one, at least 1. */
  readonly minInsyncReplicas: Option.Option<number>
  /** `ORBIT_TOPIC_PARTITIONS`; none: each topic's default. Applies to topics with more than one partition by default. */
  readonly partitions: Option.Option<number>
}

const configError = (variable: string, problem: string): Config.ConfigError =>
  new Config.ConfigError(new ConfigProvider.SourceError({ message: `${variable}: ${problem}` }))

/** An optional whole number at least 1; the ConfigError names the variable. */
const optionalPositive = (variable: string): Config.Config<Option.Option<number>> =>
  Config.option(Config.Int(variable)).pipe(
    Config.mapEffect((n) =>
      Option.isSome(n) && n.value < 1
        ? Effect.fail(configError(variable, `must be at least 1, got ${n.value}`))
        : Effect.succeed(n)
    )
  )

export const TopicSettingsConfig: Config.Config<TopicSettings> = Config.all({
  replicationFactor: optionalPositive("ORBIT_TOPIC_REPLICATION_FACTOR"),
  minInsyncReplicas: optionalPositive("ORBIT_TOPIC_MIN_INSYNC_REPLICAS"),
  partitions: optionalPositive("ORBIT_TOPIC_PARTITIONS")
})

/** What a topic is created with, once the cluster's size is known. */
export interface ResolvedTopicSettings {
  readonly replicationFactor: number
  readonly minInsyncReplicas: number
}

/** The factor (default min(3, brokers)) and min.insync.replicas (default factor − 1, at least 1). */
export const resolveTopicSettings = (settings: TopicSettings, brokersInCluster: number): ResolvedTopicSettings => {
  const replicationFactor = Option.getOrElse(settings.replicationFactor, () => Math.max(1, Math.min(3, brokersInCluster)))
  const minInsyncReplicas = Option.getOrElse(settings.minInsyncReplicas, () => Math.max(1, replicationFactor - 1))
  return { replicationFactor, minInsyncReplicas }
}

/** A topic's partitions: `ORBIT_TOPIC_PARTITIONS` for a topic that spreads work (more than one by default). */
export const partitionsOf = (spec: TopicSpec, settings: TopicSettings): number =>
  spec.partitions > 1 ? Option.getOrElse(settings.partitions, () => spec.partitions) : spec.partitions

/** An existing topic with fewer replicas than the factor: each partition's replicas (broker ids). */
export interface UnderReplicatedTopic {
  readonly topic: string
  readonly partitions: ReadonlyArray<{ readonly partition: number; readonly replicas: ReadonlyArray<number> }>
}

/**
 * The one-line shell command that raises the topics' replicas to `factor`: a reassignment plan
 * (each partition keeps its replicas and gains the brokers after them, round robin) handed to
 * Kafka's `kafka-reassign-partitions.sh`, then `min.insync.replicas` set with `kafka-configs.sh`.
 */
export const replicationFixCommand = (
  topics: ReadonlyArray<UnderReplicatedTopic>,
  brokerIds: ReadonlyArray<number>,
  factor: number,
  minInsyncReplicas: number,
  bootstrap: ReadonlyArray<string>
): string => {
  const ids = [...brokerIds].sort((a, b) => a - b)
  const partitions = topics.flatMap((t) =>
    t.partitions.map((p) => {
      const replicas = [...p.replicas]
      for (let i = 0; replicas.length < Math.min(factor, ids.length) && i < ids.length; i++) {
        const candidate = ids[(p.partition + i) % ids.length]!
        if (!replicas.includes(candidate)) replicas.push(candidate)
      }
      return { topic: t.topic, partition: p.partition, replicas }
    })
  )
  const plan = JSON.stringify({ version: 1, partitions })
  const server = bootstrap.join(",")
  const configs = topics.map((t) =>
    `kafka-configs.sh --bootstrap-server ${server} --alter --entity-type topics --entity-name ${t.topic} --add-config min.insync.replicas=${minInsyncReplicas}`
  )
  return [
    `echo '${plan}' > orbit-replication.json`,
    `kafka-reassign-partitions.sh --bootstrap-server ${server} --reassignment-json-file orbit-replication.json --execute`,
    ...configs
  ].join(" && ")
}
