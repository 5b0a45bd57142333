import { Config, Context, Effect, Layer, Schema } from "effect"
import "./KafkajsPatch.ts"
import { Kafka, logLevel, type LogEntry } from "kafkajs"

export class KafkaUnavailable extends Schema.TaggedError<KafkaUnavailable>()("KafkaUnavailable", {
  operation: Schema.String,
  message: Schema.String
}) {}

export const unavailable = (operation: string) => (cause: unknown) =>
  new KafkaUnavailable({ operation, message: cause instanceof Error ? cause.message : String(cause) })

/** kafkajs logs go out as one JSON line each, like every other log of the platform. */
const jsonLogCreator = () => ({ namespace, level, log }: LogEntry) => {
  const { message, timestamp: _t, logger: _l, ...extra } = log
  const name = level === logLevel.ERROR ? "ERROR" : level === logLevel.WARN ? "WARN" : "INFO"
  process.stderr.write(
    JSON.stringify({ level: name, time: new Date().toISOString(), logger: `kafkajs.${namespace}`, message, ...extra }) + "\n"
  )
}

const splitBrokers = (list: string) => list.split(",").map((b) => b.trim()).filter((b) => b.length > 0)

/**
 * The bootstrap servers: `KAFKA_BROKERS` (an external cluster) when set, else the local broker on
 * `KAFKA_PORT` (default 9092), the port `infra/kafka.ts` starts it on. For scripts and tests that
 * read the environment directly; the services read the same settings through `KafkaConfig`.
 */
export const brokersFromEnv = (env: NodeJS.ProcessEnv = process.env): Array<string> =>
  env.KAFKA_BROKERS ? splitBrokers(env.KAFKA_BROKERS) : [`127.0.0.1:${env.KAFKA_PORT ?? 9092}`]

export const KafkaConfig = Config.all({
  brokers: Config.String("KAFKA_BROKERS").pipe(
    Config.map(splitBrokers),
    Config.orElse(() => Config.Port("KAFKA_PORT").pipe(Config.withDefault(9092), Config.map((port) => [`127.0.0.1:${port}`])))
  ),
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
      const kafka = new Kafka({
        clientId: config.clientId,
        brokers: config.brokers,
        logLevel: logLevel.WARN,
        logCreator: jsonLogCreator,
        connectionTimeout: 3000,
        requestTimeout: 10000,
        retry: { initialRetryTime: 100, retries: 3, maxRetryTime: 2000 }
      })
      return KafkaClient.of({ kafka, brokers: config.brokers, topicPrefix: config.topicPrefix })
    })
  )
}
