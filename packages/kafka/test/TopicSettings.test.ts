/** Topic replication and partition settings: defaults from the cluster's size, errors naming the setting, the fix command. */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option } from "effect"
import { topicsFor } from "@orbit/domain"
import { partitionsOf, replicationFixCommand, resolveTopicSettings, TopicSettingsConfig } from "../src/TopicSettings.ts"

const load = (env: Record<string, string>) => TopicSettingsConfig.parse(ConfigProvider.fromEnvRecord(env))

describe("TopicSettings", () => {
  it.effect("defaults: the factor is the smaller of 3 and the brokers, min.insync.replicas one fewer (at least 1)", () =>
    Effect.gen(function*() {
      const settings = yield* load({})
      expect([1, 2, 3, 5].map((brokers) => resolveTopicSettings(settings, brokers))).toEqual([
        { replicationFactor: 1, minInsyncReplicas: 1 },
        { replicationFactor: 2, minInsyncReplicas: 1 },
        { replicationFactor: 3, minInsyncReplicas: 2 },
        { replicationFactor: 3, minInsyncReplicas: 2 }
      ])
    }))

  it.effect("explicit settings win; min.insync.replicas follows an explicit factor", () =>
    Effect.gen(function*() {
      expect(resolveTopicSettings(yield* load({ ORBIT_TOPIC_REPLICATION_FACTOR: "2" }), 5))
        .toEqual({ replicationFactor: 2, minInsyncReplicas: 1 })
      expect(resolveTopicSettings(yield* load({ ORBIT_TOPIC_REPLICATION_FACTOR: "3", ORBIT_TOPIC_MIN_INSYNC_REPLICAS: "3" }), 3))
        .toEqual({ replicationFactor: 3, minInsyncReplicas: 3 })
    }))

  it.effect("ORBIT_TOPIC_PARTITIONS sets the topics that spread work; single-partition topics keep one", () =>
    Effect.gen(function*() {
      const topics = topicsFor("p_")
      const defaults = yield* load({})
      expect(partitionsOf(topics.sourceEvents, defaults)).toBe(topics.sourceEvents.partitions)
      const twelve = yield* load({ ORBIT_TOPIC_PARTITIONS: "12" })
      expect(partitionsOf(topics.sourceEvents, twelve)).toBe(12)
      expect(partitionsOf(topics.deliveries, twelve)).toBe(12)
      expect(partitionsOf(topics.invalidEvents, twelve)).toBe(1)
    }))

  it.effect("a value below 1 or not a number is a ConfigError naming the setting", () =>
    Effect.gen(function*() {
      for (const name of ["ORBIT_TOPIC_REPLICATION_FACTOR", "ORBIT_TOPIC_MIN_INSYNC_REPLICAS", "ORBIT_TOPIC_PARTITIONS"]) {
        for (const value of ["0", "three"]) {
          const error = yield* Effect.flip(load({ [name]: value }))
          expect(error.message).toContain(name)
        }
      }
      expect(Option.isNone((yield* load({})).partitions)).toBe(true)
    }))

  it("the fix command raises each partition to the factor, keeping its replicas, then sets min.insync.replicas", () => {
    const command = replicationFixCommand(
      [{ topic: "orbit.events", partitions: [{ partition: 0, replicas: [1] }, { partition: 1, replicas: [2] }] }],
      [3, 1, 2],
      3,
      2,
      ["b1:9092", "b2:9092"]
    )
    const plan = JSON.parse(/^echo '(.*?)' > orbit-replication\.json/.exec(command)![1]!)
    expect(plan).toEqual({
      version: 1,
      partitions: [
        { topic: "orbit.events", partition: 0, replicas: [1, 2, 3] },
        { topic: "orbit.events", partition: 1, replicas: [2, 3, 1] }
      ]
    })
    expect(command).toContain("kafka-reassign-partitions.sh --bootstrap-server b1:9092,b2:9092 --reassignment-json-file orbit-replication.json --execute")
    expect(command).toContain("kafka-configs.sh --bootstrap-server b1:9092,b2:9092 --alter --entity-type topics --entity-name orbit.events --add-config min.insync.replicas=2")
  })
})
