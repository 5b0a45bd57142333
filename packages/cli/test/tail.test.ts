/**
 * `orbit tail` against the real broker (topics of this file's own prefix): attempts published to
 * the attempts topic after it starts are printed one line each, filtered by tenant and endpoint,
 * and Ctrl-C stops it and removes its consumer group.
 */
import { randomUUID } from "node:crypto"
import { type DeliveryAttempted, encodeDeliveryAttempted, newEndpointId, newEventId } from "@orbit/domain"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { orbitLive } from "./cli.ts"
import { groupIds, platformTopics, publish } from "./kafka.ts"

/** A real attempt record, as the dispatcher writes it. */
const attempt = (over: Partial<DeliveryAttempted>): DeliveryAttempted => ({
  _tag: "DeliveryAttempted",
  schema_version: 1,
  event_id: randomUUID(),
  occurred_at: new Date().toISOString(),
  delivery_id: randomUUID(),
  endpoint_id: newEndpointId(),
  tenant_id: "acme",
  mode: "live",
  source_event_id: newEventId(),
  source_event_type: "message.delivered",
  attempt: 1,
  outcome: "succeeded",
  http_status: 200,
  duration_ms: 37,
  error_class: null,
  error_message: null,
  next_attempt_at: null,
  dead_lettered: false,
  ...over
})

describe("orbit tail (real broker)", () => {
  let kafka: Awaited<ReturnType<typeof platformTopics>>
  /** Publishes attempts keyed by `key` (the dispatcher keys by endpoint): one key, one partition, in order. */
  const publishAttempts = (key: string, attempts: Array<DeliveryAttempted>) =>
    publish(kafka.topics.attempts.name, attempts.map((a) => ({ key, value: encodeDeliveryAttempted(a) })))

  beforeAll(async () => {
    kafka = await platformTopics("tclitail")
  })
  afterAll(() => kafka?.drop())

  it("prints each new attempt as one line: time, endpoint, event type, outcome, status, latency", async () => {
    const ok = attempt({ source_event_type: "call.completed", duration_ms: 412 })
    const timedOut = attempt({ outcome: "failed", http_status: null, error_class: "timeout", error_message: "timed out", duration_ms: 5003 })
    // In the partition of `ok`, before it: had the tail started from the beginning, it would show first.
    const before = attempt({ tenant_id: "acme" })
    await publishAttempts(ok.endpoint_id, [before])
    const tail = orbitLive(["tail"], { ORBIT_TOPIC_PREFIX: kafka.prefix })
    try {
      await tail.stderrLine(/^tailing /)
      await publishAttempts(ok.endpoint_id, [ok])
      await publishAttempts(timedOut.endpoint_id, [timedOut])

      expect(await tail.line(new RegExp(ok.endpoint_id))).toBe(
        `${ok.occurred_at}\t${ok.endpoint_id}\tcall.completed\tsucceeded\t200\t412ms`
      )
      expect(await tail.line(new RegExp(timedOut.endpoint_id))).toBe(
        `${timedOut.occurred_at}\t${timedOut.endpoint_id}\tmessage.delivered\tfailed\ttimeout\t5003ms`
      )
      // Only what was appended after it started: the earlier attempt is not shown.
      expect(tail.stdoutLines.filter((l) => l.includes(before.endpoint_id))).toEqual([])
    } finally {
      await tail.interrupt()
    }
  })

  it("--tenant and --endpoint show only the matching attempts; Ctrl-C stops it and removes its group", async () => {
    const endpoint = newEndpointId()
    const tail = orbitLive(["tail", "--tenant", "acme", "--endpoint", endpoint], { ORBIT_TOPIC_PREFIX: kafka.prefix })
    let exit: number | null = null
    let group = ""
    try {
      group = (await tail.stderrLine(/^tailing /)).match(/as group (\S+)/)![1]!
      expect(await groupIds()).toContain(group)
      const otherTenant = attempt({ tenant_id: "globex", endpoint_id: endpoint })
      const otherEndpoint = attempt({ tenant_id: "acme" })
      const sentinel = attempt({ tenant_id: "acme", endpoint_id: endpoint, duration_ms: 4242 })
      // One key, one partition: the filtered-out records are read before the sentinel is.
      await publishAttempts(endpoint, [otherTenant, otherEndpoint, sentinel])
      await tail.line(/\t4242ms$/)
      expect(tail.stdoutLines).toEqual([`${sentinel.occurred_at}\t${endpoint}\tmessage.delivered\tsucceeded\t200\t4242ms`])
    } finally {
      exit = await tail.interrupt()
    }
    // Ctrl-C ends it as an interrupted process does (128 + SIGINT), its throwaway group deleted.
    expect(exit).toBe(130)
    expect(await groupIds()).not.toContain(group)
  })
})
