/**
 * The CLI as a person runs it, where no database is needed: a bad invocation exits 2 with what was
 * wrong and the usage, and a Postgres that cannot be reached exits 1 with one line that says so.
 */
import { createServer } from "node:net"
import { describe, expect, it } from "vitest"
import { orbit } from "./cli.ts"

const USAGE = "usage: npm run orbit -- <command>"

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

describe("orbit, bad invocations", () => {
  it.concurrent.each([
    { args: [], says: "unknown command: " },
    { args: ["keys", "rotate"], says: "unknown command: keys rotate" },
    { args: ["keys", "create"], says: "invalid --tenant" },
    { args: ["keys", "create", "--tenant", "acme", "--mode", "staging"], says: `invalid --mode: "staging"` },
    { args: ["keys", "list", "--tenant", "acme", "--verbose"], says: "Unknown option '--verbose'" },
    { args: ["keys", "revoke", "dv_live_sk_notanid"], says: `invalid key id: "dv_live_sk_notanid"` }
  ])("orbit $args exits 2 saying $says, with the usage", async ({ args, says }) => {
    const r = await orbit(args)
    expect(r.code).toBe(2)
    expect(r.stdout).toBe("")
    expect(r.stderr.split("\n")[0]).toContain(says)
    expect(r.stderr).toContain(USAGE)
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
