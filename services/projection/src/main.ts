import { MetricsServer, runService } from "@orbit/runtime"
import { Db } from "@orbit/db"
import { EnsureTopics, KafkaClient, TopicAdmin } from "@orbit/kafka"
import { Layer } from "effect"
import { AttemptProjection } from "./AttemptProjection.ts"
import { EndpointProjection } from "./EndpointProjection.ts"
import { projectionSession } from "./ProjectionSession.ts"

const ProjectionDb = Db.layerWith({ session: projectionSession })

const Main = Layer.mergeAll(EndpointProjection.layer, AttemptProjection.layer, EnsureTopics).pipe(
  Layer.provide([ProjectionDb, TopicAdmin.layer]),
  Layer.provide(KafkaClient.layer),
  // `/metrics` on ORBIT_METRICS_PORT (default 9464).
  Layer.merge(MetricsServer(9464))
)

runService("projection", Main)
