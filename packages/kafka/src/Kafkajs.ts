// The one door to kafkajs. Importing it installs `KafkajsPatch.ts` first, then loads kafkajs, so
// the patch is in place by construction. This package's modules take kafkajs' values from here;
// tests and tools that drive a broker directly take them from `@orbit/kafka`.
import "./KafkajsPatch.ts"
import { createRequire } from "node:module"
export { CompressionTypes, Kafka, logLevel, Partitioners } from "kafkajs"

// kafkajs is CommonJS, and Node's static analysis of it finds only some of its exports by name.
const kafkajs = createRequire(import.meta.url)("kafkajs") as typeof import("kafkajs")
export const KafkaJSNonRetriableError = kafkajs.KafkaJSNonRetriableError
export const KafkaJSNumberOfRetriesExceeded = kafkajs.KafkaJSNumberOfRetriesExceeded
export type {
  Admin,
  Batch,
  Consumer as KafkajsConsumer,
  EachBatchPayload,
  ICustomPartitioner,
  IHeaders,
  KafkaMessage,
  LogEntry,
  Message,
  PartitionMetadata,
  Producer as KafkajsProducer,
  RecordMetadata
} from "kafkajs"
