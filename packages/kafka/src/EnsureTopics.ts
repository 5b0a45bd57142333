import { topicsFor } from "@orbit/domain"
import { Effect, Layer, Schedule } from "effect"
import { KafkaClient } from "./KafkaClient.ts"
import { TopicAdmin } from "./TopicAdmin.ts"

/** Creates every platform topic (idempotently), retrying every second until the broker answers. */
const ensureAllTopics = Effect.gen(function*() {
  const { topicPrefix } = yield* KafkaClient
  const admin = yield* TopicAdmin
  yield* admin.ensureTopics(Object.values(topicsFor(topicPrefix))).pipe(
    Effect.tapError((e) => Effect.logWarning("cannot create topics yet; retrying", { error: e.message })),
    Effect.retry(Schedule.spaced("1 second"))
  )
})

/** In the background: an API can start - and answer 503 - while the broker is still down. */
export const EnsureTopics = Layer.effectDiscard(Effect.forkScoped(ensureAllTopics))

/** Before anything else starts: consumers can only subscribe to topics that exist. */
export const TopicsReady = Layer.effectDiscard(ensureAllTopics)
