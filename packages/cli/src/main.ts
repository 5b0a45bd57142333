import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { stderrJsonLogging } from "@orbit/runtime"
import { Db } from "@orbit/db"
import { Mode, TenantId, WEBHOOK_EVENT_TYPES } from "@orbit/domain"
import { KafkaClient, Producer, TopicAdmin } from "@orbit/kafka"
import { Cause, Console, Effect, Layer, Option, Schema } from "effect"
import { Argument, CliConfig, CliError, CliOutput, Command, Flag, GlobalFlag } from "effect/cli"
import { createKey, listKeys, revokeKey } from "./Keys.ts"
import { tail } from "./Tail.ts"
import { buildEvent, publishEvent } from "./Trigger.ts"
import { UsageError } from "./UsageError.ts"

/** How a person runs this file (`npm run orbit -- …`): named in every "see --help" hint. */
const INVOKED_AS = "npm run orbit --"

const VERSION: string = JSON.parse(readFileSync(join(import.meta.dirname, "..", "package.json"), "utf8")).version

/** stdout carries only the command's result (e.g. the new key); logs go to stderr. */
const StderrLogging = stderrJsonLogging("Info")

/** The exit code a command asks for (the replays pass on their script's). */
class ExitWith extends Schema.TaggedError<ExitWith>()("ExitWith", { code: Schema.Number }) {}

const tenant = Flag.String("tenant").pipe(Flag.withDescription("Tenant id"), Flag.withSchema(TenantId))

const keysCreate = Command.make(
  "create",
  {
    tenant,
    mode: Flag.Literals("mode", Mode.literals).pipe(Flag.withDescription("Key mode"), Flag.withDefault("live")),
    public: Flag.Boolean("public").pipe(Flag.withDescription("Create a public (publishable) key instead of a secret one"), Flag.withDefault(false))
  },
  Effect.fn(function*(o) {
    const { key } = yield* createKey({ tenant: o.tenant, mode: o.mode, kind: o.public ? "public" : "secret" }).pipe(
      Effect.provide(Db.layer)
    )
    yield* Console.log(key)
  })
).pipe(Command.withDescription("Create an API key and print it (shown once; stored as its SHA-256 hash only)"))

const keysList = Command.make(
  "list",
  { tenant },
  Effect.fn(function*(o) {
    for (const k of yield* listKeys(o.tenant).pipe(Effect.provide(Db.layer))) {
      yield* Console.log(
        `${k.id}\t${k.prefix}…\t${k.mode}\t${k.kind}\t${k.created_at.toISOString()}\t${k.revoked_at ? `revoked ${k.revoked_at.toISOString()}` : "active"}`
      )
    }
  })
).pipe(Command.withDescription("List a tenant's keys, oldest first: id, prefix, mode, kind, created, state"))

const keysRevoke = Command.make(
  "revoke",
  {
    id: Argument.String("key-id").pipe(
      Argument.withDescription("The key's id (key_…), as keys list shows it"),
      Argument.withSchema(Schema.String.check(Schema.isPattern(/^key_[0-9A-Za-z]{10,64}$/, { message: "must be a key id (key_…)" })))
    )
  },
  Effect.fn(function*(o) {
    if (!(yield* revokeKey(o.id).pipe(Effect.provide(Db.layer)))) return yield* new UsageError({ message: `no key with id ${o.id}` })
    yield* Console.log(`revoked ${o.id}`)
  })
).pipe(Command.withDescription("Revoke a key; the API refuses it within 5 s. Revoking again keeps the first time"))

const keys = Command.make("keys").pipe(
  Command.withDescription("Manage API keys"),
  Command.withSubcommands([keysCreate, keysList, keysRevoke])
)

/** Runs another process's entry point with this environment (the CLI imports no service). */
const runScript = (path: string, args: Array<string>) =>
  Effect.suspend(() => {
    const r = spawnSync(process.execPath, [join(import.meta.dirname, "../../..", path), ...args], { stdio: "inherit" })
    return r.status === 0 ? Effect.void : Effect.fail(new ExitWith({ code: r.status ?? 1 }))
  })

const rebuildEndpoints = () => runScript("services/projection/src/rebuild-main.ts", [])

const rebuild = Command.make("rebuild").pipe(
  Command.withDescription("Rebuild read models from Kafka"),
  Command.withSubcommands([
    Command.make("endpoints", {}, rebuildEndpoints).pipe(
      Command.withDescription("Rebuild the endpoint read model from offset 0 and swap it in")
    )
  ])
)

/** The old name of `rebuild` ("replay" now means only re-sending dead letters): one deprecation line, then the same. */
const replay = Command.make("replay").pipe(
  Command.withDescription("Deprecated: use `rebuild`"),
  Command.withSubcommands([
    Command.make("endpoints", {}, () =>
      Effect.sync(() => process.stderr.write("`orbit replay endpoints` is deprecated; use `orbit rebuild endpoints`\n")).pipe(
        Effect.andThen(rebuildEndpoints())
      )).pipe(Command.withDescription("Deprecated: use `rebuild endpoints`"))
  ])
)

const secrets = Command.make("secrets").pipe(
  Command.withDescription("Manage the encryption of endpoint secrets (ORBIT_SECRET_KEYS)"),
  Command.withSubcommands([
    Command.make("reseal", {}, () => runScript("services/registration/src/reseal-main.ts", [])).pipe(
      Command.withShortDescription("Seal every endpoint's secrets anew under the key ring's first key"),
      Command.withDescription(
        "Seal every endpoint's secrets anew under the first key of ORBIT_SECRET_KEYS, each box bound to its endpoint and slot, by appending an EndpointSecretsResealed event to the endpoint topic. The secrets themselves do not change. Endpoints already sealed that way are skipped, so it can be run again. Prints `resealed <n> endpoints; <m> already current; <k> failed`; exits 1 when a secret did not open with the ring (each is named on stderr). Step two of retiring a key: put the new key first in the ring, reseal, drop the old key, rebuild"
      )
    )
  ])
)

const deliveries = Command.make("deliveries").pipe(
  Command.withDescription("Act on deliveries"),
  Command.withSubcommands([
    Command.make(
      "replay",
      {
        // Checked by the dispatcher's replay script, which owns these arguments.
        endpoint: Flag.String("endpoint").pipe(Flag.withDescription("Endpoint id (wh_…)"), Flag.optional),
        since: Flag.String("since").pipe(Flag.withDescription("Only deliveries dead-lettered since this ISO 8601 time"), Flag.optional)
      },
      (o) =>
        runScript("services/dispatcher/src/dead-letters/replay.ts", [
          ...Option.match(o.endpoint, { onNone: () => [], onSome: (e) => ["--endpoint", e] }),
          ...Option.match(o.since, { onNone: () => [], onSome: (s) => ["--since", s] })
        ])
    ).pipe(Command.withDescription("Re-send an endpoint's dead-lettered deliveries not delivered since (attempt 1 again)"))
  ])
)

const KafkaLayer = <A, E>(layer: Layer.Layer<A, E, KafkaClient>) => layer.pipe(Layer.provideMerge(KafkaClient.layer))

const trigger = Command.make(
  "trigger",
  {
    type: Argument.String("event-type").pipe(Argument.withDescription("A type from the event catalog, e.g. message.delivered")),
    tenant,
    mode: Flag.Literals("mode", Mode.literals).pipe(Flag.withDescription("Event mode"), Flag.withDefault("live")),
    data: Flag.String("data").pipe(
      Flag.withDescription("The event's data as a JSON object (default: the catalog's example for the type)"),
      Flag.optional
    )
  },
  Effect.fn(function*(o) {
    const event = yield* buildEvent({ type: o.type, tenant: o.tenant, mode: o.mode, data: Option.getOrUndefined(o.data) })
    const id = yield* publishEvent(event).pipe(Effect.provide(KafkaLayer(Producer.layer())))
    yield* Console.log(id)
  })
).pipe(
  Command.withShortDescription("Publish one event on the source topic and print its id"),
  Command.withDescription(
    `Publish one well-formed event on the source topic, as an upstream producer does, and print its id. Event types: ${WEBHOOK_EVENT_TYPES.join(", ")}`
  ),
  Command.withExamples([
    { command: "orbit trigger message.delivered --tenant acme", description: "The catalog's example data" },
    { command: `orbit trigger contact.updated --tenant acme --mode test --data '{"contact_id":"ct_1"}'`, description: "Your own data" }
  ])
)

const tailCommand = Command.make(
  "tail",
  {
    tenant: Flag.String("tenant").pipe(Flag.withDescription("Only this tenant's attempts"), Flag.optional),
    endpoint: Flag.String("endpoint").pipe(Flag.withDescription("Only this endpoint's attempts"), Flag.optional)
  },
  (o) =>
    tail({ tenant: Option.getOrUndefined(o.tenant), endpoint: Option.getOrUndefined(o.endpoint) }).pipe(
      Effect.provide(KafkaLayer(TopicAdmin.layer))
    )
).pipe(
  Command.withShortDescription("Print delivery attempts as they happen, until Ctrl-C"),
  Command.withDescription(
    "Print delivery attempts as they happen, one tab-separated line each: time, endpoint, event type, outcome, status (or why there was none), latency. Ctrl-C stops"
  )
)

const orbit = Command.make("orbit").pipe(
  Command.withDescription(`Orbit Webhooks operator CLI (run as \`${INVOKED_AS} <command>\`)`),
  Command.withSubcommands([keys, secrets, rebuild, replay, deliveries, trigger, tailCommand])
)

/**
 * Help and the version go to stdout. Parse errors are rendered by `report` below as one line, so
 * the presenter drops the implicit help effect/cli would print with them.
 */
const Presenter = CliOutput.layerPresenter({
  present: (event) => event._tag === "Help" && event.reason === "Implicit" ? Effect.void : CliOutput.defaultPresenter.present(event)
})

/** The built-in flags (--help, --version, --completions, --log-level) without the interactive wizard. */
const Config = CliConfig.layer({ builtIns: GlobalFlag.BuiltIns.filter((f) => f !== GlobalFlag.Wizard) })

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, " ").trim()

/** A parse error in words a person reads; an unknown command is named as the user typed it. */
const describeCliError = (e: CliError.NonShowHelpErrors): string => {
  if (e._tag === "UnknownSubcommand") {
    const typed = [...(e.parent ?? []).slice(1), e.subcommand].join(" ")
    return `unknown command: ${typed}${e.suggestions.length > 0 ? ` (did you mean ${e.suggestions.join(" or ")}?)` : ""}`
  }
  return oneLine(e.message)
}

const helpHint = (commandPath: ReadonlyArray<string>) => `see \`${[INVOKED_AS, ...commandPath.slice(1), "--help"].join(" ")}\``

/**
 * Every way a run can end, as one line on stderr and an exit code: 2 for a bad invocation (with
 * where its help is), 1 for a failure while running (Postgres unreachable, the broker refusing a
 * send) - the person at the terminal needs the message, not a trace. A defect keeps its trace.
 */
const report = (cause: Cause.Cause<unknown>): Effect.Effect<number> =>
  Effect.sync(() => {
    const error = Cause.findErrorOption(cause)
    if (Option.isNone(error)) {
      process.stderr.write(`${Cause.pretty(cause)}\n`)
      return 1
    }
    const e = error.value
    if (e instanceof ExitWith) return e.code
    if (e instanceof UsageError) {
      process.stderr.write(`${oneLine(e.message)}\n`)
      return 2
    }
    if (CliError.isCliError(e) && e._tag === "ShowHelp") {
      const first = e.errors[0]
      const message = first === undefined
        ? `missing command after \`${[INVOKED_AS, ...e.commandPath.slice(1)].join(" ")}\``
        : describeCliError(first)
      process.stderr.write(`${message}; ${helpHint(e.commandPath)}\n`)
      return 2
    }
    process.stderr.write(`${oneLine(e instanceof Error ? e.message || e.name : String(e))}\n`)
    return 1
  })

Command.run(orbit, { version: VERSION, renderErrors: false }).pipe(
  Effect.catchCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : report(cause).pipe(Effect.flatMap((code) => Effect.sync(() => (process.exitCode = code))))),
  Effect.provide([NodeServices.layer, Config, Presenter, StderrLogging]),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
