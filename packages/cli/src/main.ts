import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { Db } from "@orbit/db"
import { Mode, TenantId } from "@orbit/domain"
import { Cause, Effect, Exit, Logger, Option, Schema } from "effect"
import { createKey, listKeys, revokeKey } from "./Keys.ts"

const USAGE = `usage: npm run orbit -- <command>
  keys create --tenant <id> [--mode live|test] [--public]   prints the new key (shown once)
  keys list --tenant <id>
  keys revoke <key-id>
  replay endpoints                                          rebuild the endpoint read model from offset 0
  deliveries replay --endpoint <id> [--since <ISO time>]    re-send dead-lettered deliveries`

/** stdout carries only the command's result (e.g. the new key); logs go to stderr. */
const StderrLogging = Logger.layer([Logger.withConsoleError(Logger.formatJson)])

const fail = (message: string): never => {
  process.stderr.write(`${message}\n\n${USAGE}\n`)
  process.exit(2)
}

/** CLI arguments are input like any other: decoded by a Schema, refused with a clear message. */
const decode = <A>(schema: Schema.Decoder<A>, value: unknown, what: string): A => {
  const r = Schema.decodeUnknownExit(schema)(value)
  return Exit.isSuccess(r) ? r.value : fail(`invalid ${what}: ${JSON.stringify(value)}`)
}

/**
 * An expected failure (Postgres unreachable, a query refused) is one line naming what went wrong:
 * the person at the terminal needs the message, not a trace. A defect keeps its trace.
 */
const describeFailure = (cause: Cause.Cause<unknown>): string =>
  Option.match(Cause.findErrorOption(cause), {
    onNone: () => Cause.pretty(cause),
    onSome: (e) => (e instanceof Error ? e.message || e.name : String(e)).replace(/\s*\n\s*/g, " ")
  })

const run = <A>(effect: Effect.Effect<A, unknown, Db>) =>
  Effect.runPromiseExit(effect.pipe(Effect.provide(Db.layer), Effect.provide(StderrLogging))).then((exit) => {
    if (Exit.isFailure(exit)) {
      process.stderr.write(`${describeFailure(exit.cause)}\n`)
      process.exit(1)
    }
    return exit.value
  })

/** Runs another process's entry point with this environment (the CLI imports no service). */
const runScript = (path: string, args: Array<string>) => {
  const r = spawnSync(process.execPath, [join(import.meta.dirname, "../../..", path), ...args], { stdio: "inherit" })
  process.exit(r.status ?? 1)
}

const main = async (argv: Array<string>) => {
  const [group, command, ...rest] = argv
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      tenant: { type: "string" },
      mode: { type: "string" },
      public: { type: "boolean" },
      endpoint: { type: "string" },
      since: { type: "string" }
    }
  })
  switch (`${group} ${command}`) {
    case "keys create": {
      const tenant = decode(TenantId, values.tenant, "--tenant")
      const mode = decode(Mode, values.mode ?? "live", "--mode")
      const { key } = await run(createKey({ tenant, mode, kind: values.public ? "public" : "secret" }))
      process.stdout.write(`${key}\n`)
      return
    }
    case "keys list": {
      const tenant = decode(TenantId, values.tenant, "--tenant")
      for (const k of await run(listKeys(tenant))) {
        process.stdout.write(
          `${k.id}\t${k.prefix}…\t${k.mode}\t${k.kind}\t${k.created_at.toISOString()}\t${k.revoked_at ? `revoked ${k.revoked_at.toISOString()}` : "active"}\n`
        )
      }
      return
    }
    case "keys revoke": {
      const id = decode(Schema.String.check(Schema.isPattern(/^key_[0-9A-Za-z]{10,64}$/)), positionals[0], "key id")
      if (!(await run(revokeKey(id)))) fail(`no key with id ${id}`)
      process.stdout.write(`revoked ${id}\n`)
      return
    }
    case "replay endpoints":
      return runScript("services/projection/src/rebuild-main.ts", [])
    case "deliveries replay":
      return runScript("services/dispatcher/src/replay.ts", rest)
    default:
      fail(`unknown command: ${argv.join(" ")}`)
  }
}

await main(process.argv.slice(2)).catch((e: unknown) => fail(e instanceof Error ? e.message : String(e)))
