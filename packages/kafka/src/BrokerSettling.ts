// Which Kafka failures are a healthy broker settling rather than a fault, for the log levels of
// kafkajs' own lines (`KafkaClient`'s log creator) and of the services' retry loops.
import { createRequire } from "node:module"
import { Effect } from "effect"
import "./Kafkajs.ts" // the patch first: this module reads kafkajs' error table

interface ProtocolErrorCode {
  readonly type: string
  readonly code: number
  readonly retriable: boolean
  readonly message: string
}

const require = createRequire(import.meta.url)
const { errorCodes } = require("kafkajs/src/protocol/error.js") as { errorCodes: ReadonlyArray<ProtocolErrorCode> }

/**
 * Protocol errors a healthy broker answers while it settles: the leader of a partition just
 * created (or moved) is still being elected, a consumer group's coordinator is still loading or
 * has moved. kafkajs retries them (refreshing metadata, finding the coordinator again) and the
 * services' loops retry whatever still fails; every fresh topic and group goes through them.
 */
export const SETTLING_ERROR_TYPES: ReadonlySet<string> = new Set([
  "LEADER_NOT_AVAILABLE",
  "NOT_LEADER_FOR_PARTITION",
  "FENCED_LEADER_EPOCH",
  "UNKNOWN_LEADER_EPOCH",
  "GROUP_LOAD_IN_PROGRESS",
  "GROUP_COORDINATOR_NOT_AVAILABLE",
  "NOT_COORDINATOR_FOR_GROUP"
])

const byType = new Map(errorCodes.map((e) => [e.type, e]))
const byMessage = new Map(errorCodes.map((e) => [e.message, e]))

/** The texts kafkajs gives the settling errors (as they appear in log lines). */
export const SETTLING_ERROR_MESSAGES: ReadonlyArray<string> = errorCodes
  .filter((e) => SETTLING_ERROR_TYPES.has(e.type))
  .map((e) => e.message)

/**
 * The kafkajs protocol error code whose text is exactly `message`. kafkajs' log lines carry an
 * error only as its message; its own table maps that text back to the typed code.
 */
export const protocolErrorByMessage = (message: unknown): ProtocolErrorCode | undefined =>
  typeof message === "string" ? byMessage.get(message) : undefined

/**
 * The kafkajs protocol error type (`NOT_LEADER_FOR_PARTITION`...) of an error or of the first of
 * its causes that has one: a `KafkaJSProtocolError`'s `type`, kept by `KafkaUnavailable` as
 * `kafkaErrorType`, possibly wrapped by kafkajs' retrier (`KafkaJSNumberOfRetriesExceeded`).
 */
export const kafkaErrorType = (error: unknown): string | undefined => {
  let current: unknown = error
  for (let depth = 0; depth < 8 && typeof current === "object" && current !== null; depth++) {
    const e = current as { type?: unknown; kafkaErrorType?: unknown; cause?: unknown }
    if (typeof e.type === "string" && byType.has(e.type)) return e.type
    if (typeof e.kafkaErrorType === "string") return e.kafkaErrorType
    current = e.cause
  }
  return undefined
}

/** True when `error` is only the broker settling (see `SETTLING_ERROR_TYPES`). */
export const isBrokerSettling = (error: unknown): boolean => {
  const type = kafkaErrorType(error)
  return type !== undefined && SETTLING_ERROR_TYPES.has(type)
}

/**
 * Logs a Kafka failure that its caller retries: at Debug while the broker only settles (the
 * retry succeeds in a moment), else as a Warning.
 */
export const logKafkaRetry = (message: string, error: unknown, extra: Record<string, unknown> = {}) =>
  (isBrokerSettling(error) ? Effect.logDebug : Effect.logWarning)(message, { ...extra, error: String(error).slice(0, 300) })
