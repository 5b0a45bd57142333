import { NodeHttpServer } from "@effect/platform-node"
import { runService } from "@orbit/runtime"
import { SecretBox } from "@orbit/crypto"
import { Db } from "@orbit/db"
import { EnsureTopics, KafkaClient, Producer, TopicAdmin } from "@orbit/kafka"
import { NetGuard } from "@orbit/net-guard"
import { Config, Effect, Layer } from "effect"
import { HttpMiddleware, HttpRouter } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { PrometheusMetrics } from "effect/observability"
import { Api } from "./api/Api.ts"
import { ApiKeys } from "./ApiKeys.ts"
import { AutoDisable } from "./AutoDisable.ts"
import { KeyLookupLimiter, RateLimiter } from "./RateLimiter.ts"
import { CursorKey } from "./CursorKey.ts"
import { DeliveryAttemptStore } from "./DeliveryAttemptStore.ts"
import { EndpointCommands } from "./EndpointCommands.ts"
import { EndpointStore } from "./EndpointStore.ts"
import { Idempotency } from "./Idempotency.ts"
import { TestEvents } from "./TestEvents.ts"
import { Redeliveries } from "./Redeliveries.ts"
import { ProjectionWatcher } from "./ProjectionWatcher.ts"
import { EndpointFailingGauge, HttpMetrics } from "./RegistrationMetrics.ts"
import { createApiServer } from "./server/ApiServer.ts"
import { EarlyRefusals } from "./server/EarlyRefusals.ts"
import { DocsRoutes, ScalarAssetRoute } from "./server/DocsRoutes.ts"
import { EventTypesRoutes } from "./server/EventTypesRoutes.ts"
import { HealthRoutes } from "./server/HealthRoutes.ts"
import { HostRequired, NotFoundRoutes, UnroutableAsNotFound } from "./server/Middleware.ts"
import { ApiKeyAuthLive, WebhooksRoutes } from "./server/WebhooksRoutes.ts"

/** The node:http server, answering the key refusals it can decide alone before the Effect stack (EarlyRefusals.ts). */
const HttpServerLive = Layer.unwrap(
  Effect.gen(function*() {
    const port = yield* Config.Port("PORT").pipe(Config.withDefault(8080))
    const { answer } = yield* EarlyRefusals
    return NodeHttpServer.layer(() => createApiServer(answer), { port, host: "0.0.0.0" })
  })
).pipe(Layer.provide(EarlyRefusals.layer))

/** Every operation of Api.ts, served from its declaration; then the reference page's script and the 404 envelope. */
const ApiRoutes = HttpApiBuilder.layer(Api).pipe(
  Layer.provide(Layer.mergeAll(WebhooksRoutes, EventTypesRoutes, HealthRoutes, DocsRoutes)),
  Layer.provide(ApiKeyAuthLive)
)

/** `/metrics` (Prometheus text format, no key) sits beside the API, not in its OpenAPI document: it is for the scraper. */
const Routes = Layer.mergeAll(ApiRoutes, ScalarAssetRoute, NotFoundRoutes, UnroutableAsNotFound, HostRequired, HttpMetrics, PrometheusMetrics.layerHttp())

const Infrastructure = Layer.mergeAll(Db.layer, Producer.layer(), TopicAdmin.layer, SecretBox.layer).pipe(
  Layer.provideMerge(KafkaClient.layer)
)

const Commands = EndpointCommands.layer.pipe(Layer.provide(Layer.mergeAll(EndpointStore.layer, NetGuard.layer)))

const Services = Layer.mergeAll(
  ApiKeys.layer.pipe(Layer.provide(KeyLookupLimiter.layer)),
  RateLimiter.layer,
  EndpointStore.layer,
  Commands,
  AutoDisable.layer.pipe(Layer.provide(Commands)),
  Idempotency.layer,
  NetGuard.layer,
  CursorKey.layer,
  DeliveryAttemptStore.layer,
  TestEvents.layer,
  Redeliveries.layer,
  EndpointFailingGauge
).pipe(Layer.provideMerge(ProjectionWatcher.layer))

/** Probes and scrapes are no traces: a load balancer's every few seconds would crowd out the requests. */
const UntracedUrls = HttpMiddleware.layerTracerDisabledForUrls(["/healthz", "/readyz", "/metrics"])

const Main = HttpRouter.serve(Routes, { disableLogger: true }).pipe(
  Layer.provide(UntracedUrls),
  Layer.provide(EnsureTopics),
  // The server is built after the services: its early refusals read ApiKeys.
  Layer.provide(HttpServerLive),
  Layer.provide(Services),
  Layer.provide(Infrastructure)
)

runService("registration", Main)
