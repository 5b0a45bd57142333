import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { NodeHttpServer } from "@effect/platform-node"
import { Config, Effect, Layer, Schema } from "effect"
import { HttpRouter } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { startupMessage } from "./ServiceRuntime.ts"

const ListenPort = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65_535 }))

/** Where a service without an HTTP API of its own serves `/metrics`: `ORBIT_METRICS_HOST`, `ORBIT_METRICS_PORT` (0 picks a free port). */
export const metricsListenConfig = (defaultPort: number) =>
  Config.all({
    host: Config.String("ORBIT_METRICS_HOST").pipe(Config.withDefault("127.0.0.1")),
    port: Config.schema(ListenPort, "ORBIT_METRICS_PORT").pipe(Config.withDefault(defaultPort))
  })

/**
 * `ORBIT_METRICS_TENANT_LABEL=true` adds the tenant id as a label where a metric offers one. Off by
 * default: a platform with many tenants would otherwise multiply every such series by their number.
 */
export const MetricsTenantLabel = Config.Boolean("ORBIT_METRICS_TENANT_LABEL").pipe(Config.withDefault(false))

/**
 * How often a service samples the gauges it reads from Kafka offsets or Postgres rather than
 * updating where things happen (lag, backlog): `ORBIT_METRICS_SAMPLE_MS`, default 15 s, the
 * scrape interval of `infra/observability/prometheus.yml`, so an idle service asks the broker
 * nothing more often than it is read.
 */
export const MetricsSampleMs = Config.Int("ORBIT_METRICS_SAMPLE_MS").pipe(Config.withDefault(15_000))

/**
 * A tiny HTTP server with one route, `GET /metrics`: every metric of the process's registry in the
 * Prometheus text format (Effect's exporter). It binds `ORBIT_METRICS_HOST` (default 127.0.0.1, so
 * nothing outside the host reads it unless an operator says so) on `ORBIT_METRICS_PORT`
 * (`defaultPort` when unset), and logs the port it listens on at Info as `metrics listening`.
 */
export const MetricsServer = (defaultPort: number) =>
  Layer.unwrap(Effect.gen(function*() {
    const { host, port } = yield* metricsListenConfig(defaultPort)
    const server = createServer()
    const listening = Layer.effectDiscard(Effect.suspend(() => {
      const address = server.address() as AddressInfo | null
      return Effect.logInfo("metrics listening", { host, port: address?.port ?? port })
    }))
    return HttpRouter.serve(PrometheusMetrics.layerHttp(), { disableLogger: true, disableListenLog: true }).pipe(
      Layer.merge(listening),
      Layer.provide(NodeHttpServer.layer(() => server, { port, host })),
      Layer.catchCause((cause) =>
        Layer.effectDiscard(Effect.fail(new Error(`cannot serve metrics on ${host}:${port} (ORBIT_METRICS_HOST, ORBIT_METRICS_PORT): ${startupMessage(cause)}`))))
    )
  }))
