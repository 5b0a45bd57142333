/**
 * kafkajs' `groupMessagesPerPartition` (producer/groupMessagesPerPartition.js), in linear time.
 * kafkajs rebuilds a partition's array for every message (`[...current, message]`) and assigns it
 * through a fresh object each time, so a send of n records to one partition copies ~n²/2 array
 * slots, a large share of what a producer allocates in a burst. Same result: messages grouped by
 * the partition the partitioner picks, in their original order, the partitioner called once per
 * message in that order. Installed by `KafkajsPatch.ts`.
 */
export const groupMessagesPerPartition = <M>(input: {
  readonly topic: string
  readonly partitionMetadata: ReadonlyArray<unknown>
  readonly messages: ReadonlyArray<M>
  readonly partitioner: (args: { topic: string; partitionMetadata: ReadonlyArray<unknown>; message: M }) => number
}): Record<number, Array<M>> => {
  const { topic, partitionMetadata, messages, partitioner } = input
  const result: Record<number, Array<M>> = {}
  if (partitionMetadata.length === 0) return result
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message })
    ;(result[partition] ??= []).push(message)
  }
  return result
}
