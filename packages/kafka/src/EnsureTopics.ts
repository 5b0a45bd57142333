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

/** How often the replication check is asked again when the cluster cannot answer it yet. */
const SHORTFALL_CHECK_TRIES = 60

/**
 * One WARN naming the topics with fewer replicas than the cluster's factor (created before the
 * cluster grew, or with a smaller factor: losing a broker loses their data), with the command that
 * raises them. Right after the topics are created a broker may not know them yet, so a check that
 * fails is asked again every second (up to a minute) rather than dropped.
 */
const warnOfReplicationShortfall = Effect.gen(function*() {
  const { topicPrefix } = yield* KafkaClient
  const admin = yield* TopicAdmin
  const shortfall = yield* admin.replicationShortfall(Object.values(topicsFor(topicPrefix))).pipe(
    Effect.tapError((e) => Effect.logDebug("cannot check the topics' replication yet", { error: e.message })),
    Effect.retry({ schedule: Schedule.spaced("1 second"), times: SHORTFALL_CHECK_TRIES }),
    Effect.catch((e) => Effect.as(Effect.logDebug("gave up checking the topics' replication", { error: e.message }), undefined))
  )
  if (shortfall === undefined) return
  const names = shortfall.topics.map((t) => t.topic)
  yield* Effect.logWarning(
    `${names.length} topic(s) have fewer than ${shortfall.replicationFactor} replicas (ORBIT_TOPIC_REPLICATION_FACTOR, ` +
      `default the smaller of 3 and the brokers in the cluster): ${names.join(", ")}. ` +
      `Losing a broker loses their data. Raise them with: ${shortfall.command}`
  )
})

/** In the background: an API can start - and answer 503 - while the broker is still down. */
export const EnsureTopics = Layer.effectDiscard(Effect.forkScoped(Effect.andThen(ensureAllTopics, warnOfReplicationShortfall)))

/** Before anything else starts: consumers can only subscribe to topics that exist. The replication check follows in the background. */
export const TopicsReady = Layer.effectDiscard(Effect.andThen(ensureAllTopics, Effect.forkScoped(warnOfReplicationShortfall)))
