import { MetricsServer, runService } from "@orbit/runtime"
import { Db } from "@orbit/db"
import { EnsureTopics, KafkaClient, TopicAdmin } from "@orbit/kafka"
import { Layer } from "effect"
import { AttemptProjection } from "./AttemptProjection.ts"
import { EndpointProjection } from "./EndpointProjection.ts"

// No WAL flush wait on commit: read models are rebuildable from Kafka, and rows and offsets commit
// atomically, so a commit lost in a Postgres crash is simply applied again.
const ProjectionDb = Db.layerWith({ session: { synchronous_commit: "off" } })

const Main = Layer.mergeAll(EndpointProjection.layer, AttemptProjection.layer, EnsureTopics).pipe(
  Layer.provide([ProjectionDb, TopicAdmin.layer]),
  Layer.provide(KafkaClient.layer),
  // `/metrics` on ORBIT_METRICS_PORT (default 9464).
  Layer.merge(MetricsServer(9464))
)

runService("projection", Main)
