import { Config, Context, Effect, Exit, Formatter, Layer, Logger, Option, Redacted, References, Tracer } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpExporter, OtlpSerialization, OtlpTracer } from "effect/observability"
import { protobufSerialization } from "./OtlpProtobuf.ts"

/** `OTEL_TRACES_SAMPLER` values understood (the OpenTelemetry SDK's built-in samplers). */
export const SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio"
] as const
export type SamplerName = typeof SAMPLERS[number]

export interface Sampler {
  /** A span with a parent follows the parent's decision. */
  readonly parentBased: boolean
  /** The share of root traces kept (1 always_on, 0 always_off). */
  readonly ratio: number
}

export const samplerOf = (name: SamplerName, arg: number | undefined): Sampler => ({
  parentBased: name.startsWith("parentbased_"),
  ratio: name.endsWith("always_on") ? 1 : name.endsWith("always_off") ? 0 : arg ?? 1
})

/**
 * The TraceIdRatioBased decision (pure): the trace id's low 52 bits, as a fraction of 2^52, below
 * `ratio`. Deterministic, so every service deciding on the same trace id agrees.
 */
export const keepsTrace = (traceId: string, ratio: number): boolean => {
  if (ratio >= 1) return true
  if (ratio <= 0) return false
  return parseInt(traceId.slice(-13), 16) / 2 ** 52 < ratio
}

/**
 * `inner` with the OpenTelemetry sampler applied: a span the sampler drops is recorded (its ids
 * propagate, its logs carry them, its children know it was not sampled) but never exported.
 */
export const samplingTracer = (inner: Tracer.Tracer, sampler: Sampler): Tracer.Tracer =>
  Tracer.make({
    span(options) {
      const parent = Option.getOrUndefined(options.parent)
      // Not sampled without a parent: a span below the minimum trace level.
      if (parent === undefined && !options.sampled) return inner.span(options)
      if (parent !== undefined && sampler.parentBased) return inner.span({ ...options, sampled: parent.sampled })
      if (parent !== undefined) return inner.span({ ...options, sampled: keepsTrace(parent.traceId, sampler.ratio) })
      if (sampler.ratio >= 1) return inner.span({ ...options, sampled: true })
      // A root: the decision needs the trace id the inner tracer makes up.
      const span = inner.span({ ...options, sampled: true })
      if (keepsTrace(span.traceId, sampler.ratio)) return span
      const dropped = new Tracer.NativeSpan({ ...options, sampled: false })
      dropped._traceId = span.traceId
      return dropped
    },
    ...(inner.context === undefined ? {} : { context: inner.context })
  })

/** `k1=v1,k2=v2` with URL-encoded values (OTEL_EXPORTER_OTLP_HEADERS), or the reason it is not. */
export const parseOtlpHeaders = (value: string): Record<string, string> | string => {
  const headers: Record<string, string> = {}
  for (const entry of value.split(",")) {
    if (entry.trim() === "") continue
    const eq = entry.indexOf("=")
    if (eq <= 0) return "each entry must be name=value"
    try {
      headers[decodeURIComponent(entry.slice(0, eq).trim()).toLowerCase()] = decodeURIComponent(entry.slice(eq + 1).trim())
    } catch {
      return "a name or value is not valid URL encoding"
    }
  }
  return headers
}

const optionalRedacted = (name: string) => Config.option(Config.Redacted(name))

/** What tracing a service does, from `ORBIT_TRACING` and the standard `OTEL_*` settings. */
export const tracingConfig = (serviceName: string) =>
  Config.all({
    sdkDisabled: Config.Boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false)),
    exporters: Config.String("OTEL_TRACES_EXPORTER").pipe(Config.withDefault("otlp")),
    tracesEndpoint: Config.option(Config.URL("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")),
    endpoint: Config.option(Config.URL("OTEL_EXPORTER_OTLP_ENDPOINT")),
    tracesHeaders: optionalRedacted("OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
    headers: optionalRedacted("OTEL_EXPORTER_OTLP_HEADERS"),
    tracesProtocol: Config.option(Config.Literals(["http/protobuf", "http/json"], "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")),
    protocol: Config.Literals(["http/protobuf", "http/json"], "OTEL_EXPORTER_OTLP_PROTOCOL").pipe(Config.withDefault("http/protobuf")),
    serviceName: Config.String("OTEL_SERVICE_NAME").pipe(Config.withDefault(serviceName)),
    sampler: Config.Literals(SAMPLERS, "OTEL_TRACES_SAMPLER").pipe(Config.withDefault("parentbased_always_on")),
    samplerArg: Config.option(Config.Number("OTEL_TRACES_SAMPLER_ARG")),
    scheduleDelayMs: Config.option(Config.Int("OTEL_BSP_SCHEDULE_DELAY")),
    orbitTracing: Config.Boolean("ORBIT_TRACING").pipe(Config.withDefault(false))
  })

/** A start-up failure naming the setting. */
export class TracingConfigError extends Error {
  override readonly name = "TracingConfigError"
}

/**
 * Tracing for the service `serviceName` (the default `service.name`):
 * - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (plus
 *   `/v1/traces`) set: spans are recorded and exported over OTLP/HTTP (protobuf, OpenTelemetry's default, or
 *   JSON with `OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL=http/json`), with `OTEL_EXPORTER_OTLP[_TRACES]_HEADERS`,
 *   sampled per `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, sent in batches every
 *   `OTEL_BSP_SCHEDULE_DELAY` ms (default 5 s). `OTEL_SDK_DISABLED=true` or
 *   `OTEL_TRACES_EXPORTER=none` turn the export off.
 * - otherwise `ORBIT_TRACING=true` records spans without exporting them (their ids still reach
 *   log lines and Kafka record headers);
 * - otherwise spans are not recorded at all, which costs nothing per request.
 */
export const tracingLayer = (serviceName: string): Layer.Layer<never, TracingConfigError> =>
  Layer.unwrap(Effect.gen(function*() {
    const c = yield* tracingConfig(serviceName).pipe(Effect.mapError((e) => new TracingConfigError(String(e.message ?? e))))
    const exporters = c.exporters.split(",").map((e) => e.trim().toLowerCase()).filter((e) => e !== "")
    const unknown = exporters.find((e) => e !== "otlp" && e !== "none")
    if (unknown !== undefined) {
      return yield* Effect.fail(new TracingConfigError(`OTEL_TRACES_EXPORTER: "${unknown}" is not supported (otlp or none)`))
    }
    if (c.sampler.endsWith("traceidratio") && Option.isSome(c.samplerArg) && !(c.samplerArg.value >= 0 && c.samplerArg.value <= 1)) {
      return yield* Effect.fail(new TracingConfigError("OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1"))
    }
    const url = Option.isSome(c.tracesEndpoint)
      ? c.tracesEndpoint.value
      : Option.map(c.endpoint, (u) => new URL(`${u.pathname.endsWith("/") ? "" : "/"}v1/traces`, u.href.endsWith("/") ? u.href : `${u.href}/`))
        .pipe(Option.getOrUndefined)
    const exporting = url !== undefined && !c.sdkDisabled && exporters.includes("otlp")
    if (!exporting) return Layer.succeed(References.TracerEnabled, c.orbitTracing)
    const rawHeaders = Option.orElse(c.tracesHeaders, () => c.headers)
    const headers = Option.isNone(rawHeaders) ? {} : parseOtlpHeaders(Redacted.value(rawHeaders.value))
    if (typeof headers === "string") {
      const which = Option.isSome(c.tracesHeaders) ? "OTEL_EXPORTER_OTLP_TRACES_HEADERS" : "OTEL_EXPORTER_OTLP_HEADERS"
      return yield* Effect.fail(new TracingConfigError(`${which}: ${headers}`))
    }
    const protocol = Option.getOrElse(c.tracesProtocol, () => c.protocol)
    const sampler = samplerOf(c.sampler, Option.getOrUndefined(c.samplerArg))
    const tracer = Layer.effect(
      Tracer.Tracer,
      Effect.map(
        OtlpTracer.make({
          url: url.href,
          headers,
          resource: { serviceName: c.serviceName },
          ...(Option.isSome(c.scheduleDelayMs) ? { exportInterval: Math.max(1, c.scheduleDelayMs.value) } : {})
        }),
        (t) => samplingTracer(t, sampler)
      )
    ).pipe(
      Layer.provide(Layer.mergeAll(
        OtlpExporter.layerFlusher,
        protocol === "http/json" ? OtlpSerialization.layerJson : protobufSerialization,
        FetchHttpClient.layer
      ))
    )
    return Layer.mergeAll(tracer, Layer.succeed(References.TracerEnabled, true))
  }))

/** The span an effect runs in, if it is a real one (not the no-op span of disabled tracing). */
const currentSpan = (context: Context.Context<never>): Tracer.AnySpan | undefined => {
  const span = Context.getOrUndefined(context, Tracer.ParentSpan)
  return span === undefined || span.traceId === "noop" ? undefined : span
}

/**
 * Effect's structured log record (message, level, timestamp, cause, annotations, spans, fiberId)
 * plus `trace_id` and `span_id` when it is logged inside a span, so a log line leads to its trace.
 */
export const tracedStructured = Logger.make((options) => {
  const out = Logger.formatStructured.log(options)
  const span = currentSpan(options.fiber.context)
  return span === undefined ? out : { ...out, trace_id: span.traceId, span_id: span.spanId }
})

/** One JSON object per line on stdout, with the trace ids (`tracedStructured`). */
export const tracedJsonLogger = Logger.withConsoleLog(Logger.map(tracedStructured, Formatter.formatJson))

/** The same on stderr, for command-line programs. */
export const tracedJsonStderrLogger = Logger.withConsoleError(Logger.map(tracedStructured, Formatter.formatJson))

/** A span's parent as record headers carry it. */
export interface ParentContext {
  readonly traceId: string
  readonly spanId: string
  readonly sampled: boolean
}

/**
 * Spans for code that runs outside Effect (the dispatcher's per-delivery promises), made with the
 * service's tracer; undefined when tracing is off, so that code can skip every tracing step.
 */
export interface PromiseSpans {
  start(name: string, options: {
    readonly parent?: ParentContext | Tracer.AnySpan | undefined
    readonly kind?: Tracer.SpanKind | undefined
    readonly attributes?: Readonly<Record<string, unknown>> | undefined
  }): Tracer.Span
  /** Ends `span`: successfully, or failed with `failure` (its status message). */
  end(span: Tracer.Span, failure?: string | undefined): void
}

const nowNanos = (): bigint => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1_000)) * 1_000n

export const promiseSpans: Effect.Effect<PromiseSpans | undefined> = Effect.gen(function*() {
  if (!(yield* References.TracerEnabled)) return undefined
  const tracer = yield* Tracer.Tracer
  return {
    start: (name, options) => {
      const parent = options.parent === undefined
        ? undefined
        : "_tag" in options.parent
        ? options.parent
        : Tracer.externalSpan(options.parent)
      const span = tracer.span({
        name,
        parent: parent === undefined ? Option.none() : Option.some(parent),
        annotations: Context.empty(),
        links: [],
        startTime: nowNanos(),
        kind: options.kind ?? "internal",
        root: parent === undefined,
        sampled: parent?.sampled ?? true
      })
      if (options.attributes !== undefined && span.sampled) {
        for (const key in options.attributes) span.attribute(key, options.attributes[key])
      }
      return span
    },
    end: (span, failure) => span.end(nowNanos(), failure === undefined ? Exit.void : Exit.fail(new Error(failure)))
  }
})
