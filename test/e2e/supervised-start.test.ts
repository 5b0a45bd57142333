/**
 * `npm start` as a user runs it, with one port setting and a crash in the middle. The real start
 * script (infra/start.ts) as a child process with only `KAFKA_PORT` set, to a free port: it
 * starts a broker of its own there, and the services reach it (they dialled 9092 before), so one
 * event published to that broker is delivered to a real HTTPS receiver. Then the dispatcher is
 * killed with SIGKILL: the start script says so in one line, starts it again, and it delivers
 * the next event, while the API answered every GET meanwhile. A SIGTERM to the start script then
 * stops every service cleanly (each exits 0) and the script exits 0.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { randomBytes, randomUUID } from "node:crypto"
import { once } from "node:events"
import fs from "node:fs"
import path from "node:path"
import { promisify } from "node:util"
import { generateKeyRing } from "@orbit/crypto"
import { postgres } from "@orbit/db"
import { newEventId } from "@orbit/domain"
import { Kafka, logLevel } from "@orbit/kafka"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { bundlePath, type ServiceName } from "../../infra/bundle.ts"
import { type HttpsReceiver, makeSelfSignedCert, type SelfSignedCert, startHttpsReceiver } from "../src/HttpsReceiver.ts"
import { freePort } from "../src/freePort.ts"
import { freePortRun } from "../src/OwnKafka.ts"
import { DATABASE_URL } from "../src/Platform.ts"

const ROOT = path.join(import.meta.dirname, "..", "..")
const id = `t${Date.now().toString(36)}${randomBytes(3).toString("hex")}`
const topicPrefix = `${id}_`

let tls: SelfSignedCert
let receiver: HttpsReceiver
let kafkaPort: number
let baseUrl: string
let platform: ChildProcess
const output: Array<string> = []

const eventually = async <A>(what: string, f: () => A | undefined | false | Promise<A | undefined | false>, timeoutMs = 180_000) => {
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

/** The pid of the start script's child running `service`, from /proc (Linux). */
const servicePid = (service: ServiceName): number | undefined => {
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      if (ppid !== platform.pid) continue
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8")
      if (cmdline.includes(bundlePath(service))) return Number(entry)
    } catch {
      // The process ended while being read.
    }
  }
  return undefined
}

const brokerKafka = () => new Kafka({ clientId: "e2e-supervised-start", brokers: [`127.0.0.1:${kafkaPort}`], logLevel: logLevel.NOTHING })

beforeAll(async () => {
  tls = makeSelfSignedCert()
  receiver = await startHttpsReceiver(tls)
  // Two bindable ports (the local broker's controller listens on KAFKA_PORT + 1), outside the
  // ephemeral range: an outgoing connection's local port there once took the controller's port
  // between the check and the broker's bind ("Address already in use").
  kafkaPort = await freePortRun(2)
  const apiPort = await freePort()
  baseUrl = `http://127.0.0.1:${apiPort}`
  const { KAFKA_BROKERS: _brokers, ...inherited } = process.env
  platform = spawn(process.execPath, [path.join(ROOT, "infra", "start.ts")], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...inherited,
      // The one Kafka setting: nothing else names this port.
      KAFKA_PORT: String(kafkaPort),
      DATABASE_URL,
      ORBIT_EMBEDDED_POSTGRES: "never",
      ORBIT_DB_SCHEMA: id,
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
  // The broker this test's start launched, and its files.
  if (kafkaPort !== undefined) {
    const { KAFKA_BROKERS: _brokers, ...env } = process.env
    await promisify(execFile)(process.execPath, [path.join(ROOT, "infra", "kafka.ts"), "stop"], {
      env: { ...env, KAFKA_PORT: String(kafkaPort) }
    }).catch(() => undefined)
    for (const suffix of ["", ".properties", ".log", ".pid"]) {
      fs.rmSync(path.join(ROOT, "infra", ".data", `kafka-${kafkaPort}${suffix}`), { recursive: true, force: true })
    }
  }
  const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => undefined })
  await sql.unsafe(`DROP SCHEMA IF EXISTS "${id}" CASCADE`).catch(() => undefined)
  await sql.end()
})

describe("npm start with only KAFKA_PORT, and a service that dies", () => {
  let key: string
  let endpointId: string

  const api = async (method: string, pathname: string, body?: unknown) => {
    const res = await fetch(`${baseUrl}${pathname}`, {
      method,
      headers: { "x-api-key": key, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    return { status: res.status, json: (await res.json()) as any }
  }

  const publishAndReceive = async () => {
    const event = {
      id: newEventId(),
      type: "message.delivered",
      tenant_id: "dev", // the tenant of the key `npm start` creates
      mode: "live",
      created_at: new Date().toISOString(),
      data: { message_id: randomUUID(), channel: "sms" }
    }
    const producer = brokerKafka().producer({ allowAutoTopicCreation: false })
    await producer.connect()
    try {
      await producer.send({ topic: `${topicPrefix}orbit.events`, acks: -1, messages: [{ key: event.tenant_id, value: JSON.stringify(event) }] })
    } finally {
      await producer.disconnect()
    }
    const got = await eventually(`event ${event.id} at the HTTPS receiver`, () =>
      receiver.received.find((r) => r.headers["x-devotel-event-id"] === event.id))
    expect(JSON.parse(got.body)).toMatchObject({ id: event.id, type: "message.delivered" })
  }

  it("starts a broker on KAFKA_PORT, and the services use it: one event is delivered", async () => {
    key = await eventually("the dev API key", () => output.map((l) => /Dev API key:\s+(\S+)/.exec(l)?.[1]).find(Boolean))
    expect(key).toMatch(/^dv_live_sk_/)
    expect(output).toContainEqual(expect.stringMatching(new RegExp(`^\\[kafka\\] ready on 127\\.0\\.0\\.1:${kafkaPort} `)))
    const created = await api("POST", "/api/v1/webhooks", { url: receiver.url("/supervised"), events: ["message.delivered"] })
    expect(created.status).toBe(201)
    endpointId = created.json.data.id
    await publishAndReceive()
  })

  it("starts a killed service again, which delivers again, while the API answers every GET", async () => {
    const killed = servicePid("dispatcher")
    expect(killed).toBeDefined()

    // GETs back to back from before the kill until the dispatcher delivers again.
    let gets = 0
    const failures: Array<string> = []
    let polling = true
    const poller = (async () => {
      while (polling) {
        const res = await fetch(`${baseUrl}/api/v1/webhooks/${endpointId}`, { headers: { "x-api-key": key } }).then(
          (r) => (r.body?.cancel(), r.status === 200 ? undefined : `status ${r.status}`),
          (e: Error) => e.message
        )
        gets += 1
        if (res !== undefined) failures.push(res)
        await new Promise((r) => setTimeout(r, 20))
      }
    })()

    process.kill(killed!, "SIGKILL")
    await eventually("the start script's line on the dispatcher's exit", () =>
      output.some((l) => l === "[dispatcher] exited on its own (signal SIGKILL); starting it again in 1 s"))
    const restarted = await eventually("a new dispatcher process", () => {
      const pid = servicePid("dispatcher")
      return pid !== undefined && pid !== killed ? pid : undefined
    })
    await publishAndReceive()
    polling = false
    await poller

    expect(servicePid("dispatcher")).toBe(restarted)
    expect(gets).toBeGreaterThan(0)
    expect(failures).toEqual([])
  })

  it("stops every service cleanly on a SIGTERM to the start script, and exits 0", async () => {
    expect(platform.exitCode).toBeNull()
    const exited = once(platform, "exit")
    platform.kill("SIGTERM")
    const [code] = await exited
    expect(code).toBe(0)
    for (const service of ["projection", "registration", "dispatcher"]) {
      expect(output, output.slice(-20).join("\n")).toContain(`[${service}] exited (0)`)
    }
  })
})
