import { describe, expect, it } from "@effect/vitest"
import { createRequire } from "node:module"
import { groupMessagesPerPartition } from "../src/GroupMessagesPerPartition.ts"
import "../src/index.ts" // the package entry installs the patch

const require = createRequire(import.meta.url)
const ORIGINAL = require.resolve("kafkajs/src/producer/groupMessagesPerPartition.js")

// kafkajs' own implementation as the reference.
const reference = require(ORIGINAL) as typeof groupMessagesPerPartition

describe("groupMessagesPerPartition", () => {
  it("equals kafkajs' grouping: same partitions, same order, partitioner called alike", () => {
    const partitionMetadata = Array.from({ length: 6 }, (_, i) => ({ partitionId: i }))
    for (const n of [0, 1, 2, 7, 100, 1000]) {
      const messages = Array.from({ length: n }, (_, i) => ({ key: `k${(i * 7919) % 13}`, value: `v${i}` }))
      const calls = { ours: [] as Array<string>, theirs: [] as Array<string> }
      const partitioner = (log: Array<string>) => ({ message }: { message: { key: string; value: string } }) => {
        log.push(message.value)
        return Number(message.key.slice(1)) % 6
      }
      const ours = groupMessagesPerPartition({ topic: "t", partitionMetadata, messages, partitioner: partitioner(calls.ours) })
      const theirs = reference({ topic: "t", partitionMetadata, messages, partitioner: partitioner(calls.theirs) })
      expect(ours).toEqual(theirs)
      expect(Object.keys(ours)).toEqual(Object.keys(theirs))
      expect(calls.ours).toEqual(calls.theirs)
    }
    expect(groupMessagesPerPartition({ topic: "t", partitionMetadata: [], messages: [{}], partitioner: () => 0 })).toEqual({})
  })

  it("is what kafkajs' producer uses once the patch is loaded: its sends go through SendMessages.ts, which groups with it", () => {
    const installed = require(require.resolve("kafkajs/src/producer/sendMessages.js")) as object
    expect(Object.getOwnPropertySymbols(installed).map(String)).toContain("Symbol(@orbit/kafka/sendMessages)")
  })
})
