// The one door to kafkajs. Importing it installs `KafkajsPatch.ts` first, then loads kafkajs, so
// the patch is in place by construction. This package's modules take kafkajs' values from here;
// tests and tools that drive a broker directly take them from `@orbit/kafka`.
import "./KafkajsPatch.ts"
import { createRequire } from "node:module"

// kafkajs is CommonJS, loaded with `require` in this module's body, after the patch above: a static
// `import ... from "kafkajs"` would be evaluated before any module body of a bundle
// (infra/bundle.ts), the patch's included. (Node's static analysis of kafkajs also finds only
// some of its exports by name.)
const kafkajs = createRequire(import.meta.url)("kafkajs") as typeof import("kafkajs")
export const Kafka = kafkajs.Kafka
export type Kafka = import("kafkajs").Kafka
export const CompressionTypes = kafkajs.CompressionTypes
export type CompressionTypes = import("kafkajs").CompressionTypes
export const logLevel = kafkajs.logLevel
export type logLevel = import("kafkajs").logLevel
export const Partitioners = kafkajs.Partitioners
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
