// `npm start`: a complete local platform in one command. Starts the Kafka broker if needed,
// starts an embedded PostgreSQL when there is no other (infra/postgres.ts), runs the three
// services (each migrates Postgres and creates its topics at start), creates a development API
// key, and prints the API base URL and that key. Ctrl-C stops everything.
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import fs from "node:fs"
import path from "node:path"
import { generateKeyRing } from "@orbit/crypto"
import { startKafka } from "./kafka.ts"
import { ensurePostgres } from "./postgres.ts"
import { type ServiceName, serviceArgs } from "./services.ts"

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

const children: Array<ChildProcess> = []
const run = (name: ServiceName) => {
  const child = spawn(process.execPath, serviceArgs(name), { stdio: ["ignore", "pipe", "pipe"], env: process.env })
  const prefix = (chunk: Buffer) =>
    chunk.toString().split("\n").filter(Boolean).map((l) => `[${name}] ${l}\n`).join("")
  child.stdout!.on("data", (c: Buffer) => process.stdout.write(prefix(c)))
  child.stderr!.on("data", (c: Buffer) => process.stderr.write(prefix(c)))
  child.on("exit", (code, signal) => {
    process.stderr.write(`[${name}] exited (${signal ?? code})\n`)
    if (!stopping) shutdown(1)
  })
  children.push(child)
}

let stopping = false
const shutdown = (code: number) => {
  if (stopping) return
  stopping = true
  for (const c of children) c.kill("SIGTERM")
  setTimeout(() => process.exit(code), 10_000).unref()
  // Postgres stops after the services, so none of them loses its database while shutting down.
  Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.on("exit", r)))))
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
