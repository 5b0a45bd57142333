// The dispatcher: its layers, and the process that runs them when this file is the entry point
// (`node services/dispatcher/src/main.ts`). Tests import `DispatcherLive` from here and provide
// their own key ring, policy and resolver.
import { SecretBox } from "@orbit/crypto"
import { KafkaClient, Producer, TopicAdmin, TopicsReady } from "@orbit/kafka"
import { NetGuardPolicy, Resolver } from "@orbit/net-guard"
import { MetricsServer, runService } from "@orbit/runtime"
import { Layer } from "effect"
import { Deliverer } from "./delivery/Deliverer.ts"
import { DeliveryWorker } from "./delivery/DeliveryWorker.ts"
import { DispatcherMetrics } from "./DispatcherMetrics.ts"
import { EndpointIndex } from "./endpoints/EndpointIndex.ts"
import { FanOut } from "./fan-out/FanOut.ts"

/**
 * The whole dispatcher, needing only the Kafka client, the secret key ring, the SSRF policy and a
 * resolver. Layers start in dependency order (topics, then the index caught up, then delivery,
 * then fan-out, which hands ready endpoints' first attempts to the delivery worker) and stop in
 * reverse: fan-out stops before delivery, both stop taking work before the producer closes.
 */
export const DispatcherLive = FanOut.layer.pipe(
  Layer.provideMerge(DeliveryWorker.layer),
  Layer.provide(Layer.mergeAll(EndpointIndex.layer, Producer.layer(), Deliverer.layer, DispatcherMetrics.layer)),
  Layer.provide(TopicsReady),
  Layer.provide(TopicAdmin.layer)
)

/** Production dependencies: everything from configuration; `/metrics` on ORBIT_METRICS_PORT (default 9465). */
export const DispatcherMain = DispatcherLive.pipe(
  Layer.merge(MetricsServer(9465)),
  Layer.provide(Layer.mergeAll(SecretBox.layer, NetGuardPolicy.layer, Resolver.layer)),
  Layer.provide(KafkaClient.layer)
)

if (import.meta.main) runService("dispatcher", DispatcherMain)
