// Fixes to kafkajs 2.2.4, which is unmaintained: an idle timer loop, and three hot spots of the
// producer path (CRC, partition grouping, varints), each checked against kafkajs' own code in
// test/. Import this module before kafkajs loads.
import { createRequire } from "node:module"
import { crc32c } from "./Crc32c.ts"
import { groupMessagesPerPartition } from "./GroupMessagesPerPartition.ts"
import { makeSizeOfVarLong, makeWriteVarLong, writeUVarInt } from "./Varint.ts"

/**
 * kafkajs 2.2.4 re-arms a 1 ms timer forever on every broker connection when nothing is
 * pending and no throttle is set (`throttledUntil - Date.now()` is negative): an idle consumer
 * burns ~20 % of a core, and Node 24 warns "TimeoutNegativeWarning". kafkajs is unmaintained,
 * so we replace that one method: schedule a check only when requests are actually waiting.
 */
const require = createRequire(import.meta.url)
const RequestQueue = require("kafkajs/src/network/requestQueue/index.js") as {
  prototype: {
    throttledUntil: number
    throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null
    pending: Array<unknown>
    checkPendingRequests(): void
    scheduleCheckPendingRequests(): void
  }
}

const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10

RequestQueue.prototype.scheduleCheckPendingRequests = function() {
  if (this.throttleCheckTimeoutId || this.pending.length === 0) return
  const throttledFor = this.throttledUntil - Date.now()
  this.throttleCheckTimeoutId = setTimeout(() => {
    this.throttleCheckTimeoutId = null
    this.checkPendingRequests()
  }, throttledFor > 0 ? throttledFor : CHECK_PENDING_REQUESTS_INTERVAL_MS)
}

/** Record varints are written without allocating (`Varint.ts`). */
const Encoder = require("kafkajs/src/protocol/encoder.js") as {
  prototype: { writeUVarInt: unknown; writeVarLong: (value: unknown) => unknown }
  sizeOfVarLong: (value: unknown) => number
}
const VARINT_PATCHED = Symbol.for("@orbit/kafka/varint")
if (!(VARINT_PATCHED in Encoder)) {
  const originalWriteVarLong = Encoder.prototype.writeVarLong
  const originalSizeOfVarLong = Encoder.sizeOfVarLong.bind(Encoder)
  Encoder.prototype.writeUVarInt = writeUVarInt
  Encoder.prototype.writeVarLong = makeWriteVarLong(originalWriteVarLong as never)
  Encoder.sizeOfVarLong = makeSizeOfVarLong(originalSizeOfVarLong)
  Object.assign(Encoder, { [VARINT_PATCHED]: true })
}

/**
 * Replaces the exports of one kafkajs module, tagged so a second import is a no-op. kafkajs takes
 * its modules once, when it loads, so this must run before kafkajs is loaded (every module that
 * imports kafkajs imports this one first; `KafkaClient.ts` does), and it throws if `user`, the
 * kafkajs module that requires the replaced one, is already loaded.
 */
const replaceModule = (module: string, user: string, tag: string, replacement: (...args: Array<never>) => unknown) => {
  const PATCHED = Symbol.for(tag)
  const path = require.resolve(module)
  require(path)
  const cached = require.cache[path]!
  if (PATCHED in cached.exports) return
  if (require.cache[require.resolve(user)] !== undefined) {
    throw new Error("@orbit/kafka/KafkajsPatch was imported after kafkajs: import it first")
  }
  cached.exports = Object.assign(replacement, { [PATCHED]: true })
}

/** Record batches are checksummed with our CRC-32C (`Crc32c.ts`, same values, ~6x faster). */
replaceModule(
  "kafkajs/src/protocol/recordBatch/crc32C/index.js",
  "kafkajs/src/protocol/recordBatch/v0/index.js",
  "@orbit/kafka/crc32c",
  (buffer: Uint8Array) => crc32c(buffer)
)

/** A producer's records are grouped by partition in linear time (`GroupMessagesPerPartition.ts`). */
replaceModule(
  "kafkajs/src/producer/groupMessagesPerPartition.js",
  "kafkajs/src/producer/sendMessages.js",
  "@orbit/kafka/groupMessagesPerPartition",
  (input: Parameters<typeof groupMessagesPerPartition>[0]) => groupMessagesPerPartition(input)
)
