import { NodeRuntime } from "@effect/platform-node"
import { Cause, Config, Effect, Exit, Layer, Logger, References } from "effect"
import { tracedJsonLogger, tracedJsonStderrLogger, tracingLayer } from "./Tracing.ts"

type LogLevel = "Trace" | "Debug" | "Info" | "Warn" | "Error"

const logLevel = (fallback: LogLevel) =>
  Config.Literals(["Trace", "Debug", "Info", "Warn", "Error"], "LOG_LEVEL").pipe(Config.withDefault(fallback))

/**
 * One JSON object per log line on stdout, with `trace_id` and `span_id` when logged inside a span;
 * `LOG_LEVEL` sets the minimum level. Spans (from `Effect.fn`) are recorded only with
 * `ORBIT_TRACING=true` here; `runService` adds the OTLP export (`tracingLayer`).
 */
export const JsonLogging = Layer.mergeAll(
  Logger.layer([tracedJsonLogger]),
  Layer.effect(References.MinimumLogLevel, logLevel("Info")),
  Layer.effect(References.TracerEnabled, Config.Boolean("ORBIT_TRACING").pipe(Config.withDefault(false)))
).pipe(Layer.orDie)

/** A service's logging: `JsonLogging` without `ORBIT_TRACING`, which `tracingLayer` reads. */
const ServiceLogging = Layer.mergeAll(
  Logger.layer([tracedJsonLogger]),
  Layer.effect(References.MinimumLogLevel, logLevel("Info"))
).pipe(Layer.orDie)

/**
 * For command-line programs, whose stdout carries only their result (a new key, a count): one JSON
 * object per log line on stderr; `LOG_LEVEL` sets the minimum level, `fallback` when unset.
 */
export const stderrJsonLogging = (fallback: LogLevel) =>
  Layer.mergeAll(
    Logger.layer([tracedJsonStderrLogger]),
    Layer.effect(References.MinimumLogLevel, logLevel(fallback)),
    // They export no spans: records they produce carry no trace context of theirs.
    Layer.succeed(References.TracerEnabled, false)
  ).pipe(Layer.orDie)

/**
 * Runs a service's layer until SIGINT/SIGTERM, then closes it gracefully (scopes finalize in
 * reverse order, the trace exporter's last) and exits 0: a stop by signal is a clean stop to a
 * supervisor. A failure at start-up - a missing or bad setting, an unreachable Postgres - or while closing is printed as
 * one line that names the problem, and the process exits 1.
 */
export const runService = <E>(name: string, layer: Layer.Layer<never, E>): void =>
  Effect.andThen(shutdownWatchdog(name), launchCompacted(layer)).pipe(
    // Inside the start-up error report, so a bad OTEL_* setting is reported like any other.
    Effect.provide(tracingLayer(`orbit-${name}`)),
    Effect.annotateLogs({ service: name }),
    Effect.tapCause((cause) =>
      Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logError(`${name} failed to start: ${startupMessage(cause)}. Fix that setting or dependency and start it again`)
    ),
    Effect.provide(ServiceLogging),
    (effect) => NodeRuntime.runMain(effect, { disableErrorReporting: true, teardown: exitCode })
  )

/**
 * `Layer.launch` with one full garbage collection once the layer is up. Start-up (loading modules,
 * building schemas and the OpenAPI document, migrations, joining consumer groups) leaves about a
 * third of the heap as garbage that V8 frees only after a long idle; collected at once, the
 * service starts at its working size (the resident memory rows of `npm run bench:dispatch`). The
 * last-resort flavour also hands the freed pages back; a regular one leaves them resident. It
 * needs `--expose-gc` (each service's `orbit.nodeArgs`); without it nothing is collected early.
 */
const launchCompacted = <E>(layer: Layer.Layer<never, E>): Effect.Effect<never, E> =>
  Layer.build(layer).pipe(
    Effect.andThen(Effect.sync(() =>
      (globalThis as { gc?: (options: object) => void }).gc?.({ type: "major", execution: "sync", flavor: "last-resort" })
    )),
    Effect.andThen(Effect.never),
    Effect.scoped
  )

/**
 * The longest a stop by signal may take (`ORBIT_SHUTDOWN_TIMEOUT_MS`, default 30 s; it must exceed
 * `DISPATCHER_SHUTDOWN_GRACE_MS`). A close that hangs - a Kafka client still waiting on a broker
 * that died - ends with one ERROR line saying so and exit code 1, so a supervisor sees a stop that
 * did not finish instead of a process that never exits. `packages/runtime/test/ShutdownWatchdog.test.ts`.
 */
const shutdownWatchdog = (name: string) =>
  Effect.gen(function*() {
    const timeoutMs = yield* Config.Int("ORBIT_SHUTDOWN_TIMEOUT_MS").pipe(Config.withDefault(30_000))
    if (timeoutMs < 1) return yield* Effect.fail(new Error(`ORBIT_SHUTDOWN_TIMEOUT_MS=${timeoutMs}: must be at least 1 (ms)`))
    const arm = () => {
      setTimeout(() => {
        const line = {
          message: `${name} did not stop within ${timeoutMs} ms of the stop signal (ORBIT_SHUTDOWN_TIMEOUT_MS); exiting without finishing the close`,
          level: "ERROR",
          timestamp: new Date().toISOString(),
          annotations: { service: name }
        }
        process.stdout.write(`${JSON.stringify(line)}\n`, () => process.exit(1))
      }, timeoutMs).unref()
    }
    process.once("SIGTERM", arm)
    process.once("SIGINT", arm)
  })

/** 0 for success or an interruption alone (the signal's graceful stop), 1 for any failure. */
const exitCode = (exit: Exit.Exit<unknown, unknown>, onExit: (code: number) => void) =>
  onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)

/** What stopped a start, in one line (`test/StartupMessage.test.ts`). */
export const startupMessage = (cause: Cause.Cause<unknown>): string => describeError(Cause.squash(cause))

/**
 * An error's message, or, where that is empty, what names it: Node's failed connects are an
 * AggregateError with no message of its own (one inner error per address tried), so its code and
 * inner messages are given; otherwise the error's tag, name or code, and its cause.
 */
export const describeError = (error: unknown): string => {
  if (error === null || typeof error !== "object") return String(error)
  const e = error as { message?: unknown; _tag?: unknown; name?: unknown; code?: unknown; errors?: unknown; cause?: unknown }
  if (typeof e.message === "string" && e.message !== "") return e.message
  const name = [e._tag ?? e.name, e.code].filter((x) => typeof x === "string" && x !== "").join(" ")
  const inner = Array.isArray(e.errors) && e.errors.length > 0
    ? e.errors.map(describeError)
    : e.cause !== undefined && e.cause !== error
    ? [describeError(e.cause)]
    : []
  return [name, inner.join("; ")].filter((x) => x !== "").join(": ") || String(error)
}
