import { Db, query } from "@orbit/db"
import { topicsFor } from "@orbit/domain"
import { KafkaClient, lagOf, TopicAdmin } from "@orbit/kafka"
import { Effect } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../api/Api.ts"
import { ProjectionWatcher } from "../ProjectionWatcher.ts"

interface Readiness {
  readonly ready: boolean
  readonly checks: { postgres: string; kafka: string; projection_lag: string }
}

/**
 * `/healthz`: the process is up. `/readyz`: Kafka and Postgres answer and the projection has
 * applied every endpoint event. Readiness is probed when asked, at most once a second (callers
 * within a second of a probe share its answer); each check gives up after 2 s, so a probe never
 * waits long on a slow dependency. Nobody asking means no probing: an idle API does not wake.
 */
export const HealthRoutes = HttpApiBuilder.group(Api, "health", Effect.fn(function*(handlers) {
  const { sql } = yield* Db
  const admin = yield* TopicAdmin
  const watcher = yield* ProjectionWatcher
  const { topicPrefix } = yield* KafkaClient
  const topic = topicsFor(topicPrefix).endpointEvents.name

  const check = <A, E>(effect: Effect.Effect<A, E>) =>
    effect.pipe(
      Effect.timeout("2 seconds"),
      Effect.as("ok"),
      Effect.catchCause(() => Effect.succeed("unavailable"))
    )

  const projectionLag = Effect.gen(function*() {
    const [ends, applied] = yield* Effect.all([admin.endOffsets(topic), watcher.appliedOffsets(topic)], { concurrency: 2 })
    return String(lagOf(ends, applied))
  }).pipe(Effect.timeout("2 seconds"), Effect.catchCause(() => Effect.succeed("unknown")))

  const probe = Effect.all([check(query(() => sql`SELECT 1`)), check(admin.ping), projectionLag], { concurrency: 3 }).pipe(
    Effect.map(([postgres, kafka, lag]): Readiness => ({
      ready: postgres === "ok" && kafka === "ok" && lag === "0",
      checks: { postgres, kafka, projection_lag: lag }
    })),
    Effect.timeout("5 seconds"),
    Effect.catchCause(() =>
      Effect.succeed<Readiness>({ ready: false, checks: { postgres: "unknown", kafka: "unknown", projection_lag: "unknown" } })
    )
  )
  const readiness = yield* Effect.cachedWithTTL(probe, "1 second")

  const alive = HttpServerResponse.jsonUnsafe({ status: "ok" })
  return handlers
    .handle("healthz", () => Effect.succeed(alive))
    .handle("readyz", () =>
      Effect.map(readiness, ({ ready, checks }) =>
        HttpServerResponse.jsonUnsafe({ status: ready ? "ready" : "not_ready", checks }, { status: ready ? 200 : 503 })))
}))
