/**
 * The CLI as a person runs it, where no database or broker is needed: every command has `--help`,
 * the CLI has `--version` and shell completions, a bad invocation exits 2 with one line saying
 * what was wrong and where the help is, and a Postgres that cannot be reached exits 1 with one line.
 */
import { readFileSync } from "node:fs"
import { createServer } from "node:net"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { orbit } from "./cli.ts"

const VERSION = JSON.parse(readFileSync(join(import.meta.dirname, "..", "package.json"), "utf8")).version

/** A local port nothing listens on: bound once by us, then released. */
const closedPort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })

describe("orbit --help, --version, --completions", () => {
  it.concurrent.each([
    { path: [], shows: ["keys", "secrets", "rebuild", "replay", "deliveries", "trigger", "tail"] },
    { path: ["secrets"], shows: ["reseal"] },
    { path: ["secrets", "reseal"], shows: ["ORBIT_SECRET_KEYS", "bound to its endpoint", "can be run again"] },
    { path: ["keys"], shows: ["create", "list", "revoke"] },
    { path: ["keys", "create"], shows: ["--tenant", "--mode", "--public"] },
    { path: ["keys", "list"], shows: ["--tenant"] },
    { path: ["keys", "revoke"], shows: ["key-id"] },
    { path: ["rebuild"], shows: ["endpoints"] },
    { path: ["rebuild", "endpoints"], shows: ["offset 0"] },
    { path: ["replay"], shows: ["Deprecated", "rebuild"] },
    { path: ["replay", "endpoints"], shows: ["Deprecated", "rebuild endpoints"] },
    { path: ["deliveries"], shows: ["replay"] },
    { path: ["deliveries", "replay"], shows: ["--endpoint", "--since"] },
    { path: ["trigger"], shows: ["event-type", "--tenant", "--mode", "--data", "message.delivered", "webhook.test"] },
    { path: ["tail"], shows: ["--tenant", "--endpoint", "Ctrl-C"] }
  ])("orbit $path --help exits 0 and describes the command on stdout", async ({ path, shows }) => {
    const r = await orbit([...path, "--help"])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`USAGE\n  ${["orbit", ...path].join(" ")}`)
    for (const s of shows) expect(r.stdout).toContain(s)
  })

  it.concurrent("--version prints the CLI's version", async () => {
    const r = await orbit(["--version"])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe(`orbit v${VERSION}\n`)
  })

  it.concurrent.each(["bash", "zsh", "fish"])("--completions %s prints a completion script naming the commands", async (shell) => {
    const r = await orbit(["--completions", shell])
    expect(r.code, r.stderr).toBe(0)
    for (const command of ["keys", "trigger", "tail", "--tenant"]) expect(r.stdout).toContain(command)
  })
})

describe("orbit, bad invocations", () => {
  it.concurrent.each([
    { args: [], says: "missing command after `npm run orbit --`" },
    { args: ["keys"], says: "missing command after `npm run orbit -- keys`" },
    { args: ["keys", "rotate"], says: "unknown command: keys rotate" },
    { args: ["keys", "lst"], says: "unknown command: keys lst (did you mean list?)" },
    { args: ["trigerr", "message.sent"], says: "unknown command: trigerr (did you mean trigger?)" },
    { args: ["keys", "create"], says: "Missing required flag: --tenant" },
    { args: ["keys", "create", "--tenant", "acme", "--mode", "staging"], says: `Invalid value for flag --mode: "staging"` },
    { args: ["keys", "list", "--tenant", "acme", "--verbose"], says: "Unrecognized flag: --verbose" },
    { args: ["keys", "revoke", "dv_live_sk_notanid"], says: `Invalid value for argument <key-id>: "dv_live_sk_notanid"` },
    { args: ["trigger", "message.sent"], says: "Missing required flag: --tenant" },
    { args: ["trigger", "--tenant", "acme"], says: "Missing required argument: event-type" },
    { args: ["tail", "--since", "1h"], says: "Unrecognized flag: --since" }
  ])("orbit $args exits 2 with one line saying $says and where the help is", async ({ args, says }) => {
    const r = await orbit(args)
    expect(r.code).toBe(2)
    expect(r.stdout).toBe("")
    const lines = r.stderr.trimEnd().split("\n")
    expect(lines, r.stderr).toHaveLength(1)
    expect(lines[0]).toContain(says)
    expect(lines[0]).toMatch(/; see `npm run orbit -- [a-z ]*--help`$/)
  })
})

describe("orbit, Postgres unreachable", () => {
  it.concurrent("exits 1 with one line naming DATABASE_URL (password hidden) and the cause", async () => {
    const port = await closedPort()
    const r = await orbit(["keys", "list", "--tenant", "acme"], {
      DATABASE_URL: `postgres://postgres:hunter2@127.0.0.1:${port}/postgres`
    })
    expect(r.code).toBe(1)
    expect(r.stdout).toBe("")
    expect(r.stderr).toBe(
      `cannot reach or migrate Postgres at DATABASE_URL (postgres://postgres:***@127.0.0.1:${port}/postgres): connect ECONNREFUSED 127.0.0.1:${port}\n`
    )
  })

  it.concurrent("keys create prints no key when nothing could be stored", async () => {
    const port = await closedPort()
    const r = await orbit(["keys", "create", "--tenant", "acme"], { DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/postgres` })
    expect(r.code).toBe(1)
    expect(r.stdout).toBe("")
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1)
  })
})
