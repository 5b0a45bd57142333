/**
 * `npm run orbit -- deliveries replay --endpoint <id> [--since <ISO time>]` (the CLI spawns this
 * file with its own environment): re-sends the endpoint's dead-lettered deliveries, prints how many,
 * and exits. Exit codes: 0 done, 1 Kafka unreachable or misconfigured, 2 bad arguments.
 * See DeadLetterReplay.ts and the README ("Replaying dead letters").
 */
import { parseArgs } from "node:util"
import { stderrJsonLogging } from "@orbit/runtime"
import { schemaProblems } from "@orbit/domain"
import { KafkaClient, Producer, TopicAdmin } from "@orbit/kafka"
import { Cause, Effect, Exit, Layer, Schema } from "effect"
import { replayDeadLetters, ReplayArgs } from "./DeadLetterReplay.ts"

const USAGE = "usage: npm run orbit -- deliveries replay --endpoint <wh_…> [--since <ISO 8601 time>]"

const usage = (problem: string): never => {
  process.stderr.write(`${problem}\n\n${USAGE}\n`)
  process.exit(2)
}

/** Arguments are input like any other: parsed strictly, decoded by a Schema, refused with a clear message. */
const parseReplayArgs = (argv: ReadonlyArray<string>): ReplayArgs => {
  let values: Record<string, unknown>
  try {
    values = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: { endpoint: { type: "string" }, since: { type: "string" } }
    }).values
  } catch (e) {
    return usage(e instanceof Error ? e.message : String(e))
  }
  const decoded = Schema.decodeUnknownExit(ReplayArgs)(values, { errors: "all" })
  if (Exit.isSuccess(decoded)) return decoded.value
  const error = Cause.squash(decoded.cause)
  const issue = Schema.isSchemaError(error) ? error.issue : undefined
  const problems = issue === undefined
    ? [String(error)]
    : schemaProblems(issue).map(({ path, message }) => {
      const key = String(path[0] ?? "")
      const given = key ? (values as Record<string, unknown>)[key] : undefined
      const expected = message === "Missing key" ? "is required" : message.replace(/^Expected /, "must be ")
      return `--${key} ${expected}${given === undefined ? "" : ` (got ${JSON.stringify(given)})`}`
    })
  return usage(`invalid arguments:\n  ${problems.join("\n  ")}`)
}

const args = parseReplayArgs(process.argv.slice(2))

/** stdout carries only the result line; logs (JSON) go to stderr, as for every CLI command. */
const StderrLogging = stderrJsonLogging("Warn")

const exit = await Effect.runPromiseExit(
  Effect.scoped(replayDeadLetters(args)).pipe(
    Effect.provide(
      Layer.mergeAll(Producer.layer({ sendTimeout: "30 seconds" }), TopicAdmin.layer).pipe(Layer.provideMerge(KafkaClient.layer))
    ),
    Effect.provide(StderrLogging)
  )
)
if (Exit.isFailure(exit)) {
  const error = Cause.squash(exit.cause)
  const message = error !== null && typeof error === "object" && "message" in error ? String(error.message) : Cause.pretty(exit.cause)
  process.stderr.write(`deliveries replay failed: ${message}\n`)
  process.exit(1)
}
const { replayed, scanned, unreadable, deliveredSince } = exit.value
process.stdout.write(
  `replayed ${replayed} dead-lettered ${replayed === 1 ? "delivery" : "deliveries"} of ${args.endpoint}` +
    `${args.since === undefined ? "" : ` (dead-lettered since ${args.since})`}; ` +
    `${scanned} dead letters scanned${unreadable > 0 ? `, ${unreadable} unreadable skipped` : ""}` +
    `${deliveredSince > 0 ? `, ${deliveredSince} delivered since skipped` : ""}\n`
)
process.exit(0)
