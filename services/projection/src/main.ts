import { runService } from "@orbit/config"
import { Db } from "@orbit/db"
import { EnsureTopics, KafkaClient, TopicAdmin } from "@orbit/kafka"
import { Layer } from "effect"
import { AttemptProjection } from "./AttemptProjection.ts"
import { EndpointProjection } from "./EndpointProjection.ts"

const Main = Layer.mergeAll(EndpointProjection.layer, AttemptProjection.layer, EnsureTopics).pipe(
  Layer.provide([Db.layer, TopicAdmin.layer]),
  Layer.provide(KafkaClient.layer)
)

runService("projection", Main)
