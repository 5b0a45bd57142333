import { createRequire } from "node:module"
import { crc32c } from "./Crc32c.ts"

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

/**
 * Record batches are checksummed with our CRC-32C (`Crc32c.ts`, same values, ~6x faster). kafkajs'
 * encoder takes its crc32C module once, when it loads, so this must run before kafkajs is
 * loaded: import this module first (`KafkaClient.ts` does).
 */
const PATCHED = Symbol.for("@orbit/kafka/crc32c")
const crcModule = require.resolve("kafkajs/src/protocol/recordBatch/crc32C/index.js")
require(crcModule)
const cached = require.cache[crcModule]!
if (!(PATCHED in cached.exports)) {
  if (require.cache[require.resolve("kafkajs/src/protocol/recordBatch/v0/index.js")] !== undefined) {
    throw new Error("@orbit/kafka/KafkajsPatch was imported after kafkajs: import it first")
  }
  cached.exports = Object.assign((buffer: Uint8Array) => crc32c(buffer), { [PATCHED]: true })
}
