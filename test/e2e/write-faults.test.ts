/**
 * Issue 17, nothing lost under faults: a burst of registrations with 64 in flight, each with its
 * own Idempotency-Key, meets a kill -9 of the Kafka broker, or Postgres connections dropped under
 * the services. Afterwards every 201 is readable, and retrying every request that did not get a
 * 201 with its Idempotency-Key yields exactly one endpoint per key (the read model, and the answers).
 *
 * A frozen broker (SIGSTOP past the produce timeout) makes the outcome unknown: the API answers
 * 503 while the records may still be written once the broker resumes, so a retry must append the
 * same registration, not a second one.
 *
 * The broker tests kill or freeze a broker of their own (on a free port in 21000–21499, its own data directory,
 * the jars `infra/kafka.ts` resolved), so the run's shared broker is never touched.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { once } from "node:events"
import fs from "node:fs"
import net from "node:net"
import os from "node:os"
import path from "node:path"
import { Kafka, logLevel } from "@orbit/kafka"
import { afterAll, describe, expect, it } from "vitest"
import { newClusterId } from "../../infra/kafka.ts"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

const BASE = "/api/v1/webhooks"
const IN_FLIGHT = 64
const REGISTRATIONS = 320

const platforms: Array<Platform> = []
const brokersToStop: Array<OwnBroker> = []
afterAll(async () => {
  for (const p of platforms) await p.close()
  for (const b of brokersToStop) await b.close()
})

// --- a broker of this file's own ------------------------------------------------------------

const INFRA = path.resolve(import.meta.dirname, "../../infra")
const listenable = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = net.createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/** A port in 21000–21499 whose successor (the controller's) is free too. */
const freeBrokerPort = async () => {
  for (let i = 0; i < 200; i++) {
    const port = 21000 + 2 * Math.floor(Math.random() * 249)
    if ((await listenable(port)) && (await listenable(port + 1))) return port
  }
  throw new Error("no free port pair in 21000–21499")
}

interface OwnBroker {
  readonly brokers: string
  /** SIGSTOP: the broker holds every connection open and answers nothing until `resume`. */
  freeze(): void
  resume(): void
  kill9(): Promise<void>
  start(): Promise<void>
  close(): Promise<void>
}

const startOwnBroker = async (): Promise<OwnBroker> => {
  const version = /<kafka\.version>(.+?)<\/kafka\.version>/.exec(fs.readFileSync(path.join(INFRA, "kafka", "pom.xml"), "utf8"))![1]!
  const lib = path.join(INFRA, ".kafka", `lib-${version}`)
  // The run's globalSetup started the shared broker, which resolved these jars.
  expect(fs.existsSync(path.join(lib, ".complete")), `${lib} holds the Kafka jars`).toBe(true)
  const port = await freeBrokerPort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "orbit-write-faults-"))
  const props = path.join(dir, "kafka.properties")
  fs.writeFileSync(props, [
    fs.readFileSync(path.join(INFRA, "kafka", "server.properties"), "utf8"),
    `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${port + 1}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
    `controller.quorum.voters=1@127.0.0.1:${port + 1}`,
    `log.dirs=${path.join(dir, "log")}`
  ].join("\n") + "\n")
  const jvm = ["-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]
  const format = spawnSync("java", ["-cp", `${lib}/*`, ...jvm, "kafka.tools.StorageTool", "format", "--config", props, "--cluster-id", newClusterId()], {
    encoding: "utf8"
  })
  expect(format.status, `${format.stdout}${format.stderr}`).toBe(0)
  const brokers = `127.0.0.1:${port}`
  let child: ChildProcess | undefined

  const answers = async () => {
    const admin = new Kafka({ clientId: "write-faults-probe", brokers: [brokers], connectionTimeout: 1000, requestTimeout: 2000, retry: { retries: 0 }, logLevel: logLevel.NOTHING }).admin()
    try {
      await admin.connect()
      await admin.describeCluster()
      return true
    } catch {
      return false
    } finally {
      await admin.disconnect().catch(() => undefined)
    }
  }
  const start = async () => {
    const log = fs.openSync(path.join(dir, "kafka.log"), "a")
    child = spawn("java", ["-cp", `${lib}/*`, ...jvm, "kafka.Kafka", props], { stdio: ["ignore", log, log] })
    fs.closeSync(log)
    const deadline = Date.now() + 120_000
    while (!(await answers())) {
      if (child.exitCode !== null) throw new Error(`own broker exited: ${fs.readFileSync(path.join(dir, "kafka.log"), "utf8").slice(-3000)}`)
      if (Date.now() > deadline) throw new Error("own broker did not answer within 120 s")
      await new Promise((r) => setTimeout(r, 250))
    }
  }
  const kill9 = async () => {
    const c = child
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    const exited = once(c, "exit")
    c.kill("SIGKILL")
    await exited
  }
  await start()
  const broker = {
    brokers,
    freeze: () => void child?.kill("SIGSTOP"),
    resume: () => void child?.kill("SIGCONT"),
    kill9,
    start,
    close: async () => {
      await kill9()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
  brokersToStop.push(broker)
  return broker
}

// --- the burst ------------------------------------------------------------------------------

const bodyOf = (i: number) => ({ url: "https://93.184.216.34/write-faults", events: ["message.delivered"], description: `registration ${i}` })

interface Answer { readonly status: number; readonly id?: string; readonly secret?: string }

const post = async (platform: Platform, key: string, i: number): Promise<Answer> => {
  try {
    const res = await fetch(`${platform.baseUrl}${BASE}`, {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "application/json", "idempotency-key": `burst-${i}` },
      body: JSON.stringify(bodyOf(i)),
      // A request the service never answers counts as not answered 201 (and is retried).
      signal: AbortSignal.timeout(60_000)
    })
    const json = await res.json().catch(() => undefined) as { data?: { id: string; signing_secret: string } } | undefined
    return { status: res.status, id: json?.data?.id, secret: json?.data?.signing_secret }
  } catch {
    return { status: 0 }
  }
}

/** REGISTRATIONS POSTs, IN_FLIGHT at a time; `fault.run` starts once `fault.after` have been answered. */
const burst = async (platform: Platform, key: string, fault: { after: number; run: (answered: () => number) => Promise<void> }) => {
  const answers = new Array<Answer>(REGISTRATIONS)
  let next = 0
  let answered = 0
  let faulted: Promise<void> | undefined
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < REGISTRATIONS) {
      const i = next++
      answers[i] = await post(platform, key, i)
      if (++answered === fault.after) faulted = fault.run(() => answered)
    }
  }))
  await faulted
  return answers
}

/**
 * Retries every non-201 with its own Idempotency-Key until it is answered 201, then checks that
 * every key has exactly one endpoint: the ids answered are distinct, each is readable, and the
 * tenant's read model holds exactly those, one per body.
 */
const retryAndCheck = async (platform: Platform, tenant: string, key: string, answers: Array<Answer>) => {
  const failed = answers.flatMap((a, i) => (a.status === 201 ? [] : [i]))
  let cursor = 0
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (cursor < failed.length) {
      const i = failed[cursor++]!
      await platform.waitFor(`a retry of burst-${i} to be answered 201`, async () => {
        const a = await post(platform, key, i)
        if (a.status === 201) answers[i] = a
        return a.status === 201
      }, 180_000)
    }
  }))
  const ids = answers.map((a) => a.id!)
  expect(ids.every((id) => /^wh_/.test(id))).toBe(true)
  expect(new Set(ids).size).toBe(REGISTRATIONS)
  // A repeat of every key now replays its answer: the same id and secret, whichever request got it first.
  for (let i = 0; i < REGISTRATIONS; i += 1) {
    const again = await post(platform, key, i)
    expect(again.status, `burst-${i}`).toBe(201)
    expect(again.id, `burst-${i}`).toBe(answers[i]!.id)
    expect(again.secret, `burst-${i}`).toBe(answers[i]!.secret)
    const read = await platform.api("GET", `${BASE}/${again.id}`, { key })
    expect(read.status, `GET ${again.id}`).toBe(200)
    expect(read.json.data.description).toBe(`registration ${i}`)
  }
  // Every id was read above, so the projection has applied them; no key has a second endpoint.
  const rows = await platform.sql<Array<{ id: string; description: string }>>`
    SELECT id, description FROM endpoints WHERE tenant_id = ${tenant} ORDER BY id`
  expect(rows.map((r) => r.id)).toEqual([...ids].sort())
  expect(new Set(rows.map((r) => r.description)).size).toBe(REGISTRATIONS)
  return failed.length
}

describe("write path under faults (issue 17)", () => {
  it.skipIf(process.env.KAFKA_BROKERS !== undefined)(
    `kill -9 of the broker during a burst of ${REGISTRATIONS} registrations, ${IN_FLIGHT} in flight: no 201 is lost, a retry per key gives one endpoint`,
    async () => {
      const broker = await startOwnBroker()
      const platform = await startPlatform({ env: { KAFKA_BROKERS: broker.brokers, ORBIT_RATE_LIMIT_PER_SECOND: "1000000" } })
      platforms.push(platform)
      const tenant = uniqueTenant()
      const { key } = await platform.createKey(tenant)
      const answers = await burst(platform, key, {
        after: IN_FLIGHT,
        // Killed while the burst's requests are in flight; back once the others have been answered.
        run: () => broker.kill9()
      })
      await broker.start()
      const retried = await retryAndCheck(platform, tenant, key, answers)
      // The fault happened during the burst: some requests did not get a 201 the first time.
      expect(retried).toBeGreaterThan(0)
    },
    600_000
  )

  it.skipIf(process.env.KAFKA_BROKERS !== undefined)(
    `a broker frozen past the produce timeout during a burst of ${REGISTRATIONS} registrations: 503s of unknown outcome, a retry per key gives one endpoint`,
    async () => {
      const broker = await startOwnBroker()
      const platform = await startPlatform({ env: { KAFKA_BROKERS: broker.brokers, ORBIT_RATE_LIMIT_PER_SECOND: "1000000" } })
      platforms.push(platform)
      const tenant = uniqueTenant()
      const { key } = await platform.createKey(tenant)
      const answers = await burst(platform, key, {
        after: IN_FLIGHT,
        // Frozen until a whole round of requests has been answered (503 after the produce
        // timeout); the records queued meanwhile are written once it resumes.
        run: async (answered) => {
          broker.freeze()
          try {
            const until = answered() + IN_FLIGHT
            await platform.waitFor("a round of requests to be answered while the broker is frozen", async () => answered() >= until, 180_000)
          } finally {
            broker.resume()
          }
        }
      })
      const retried = await retryAndCheck(platform, tenant, key, answers)
      expect(retried).toBeGreaterThan(0)
    },
    600_000
  )

  it(
    `Postgres connections dropped during a burst of ${REGISTRATIONS} registrations, ${IN_FLIGHT} in flight: no 201 is lost, a retry per key gives one endpoint`,
    async () => {
      const platform = await startPlatform({ env: { ORBIT_RATE_LIMIT_PER_SECOND: "1000000" } })
      platforms.push(platform)
      const tenant = uniqueTenant()
      const { key } = await platform.createKey(tenant)
      const dropAll = () =>
        platform.sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE application_name IN (${`${platform.id}-registration`}, ${`${platform.id}-projection`})`
      const answers = await burst(platform, key, {
        after: IN_FLIGHT,
        // Dropped again and again (each pool reconnects on demand) while the next 2 × IN_FLIGHT
        // requests are answered.
        run: async (answered) => {
          const until = answered() + 2 * IN_FLIGHT
          while (answered() < Math.min(until, REGISTRATIONS)) {
            await dropAll()
            await new Promise((r) => setTimeout(r, 20))
          }
        }
      })
      // postgres.js 3.4.9 can throw from a timer when a connection closes under a pending write
      // (porsager/postgres#1154, #1208), which ends the process; a supervisor would start it again.
      // Both services are restarted, whether or not one crashed: what must hold is that nothing
      // answered 201 is lost and that a retry per key gives one endpoint, across a restart too.
      const crashed = (["registration", "projection"] as const).filter((name) =>
        (platform.logs.get(name) ?? []).some((line) => line.startsWith("Node.js v")))
      if (crashed.length > 0) process.stderr.write(`write-faults: ${crashed.join(", ")} crashed on a dropped connection\n`)
      for (const name of ["registration", "projection"] as const) {
        await platform.stop(name)
        platform.start(name)
      }
      await platform.ready()
      const retried = await retryAndCheck(platform, tenant, key, answers)
      expect(retried).toBeGreaterThan(0)
    },
    600_000
  )
})
