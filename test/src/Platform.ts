import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes, randomUUID } from "node:crypto"
import { once } from "node:events"
import { mkdirSync, writeFileSync } from "node:fs"
import { Orbit } from "@orbit/client"
import { generateApiKey, generateKeyRing } from "@orbit/crypto"
import { newEventId, topicsFor } from "@orbit/domain"
import { Kafka, type KafkajsProducer, logLevel } from "@orbit/kafka"
import { postgres } from "@orbit/db"
import { brokers } from "../../infra/kafka.ts"
import { type ServiceName, serviceArgs, serviceEnv } from "../../infra/services.ts"
import { freePort } from "./freePort.ts"

export const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

export type { ServiceName }

/** Extra node flags for every service process, for diagnostics (e.g. "--trace-gc" or "--cpu-prof"). */
const serviceNodeArgs = process.env.TEST_SERVICE_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? []

/** The services' log level: warnings and errors, unless TEST_SERVICE_LOG_LEVEL says otherwise (e.g. "Debug" to chase a flaky test). */
const serviceLogLevel = process.env.TEST_SERVICE_LOG_LEVEL ?? "Warn"

/**
 * A real deployment of the platform for one test file: its own Postgres schema and Kafka topic
 * prefix (so files never see each other's data), services as real child processes (so tests
 * can kill -9 and restart them), talking to the real broker and database.
 */
export const startPlatform = async (options: {
  services?: ReadonlyArray<ServiceName>
  env?: Record<string, string>
  /** The Kafka bootstrap servers (default: the run's broker); e.g. a broker of the test's own, which it may kill. */
  brokers?: ReadonlyArray<string>
} = {}) => {
  const id = `t${Date.now().toString(36)}${randomBytes(3).toString("hex")}`
  const port = await freePort()
  const kafkaBrokers = [...(options.brokers ?? brokers())]
  // What every process of the platform starts with, the services' malloc settings included (a test
  // spawning a service of its own from `env` gets them too).
  const env: Record<string, string> = {
    ...(serviceEnv(process.env) as Record<string, string>),
    ...(options.brokers === undefined ? {} : { KAFKA_BROKERS: kafkaBrokers.join(",") }),
    DATABASE_URL,
    ORBIT_DB_SCHEMA: id,
    ORBIT_TOPIC_PREFIX: `${id}_`,
    ORBIT_SECRET_KEYS: generateKeyRing("test1"),
    PORT: String(port),
    LOG_LEVEL: serviceLogLevel,
    KAFKAJS_NO_PARTITIONER_WARNING: "1",
    ...options.env
  }
  // A broker list of the test's own names a cluster other than KAFKA_PORT's: the inherited port
  // would disagree with it (a start-up error), so it goes unless the test sets it too.
  if ((options.brokers !== undefined || options.env?.KAFKA_BROKERS !== undefined) && options.env?.KAFKA_PORT === undefined) {
    delete env.KAFKA_PORT
  }
  const baseUrl = `http://127.0.0.1:${port}`
  const sql = postgres(DATABASE_URL, { max: 4, onnotice: () => undefined, connection: { search_path: id } })
  const processes = new Map<ServiceName, ChildProcess>()
  // Each service's own `/metrics` port (the registration serves it on its API port too), picked
  // now so parallel platforms never collide; a restarted service keeps its port.
  const metricsPorts = new Map<ServiceName, number>()
  for (const name of ["registration", "projection", "dispatcher"] as const) metricsPorts.set(name, await freePort())
  const logs = new Map<ServiceName, Array<string>>()

  /** Starts a service; `extraEnv` overrides the platform's settings for this process only. */
  const start = (name: ServiceName, extraEnv: Record<string, string> = {}) => {
    const child = spawn(process.execPath, serviceArgs(name, serviceNodeArgs), {
      // Each service's Postgres sessions are named after the run and the service (pg_stat_activity).
      env: { ...env, PGAPPNAME: `${id}-${name}`, ORBIT_METRICS_PORT: String(metricsPorts.get(name)), ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"]
    })
    const lines = logs.get(name) ?? []
    logs.set(name, lines)
    const collect = (chunk: Buffer) => lines.push(...chunk.toString().split("\n").filter(Boolean))
    child.stdout!.on("data", collect)
    child.stderr!.on("data", collect)
    processes.set(name, child)
    return child
  }

  const stop = async (name: ServiceName, signal: NodeJS.Signals = "SIGTERM") => {
    const child = processes.get(name)
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, "exit")
    child.kill(signal)
    await exited
  }

  /** Where Prometheus scrapes a service: the registration on its API port, the others on their metrics port. */
  const metricsUrl = (name: ServiceName) =>
    name === "registration" ? `${baseUrl}/metrics` : `http://127.0.0.1:${metricsPorts.get(name)}/metrics`

  /**
   * Every service's whole log, written to `test/output/logs/<platform id>/`: a wait that times out
   * names these files, so a failure that shows once leaves its evidence. Returns the folder.
   */
  const keepLogs = () => {
    const dir = new URL(`../output/logs/${id}/`, import.meta.url)
    mkdirSync(dir, { recursive: true })
    for (const [name, lines] of logs) writeFileSync(new URL(`${name}.log`, dir), lines.join("\n") + "\n")
    return dir.pathname
  }

  /**
   * Polls `f` until it gives a value (not undefined or false) and returns it; fails naming `what`,
   * with the services' last log lines (their whole logs are kept, see `keepLogs`).
   */
  const eventually = async <A>(what: string, f: () => A | undefined | false | Promise<A | undefined | false>, timeoutMs = 60_000): Promise<A> => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const v = await f()
      if (v !== undefined && v !== false) return v
      if (Date.now() > deadline) {
        const kept = keepLogs()
        throw new Error(
          `timed out waiting for ${what} (whole logs in ${kept})\n${[...logs].map(([n, l]) => `--- ${n}\n${l.slice(-30).join("\n")}`).join("\n")}`
        )
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  /** Waits until `check` resolves true; a check that throws counts as not yet. */
  const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> => {
    await eventually(what, () => check().catch(() => false), timeoutMs)
  }

  const ready = (timeoutMs = 60_000) =>
    waitFor("/readyz", async () => (await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(5000) })).ok, timeoutMs)

  const services = options.services ?? ["projection", "registration"]
  for (const name of services) start(name)
  if (services.includes("registration")) await ready()

  /** Creates an API key straight in the keys table, as `orbit keys create` does. */
  const createKey = async (tenant: string, mode: "live" | "test" = "live", kind: "secret" | "public" = "secret") => {
    const { key, hash, prefix } = generateApiKey({ mode, kind })
    const keyId = `key_${randomBytes(10).toString("hex")}`
    await sql`INSERT INTO api_keys (id, tenant_id, mode, kind, key_hash, prefix)
      VALUES (${keyId}, ${tenant}, ${mode}, ${kind}, ${hash}, ${prefix})`
    return { key, keyId }
  }

  const api = async (
    method: string,
    pathname: string,
    options: { key?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {}
  ) => {
    const headers: Record<string, string> = { ...options.headers }
    if (options.key !== undefined) headers["x-api-key"] = options.key
    let body: string | undefined = options.rawBody
    if (options.body !== undefined) {
      body = JSON.stringify(options.body)
      headers["content-type"] ??= "application/json"
    }
    const res = await fetch(`${baseUrl}${pathname}`, { method, headers, ...(body === undefined ? {} : { body }) })
    const text = await res.text()
    return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined, text }
  }

  /**
   * The typed client (`@orbit/client`) for an API key: for the calls a test makes to set up or
   * follow a normal flow. A test of wire behaviour (statuses, headers, raw bodies, hostile input)
   * uses `api` instead.
   */
  const client = (key: string) => new Orbit({ apiKey: key, baseUrl })

  /**
   * Waits until the projection has applied a topic (`endpointEvents` or `attempts`) up to its end
   * as of this call: its stored offsets reach the end offsets read now, so every record published
   * before the call is in the read model. A check that something did NOT reach the read model
   * waits on this (after a sentinel write), never on a sleep.
   */
  const projectionCaughtUp = async (topic: "endpointEvents" | "attempts", timeoutMs = 60_000) => {
    const name = topicsFor(`${id}_`)[topic].name
    const admin = new Kafka({ clientId: "e2e-projection-caught-up", brokers: kafkaBrokers, logLevel: logLevel.NOTHING }).admin()
    await admin.connect()
    const ends = await admin.fetchTopicOffsets(name).finally(() => admin.disconnect())
    await waitFor(`the projection to reach the end of ${name}`, async () => {
      const stored = new Map(
        (await sql<Array<{ partition: number; next_offset: string }>>`
          SELECT partition, next_offset FROM projection_offsets WHERE topic = ${name}`).map((r) => [r.partition, BigInt(r.next_offset)])
      )
      return ends.every((p) => (stored.get(p.partition) ?? 0n) >= BigInt(p.offset))
    }, timeoutMs)
  }

  /**
   * How many times `table` of this run's schema has been scanned (sequential plus index scans), a
   * measure of the queries that reached it. A Postgres session publishes its table statistics
   * lazily (up to seconds later) but always when it ends, so every session of this run's services
   * is ended first, not only the one that queries the table: whichever service won the migration
   * lock at start holds the migrations' scans (each CREATE INDEX or CHECK constraint scans the
   * table once), which would otherwise land in a later reading. pg_terminate_backend waits for the
   * sessions to exit, and the services' pools open new ones on demand. Call it while no request is
   * in flight.
   */
  const tableScans = async (table: string) => {
    await sql`SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name LIKE ${`${id}-%`}`
    const [row] = await sql<Array<{ scans: string }>>`
      SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS scans FROM pg_stat_user_tables WHERE schemaname = ${id} AND relname = ${table}`
    return Number(row?.scans ?? 0)
  }

  let producer: Promise<KafkajsProducer> | undefined
  /**
   * Publishes one domain event as an upstream producer does (this run's `orbit.events`, keyed by
   * tenant id, acknowledged by all replicas, with `headers` on the record) and returns its id.
   */
  const publish = async (
    tenantId: string,
    options: { readonly type?: string; readonly id?: string; readonly headers?: Record<string, string> } = {}
  ) => {
    producer ??= (async () => {
      const p = new Kafka({ clientId: `e2e-${id}`, brokers: kafkaBrokers, logLevel: logLevel.NOTHING }).producer({ allowAutoTopicCreation: false })
      await p.connect()
      return p
    })()
    const event = {
      id: options.id ?? newEventId(),
      type: options.type ?? "message.delivered",
      tenant_id: tenantId,
      mode: "live",
      created_at: new Date().toISOString(),
      data: { message_id: randomUUID(), channel: "sms" }
    }
    await (await producer).send({ topic: `${id}_orbit.events`, acks: -1, messages: [{ key: tenantId, value: JSON.stringify(event), ...(options.headers === undefined ? {} : { headers: options.headers }) }] })
    return event.id
  }

  /** Stops the services, then removes this run's schema and topics so runs never pile up. */
  const close = async () => {
    await producer?.then((p) => p.disconnect()).catch(() => undefined)
    await Promise.all([...processes.keys()].map((n) => stop(n)))
    await sql.unsafe(`DROP SCHEMA IF EXISTS "${id}" CASCADE`).catch(() => undefined)
    await sql.end()
    const admin = new Kafka({ clientId: "e2e-cleanup", brokers: kafkaBrokers, logLevel: logLevel.NOTHING }).admin()
    await admin.connect().then(async () => {
      const mine = (await admin.listTopics()).filter((t) => t.startsWith(`${id}_`))
      if (mine.length > 0) await admin.deleteTopics({ topics: mine })
    }).catch(() => undefined)
    await admin.disconnect().catch(() => undefined)
  }

  return { id, env, brokers: kafkaBrokers, baseUrl, metricsUrl, sql, start, stop, ready, waitFor, eventually, projectionCaughtUp, createKey, tableScans, publish, api, client, logs, close, topicPrefix: `${id}_` }
}

export type Platform = Awaited<ReturnType<typeof startPlatform>>

export const uniqueTenant = () => `tenant_${randomBytes(6).toString("hex")}`
