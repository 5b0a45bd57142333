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
  yield* admin.ensureTopics(Object.values(topicsFor(topicPrefix))).pipe(
    Effect.tapError(report),
    Effect.retry(Schedule.spaced("1 second"))
  )
  if (reported) yield* Effect.logInfo("reached Kafka; topics ready", { brokers })
})

/** In the background: an API can start - and answer 503 - while the broker is still down. */
export const EnsureTopics = Layer.effectDiscard(Effect.forkScoped(ensureAllTopics))

/** Before anything else starts: consumers can only subscribe to topics that exist. */
export const TopicsReady = Layer.effectDiscard(ensureAllTopics)
