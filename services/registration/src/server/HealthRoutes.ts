import { Db, query } from "@orbit/db"
import { topicsFor } from "@orbit/domain"
import { KafkaClient, TopicAdmin } from "@orbit/kafka"
import { Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { ProjectionWatcher } from "../ProjectionWatcher.ts"

/** `/healthz`: the process is up. `/readyz`: Kafka and Postgres answer, and the projection is caught up. */
export const HealthRoutes = HttpRouter.use(Effect.fn(function*(router) {
  const { sql } = yield* Db
  const admin = yield* TopicAdmin
  const watcher = yield* ProjectionWatcher
  const { topicPrefix } = yield* KafkaClient
  const topic = topicsFor(topicPrefix).endpointEvents.name

  const check = <A, E>(effect: Effect.Effect<A, E>) =>
    effect.pipe(
      Effect.timeout("2 seconds"),
      Effect.as("ok" as string),
      Effect.catchCause(() => Effect.succeed("unavailable"))
    )

  const projectionLag = Effect.gen(function*() {
    const [ends, applied] = yield* Effect.all([admin.endOffsets(topic), watcher.appliedOffsets(topic)], { concurrency: 2 })
    let lag = 0n
    for (const { partition, offset } of ends) lag += BigInt(offset) - (applied.get(partition) ?? 0n)
    return lag
  })

  yield* router.add("GET", "/healthz", Effect.succeed(HttpServerResponse.jsonUnsafe({ status: "ok" })))
  yield* router.add("GET", "/readyz", Effect.gen(function*() {
    const [postgres, kafka, lag] = yield* Effect.all([
      check(query(() => sql`SELECT 1`)),
      check(admin.ping),
      projectionLag.pipe(Effect.timeout("2 seconds"), Effect.map(String), Effect.catchCause(() => Effect.succeed("unknown")))
    ], { concurrency: 3 })
    const ready = postgres === "ok" && kafka === "ok" && lag === "0"
    return HttpServerResponse.jsonUnsafe(
      { status: ready ? "ready" : "not_ready", checks: { postgres, kafka, projection_lag: lag } },
      { status: ready ? 200 : 503 }
    )
  }))
}))
