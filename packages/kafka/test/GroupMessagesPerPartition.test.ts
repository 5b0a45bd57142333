import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { groupMessagesPerPartition } from "../src/GroupMessagesPerPartition.ts"
import "../src/index.ts" // the package entry installs the patch

const require = createRequire(import.meta.url)
const ORIGINAL = require.resolve("kafkajs/src/producer/groupMessagesPerPartition.js")

// kafkajs' own implementation as the reference, evaluated from its file (the module cache now
// holds the replacement).
const reference = (() => {
  const module = { exports: {} as unknown }
  new Function("module", "exports", "require", readFileSync(ORIGINAL, "utf8"))(module, module.exports, require)
  return module.exports as typeof groupMessagesPerPartition
})()

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

  it("is what kafkajs' producer uses once the patch is loaded", () => {
    const installed = require(ORIGINAL) as object
    expect(Object.getOwnPropertySymbols(installed).map(String)).toContain("Symbol(@orbit/kafka/groupMessagesPerPartition)")
  })
})
