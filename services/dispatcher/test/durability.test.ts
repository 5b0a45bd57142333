/**
 * Crash durability: the dispatcher runs as a real process (src/main.ts) and is killed with
 * SIGKILL while a retry is scheduled; a new process makes that retry, not earlier than planned.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { BROKERS, domainEvent, type Harness, makeCert, makeHarness, type Receiver, startReceiver, waitFor, waitForGroupCaughtUp } from "./support.ts"

const ROOT = join(import.meta.dirname, "../../..")
const NODE = join(ROOT, "node_modules/.bin/node")

let tls: ReturnType<typeof makeCert>
let receiver: Receiver
let h: Harness
const children: Array<ChildProcess> = []
const output = new Map<ChildProcess, () => string>()

const startChild = async (): Promise<ChildProcess> => {
  const child = spawn(NODE, [join(ROOT, "services/dispatcher/src/main.ts")], {
    env: {
      ...process.env,
      KAFKA_BROKERS: BROKERS,
      ORBIT_TOPIC_PREFIX: h.prefix,
      ORBIT_SECRET_KEYS: h.keyRing,
      ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8",
      ORBIT_EXTRA_CA_FILE: tls.caFile,
      DISPATCHER_SESSION_TIMEOUT_MS: "6000",
      LOG_LEVEL: "Info"
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.push(child)
  let out = ""
  child.stdout!.on("data", (d: Buffer) => { out += d.toString() })
  child.stderr!.on("data", () => undefined)
  output.set(child, () => out)
  await waitFor("dispatcher process started", () => out.includes("delivery worker started") && out.includes("fan-out started"), 30_000)
  return child
}

beforeAll(async () => {
  tls = makeCert()
  receiver = await startReceiver(tls)
  h = await makeHarness("durability")
})

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL")
  await h?.close()
  await receiver?.close()
  tls?.cleanup()
})

describe("crash durability", () => {
  it("kill -9 while a retry is scheduled: a new process makes it, never early", async () => {
    const first = await startChild()
    await h.startCollector()
    let calls = 0
    receiver.on("/durable", (_req, res) => {
      calls++
      res.writeHead(calls === 1 ? 500 : 200).end()
    })
    const t = `ten_${randomUUID()}`
    const endpoint = await h.register({
      url: `https://127.0.0.1:${receiver.port}/durable`,
      tenantId: t,
      retryPolicy: { strategy: "custom", delays_seconds: [8] }
    })
    await h.publish(domainEvent(t))
    const failed = await waitFor("first attempt", () => h.attempts.find((a) => a.endpoint_id === endpoint.id), 20_000)
    expect(failed.outcome).toBe("failed")
    const due = Date.parse(failed.next_attempt_at!)
    // Killed only once the source event and the first task are committed: otherwise the new
    // process would fan out or attempt again, which is at-least-once, not what this test is about.
    await waitForGroupCaughtUp(h, "orbit-dispatcher-fanout", h.topics.sourceEvents.name)
    await waitForGroupCaughtUp(h, "orbit-dispatcher-delivery", h.topics.deliveries.name)
    first.kill("SIGKILL")
    await new Promise((r) => first.once("exit", r))

    const second = await startChild()
    await waitFor("the retry", () => h.attempts.find((a) => a.endpoint_id === endpoint.id && a.outcome === "succeeded"), 40_000)
    const got = receiver.received.filter((r) => r.path === "/durable")
    expect(got).toHaveLength(2)
    expect(got[1]!.at).toBeGreaterThanOrEqual(due)
    expect(got[1]!.at - got[0]!.at).toBeGreaterThanOrEqual(8000)

    // SIGTERM: stops taking work, commits, leaves the group, exits (runMain's interrupt exit code).
    // A process that does not exit fails the test at its timeout.
    const exited = new Promise<number | null>((r) => second.once("exit", (code) => r(code)))
    second.kill("SIGTERM")
    await exited
    expect(output.get(second)!()).toContain("delivery worker stopping")
  })
})
