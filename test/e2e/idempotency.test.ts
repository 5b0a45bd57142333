/**
 * API.md §3 `Idempotency-Key`: simultaneous first uses of one key register exactly one endpoint
 * and all answer with the same 201; simultaneous uses with different bodies get one 201 and
 * 422s; a key is scoped to its tenant and mode. "Exactly one" is checked at all three places an
 * endpoint exists: the list API, the Postgres read model and the endpoint events in Kafka.
 * Under load (issue 17), concurrent registrations share produce requests: repeats of many keys
 * race while other registrations fill the same requests, in one wave and again in a later one,
 * and each key still has one endpoint and one answer, readable as soon as it is answered.
 */
import { topicsFor } from "@orbit/domain"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { readAll } from "../src/KafkaLog.ts"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

let platform: Platform
beforeAll(async () => {
  platform = await startPlatform()
})
afterAll(() => platform?.close())

type Res = Awaited<ReturnType<Platform["api"]>>

const BASE = "/api/v1/webhooks"
const CONCURRENT = 24
const valid = {
  url: "https://hooks.example.com/orbit",
  events: ["message.delivered", "call.completed"],
  description: "idempotent",
  retry_policy: { strategy: "exponential", max_attempts: 4 }
}

/** The ids of the endpoints registered for `tenant` (in `mode`), as seen by the API, Postgres and Kafka. */
const registeredEverywhere = async (tenant: string, key: string, mode: "live" | "test" = "live") => {
  const list = await platform.api("GET", `${BASE}?limit=200`, { key })
  expect(list.status, list.text).toBe(200)
  const rows = await platform.sql<Array<{ id: string }>>`
    SELECT id FROM endpoints WHERE tenant_id = ${tenant} AND mode = ${mode} ORDER BY id`
  const events = (await readAll(topicsFor(platform.topicPrefix).endpointEvents.name))
    .map((v) => JSON.parse(v) as { _tag: string; tenant_id: string; mode: string; endpoint_id: string })
    .filter((e) => e._tag === "EndpointRegistered" && e.tenant_id === tenant && e.mode === mode)
  return {
    api: (list.json.data as Array<{ id: string }>).map((e) => e.id).sort(),
    postgres: rows.map((r) => r.id),
    kafka: events.map((e) => e.endpoint_id).sort()
  }
}

/**
 * The bytes of the `data` member of a success envelope, exactly as sent. `meta` (request id,
 * timestamp) belongs to each response; everything before it must be the original answer.
 */
const dataText = (res: Res) => {
  const m = /^\{"data":(.*),"meta":\{"request_id":"(req_[A-Za-z0-9_-]{16})","timestamp":"[^"]+"\}\}$/s.exec(res.text)
  expect(m, res.text).not.toBeNull()
  expect(res.headers.get("x-request-id")).toBe(m![2])
  return m![1]!
}

const postAll = (key: string, idempotencyKey: string, bodies: ReadonlyArray<unknown>) =>
  Promise.all(bodies.map((body) => platform.api("POST", BASE, { key, body, headers: { "idempotency-key": idempotencyKey } })))

describe("Idempotency-Key under concurrency", () => {
  it(`${CONCURRENT} simultaneous first uses with the same body register one endpoint and all answer the same 201`, async () => {
    const tenant = uniqueTenant()
    const { key } = await platform.createKey(tenant)
    const answers = await postAll(key, "same-body-race", Array<unknown>(CONCURRENT).fill(valid))

    expect(answers.map((r) => r.status), answers.map((r) => r.text.slice(0, 200)).join("\n")).toEqual(Array(CONCURRENT).fill(201))
    const first = answers[0]!
    const id: string = first.json.data.id
    expect(id).toMatch(/^wh_/)
    expect(first.json.data).toMatchObject({ ...valid, retry_policy: { strategy: "exponential", max_attempts: 4 } })
    expect(first.json.data.signing_secret).toMatch(/^whsec_/)
    // Byte-equal answers (not merely equal once parsed): field order, secret, timestamps and all.
    const texts = new Set(answers.map(dataText))
    expect([...texts]).toEqual([dataText(first)])
    expect(new Set(answers.map((r) => r.headers.get("location")))).toEqual(new Set([`${BASE}/${id}`]))
    // Each answer is its own response: its own request id.
    expect(new Set(answers.map((r) => r.json.meta.request_id)).size).toBe(CONCURRENT)

    expect(await registeredEverywhere(tenant, key)).toEqual({ api: [id], postgres: [id], kafka: [id] })

    // A later, sequential repeat is a replay of the same answer too.
    const later = await postAll(key, "same-body-race", [valid])
    expect(later[0]!.status).toBe(201)
    expect(dataText(later[0]!)).toBe(dataText(first))
    expect(await registeredEverywhere(tenant, key)).toEqual({ api: [id], postgres: [id], kafka: [id] })
  })

  it(`${CONCURRENT} simultaneous first uses with different bodies: one 201, the others 422 VALIDATION_ERROR on Idempotency-Key`, async () => {
    const tenant = uniqueTenant()
    const { key } = await platform.createKey(tenant)
    const bodies = Array.from({ length: CONCURRENT }, (_, i) => ({ ...valid, description: `body ${i}` }))
    const answers = await postAll(key, "different-body-race", bodies)

    const created = answers.filter((r) => r.status === 201)
    const refused = answers.filter((r) => r.status !== 201)
    expect(created, answers.map((r) => `${r.status} ${r.text.slice(0, 200)}`).join("\n")).toHaveLength(1)
    for (const res of refused) {
      expect(res.status, res.text).toBe(422)
      expect(res.json.error).toMatchObject({
        code: "VALIDATION_ERROR",
        status: 422,
        details: [{ field: "Idempotency-Key", value: "different-body-race", expected: "the same request body as the first use of this key" }]
      })
      expect(res.headers.get("x-request-id")).toBe(res.json.meta.request_id)
    }
    // The endpoint registered is the winner's body, and only that one.
    const winner = answers.indexOf(created[0]!)
    const id: string = created[0]!.json.data.id
    expect(created[0]!.json.data.description).toBe(`body ${winner}`)
    expect(await registeredEverywhere(tenant, key)).toEqual({ api: [id], postgres: [id], kafka: [id] })
    const stored = await platform.api("GET", `${BASE}/${id}`, { key })
    expect(stored.json.data.description).toBe(`body ${winner}`)

    // The winner's body replays; every other body is still refused.
    const [again, loser] = await postAll(key, "different-body-race", [bodies[winner], bodies[(winner + 1) % CONCURRENT]])
    expect(again!.status).toBe(201)
    expect(dataText(again!)).toBe(dataText(created[0]!))
    expect(loser!.status).toBe(422)
    expect(loser!.json.error.code).toBe("VALIDATION_ERROR")
  })

  it("the same key from another tenant, or from the other mode of the same tenant, is independent", async () => {
    const tenantA = uniqueTenant()
    const tenantB = uniqueTenant()
    const { key: a } = await platform.createKey(tenantA)
    const { key: aTest } = await platform.createKey(tenantA, "test")
    const { key: b } = await platform.createKey(tenantB)
    const half = CONCURRENT / 2
    const bodyB = { ...valid, description: "tenant B's own body" }
    // Interleaved and simultaneous: A, B and A's test mode race for the same key.
    const [answersA, answersB, answersATest] = await Promise.all([
      postAll(a, "shared-key", Array<unknown>(half).fill(valid)),
      postAll(b, "shared-key", Array<unknown>(half).fill(bodyB)),
      postAll(aTest, "shared-key", Array<unknown>(half).fill(valid))
    ])
    const ids: Array<string> = []
    for (const [name, answers, body] of [["A", answersA, valid], ["B", answersB, bodyB], ["A test", answersATest, valid]] as const) {
      expect(answers.map((r) => r.status), `${name}: ${answers.map((r) => r.text.slice(0, 200)).join("\n")}`).toEqual(Array(half).fill(201))
      expect(new Set(answers.map(dataText)).size, name).toBe(1)
      expect(answers[0]!.json.data.description, name).toBe(body.description)
      ids.push(answers[0]!.json.data.id)
    }
    expect(new Set(ids).size).toBe(3)
    expect(await registeredEverywhere(tenantA, a)).toEqual({ api: [ids[0]], postgres: [ids[0]], kafka: [ids[0]] })
    expect(await registeredEverywhere(tenantB, b)).toEqual({ api: [ids[1]], postgres: [ids[1]], kafka: [ids[1]] })
    expect(await registeredEverywhere(tenantA, aTest, "test")).toEqual({ api: [ids[2]], postgres: [ids[2]], kafka: [ids[2]] })
  })

  it("under load: repeats of many keys, racing in shared produce requests and again in later ones, give one endpoint and one answer per key", async () => {
    const tenant = uniqueTenant()
    const { key } = await platform.createKey(tenant)
    const KEYS = 40
    const bodyOf = (i: number) => ({ ...valid, description: `keyed ${i}` })
    /** A registration; a 201 is read back at once (read-your-writes holds for every merged caller). */
    const register = async (body: unknown, idempotencyKey?: string) => {
      const res = await platform.api("POST", BASE, { key, body, headers: idempotencyKey === undefined ? {} : { "idempotency-key": idempotencyKey } })
      expect(res.status, res.text.slice(0, 300)).toBe(201)
      const read = await platform.api("GET", `${BASE}/${res.json.data.id}`, { key })
      expect(read.status, `GET right after the 201 of ${res.json.data.id}`).toBe(200)
      return res
    }
    /** Every key twice at once, among as many registrations without a key, all in flight together. */
    const wave = (label: string) =>
      Promise.all([
        Promise.all(Array.from({ length: KEYS }, (_, i) => Promise.all([register(bodyOf(i), `load-${i}`), register(bodyOf(i), `load-${i}`)]))),
        Promise.all(Array.from({ length: KEYS }, (_, i) => register({ ...valid, description: `${label} unkeyed ${i}` })))
      ])
    const [[firstKeyed, firstOthers], [secondKeyed, secondOthers]] = [await wave("first"), await wave("second")]
    const ids = firstKeyed.map(([a]) => a.json.data.id as string)
    for (let i = 0; i < KEYS; i++) {
      const answers = [...firstKeyed[i]!, ...secondKeyed[i]!]
      expect(new Set(answers.map(dataText)).size, `load-${i}`).toBe(1)
      expect(answers[0]!.json.data.description).toBe(`keyed ${i}`)
    }
    expect(new Set(ids).size).toBe(KEYS)
    const others = [...firstOthers, ...secondOthers].map((r) => r.json.data.id as string)
    const everywhere = await registeredEverywhere(tenant, key)
    const all = [...ids, ...others].sort()
    expect(new Set(all).size).toBe(3 * KEYS)
    expect(everywhere.postgres).toEqual(all)
    // One EndpointRegistered per endpoint in Kafka: no keyed repeat was appended a second time.
    expect(everywhere.kafka).toEqual(all)
  })
})
