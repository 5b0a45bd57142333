import { Config, ConfigProvider, Effect, Option } from "effect"

/**
 * Where Kafka is, from the two settings every program reads (the services, the CLI, `npm start`,
 * the tests and the benches):
 * - `KAFKA_PORT` alone (or neither, port 9092): the local broker `infra/kafka.ts` runs on
 *   127.0.0.1:`KAFKA_PORT`;
 * - `KAFKA_BROKERS` alone: an external cluster, comma-separated; nothing local is started;
 * - both: they must name the same local broker (`KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT`), which is
 *   the local one then; otherwise which one is meant is unknown, and that is a start-up error
 *   naming both.
 */
export type KafkaBrokers =
  | { readonly kind: "local"; readonly port: number; readonly brokers: ReadonlyArray<string> }
  | { readonly kind: "external"; readonly brokers: ReadonlyArray<string> }

export interface KafkaSettings {
  readonly KAFKA_BROKERS?: string | undefined
  readonly KAFKA_PORT?: string | undefined
}

export const DEFAULT_KAFKA_PORT = 9092

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"])

const splitBrokers = (list: string) => list.split(",").map((b) => b.trim()).filter((b) => b.length > 0)

const hostAndPort = (broker: string): [string, string] => {
  const i = broker.lastIndexOf(":")
  return i < 0 ? [broker, ""] : [broker.slice(0, i), broker.slice(i + 1)]
}

/** A bad or conflicting Kafka setting; the message names the variables at fault. */
export class KafkaSettingsError extends Error {
  override readonly name = "KafkaSettingsError"
}

/** The brokers the settings name (pure); throws `KafkaSettingsError` when they are bad or disagree. */
export const kafkaBrokers = (settings: KafkaSettings): KafkaBrokers => {
  const list = settings.KAFKA_BROKERS?.trim() ? splitBrokers(settings.KAFKA_BROKERS) : undefined
  const portText = settings.KAFKA_PORT?.trim() ? settings.KAFKA_PORT.trim() : undefined
  if (list !== undefined && list.length === 0) {
    throw new KafkaSettingsError(`KAFKA_BROKERS=${settings.KAFKA_BROKERS}: names no broker (host:port, comma-separated)`)
  }
  let port = DEFAULT_KAFKA_PORT
  if (portText !== undefined) {
    port = Number(portText)
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
      throw new KafkaSettingsError(`KAFKA_PORT=${portText}: not a port (1-65535)`)
    }
  }
  if (list === undefined) return { kind: "local", port, brokers: [`127.0.0.1:${port}`] }
  if (portText === undefined) return { kind: "external", brokers: list }
  const local = list.every((broker) => {
    const [host, p] = hostAndPort(broker)
    return LOOPBACK.has(host) && p === String(port)
  })
  if (!local) {
    throw new KafkaSettingsError(
      `KAFKA_BROKERS=${settings.KAFKA_BROKERS} and KAFKA_PORT=${portText} disagree: KAFKA_PORT is the port of the ` +
        `local broker (127.0.0.1:${port}), KAFKA_BROKERS names other brokers. Set only KAFKA_PORT for the local ` +
        `broker, or only KAFKA_BROKERS for an external cluster`
    )
  }
  return { kind: "local", port, brokers: list }
}

/** The bootstrap servers for scripts and tests that read the environment directly (throws as `kafkaBrokers`). */
export const brokersFromEnv = (env: KafkaSettings = process.env): Array<string> => [...kafkaBrokers(env).brokers]

/** The same settings through `Config`, for the services and the CLI: a bad or conflicting pair fails their start. */
export const KafkaBrokersConfig: Config.Config<KafkaBrokers> = Config.all({
  KAFKA_BROKERS: Config.option(Config.String("KAFKA_BROKERS")),
  KAFKA_PORT: Config.option(Config.String("KAFKA_PORT"))
}).pipe(
  Config.mapEffect((settings) =>
    Effect.try({
      try: () =>
        kafkaBrokers({
          KAFKA_BROKERS: Option.getOrUndefined(settings.KAFKA_BROKERS),
          KAFKA_PORT: Option.getOrUndefined(settings.KAFKA_PORT)
        }),
      catch: (e) => new Config.ConfigError(new ConfigProvider.SourceError({ message: (e as Error).message }))
    })
  )
)
