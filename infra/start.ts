// `npm start`: a complete local platform in one command. Starts the Kafka broker if needed,
// starts an embedded PostgreSQL when there is no other (infra/postgres.ts), runs the three
// services (each migrates Postgres and creates its topics at start), creates a development API
// key, and prints the API base URL and that key. A service that exits on its own is started again
// (below); Ctrl-C or a SIGTERM to this script stops everything.
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import fs from "node:fs"
import path from "node:path"
import { generateKeyRing } from "@orbit/crypto"
import { startKafka } from "./kafka.ts"
import { ensurePostgres } from "./postgres.ts"
import { type ServiceName, serviceArgs, serviceEnv } from "./services.ts"

const ROOT = path.join(import.meta.dirname, "..")
const DATA = path.join(import.meta.dirname, ".data")
const PORT = Number(process.env.PORT ?? 8080)
const base = `http://127.0.0.1:${PORT}`

// A development key ring, kept across restarts so stored secrets stay decryptable.
// Production sets ORBIT_SECRET_KEYS itself.
if (!process.env.ORBIT_SECRET_KEYS) {
  const file = path.join(DATA, "dev-secret-keys")
  fs.mkdirSync(DATA, { recursive: true })
  if (!fs.existsSync(file)) fs.writeFileSync(file, generateKeyRing("dev1"), { mode: 0o600 })
  process.env.ORBIT_SECRET_KEYS = fs.readFileSync(file, "utf8").trim()
}

// A missing tool or a Postgres that cannot start ends here with its one-line reason.
const fail = (prefix: string) => (e: unknown): never => {
  process.stderr.write(`[${prefix}] ${e instanceof Error ? e.message : String(e)}\n`)
  process.exit(1)
}
await startKafka().catch(fail("kafka"))
const postgresServer = await ensurePostgres().catch(fail("postgres"))
if (postgresServer.message) process.stdout.write(`${postgresServer.message}\n`)
if (postgresServer.url) process.env.DATABASE_URL = postgresServer.url

// Supervision: a service that exits on its own (a crash, an out-of-memory kill, a signal sent to
// it alone) is started again after a backoff that doubles from 1 s to 30 s, and starts over at
// 1 s once the service has run for a minute; each exit is one line naming the service, how it
// ended and when it starts again. Only a stop of this script (Ctrl-C, SIGTERM) stops the services.
const FIRST_BACKOFF_MS = 1_000
const MAX_BACKOFF_MS = 30_000
const HEALTHY_AFTER_MS = 60_000
const STOP_TIMEOUT_MS = 30_000

interface Supervised {
  child: ChildProcess | undefined
  startedAt: number
  backoffMs: number
  restart: NodeJS.Timeout | undefined
}
const services = new Map<ServiceName, Supervised>()

const run = (name: ServiceName) => {
  const child = spawn(process.execPath, serviceArgs(name), { stdio: ["ignore", "pipe", "pipe"], env: serviceEnv(process.env) })
  const prefix = (chunk: Buffer) =>
    chunk.toString().split("\n").filter(Boolean).map((l) => `[${name}] ${l}\n`).join("")
  child.stdout!.on("data", (c: Buffer) => process.stdout.write(prefix(c)))
  child.stderr!.on("data", (c: Buffer) => process.stderr.write(prefix(c)))
  const state = services.get(name) ?? { child, startedAt: 0, backoffMs: FIRST_BACKOFF_MS, restart: undefined }
  services.set(name, state)
  state.child = child
  state.startedAt = Date.now()
  child.on("exit", (code, signal) => {
    state.child = undefined
    const how = signal ? `signal ${signal}` : `code ${code}`
    if (stopping) {
      process.stderr.write(`[${name}] exited (${signal ?? code})\n`)
      return
    }
    if (Date.now() - state.startedAt >= HEALTHY_AFTER_MS) state.backoffMs = FIRST_BACKOFF_MS
    const delay = state.backoffMs
    state.backoffMs = Math.min(delay * 2, MAX_BACKOFF_MS)
    process.stderr.write(`[${name}] exited on its own (${how}); starting it again in ${delay / 1000} s\n`)
    state.restart = setTimeout(() => {
      state.restart = undefined
      if (!stopping) run(name)
    }, delay)
  })
}

let stopping = false
const shutdown = (code: number) => {
  if (stopping) return
  stopping = true
  const running: Array<ChildProcess> = []
  for (const state of services.values()) {
    clearTimeout(state.restart)
    if (state.child) running.push(state.child)
  }
  for (const c of running) c.kill("SIGTERM")
  // The dispatcher hands its in-flight deliveries DISPATCHER_SHUTDOWN_GRACE_MS (20 s by default) to
  // finish; a service still running after that and its commits is killed, and the stop is not clean.
  setTimeout(() => {
    for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
    process.exit(1)
  }, STOP_TIMEOUT_MS).unref()
  // Postgres stops after the services, so none of them loses its database while shutting down.
  Promise.all(running.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.on("exit", r)))))
    .then(() => postgresServer.stop())
    .then(() => process.exit(code))
}
process.on("SIGINT", () => shutdown(0))
process.on("SIGTERM", () => shutdown(0))

run("projection")
run("registration")
run("dispatcher")

// Wait until the API is ready, then mint a development key.
const deadline = Date.now() + 60_000
while (Date.now() < deadline) {
  const ready = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(3000) }).then((r) => r.ok, () => false)
  if (ready) break
  await new Promise((r) => setTimeout(r, 250))
}
const key = spawnSync(
  process.execPath,
  [path.join(ROOT, "packages/cli/src/main.ts"), "keys", "create", "--tenant", "dev"],
  { encoding: "utf8", env: process.env }
)
process.stdout.write(
  `\nOrbit Webhooks is running.\n  API base URL:  ${base}/api/v1/webhooks\n  API docs:      ${base}/api/v1/docs\n` +
    `  Dev API key:   ${key.stdout.trim() || `(could not create: ${key.stderr.trim()})`}\n\n`
)
