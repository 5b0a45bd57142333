import { tiers } from "../../vitest.tiers.ts"

// Integration tests (none yet) would run against the real broker.
export default tiers({
  unit: ["test/Crc32c.test.ts", "test/KafkaLogLevel.test.ts", "test/GroupMessagesPerPartition.test.ts", "test/KeyPartitioner.test.ts", "test/Varint.test.ts"]
})
