import { Config, Option } from "effect"

/** The dispatcher's own settings (Kafka, secrets and SSRF settings are read by their packages). */
export const DispatcherConfig = Config.all({
  /** Comma-separated source topics; default: the prefixed `orbit.events`. */
  sourceTopics: Config.option(Config.String("ORBIT_SOURCE_TOPICS")).pipe(
    Config.map(Option.map((s) => s.split(",").map((t) => t.trim()).filter((t) => t.length > 0)))
  ),
  /** HTTP attempts in flight per process. */
  concurrency: Config.Int("DISPATCHER_CONCURRENCY").pipe(Config.withDefault(256)),
  /** HTTP attempts in flight per endpoint per process. */
  perEndpointConcurrency: Config.Int("DISPATCHER_PER_ENDPOINT_CONCURRENCY").pipe(Config.withDefault(8)),
  /**
   * A task whose endpoint may start an attempt at once is attempted by the fan-out itself instead
   * of passing through `webhooks.deliveries` (false: every task passes through the topic).
   */
  directDelivery: Config.Boolean("DISPATCHER_DIRECT_DELIVERY").pipe(Config.withDefault(true)),
  /**
   * Records taken from Kafka and not finished, per consumer, before its fetching pauses
   * (back-pressure). It bounds the heap the records in flight take, so the process stays within
   * its heap limit (package.json `orbit.nodeArgs`) however far behind it is.
   */
  maxBuffered: Config.Int("DISPATCHER_MAX_BUFFERED").pipe(Config.withDefault(2_000)),
  /** On SIGTERM, how long in-flight attempts may finish before they are handed back uncommitted. */
  shutdownGraceMs: Config.Int("DISPATCHER_SHUTDOWN_GRACE_MS").pipe(Config.withDefault(20_000)),
  /**
   * Consumer-group session timeout: how soon the partitions of a crashed process move to another.
   * Heartbeats never wait for deliveries (`DecoupledConsumer`), so a short one is safe.
   */
  sessionTimeoutMs: Config.Int("DISPATCHER_SESSION_TIMEOUT_MS").pipe(Config.withDefault(10_000)),
  /** Source events whose `data` fails their type's schema go to the invalid topic instead of being delivered. */
  strictEventData: Config.Boolean("ORBIT_STRICT_EVENT_DATA").pipe(Config.withDefault(false))
})
export type DispatcherConfig = typeof DispatcherConfig extends Config.Config<infer A> ? A : never
