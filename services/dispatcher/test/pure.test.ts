/** Pure building blocks: no broker, no network. */
import { DEFAULT_RETRY_POLICY, type DeliveryTask, encodeDeliveryAttempted, encodeDeliveryTask, type Endpoint, type EndpointEvent } from "@orbit/domain"
import { replayTask } from "../src/dead-letters/DeadLetterReplay.ts"
import { decodeIndexOffsets, IndexedEndpoints, INDEX_OFFSETS_HEADER } from "../src/endpoints/EndpointIndex.ts"
import { attemptedJson, taskJson } from "../src/RecordJson.ts"
import { fanOutBatch } from "../src/fan-out/FanOut.ts"
import { afterEach, describe, expect, it, vi } from "vitest"
import { Deferred, KeyedLimiter, SHED } from "../src/delivery/KeyedLimiter.ts"
import { parseRetryAfter, planAfterAttempt } from "../src/retry/RetrySchedule.ts"
import { classifySourceRecord } from "../src/fan-out/SourceRecord.ts"
import { buildWebhookBody } from "../src/fan-out/WebhookBody.ts"


describe("KeyedLimiter", () => {
  it("bounds per key and overall, and lets other keys pass a saturated one", async () => {
    const limiter = new KeyedLimiter({ global: 3, perKey: 2 })
    const release: Array<() => void> = []
    const order: Array<string> = []
    const job = (name: string) => () => new Promise<void>((r) => { order.push(name); release.push(r) })
    const all = [
      limiter.run("slow", job("s1")), limiter.run("slow", job("s2")), limiter.run("slow", job("s3")),
      limiter.run("fast", job("f1")), limiter.run("fast", job("f2"))
    ]
    await new Promise((r) => setTimeout(r, 0))
    expect(order).toEqual(["s1", "s2", "f1"])
    expect(limiter.active).toBe(3)
    release[2]!() // f1 done: f2 goes before s3 (slow is at its own limit)
    await new Promise((r) => setTimeout(r, 0))
    expect(order).toEqual(["s1", "s2", "f1", "f2"])
    release[0]!()
    await new Promise((r) => setTimeout(r, 0))
    expect(order).toEqual(["s1", "s2", "f1", "f2", "s3"])
    for (const r of release) r()
    await Promise.all(all)
    expect(limiter.active).toBe(0)
  })

  it("sheds an unresponsive key's waiting and new jobs while one probes it, and restores its share when it answers", async () => {
    const limiter = new KeyedLimiter({ global: 10, perKey: 2 })
    const release: Array<() => void> = []
    const started: Array<string> = []
    const job = (name: string) => () => new Promise<string>((r) => { started.push(name); release.push(() => r(name)) })
    const first = [1, 2, 3, 4].map((i) => limiter.run("dead", job(`d${i}`)))
    const other = limiter.run("live", job("l1"))
    await new Promise((r) => setTimeout(r, 0))
    expect(started).toEqual(["d1", "d2", "l1"]) // d3, d4 wait for the key's two slots
    limiter.setResponsive("dead", false) // d1 timed out: the waiting d3 and d4 are shed
    expect(await first[2]).toBe(SHED)
    expect(await first[3]).toBe(SHED)
    expect(await limiter.run("dead", job("d5"))).toBe(SHED) // d1/d2 still probing: shed at once
    release[0]!()
    release[1]!()
    expect(await first[0]).toBe("d1")
    expect(await first[1]).toBe("d2")
    const probe = limiter.run("dead", job("d6")) // nothing in flight: d6 is the probe
    await new Promise((r) => setTimeout(r, 0))
    expect(await limiter.run("dead", job("d7"))).toBe(SHED)
    limiter.setResponsive("dead", true) // it answered: two at a time again
    const after = [8, 9].map((i) => limiter.run("dead", job(`d${i}`)))
    await new Promise((r) => setTimeout(r, 0))
    expect(started).toEqual(["d1", "d2", "l1", "d6", "d8"]) // d6 and d8 fill the two slots; d9 waits
    for (const r of release.slice(2)) r()
    await new Promise((r) => setTimeout(r, 0))
    expect(started).toContain("d9")
    for (const r of release) r()
    expect(await Promise.all([probe, ...after, other])).toEqual(["d6", "d8", "d9", "l1"])
    expect(limiter.active).toBe(0)
  })
})

describe("KeyedLimiter.runIfReady (the fan-out's attempt without the task-topic hop)", () => {
  it("runs a job only when it may start at once, passing nobody who waits", async () => {
    const limiter = new KeyedLimiter({ global: 3, perKey: 2, groupReserve: 0 })
    const release: Array<() => void> = []
    const job = () => new Promise<string>((r) => release.push(() => r("done")))
    const a1 = limiter.runIfReady("a", job)
    const a2 = limiter.runIfReady("a", job)
    expect(a1).toBeInstanceOf(Promise)
    expect(a2).toBeInstanceOf(Promise)
    expect(limiter.runIfReady("a", job)).toBeUndefined() // the key is at its limit
    const queued = limiter.run("a", job) // waits for a slot of "a"
    const b1 = limiter.runIfReady("b", job)
    expect(b1).toBeInstanceOf(Promise)
    expect(limiter.runIfReady("c", job)).toBeUndefined() // no global slot left
    expect(limiter.active).toBe(3)
    release[0]!() // a1 ends: its slot goes to the job waiting for "a", not to a newcomer
    expect(await a1).toBe("done")
    expect(limiter.active).toBe(3)
    expect(limiter.runIfReady("a", job)).toBeUndefined()
    expect(limiter.runIfReady("paced", job, { ratePerSecond: 100 })).toBeUndefined() // paced keys always queue
    limiter.pauseUntil("d", Date.now() + 60_000)
    for (const r of release.splice(0)) r()
    await Promise.all([a2, b1])
    await new Promise((r) => setTimeout(r, 0))
    for (const r of release.splice(0)) r()
    expect(await queued).toBe("done")
    expect(limiter.runIfReady("d", job)).toBeUndefined() // paused by a Retry-After
    expect(limiter.active).toBe(0)
  })

  it("keeps a group's reserve: a tenant at its cap queues", () => {
    const limiter = new KeyedLimiter({ global: 4, perKey: 4, groupReserve: 2 })
    const job = () => new Promise<void>(() => undefined)
    expect(limiter.runIfReady("a", job, { group: "t1" })).toBeInstanceOf(Promise)
    expect(limiter.runIfReady("b", job, { group: "t1" })).toBeInstanceOf(Promise)
    expect(limiter.runIfReady("c", job, { group: "t1" })).toBeUndefined()
    expect(limiter.runIfReady("d", job, { group: "t2" })).toBeInstanceOf(Promise)
  })
})

describe("KeyedLimiter across tenants", () => {
  const tick = () => new Promise((r) => setTimeout(r, 0))

  it("starts another tenant's job at once while one tenant's many slow keys want every slot", async () => {
    const limiter = new KeyedLimiter({ global: 256, perKey: 8 })
    const release: Array<() => void> = []
    const slow = () => new Promise<void>((r) => release.push(r))
    const a = Array.from({ length: 2_000 }, (_, i) => limiter.run(`a${i}`, slow, { group: "A" }))
    await tick()
    let started = false
    const b = limiter.run("b", async () => { started = true }, { group: "B" })
    await tick()
    expect(started).toBe(true)
    expect(limiter.activeIn("A")).toBe(224) // the reserve (an eighth) stays free for other tenants
    await b
    while (limiter.active > 0) {
      for (const r of release.splice(0)) r()
      await tick()
    }
    await Promise.all(a)
    expect(limiter.active).toBe(0)
  })

  it("gives a freed slot to the tenant with the fewest running jobs until both hold their fair share", async () => {
    const limiter = new KeyedLimiter({ global: 8, perKey: 1, groupReserve: 2 })
    const release = new Map<string, () => void>()
    const running: Array<string> = [] // in start order
    const job = (name: string) => () => new Promise<void>((r) => { running.push(name); release.set(name, () => { running.splice(running.indexOf(name), 1); r() }) })
    const all = Array.from({ length: 20 }, (_, i) => limiter.run(`a${i}`, job(`a${i}`), { group: "A" }))
    await tick()
    expect([limiter.activeIn("A"), limiter.activeIn("B")]).toEqual([6, 0])
    all.push(...Array.from({ length: 20 }, (_, i) => limiter.run(`b${i}`, job(`b${i}`), { group: "B" })))
    await tick()
    expect([limiter.activeIn("A"), limiter.activeIn("B")]).toEqual([6, 2]) // B takes the reserve at once
    const shares: Array<[number, number]> = []
    for (let n = 0; n < 12; n++) {
      release.get(running[0]!)!() // the oldest job ends, whichever tenant's
      await tick()
      shares.push([limiter.activeIn("A"), limiter.activeIn("B")])
    }
    // A's freed slots go to B (fewer running) until each holds half; from then on each keeps it.
    expect(shares.slice(0, 2)).toEqual([[5, 3], [4, 4]])
    for (const share of shares.slice(2)) expect(share).toEqual([4, 4])
    while (running.length > 0) {
      release.get(running[0]!)!()
      await tick()
    }
    await Promise.all(all)
    expect(limiter.active).toBe(0)
  })
})

describe("KeyedLimiter pacing", () => {
  afterEach(() => vi.useRealTimers())

  it("starts a paced key's jobs at most `rate` per second, without a slot while waiting, and defers past the horizon", async () => {
    vi.useFakeTimers()
    const t0 = Date.now()
    const limiter = new KeyedLimiter({ global: 1, perKey: 8, horizonMs: 5_000 })
    const starts: Array<number> = []
    const paced = Array.from({ length: 30 }, () => limiter.run("paced", async () => { starts.push(Date.now()) }, { ratePerSecond: 5 }))
    let other = false
    await limiter.run("other", async () => { other = true }) // the one global slot is free: no paced job holds it
    expect(other).toBe(true)
    await vi.advanceTimersByTimeAsync(10_000)
    const results = await Promise.all(paced)
    const deferred = results.filter((r) => r instanceof Deferred)
    expect(deferred.length).toBe(30 - 25) // starts 0.2 … 5 s away wait; the later ones are deferred
    // …to come back one by one at the pace, after the last one that waited.
    expect(deferred.map((d) => (d as Deferred).until - t0)).toEqual([5_200, 5_400, 5_600, 5_800, 6_000])
    expect(starts.length).toBe(25)
    expect(starts[0]).toBe(t0 + 200) // never paced here before: another process may have just sent one
    for (let i = 5; i < starts.length; i++) expect(starts[i]! - starts[i - 5]!).toBeGreaterThanOrEqual(1_000)
    expect(limiter.active).toBe(0)
    await vi.advanceTimersByTimeAsync(10_000)
    const at = async () => { let s = 0; const p = limiter.run("paced", async () => { s = Date.now() }, { ratePerSecond: 5 }); await vi.advanceTimersByTimeAsync(1_000); await p; return s }
    let t = Date.now()
    expect(await at()).toBe(t) // its pace history says the key may start at once
    await vi.advanceTimersByTimeAsync(10_000)
    limiter.restartPacing() // a rebalance: the key's partition may have been elsewhere meanwhile
    t = Date.now()
    expect(await at()).toBe(t + 200)
  })

  it("starts a paced key's job `rate` starts after another only a second after that one ended", async () => {
    vi.useFakeTimers()
    const t0 = Date.now()
    const limiter = new KeyedLimiter({ global: 8, perKey: 8 })
    const starts: Array<number> = []
    // Each request lasts `took` (it may reach the receiver at any point of that): the sixth may
    // start only a second after the first ended, not a second after the first started.
    const took = 500
    const slow = () => limiter.run("paced", () => new Promise<void>((r) => { starts.push(Date.now()); setTimeout(r, took) }), { ratePerSecond: 5 })
    const all = Array.from({ length: 7 }, slow)
    await vi.advanceTimersByTimeAsync(5_000)
    await Promise.all(all)
    expect(starts.map((t) => t - t0)).toEqual([200, 400, 600, 800, 1_000, 1_700, 1_900])
  })

  it("holds a paused key (Retry-After) until the pause ends while other keys run", async () => {
    vi.useFakeTimers()
    const t0 = Date.now()
    const limiter = new KeyedLimiter({ global: 4, perKey: 4 })
    limiter.pauseUntil("busy", t0 + 3_000)
    let startedAt: number | undefined
    const held = limiter.run("busy", async () => { startedAt = Date.now() })
    let other = false
    await limiter.run("free", async () => { other = true })
    expect(other).toBe(true)
    await vi.advanceTimersByTimeAsync(2_999)
    expect(startedAt).toBeUndefined()
    await vi.advanceTimersByTimeAsync(1)
    await held
    expect(startedAt).toBe(t0 + 3_000)
    limiter.pauseUntil("busy", Date.now() + 60_000)
    const far = await limiter.run("busy", async () => "ran")
    expect(far).toBeInstanceOf(Deferred)
    expect((far as Deferred).until).toBe(Date.now() + 60_000)
  })
})

describe("retry schedule", () => {
  const task: DeliveryTask = {
    _tag: "DeliveryTask", schema_version: 1, event_id: "e", occurred_at: "2026-01-01T00:00:00.000Z",
    delivery_id: "d", endpoint_id: "wh_x", tenant_id: "t", mode: "live", source_event_id: "evt_1",
    source_event_type: "message.sent", body: "{}", attempt: 1, not_before: "2026-01-01T00:00:00.000Z"
  }
  const failure = { ok: false, httpStatus: 500, durationMs: 12, errorClass: "http_status" as const, errorMessage: "HTTP 500", retryAfterSeconds: undefined }
  let n = 0
  const newId = () => `id${n++}`

  it("schedules the next attempt per policy, never early", () => {
    const plan = planAfterAttempt({ task, policy: DEFAULT_RETRY_POLICY, result: failure, now: 1_000_000, random: 0.99, newId })
    expect(plan.retry?.attempt).toBe(2)
    const at = Date.parse(plan.retry!.not_before)
    expect(at).toBeGreaterThanOrEqual(1_000_000 + 60_000)
    expect(at).toBeLessThanOrEqual(1_000_000 + 66_000)
    expect(plan.attempted).toMatchObject({ attempt: 1, outcome: "failed", dead_lettered: false, next_attempt_at: plan.retry!.not_before })
    expect(plan.dead).toBeUndefined()
  })

  it("dead-letters after the last attempt and records success without a retry", () => {
    const last = planAfterAttempt({ task: { ...task, attempt: 7 }, policy: DEFAULT_RETRY_POLICY, result: failure, now: 0, random: 0, newId })
    expect(last.retry).toBeUndefined()
    expect(last.dead).toMatchObject({ attempts: 7, last_http_status: 500, body: "{}" })
    expect(last.attempted.dead_lettered).toBe(true)
    const ok = planAfterAttempt({ task, policy: DEFAULT_RETRY_POLICY, result: { ...failure, ok: true, httpStatus: 200, errorClass: null }, now: 0, random: 0, newId })
    expect(ok.retry).toBeUndefined()
    expect(ok.dead).toBeUndefined()
    expect(ok.attempted.outcome).toBe("succeeded")
  })

  it("keeps an addressed delivery addressed in its retry, its dead letter and the replay of that", () => {
    const addressed = { ...task, addressed: true as const, source_event_type: "webhook.test" }
    const first = planAfterAttempt({ task: addressed, policy: { strategy: "fixed", max_attempts: 2, delay_seconds: 1 }, result: failure, now: 0, random: 0, newId })
    expect(first.retry?.addressed).toBe(true)
    const last = planAfterAttempt({ task: first.retry!, policy: { strategy: "fixed", max_attempts: 2, delay_seconds: 1 }, result: failure, now: 0, random: 0, newId })
    expect(last.dead?.addressed).toBe(true)
    expect(replayTask(last.dead!, 0, newId).addressed).toBe(true)
    expect(encodeDeliveryTask(first.retry!)).toBe(taskJson(first.retry!))
    // Not addressed: no field at all, so such records are byte-for-byte what they were before it existed.
    expect(planAfterAttempt({ task: { ...task, attempt: 7 }, policy: DEFAULT_RETRY_POLICY, result: failure, now: 0, random: 0, newId }).dead).not.toHaveProperty("addressed")
  })

  it("a single attempt (once) ends with its outcome: no retry, no dead letter, whatever the policy", () => {
    const once = { ...task, attempt: 3, once: true as const }
    const failed = planAfterAttempt({ task: once, policy: DEFAULT_RETRY_POLICY, result: failure, now: 0, random: 0, newId })
    expect(failed.retry).toBeUndefined()
    expect(failed.dead).toBeUndefined()
    expect(failed.attempted).toMatchObject({ attempt: 3, outcome: "failed", next_attempt_at: null, dead_lettered: false })
    expect(encodeDeliveryTask(once)).toBe(taskJson(once))
  })

  it("the first attempt of a chain carries the body (and addressed) into the attempt log; later ones do not", () => {
    const first = planAfterAttempt({ task: { ...task, addressed: true as const }, policy: DEFAULT_RETRY_POLICY, result: failure, now: 0, random: 0, newId })
    expect(first.attempted).toMatchObject({ body: "{}", addressed: true })
    expect(attemptedJson(first.attempted)).toBe(encodeDeliveryAttempted(first.attempted))
    const second = planAfterAttempt({ task: first.retry!, policy: DEFAULT_RETRY_POLICY, result: failure, now: 0, random: 0, newId })
    expect(second.attempted).not.toHaveProperty("body")
    expect(second.attempted).not.toHaveProperty("addressed")
    expect(attemptedJson(second.attempted)).toBe(encodeDeliveryAttempted(second.attempted))
  })

  it("honours a longer Retry-After, capped at 24 h", () => {
    const plan = planAfterAttempt({ task, policy: { strategy: "fixed", max_attempts: 3, delay_seconds: 1 }, result: { ...failure, retryAfterSeconds: 120 }, now: 0, random: 0, newId })
    expect(Date.parse(plan.retry!.not_before)).toBe(120_000)
    expect(parseRetryAfter("30", 0)).toBe(30)
    expect(parseRetryAfter(new Date(90_000).toUTCString(), 0)).toBe(90)
    expect(parseRetryAfter("soon", 0)).toBeUndefined()
  })
})

describe("source records and bodies", () => {
  const valid = { id: `evt_${"a".repeat(32)}`, type: "message.sent", tenant_id: "t1", created_at: "2026-11-27T10:00:00.000Z", data: { a: 1 } }
  it("classifies poison records", () => {
    expect(classifySourceRecord(Buffer.from(JSON.stringify(valid)))._tag).toBe("Valid")
    expect(classifySourceRecord(null)).toMatchObject({ reason: "empty" })
    expect(classifySourceRecord(Buffer.from("{"))).toMatchObject({ reason: "invalid_json" })
    expect(classifySourceRecord(Buffer.from(JSON.stringify({ ...valid, type: "nope.nope" })))).toMatchObject({ reason: "unknown_type" })
    expect(classifySourceRecord(Buffer.from(JSON.stringify({ ...valid, data: [] })))).toMatchObject({ reason: "invalid_shape" })
    expect(classifySourceRecord(Buffer.alloc(1024 * 1024 + 1, 0x20))).toMatchObject({ reason: "too_large" })
  })
  it("with strict data, refuses data that fails its type's schema and names each problem", () => {
    const record = (data: unknown) => Buffer.from(JSON.stringify({ ...valid, data }))
    const good = { message_id: "msg_1", channel: "sms", from: "+15005550006", to: "+15005550001", status: "sent" }
    expect(classifySourceRecord(record(good), { strictData: true })._tag).toBe("Valid")
    expect(classifySourceRecord(record({ a: 1 }))._tag).toBe("Valid")
    const verdict = classifySourceRecord(record({ ...good, status: "read", segments: -1 }), { strictData: true })
    expect(verdict).toMatchObject({ _tag: "Invalid", reason: "invalid_data" })
    expect(verdict._tag === "Invalid" && verdict.detail).toMatch(/^data\.status: Expected "sent".*; data\.segments: Expected a value greater than or equal to 0/)
  })
  it("builds the §7 body, truncating data over 256 KiB", () => {
    expect(JSON.parse(buildWebhookBody(valid as never))).toEqual({ id: valid.id, type: valid.type, created_at: valid.created_at, data: { a: 1 } })
    const big = { ...valid, data: { id: "x", campaign_id: "c", blob: "z".repeat(256 * 1024) } }
    const body = JSON.parse(buildWebhookBody(big as never))
    expect(body).toMatchObject({ truncated: true, data: { _truncated: true, id: "x", campaign_id: "c" } })
    expect(body.data.blob).toBeUndefined()
  })
})

describe("RecordJson", () => {
  it("writes exactly what the Schema encoders write", () => {
    const task: DeliveryTask = {
      _tag: "DeliveryTask",
      schema_version: 1,
      event_id: "e1",
      occurred_at: "2026-01-01T00:00:00.000Z",
      delivery_id: "d1",
      endpoint_id: "wh_1",
      tenant_id: "t1",
      mode: "test",
      source_event_id: "evt_1",
      source_event_type: "message.sent",
      body: JSON.stringify({ id: "evt_1", data: { text: "héllo \"quoted\" ✓" } }),
      attempt: 2,
      not_before: "2026-01-01T00:00:01.000Z"
    }
    expect(taskJson(task)).toBe(encodeDeliveryTask(task))
    const plan = planAfterAttempt({
      task,
      policy: DEFAULT_RETRY_POLICY,
      result: { ok: false, httpStatus: 503, durationMs: 12.6, errorClass: "http_status", errorMessage: "HTTP 503", retryAfterSeconds: 30 },
      now: Date.parse("2026-01-01T00:00:02.000Z"),
      random: 0.5,
      newId: () => "id"
    })
    expect(attemptedJson(plan.attempted)).toBe(encodeDeliveryAttempted(plan.attempted))
    const ok = planAfterAttempt({
      task,
      policy: DEFAULT_RETRY_POLICY,
      result: { ok: true, httpStatus: 200, durationMs: 3, errorClass: null, errorMessage: null, retryAfterSeconds: undefined },
      now: Date.parse("2026-01-01T00:00:02.000Z"),
      random: 0.5,
      newId: () => "id",
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736"
    })
    expect(ok.attempted.trace_id).toBe("4bf92f3577b34da6a3ce929d0e0e4736")
    expect(attemptedJson(ok.attempted)).toBe(encodeDeliveryAttempted(ok.attempted))
    expect(plan.attempted).not.toHaveProperty("trace_id")
  })
})

describe("fanOutBatch", () => {
  it("gives each matching endpoint one task, carrying the index offsets it was matched at", () => {
    const event = { id: "evt_" + "a".repeat(32), type: "message.sent", tenant_id: "t1", mode: "live", created_at: "2026-01-01T00:00:00.000Z", data: {} }
    const all = fanOutBatch({
      topic: "src",
      partition: 0,
      messages: [{ key: null, value: Buffer.from(JSON.stringify(event)), offset: "7", timestamp: "0", attributes: 0, headers: {} }],
      topics: { deliveries: "deliveries", invalid: "invalid" },
      matching: () => [{ id: "wh_a" }, { id: "wh_b" }] as never,
      now: 0,
      indexOffsets: [{ partition: 0, offset: "12" }, { partition: 1, offset: "0" }, { partition: 2, offset: "7" }]
    })
    expect(all.endpoints).toEqual(["wh_a", "wh_b"])
    expect(all.out).toHaveLength(1)
    expect(all.out[0]!.messages.map((m) => m.key)).toEqual(["wh_a", "wh_b"])
    for (const m of all.out[0]!.messages) {
      expect(m.headers).toEqual({ [INDEX_OFFSETS_HEADER]: "0:12,1:0,2:7" })
      expect(decodeIndexOffsets(String(m.headers![INDEX_OFFSETS_HEADER]))).toEqual([
        { partition: 0, offset: "12" },
        { partition: 1, offset: "0" },
        { partition: 2, offset: "7" }
      ])
    }
    expect(decodeIndexOffsets("0:12,x")).toBeUndefined()
  })

  it("gives an event addressed to one endpoint (endpoint_id) to that endpoint only, whatever it subscribes to", () => {
    const table = new IndexedEndpoints()
    const register = (id: string, tenant: string, events: Array<string>, active = true) =>
      table.apply({
        _tag: "EndpointRegistered", schema_version: 1, event_id: `evt_${id}`, occurred_at: "2026-01-01T00:00:00.000Z",
        endpoint_id: id, tenant_id: tenant, mode: "live", url: "https://a.example.com/", events, description: null, active,
        timeout_seconds: 5, retry_policy: DEFAULT_RETRY_POLICY, secret_box: "box"
      } as EndpointEvent)
    const A = "wh_" + "a".repeat(20), B = "wh_" + "b".repeat(20), C = "wh_" + "c".repeat(20), D = "wh_" + "d".repeat(20)
    register(A, "t1", ["message.delivered"])
    register(B, "t1", ["*"])
    register(C, "t2", ["*"])
    register(D, "t1", ["*"], false)
    const fan = (extra: Record<string, unknown>) =>
      fanOutBatch({
        topic: "src",
        partition: 0,
        messages: [{
          key: null,
          value: Buffer.from(JSON.stringify({
            id: "evt_" + "e".repeat(32), type: "webhook.test", tenant_id: "t1", mode: "live", created_at: "2026-01-01T00:00:00.000Z", data: {}, ...extra
          })),
          offset: "1", timestamp: "0", attributes: 0, headers: {}
        }],
        topics: { deliveries: "deliveries", invalid: "invalid" },
        matching: (tenant, mode, type, only) => table.matching(tenant, mode, type, only),
        now: 0,
        indexOffsets: []
      })
    const toA = fan({ endpoint_id: A })
    expect(toA.endpoints).toEqual([A]) // its filter does not list webhook.test
    expect(JSON.parse(String(toA.out[0]!.messages[0]!.value))).toMatchObject({ endpoint_id: A, addressed: true })
    expect(JSON.parse(String(fan({}).out[0]!.messages[0]!.value))).not.toHaveProperty("addressed")
    expect(fan({}).endpoints).toEqual([B]) // not addressed: the usual match
    expect(fan({ endpoint_id: C }).endpoints).toEqual([]) // another tenant's endpoint
    expect(fan({ endpoint_id: D }).endpoints).toEqual([]) // inactive
    expect(fan({ endpoint_id: "wh_nope" }).invalid).toBe(1) // not an endpoint id: the record is invalid
  })
})

describe("IndexedEndpoints", () => {
  const registered = (id: string, tenant: string, events: Array<string>, retry = DEFAULT_RETRY_POLICY) => ({
    _tag: "EndpointRegistered", schema_version: 1, event_id: `evt_${id}`, occurred_at: "2026-01-01T00:00:00.000Z",
    endpoint_id: id, tenant_id: tenant, mode: "live", url: `https://a.example.com/${id}`, events: [...events], description: null,
    active: true, timeout_seconds: 5, retry_policy: JSON.parse(JSON.stringify(retry)), secret_box: `box_${id}`
  }) as EndpointEvent

  it("keeps one copy of equal subscription lists, retry policies, headers and tenant ids, and each endpoint's own values", () => {
    const table = new IndexedEndpoints()
    // Each event decoded on its own: equal values arrive as distinct objects.
    table.apply(registered("wh_1", ["t", "1"].join(""), ["message.delivered"]))
    table.apply(registered("wh_2", ["t", "1"].join(""), ["message.delivered"]))
    table.apply(registered("wh_3", "t2", ["*"], { strategy: "fixed", max_attempts: 3, delay_seconds: 5 }))
    const [a, b, c] = ["wh_1", "wh_2", "wh_3"].map((id) => table.get(id)!) as [Endpoint, Endpoint, Endpoint]
    expect(a.events).toBe(b.events)
    expect(a.retry_policy).toBe(b.retry_policy)
    expect(a.headers).toBe(b.headers)
    expect(a.tenant_id).toBe(b.tenant_id)
    expect(c.events).toEqual(["*"])
    expect(c.retry_policy).toEqual({ strategy: "fixed", max_attempts: 3, delay_seconds: 5 })
    expect(a.events).not.toBe(c.events)
    expect([a.url, b.url, c.url, a.secret_box, c.secret_box]).toEqual([
      "https://a.example.com/wh_1", "https://a.example.com/wh_2", "https://a.example.com/wh_3", "box_wh_1", "box_wh_3"
    ])
    // An update of one endpoint changes that endpoint only, whatever it shared.
    table.apply({
      _tag: "EndpointUpdated", schema_version: 1, event_id: "evt_u", occurred_at: "2026-01-02T00:00:00.000Z", endpoint_id: "wh_1",
      tenant_id: "t1", mode: "live", url: "https://a.example.com/new", events: ["*"], description: null, active: true,
      timeout_seconds: 5, retry_policy: DEFAULT_RETRY_POLICY
    } as EndpointEvent)
    expect(table.get("wh_1")!.events).toBe(c.events)
    expect(table.get("wh_2")!.events).toEqual(["message.delivered"])
    expect(table.matching("t1", "live", "message.failed").map((e) => e.id)).toEqual(["wh_1"])
    expect(table.matching("t1", "live", "message.delivered").map((e) => e.id).sort()).toEqual(["wh_1", "wh_2"])
  })
})
