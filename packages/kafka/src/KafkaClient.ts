import { Config, Context, Effect, Layer, LogLevel, References, Schema } from "effect"
import { KafkaBrokersConfig } from "./KafkaBrokers.ts"
import { kafkaErrorType, protocolErrorByMessage, SETTLING_ERROR_TYPES } from "./BrokerSettling.ts"
import { Kafka, logLevel, type LogEntry } from "./Kafkajs.ts"
import { RECONNECT_MAX_DELAY_MS } from "./Reconnect.ts"

export class KafkaUnavailable extends Schema.TaggedError<KafkaUnavailable>()("KafkaUnavailable", {
  operation: Schema.String,
  message: Schema.String,
  /** The kafkajs protocol error type behind it, if any: tells a settling broker from a fault. */
  kafkaErrorType: Schema.optionalKey(Schema.String)
}) {}

export const unavailable = (operation: string) => (cause: unknown) => {
  const type = kafkaErrorType(cause)
  return new KafkaUnavailable({
    operation,
    message: cause instanceof Error ? cause.message : String(cause),
    ...(type === undefined ? {} : { kafkaErrorType: type })
  })
}

/**
 * kafkajs logs go out as one JSON line each, like every other log of the platform, at the level
 * `kafkajsLogLevel` gives them; lines below `minimum` (the service's `LOG_LEVEL`) are dropped.
 */
const jsonLogCreator = (minimum: LogLevel.LogLevel) => () => {
  // The crash of each group's consumer last logged was the broker settling: its restart is too.
  const settlingCrash = new Map<string, boolean>()
  return (entry: LogEntry) => {
    const { message, timestamp: _t, logger: _l, ...extra } = entry.log
    const level = kafkajsLogLevel(entry, settlingCrash)
    if (LogLevel.isLessThan(level, minimum)) return
    process.stderr.write(
      JSON.stringify({ level: level.toUpperCase(), time: new Date().toISOString(), logger: `kafkajs.${entry.namespace}`, message, ...extra }) +
        "\n"
    )
  }
}

/**
 * The level of one kafkajs log line. kafkajs logs as ERROR every failed request and every failed
 * connection attempt, though it retries them and hands the final failure to its caller, which
 * reports it once (a service's retry loop, `EnsureTopics`' line naming KAFKA_BROKERS). So:
 * - a response carrying a retriable protocol error (kafkajs' own error table, looked up by the
 *   error's text) is Debug: a settling broker's (leader election, coordinator loading), or a topic
 *   the metadata does not show yet while the services create it; other protocol errors keep
 *   kafkajs' level;
 * - a CreateTopics response with per-topic errors is Debug: the services create their topics at
 *   the same time, so some already exist; kafkajs' admin ignores TOPIC_ALREADY_EXISTS and throws
 *   any other topic error to `TopicAdmin`, whose caller reports it;
 * - a failed connection to a broker (`kafkajs.Connection` socket errors, `kafkajs.BrokerPool`
 *   reconnects) is Debug: the caller gets it as a KafkaJSConnectionError and reports it;
 * - a consumer crash on a settling error, and kafkajs restarting that consumer, are Debug;
 * - the idempotent producer's notice that bounded retries may duplicate a record is Debug: sends
 *   are bounded on purpose (a request answers 503 instead of hanging), and it is printed at every
 *   start.
 */
export const kafkajsLogLevel = (entry: LogEntry, settlingCrash: Map<string, boolean> = new Map()): LogLevel.LogLevel => {
  const { namespace, level, log } = entry
  const given: LogLevel.LogLevel = level === logLevel.ERROR
    ? "Error"
    : level === logLevel.WARN
    ? "Warn"
    : level === logLevel.INFO
    ? "Info"
    : "Debug"
  const message = String(log.message)
  const extra = log as { error?: unknown; groupId?: unknown }
  if (namespace === "Connection" && message.startsWith("Response ")) {
    if (message.startsWith("Response CreateTopics") && extra.error === "Topic creation errors") return "Debug"
    const code = protocolErrorByMessage(extra.error)
    return code?.retriable === true ? "Debug" : given
  }
  if (namespace === "Connection" || namespace === "BrokerPool") return "Debug"
  if (namespace === "Consumer" && typeof extra.groupId === "string") {
    const crash = /^Crash: KafkaJS\w+: (.*)$/s.exec(message)
    if (crash) {
      const code = protocolErrorByMessage(crash[1])
      const settling = code !== undefined && SETTLING_ERROR_TYPES.has(code.type)
      settlingCrash.set(extra.groupId, settling)
      return settling ? "Debug" : given
    }
    if (message.startsWith("Restarting the consumer")) return settlingCrash.get(extra.groupId) ? "Debug" : given
  }
  if (namespace === "Producer" && message === "Limiting retries for the idempotent producer may invalidate EoS guarantees") {
    return "Debug"
  }
  return given
}

export const KafkaConfig = Config.all({
  brokers: KafkaBrokersConfig.pipe(Config.map((where) => [...where.brokers])),
  clientId: Config.String("KAFKA_CLIENT_ID").pipe(Config.withDefault("orbit-webhooks")),
  topicPrefix: Config.String("ORBIT_TOPIC_PREFIX").pipe(Config.withDefault(""))
})

/** The shared kafkajs client. Connections are opened by the producer/consumer/admin services. */
export class KafkaClient extends Context.Service<KafkaClient, {
  readonly kafka: Kafka
  readonly brokers: ReadonlyArray<string>
  readonly topicPrefix: string
}>()("@orbit/kafka/KafkaClient") {
  static readonly layer = Layer.effect(
    KafkaClient,
    Effect.gen(function*() {
      const config = yield* KafkaConfig
      const minimum = yield* References.MinimumLogLevel
      const kafka = new Kafka({
        clientId: config.clientId,
        brokers: config.brokers,
        logLevel: logLevel.WARN,
        logCreator: jsonLogCreator(minimum),
        connectionTimeout: 3000,
        requestTimeout: 10000,
        retry: { initialRetryTime: 100, retries: 3, maxRetryTime: RECONNECT_MAX_DELAY_MS }
      })
      return KafkaClient.of({ kafka, brokers: config.brokers, topicPrefix: config.topicPrefix })
    })
  )
}
