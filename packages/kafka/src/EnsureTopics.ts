import { topicsFor } from "@orbit/domain"
import { Effect, Layer, Schedule } from "effect"
import { KafkaClient } from "./KafkaClient.ts"
import { TopicAdmin } from "./TopicAdmin.ts"

/**
 * Creates every platform topic (idempotently) at start. It retries in the background so a
 * service can start - and answer 503 - while the broker is still down.
 */
export const EnsureTopics = Layer.effectDiscard(
  Effect.gen(function*() {
    const { topicPrefix } = yield* KafkaClient
    const admin = yield* TopicAdmin
    yield* admin.ensureTopics(Object.values(topicsFor(topicPrefix))).pipe(
      Effect.tapError((e) => Effect.logWarning("cannot create topics yet; retrying", { error: e.message })),
      Effect.retry(Schedule.spaced("1 second")),
      Effect.forkScoped
    )
  })
)
