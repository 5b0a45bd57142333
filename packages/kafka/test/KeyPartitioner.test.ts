import { describe, expect, it } from "@effect/vitest"
import { type PartitionMetadata, Partitioners } from "../src/index.ts"
import { KeyPartitioner } from "../src/KeyPartitioner.ts"

const partitions = (n: number, leaderless: ReadonlyArray<number> = []): Array<PartitionMetadata> =>
  Array.from({ length: n }, (_, i) => ({
    partitionId: i,
    leader: leaderless.includes(i) ? -1 : 0,
    replicas: [0],
    isr: [0],
    partitionErrorCode: 0,
    offlineReplicas: []
  }))

const keys = Array.from({ length: 300 }, (_, i) => `wh_${i.toString(36).padStart(8, "x")}`)

describe("KeyPartitioner", () => {
  it("puts every key where kafkajs' default (Java-compatible) partitioner does, asked again and again", () => {
    const cached = KeyPartitioner()
    const reference = Partitioners.DefaultPartitioner()
    for (const n of [12, 6, 1]) {
      for (let round = 0; round < 3; round++) {
        for (const key of keys) {
          const args = { topic: "webhooks.deliveries", partitionMetadata: partitions(n), message: { key, value: "v" } }
          expect(cached(args)).toBe(reference(args))
        }
      }
    }
  })

  it("answers per topic and follows a change of the partition count", () => {
    const cached = KeyPartitioner()
    const reference = Partitioners.DefaultPartitioner()
    const spread = (p: (a: Parameters<typeof reference>[0]) => number, topic: string, n: number) =>
      keys.map((key) => p({ topic, partitionMetadata: partitions(n), message: { key, value: "v" } }))
    expect(spread(cached, "a", 12)).toEqual(spread(reference, "a", 12))
    expect(spread(cached, "b", 3)).toEqual(spread(reference, "b", 3))
    // The same key on a topic that grew from 12 to 24 partitions moves as the default would move it.
    expect(spread(cached, "a", 24)).toEqual(spread(reference, "a", 24))
    expect(new Set(spread(cached, "a", 24)).size).toBeGreaterThan(12)
  })

  it("keeps an explicit partition, and spreads unkeyed records round-robin over partitions with a leader", () => {
    const cached = KeyPartitioner()
    expect(cached({ topic: "t", partitionMetadata: partitions(12), message: { key: "k", partition: 7, value: "v" } })).toBe(7)
    const unkeyed = Array.from({ length: 40 }, () =>
      cached({ topic: "t", partitionMetadata: partitions(4, [2]), message: { value: "v" } }))
    expect(new Set(unkeyed)).toEqual(new Set([0, 1, 3]))
  })
})
