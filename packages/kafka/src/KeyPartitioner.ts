import { type ICustomPartitioner, Partitioners } from "./Kafkajs.ts"

const MAX_KEYS = 100_000

/**
 * kafkajs' default partitioner (Java-compatible: murmur2 of the key modulo the partition count),
 * remembering each string key's partition. Our keys are endpoint ids, a bounded set sent over
 * and over, so hashing each one again (after the default partitioner has also filtered the
 * partition list) is wasted work on every record. Same answers as the default, per topic and
 * partition count (`test/KeyPartitioner.test.ts`); unkeyed records still go round-robin.
 */
export const KeyPartitioner: ICustomPartitioner = () => {
  const base = Partitioners.DefaultPartitioner()
  const topics = new Map<string, { partitions: number; byKey: Map<string, number> }>()
  return (args) => {
    const { topic, partitionMetadata, message } = args
    if (message.partition !== null && message.partition !== undefined) return message.partition
    if (typeof message.key !== "string") return base(args)
    let t = topics.get(topic)
    if (t === undefined || t.partitions !== partitionMetadata.length || t.byKey.size >= MAX_KEYS) {
      t = { partitions: partitionMetadata.length, byKey: new Map() }
      topics.set(topic, t)
    }
    let partition = t.byKey.get(message.key)
    if (partition === undefined) {
      partition = base(args)
      t.byKey.set(message.key, partition)
    }
    return partition
  }
}
