/**
 * `orbit trigger` against the real broker (topics of this file's own prefix): the event it prints
 * the id of is on the source topic, well-formed, keyed by tenant; an unknown type or bad `--data`
 * exits 2 and publishes nothing (a sentinel trigger after them is the only other record).
 */
import { DomainEventJson, EVENT_TYPE_EXAMPLES } from "@orbit/domain"
import { Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { orbit } from "./cli.ts"
import { platformTopics, readAll } from "./kafka.ts"

const decodeEvent = Schema.decodeUnknownSync(DomainEventJson)

describe("orbit trigger (real broker)", () => {
  let kafka: Awaited<ReturnType<typeof platformTopics>>
  let env: Record<string, string>
  const printed: Array<string> = []

  beforeAll(async () => {
    kafka = await platformTopics("tclitrig")
    env = { ORBIT_TOPIC_PREFIX: kafka.prefix }
  })
  afterAll(() => kafka?.drop())

  /** Runs a trigger that must succeed; returns the id it printed (stdout is that id alone). */
  const trigger = async (args: Array<string>) => {
    const r = await orbit(["trigger", ...args], env)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^evt_[0-9a-f]{32}\n$/)
    const id = r.stdout.trim()
    printed.push(id)
    return id
  }

  const sourceEvents = async () => (await readAll(kafka.topics.sourceEvents.name)).map((r) => ({ key: r.key, event: decodeEvent(r.value) }))

  it("publishes one well-formed event with the catalog's example data and prints its id", async () => {
    const id = await trigger(["message.delivered", "--tenant", "acme"])
    const onTopic = (await sourceEvents()).filter((r) => r.event.id === id)
    expect(onTopic).toHaveLength(1)
    const { key, event } = onTopic[0]!
    expect(key).toBe("acme")
    expect(event).toEqual({
      id,
      type: "message.delivered",
      tenant_id: "acme",
      mode: "live",
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/),
      data: EVENT_TYPE_EXAMPLES["message.delivered"]
    })
  })

  it("publishes --data and --mode test as given", async () => {
    const id = await trigger(["contact.updated", "--tenant", "acme", "--mode", "test", "--data", `{"contact_id":"ct_9","changed":["name"]}`])
    const [record] = (await sourceEvents()).filter((r) => r.event.id === id)
    expect(record?.event).toMatchObject({ type: "contact.updated", mode: "test", data: { contact_id: "ct_9", changed: ["name"] } })
  })

  it("an unknown type or invalid --data exits 2 with one line and publishes nothing", async () => {
    const cases: Array<[Array<string>, string]> = [
      [["message.exploded", "--tenant", "acme"], `unknown event type: "message.exploded"`],
      [["*", "--tenant", "acme"], `unknown event type: "*"`],
      [["message.sent", "--tenant", "acme", "--data", "{not json"], "invalid --data: not JSON"],
      [["message.sent", "--tenant", "acme", "--data", "[1,2]"], "invalid --data: must be a JSON object"],
      [["message.sent", "--tenant", "acme", "--data", "null"], "invalid --data: must be a JSON object"],
      [["message.sent", "--tenant", "bad tenant!"], "--tenant"],
      [["message.sent", "--tenant", "acme", "--mode", "staging"], "--mode"]
    ]
    const results = []
    for (const [args] of cases) results.push(await orbit(["trigger", ...args], env))
    // The sentinel comes after every refused trigger: by the time it is on the topic, anything they
    // had published would be too. The topic holds exactly the events whose ids were printed.
    const sentinel = await trigger(["webhook.test", "--tenant", "acme"])
    const ids = (await sourceEvents()).map((r) => r.event.id)
    expect(ids).toContain(sentinel)
    expect(ids.sort()).toEqual([...printed].sort())

    for (const [i, [args, says]] of cases.entries()) {
      const r = results[i]!
      expect(r.code, args.join(" ")).toBe(2)
      expect(r.stdout).toBe("")
      const lines = r.stderr.trimEnd().split("\n")
      expect(lines, r.stderr).toHaveLength(1)
      expect(lines[0]).toContain(says)
    }
  })
})
