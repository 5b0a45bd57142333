import { topicsFor } from "@orbit/domain"
import { Effect, Layer, Schedule } from "effect"
import { isBrokerSettling } from "./BrokerSettling.ts"
import { KafkaClient, type KafkaUnavailable } from "./KafkaClient.ts"
import { TopicAdmin } from "./TopicAdmin.ts"

/**
 * Creates every platform topic (idempotently), retrying every second until the broker answers.
 * A broker that is only settling is logged at Debug. Any other failure is one ERROR line naming
 * the brokers and the settings that choose them; the retries after it are Debug, and an INFO
 * line says when the broker is reached after all.
 */
const ensureAllTopics = Effect.gen(function*() {
  const { brokers, topicPrefix } = yield* KafkaClient
  const admin = yield* TopicAdmin
  let reported = false
  const report = (e: KafkaUnavailable) => {
    if (reported || isBrokerSettling(e)) return Effect.logDebug("cannot create topics yet; retrying", { error: e.message })
    reported = true
    return Effect.logError(
      `cannot reach Kafka at ${brokers.join(",")} to create the topics (${e.message}). ` +
        "Check KAFKA_BROKERS (or KAFKA_PORT for the local broker, which `npm run infra:start` starts); retrying every second"
    )
  }
  const specs = Object.values(topicsFor(topicPrefix))
  yield* admin.ensureTopics(specs).pipe(
    Effect.tapError(report),
    Effect.retry(Schedule.spaced("1 second"))
  )
  if (reported) yield* Effect.logInfo("reached Kafka; topics ready", { brokers })
  // Topics created before the cluster grew (or with a smaller factor) lose data with a broker.
  const shortfall = yield* admin.replicationShortfall(specs).pipe(
    Effect.catch((e) => Effect.as(Effect.logDebug("cannot check the topics' replication", { error: e.message }), undefined))
  )
  if (shortfall !== undefined) {
    const names = shortfall.topics.map((t) => t.topic)
    yield* Effect.logWarning(
      `${names.length} topic(s) have fewer than ${shortfall.replicationFactor} replicas (ORBIT_TOPIC_REPLICATION_FACTOR, ` +
        `default the smaller of 3 and the brokers in the cluster): ${names.join(", ")}. ` +
        `Losing a broker loses their data. Raise them with: ${shortfall.command}`
    )
  }
})

/** In the background: an API can start - and answer 503 - while the broker is still down. */
export const EnsureTopics = Layer.effectDiscard(Effect.forkScoped(ensureAllTopics))

/** Before anything else starts: consumers can only subscribe to topics that exist. */
export const TopicsReady = Layer.effectDiscard(ensureAllTopics)
