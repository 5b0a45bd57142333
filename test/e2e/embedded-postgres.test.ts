/**
 * `npm start` where no Postgres is installed. The real start script
 * (infra/start.ts, what `npm start` runs) as a child process, forced onto an embedded PostgreSQL
 * (ORBIT_EMBEDDED_POSTGRES=always) on a free port with its data in a temporary directory, so the
 * machine's own Postgres is never touched: register → deliver to a real HTTPS receiver → list,
 * then the embedded server stops with the platform. Then the choice itself (infra/postgres.ts) on
 * free ports: auto, always and never.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes, randomUUID } from "node:crypto"
import { once } from "node:events"
import fs from "node:fs"
import net from "node:net"
import os from "node:os"
import path from "node:path"
import { generateKeyRing } from "@orbit/crypto"
import { newEventId } from "@orbit/domain"
import { Kafka, logLevel } from "@orbit/kafka"
import { postgres } from "@orbit/db"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { brokers, tcpOpen } from "../../infra/kafka.ts"
import { ensurePostgres } from "../../infra/postgres.ts"
import { type HttpsReceiver, makeSelfSignedCert, type SelfSignedCert, startHttpsReceiver } from "../src/HttpsReceiver.ts"
import { freePort } from "../src/freePort.ts"

const ROOT = path.join(import.meta.dirname, "..", "..")

const id = `t${Date.now().toString(36)}${randomBytes(3).toString("hex")}`
const topicPrefix = `${id}_`
// Under the system temp dir (not a private mkdtemp folder): as root, Postgres runs as the
// `postgres` user, which must reach its data directory.
const dataDir = path.join(os.tmpdir(), `orbit-embedded-pg-${id}`)
const kafka = new Kafka({ clientId: "e2e-embedded-postgres", brokers: brokers(), logLevel: logLevel.NOTHING })

let tls: SelfSignedCert
let receiver: HttpsReceiver
let pgPort: number
let baseUrl: string
let platform: ChildProcess
const output: Array<string> = []

const eventually = async <A>(what: string, f: () => A | undefined | false | Promise<A | undefined | false>, timeoutMs = 120_000) => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await f()
    if (v !== undefined && v !== false) return v
    if (platform.exitCode !== null || Date.now() > deadline) {
      throw new Error(`${platform.exitCode !== null ? "npm start exited" : "timed out"} waiting for ${what}\n${output.slice(-40).join("\n")}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}

beforeAll(async () => {
  tls = makeSelfSignedCert()
  receiver = await startHttpsReceiver(tls)
  pgPort = await freePort()
  const apiPort = await freePort()
  baseUrl = `http://127.0.0.1:${apiPort}`
  platform = spawn(process.execPath, [path.join(ROOT, "infra", "start.ts")], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      // "always" replaces DATABASE_URL; were it used, this one answers nothing, so the platform
      // could never run on the machine's own Postgres instead.
      DATABASE_URL: "postgres://postgres@127.0.0.1:1/nowhere",
      ORBIT_EMBEDDED_POSTGRES: "always",
      ORBIT_EMBEDDED_POSTGRES_PORT: String(pgPort),
      ORBIT_EMBEDDED_POSTGRES_DIR: dataDir,
      PORT: String(apiPort),
      ORBIT_TOPIC_PREFIX: topicPrefix,
      ORBIT_SECRET_KEYS: generateKeyRing("test1"),
      ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8",
      ORBIT_EXTRA_CA_FILE: tls.caFile,
      LOG_LEVEL: "Warn",
      KAFKAJS_NO_PARTITIONER_WARNING: "1"
    }
  })
  const collect = (chunk: Buffer) => output.push(...chunk.toString().split("\n").filter(Boolean))
  platform.stdout!.on("data", collect)
  platform.stderr!.on("data", collect)
})

afterAll(async () => {
  if (platform && platform.exitCode === null && platform.signalCode === null) {
    const exited = once(platform, "exit")
    platform.kill("SIGTERM")
    await exited
  }
  await receiver?.close()
  tls?.cleanup()
  const admin = kafka.admin()
  await admin.connect()
  const mine = (await admin.listTopics()).filter((t) => t.startsWith(topicPrefix))
  if (mine.length > 0) await admin.deleteTopics({ topics: mine }).catch(() => undefined)
  await admin.disconnect()
  fs.rmSync(dataDir, { recursive: true, force: true })
  fs.rmSync(`${dataDir}.log`, { force: true })
})

describe("npm start on an embedded PostgreSQL", () => {
  let key: string

  it("starts the embedded server, says so in one line, and the platform comes up on it", async () => {
    key = await eventually("the dev API key", () => output.map((l) => /Dev API key:\s+(\S+)/.exec(l)?.[1]).find(Boolean))
    expect(key).toMatch(/^dv_live_sk_/)
    const said = output.filter((l) => l.includes("embedded PostgreSQL"))
    expect(said).toEqual([
      expect.stringMatching(new RegExp(`^\\[postgres\\] ORBIT_EMBEDDED_POSTGRES=always: started an embedded PostgreSQL on 127\\.0\\.0\\.1:${pgPort} \\(data in ${dataDir},`))
    ])
    expect(fs.existsSync(path.join(dataDir, "PG_VERSION"))).toBe(true)
  })

  it("registers, delivers and lists, with the services' data in the embedded server", async () => {
    const api = async (method: string, pathname: string, body?: unknown) => {
      const res = await fetch(`${baseUrl}${pathname}`, {
        method,
        headers: { "x-api-key": key, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
      return { status: res.status, json: (await res.json()) as any }
    }
    const created = await api("POST", "/api/v1/webhooks", { url: receiver.url("/embedded"), events: ["message.delivered"] })
    expect(created.status).toBe(201)
    const endpointId = created.json.data.id as string

    const event = {
      id: newEventId(),
      type: "message.delivered",
      tenant_id: "dev", // the tenant of the key `npm start` creates
      mode: "live",
      created_at: new Date().toISOString(),
      data: { message_id: randomUUID(), channel: "sms" }
    }
    const producer = kafka.producer({ allowAutoTopicCreation: false })
    await producer.connect()
    await producer.send({ topic: `${topicPrefix}orbit.events`, acks: -1, messages: [{ key: event.tenant_id, value: JSON.stringify(event) }] })
    await producer.disconnect()

    const got = await eventually("the webhook at the HTTPS receiver", () =>
      receiver.received.find((r) => r.headers["x-devotel-event-id"] === event.id))
    expect(got.path).toBe("/embedded")
    expect(JSON.parse(got.body)).toMatchObject({ id: event.id, type: "message.delivered", data: event.data })

    const listed = await api("GET", "/api/v1/webhooks")
    expect(listed.status).toBe(200)
    expect(listed.json.data.map((e: { id: string }) => e.id)).toEqual([endpointId])
    const attempts = await eventually("the attempt in GET /deliveries", async () => {
      const res = await api("GET", `/api/v1/webhooks/${endpointId}/deliveries`)
      return res.status === 200 && res.json.data.length > 0 ? res.json.data : undefined
    })
    expect(attempts).toEqual([expect.objectContaining({ event_id: event.id, outcome: "succeeded", http_status: 200 })])

    // The rows live in the embedded server the start script launched, not in any other Postgres.
    const sql = postgres(`postgres://postgres@127.0.0.1:${pgPort}/postgres`, { max: 1, onnotice: () => undefined })
    try {
      const rows = await sql<Array<{ endpoint_id: string }>>`SELECT endpoint_id FROM orbit.delivery_attempts`
      expect(rows.map((r) => r.endpoint_id)).toEqual([endpointId])
    } finally {
      await sql.end()
    }
  })

  it("stops the embedded server with the platform", async () => {
    if (platform.exitCode === null) {
      const exited = once(platform, "exit")
      platform.kill("SIGTERM")
      await exited
    }
    expect(platform.exitCode).toBe(0)
    // A clean shutdown removes postmaster.pid; the port no longer answers.
    expect(fs.existsSync(path.join(dataDir, "postmaster.pid"))).toBe(false)
    expect(await tcpOpen("127.0.0.1", pgPort)).toBe(false)
  })
})

describe("ORBIT_EMBEDDED_POSTGRES chooses where Postgres comes from", () => {
  const tempDir = () => path.join(os.tmpdir(), `orbit-embedded-pg-${id}-${randomBytes(3).toString("hex")}`)
  const dirs: Array<string> = []
  afterAll(() => {
    for (const dir of dirs) {
      fs.rmSync(dir, { recursive: true, force: true })
      fs.rmSync(`${dir}.log`, { force: true })
    }
  })
  const envFor = async (extra: Record<string, string>) => {
    const dir = tempDir()
    dirs.push(dir)
    return { dir, env: { ORBIT_EMBEDDED_POSTGRES_PORT: String(await freePort()), ORBIT_EMBEDDED_POSTGRES_DIR: dir, ...extra } }
  }

  it("auto, with nothing on the port and no DATABASE_URL: starts one, says so, stops it", async () => {
    const { dir, env } = await envFor({})
    const port = env.ORBIT_EMBEDDED_POSTGRES_PORT
    const result = await ensurePostgres(env)
    try {
      expect(result.url).toBe(`postgres://postgres@127.0.0.1:${port}/postgres`)
      expect(result.message).toMatch(new RegExp(`^\\[postgres\\] no DATABASE_URL and nothing on 127\\.0\\.0\\.1:${port}: started an embedded PostgreSQL`))
      const sql = postgres(result.url!, { max: 1, onnotice: () => undefined })
      expect(await sql`SELECT 1 AS one`.finally(() => sql.end())).toEqual([{ one: 1 }])
      expect(fs.existsSync(path.join(dir, "PG_VERSION"))).toBe(true)
    } finally {
      await result.stop()
    }
    expect(await tcpOpen("127.0.0.1", Number(port))).toBe(false)
  })

  it("auto, with DATABASE_URL set: uses it and starts nothing", async () => {
    const { dir, env } = await envFor({ DATABASE_URL: "postgres://someone@db.example:5432/orbit" })
    expect(await ensurePostgres(env)).toEqual({ url: "postgres://someone@db.example:5432/orbit", stop: expect.any(Function) })
    expect(fs.existsSync(dir)).toBe(false)
  })

  it("auto, with a server answering on the port: uses it and starts nothing", async () => {
    const { dir, env } = await envFor({})
    const server = net.createServer((socket) => socket.destroy()).listen(Number(env.ORBIT_EMBEDDED_POSTGRES_PORT), "127.0.0.1")
    await once(server, "listening")
    try {
      const result = await ensurePostgres(env)
      expect(result).toEqual({ url: `postgres://postgres@127.0.0.1:${env.ORBIT_EMBEDDED_POSTGRES_PORT}/postgres`, stop: expect.any(Function) })
    } finally {
      server.close()
    }
    expect(fs.existsSync(dir)).toBe(false)
  })

  it("never: starts nothing, even with nothing anywhere", async () => {
    const { dir, env } = await envFor({ ORBIT_EMBEDDED_POSTGRES: "never" })
    expect(await ensurePostgres(env)).toEqual({ url: undefined, stop: expect.any(Function) })
    expect(fs.existsSync(dir)).toBe(false)
  })

  it("always, on a taken port: one line asking for another port", async () => {
    const { env } = await envFor({ ORBIT_EMBEDDED_POSTGRES: "always" })
    const server = net.createServer((socket) => socket.destroy()).listen(Number(env.ORBIT_EMBEDDED_POSTGRES_PORT), "127.0.0.1")
    await once(server, "listening")
    await expect(ensurePostgres(env)).rejects.toThrow(
      `cannot start the embedded PostgreSQL: port ${env.ORBIT_EMBEDDED_POSTGRES_PORT} is in use (set ORBIT_EMBEDDED_POSTGRES_PORT to a free port)`
    ).finally(() => server.close())
  })

  it("a value other than auto, always or never is refused", async () => {
    await expect(ensurePostgres({ ORBIT_EMBEDDED_POSTGRES: "sometimes" })).rejects.toThrow(
      'ORBIT_EMBEDDED_POSTGRES must be auto, always or never (got "sometimes")'
    )
  })
})
