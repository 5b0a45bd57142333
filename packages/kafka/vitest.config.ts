import { tiers } from "../../vitest.tiers.ts"

// DecoupledConsumer.test.ts runs against the real broker (integration tier).
export default tiers({
  unit: [
    "test/Crc32c.test.ts",
    "test/KafkaBrokers.test.ts",
    "test/KafkaLogLevel.test.ts",
    "test/GroupMessagesPerPartition.test.ts",
    "test/KafkajsVersion.test.ts",
    "test/KeyPartitioner.test.ts",
    "test/DelayQueue.test.ts",
    "test/OffsetTracker.test.ts",
    "test/BacklogAge.test.ts",
    "test/RequestQueueTimer.test.ts",
    "test/Varint.test.ts",
    "test/PooledEncoder.test.ts",
    "test/TraceHeaders.test.ts",
    "test/TopicSettings.test.ts"
  ]
})
