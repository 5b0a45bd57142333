import { SecretBox } from "@orbit/crypto"
import { topicsFor } from "@orbit/domain"
import { KafkaClient, TopicAdmin } from "@orbit/kafka"
import { NetGuardPolicy, Resolver } from "@orbit/net-guard"
import { Effect, Layer, Schedule } from "effect"
import { Deliverer } from "./Deliverer.ts"
import { DeliveryWorker } from "./DeliveryWorker.ts"
import { EndpointIndex } from "./EndpointIndex.ts"
import { FanOut } from "./FanOut.ts"
import { Publisher } from "./Publisher.ts"

/** Consumers can only subscribe to existing topics: create them (idempotently) before starting. */
export const DispatcherTopics = Layer.effectDiscard(
  Effect.gen(function*() {
    const { topicPrefix } = yield* KafkaClient
    const admin = yield* TopicAdmin
    yield* admin.ensureTopics(Object.values(topicsFor(topicPrefix))).pipe(
      Effect.tapError((e) => Effect.logWarning("cannot create topics yet; retrying", { error: e.message })),
      Effect.retry(Schedule.spaced("1 second"))
    )
  })
)

/**
 * The whole dispatcher, needing only the Kafka client, the secret key ring, the SSRF policy and a
 * resolver. Layers start in dependency order (topics, then the index caught up, then fan-out and
 * delivery) and stop in reverse: fan-out and delivery stop taking work before the producer closes.
 */
export const DispatcherLive = Layer.mergeAll(FanOut.layer, DeliveryWorker.layer).pipe(
  Layer.provide(Layer.mergeAll(EndpointIndex.layer, Publisher.layer, Deliverer.layer)),
  Layer.provide(DispatcherTopics),
  Layer.provide(TopicAdmin.layer)
)

/** Production dependencies: everything from configuration. */
export const DispatcherMain = DispatcherLive.pipe(
  Layer.provide(Layer.mergeAll(SecretBox.layer, NetGuardPolicy.layer, Resolver.layer)),
  Layer.provide(KafkaClient.layer)
)
