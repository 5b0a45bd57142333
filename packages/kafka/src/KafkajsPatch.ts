// Fixes to kafkajs 2.2.4, which is unmaintained: two idle timer loops, a consumer that rejoins its
// group as a stranger after a crash, a producer retry that could drop records when a leader died,
// and four hot spots of the producer path (CRC, partition
// grouping, varints, zero-filled encoder buffers), each checked against kafkajs' own code in
// test/. `Kafkajs.ts` imports this module before kafkajs, and every module of this package takes
// kafkajs from there, so the patch is installed before kafkajs loads without anyone's care.
import { createRequire } from "node:module"
import { crc32c } from "./Crc32c.ts"
import { groupMessagesPerPartition } from "./GroupMessagesPerPartition.ts"
import { type EncoderClass, makePooledEncoder } from "./PooledEncoder.ts"
import { installRejoinAsSameMember } from "./RejoinAsSameMember.ts"
import { type KafkajsParts, makeCreateSendMessages } from "./SendMessages.ts"
import { makeSizeOfVarLong, makeWriteVarLong, writeUVarInt } from "./Varint.ts"

/**
 * kafkajs 2.2.4 re-arms a 1 ms timer forever on every broker connection when nothing is
 * pending and no throttle is set (`throttledUntil - Date.now()` is negative): an idle consumer
 * keeps a core busy, and Node 24 warns "TimeoutNegativeWarning". kafkajs is unmaintained, so we
 * replace that one method: schedule a check only when requests are actually waiting
 * (`test/RequestQueueTimer.test.ts` pins it).
 */
const require = createRequire(import.meta.url)

/** The kafkajs release the patches below were written against (they replace its internals). */
export const PATCHED_KAFKAJS_VERSION = "2.2.4"
export const installedKafkajsVersion: string = (require("kafkajs/package.json") as { version: string }).version
/** False when another kafkajs is installed: the patches below are skipped (one warning says so). */
export const internalPatchesInstalled = installedKafkajsVersion === PATCHED_KAFKAJS_VERSION

if (!internalPatchesInstalled) {
  process.stderr.write(
    JSON.stringify({
      level: "WARN",
      time: new Date().toISOString(),
      logger: "@orbit/kafka",
      message: `kafkajs ${installedKafkajsVersion} is installed; @orbit/kafka's internal patches are written for ` +
        `${PATCHED_KAFKAJS_VERSION} and are skipped (CRC-32C, partition grouping, varints and the produce retry stay ` +
        `kafkajs' own; its retry may drop records when a partition leader dies)`
    }) + "\n"
  )
}

/** kafkajs' in-flight request (`network/requestQueue/socketRequest.js`), as far as the patch uses it. */
interface SocketRequest {
  readonly correlationId: number
  readonly sentAt: number
  readonly requestTimeout: number
  timeoutRequest(): void
}
const RequestQueue = require("kafkajs/src/network/requestQueue/index.js") as {
  prototype: {
    throttledUntil: number
    throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null
    pending: Array<unknown>
    inflight: Map<number, SocketRequest>
    requestTimeout: number
    enforceRequestTimeout: boolean
    /** kafkajs' name; the patch keeps a timeout there (its `destroy` clears either kind). */
    requestTimeoutIntervalId: ReturnType<typeof setTimeout> | null
    /** When the armed check fires (the patch's). */
    requestTimeoutAt: number
    requestTimeoutCheck?: boolean
    isConnected(): boolean
    destroy(): void
    checkPendingRequests(): void
    scheduleCheckPendingRequests(): void
    scheduleRequestTimeoutCheck(): void
    sendSocketRequest(socketRequest: SocketRequest): void
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

/**
 * kafkajs 2.2.4 also runs a short interval on every connected broker connection to time out its
 * requests, whether or not any is in flight; a long-poll fetch, parked at the broker until a record
 * arrives, would keep it running. Instead each connection arms one timer for the earliest deadline
 * of its requests in flight (sent at + request timeout), re-armed at each check for the next one,
 * and none while nothing is in flight (`test/RequestQueueTimer.test.ts` pins both).
 */
const deadlineOf = (request: SocketRequest) => request.sentAt + request.requestTimeout
const armRequestTimeoutCheck = (queue: typeof RequestQueue.prototype, at: number) => {
  if (queue.requestTimeoutIntervalId != null) {
    if (queue.requestTimeoutAt <= at) return
    clearTimeout(queue.requestTimeoutIntervalId)
  }
  queue.requestTimeoutAt = at
  // One past the deadline: kafkajs times a request out once strictly more than its timeout passed.
  queue.requestTimeoutIntervalId = setTimeout(() => checkRequestTimeouts(queue), Math.max(0, at - Date.now()) + 1)
}
const checkRequestTimeouts = (queue: typeof RequestQueue.prototype) => {
  queue.requestTimeoutIntervalId = null
  const now = Date.now()
  let next = Number.POSITIVE_INFINITY
  queue.inflight.forEach((request) => {
    if (now - request.sentAt > request.requestTimeout) request.timeoutRequest()
    else next = Math.min(next, deadlineOf(request))
  })
  if (!queue.isConnected()) queue.destroy()
  else if (next !== Number.POSITIVE_INFINITY) armRequestTimeoutCheck(queue, next)
}
RequestQueue.prototype.scheduleRequestTimeoutCheck = function() {
  // Called on connect: enable the check; `sendSocketRequest` arms it.
  if (this.requestTimeoutIntervalId != null) clearTimeout(this.requestTimeoutIntervalId)
  this.requestTimeoutIntervalId = null
  this.requestTimeoutCheck = this.enforceRequestTimeout
}
const originalSendSocketRequest = RequestQueue.prototype.sendSocketRequest
RequestQueue.prototype.sendSocketRequest = function(socketRequest) {
  originalSendSocketRequest.call(this, socketRequest)
  if (this.requestTimeoutCheck !== true || !this.inflight.has(socketRequest.correlationId)) return
  armRequestTimeoutCheck(this, deadlineOf(socketRequest))
}

/**
 * Replaces the exports of one kafkajs module, tagged so a second import is a no-op. kafkajs takes
 * its modules once, when it loads, so this must run before kafkajs is loaded (`Kafkajs.ts` sees to
 * it), and it throws if `user`, the kafkajs module that requires the replaced one, is already
 * loaded: kafkajs was loaded around `@orbit/kafka`, which the dependency rule forbids.
 */
const replaceModule = (module: string, user: string, tag: string, replacement: Function) => {
  const PATCHED = Symbol.for(tag)
  const path = require.resolve(module)
  require(path)
  const cached = require.cache[path]!
  if (PATCHED in cached.exports) return
  if (require.cache[require.resolve(user)] !== undefined) {
    throw new Error("kafkajs was loaded before @orbit/kafka: import kafkajs only through @orbit/kafka")
  }
  cached.exports = Object.assign(replacement, { [PATCHED]: true })
}

/** Encoders take their buffers from Node's pool, without zero-filling them (`PooledEncoder.ts`). */
if (internalPatchesInstalled) replaceModule(
  "kafkajs/src/protocol/encoder.js",
  "kafkajs/src/protocol/request.js",
  "@orbit/kafka/pooledEncoder",
  makePooledEncoder(require("kafkajs/src/protocol/encoder.js") as EncoderClass)
)

/** Record varints are written without allocating (`Varint.ts`), on the encoder kafkajs now loads. */
const Encoder = require("kafkajs/src/protocol/encoder.js") as {
  prototype: { writeUVarInt: unknown; writeVarLong: (value: unknown) => unknown }
  sizeOfVarLong: (value: unknown) => number
}
const VARINT_PATCHED = Symbol.for("@orbit/kafka/varint")
if (internalPatchesInstalled && !(VARINT_PATCHED in Encoder)) {
  const originalWriteVarLong = Encoder.prototype.writeVarLong
  const originalSizeOfVarLong = Encoder.sizeOfVarLong.bind(Encoder)
  Encoder.prototype.writeUVarInt = writeUVarInt
  Encoder.prototype.writeVarLong = makeWriteVarLong(originalWriteVarLong as never)
  Encoder.sizeOfVarLong = makeSizeOfVarLong(originalSizeOfVarLong)
  Object.assign(Encoder, { [VARINT_PATCHED]: true })
}

/** Record batches are checksummed with our CRC-32C (`Crc32c.ts`, same values). */
if (internalPatchesInstalled) replaceModule(
  "kafkajs/src/protocol/recordBatch/crc32C/index.js",
  "kafkajs/src/protocol/recordBatch/v0/index.js",
  "@orbit/kafka/crc32c",
  (buffer: Uint8Array) => crc32c(buffer)
)

/**
 * A send that resolves has written every record: a retry after a leader died sends each partition
 * still without an answer to its new leader (`SendMessages.ts`; kafkajs could drop them). Its
 * records are grouped by partition in linear time (`GroupMessagesPerPartition.ts`).
 */
if (internalPatchesInstalled) {
  const { staleMetadata } = require("kafkajs/src/protocol/error.js") as { staleMetadata: (e: unknown) => boolean }
  const { KafkaJSMetadataNotLoaded } = require("kafkajs/src/errors.js") as { KafkaJSMetadataNotLoaded: new(message: string) => Error }
  replaceModule(
    "kafkajs/src/producer/sendMessages.js",
    "kafkajs/src/producer/messageProducer.js",
    "@orbit/kafka/sendMessages",
    makeCreateSendMessages({
      groupMessagesPerPartition: groupMessagesPerPartition as KafkajsParts["groupMessagesPerPartition"],
      responseSerializer: require("kafkajs/src/producer/responseSerializer.js") as KafkajsParts["responseSerializer"],
      staleMetadata,
      KafkaJSMetadataNotLoaded
    })
  )
}

/**
 * A consumer rejoins its group with the member id it had before a crash (`RejoinAsSameMember.ts`),
 * so the coordinator does not hold the rebalance for the old member's session timeout.
 */
if (internalPatchesInstalled) {
  installRejoinAsSameMember(require("kafkajs/src/consumer/consumerGroup.js") as Parameters<typeof installRejoinAsSameMember>[0])
}
