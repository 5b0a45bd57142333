/**
 * Traces end to end (issue 12, point 2): the three services export their spans over OTLP/HTTP to
 * a receiver in this test, the trace context travels in Kafka record headers through the real
 * broker, and the attempt log keeps each attempt's trace id. Real processes, real Kafka, real
 * Postgres, a real HTTPS receiver.
 */
import { randomBytes } from "node:crypto"
import type { CreateEndpointRequest, DeliveryAttempt } from "@orbit/client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type DeliveryRig, startDeliveryRig } from "../src/DeliveryRig.ts"
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "../src/OtlpReceiver.ts"
import { uniqueTenant } from "../src/Platform.ts"

let rig: DeliveryRig
let otlp: OtlpReceiver

beforeAll(async () => {
  otlp = await startOtlpReceiver()
  // Every service exports to the receiver, at 100 % (the default sampler follows the upstream's
  // sampled flag), in batches every 200 ms so the test need not wait out the 5 s default.
  rig = await startDeliveryRig({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "200" })
})

afterAll(async () => {
  await rig?.close()
  await otlp?.close()
})

const hex = (bytes: number) => randomBytes(bytes).toString("hex")

/** The spans received so far of one trace. */
const traceOf = (traceId: string) => otlp.spans.filter((s) => s.traceId === traceId)

/** `span`'s ancestors in the received spans, nearest first, up to a parent not received. */
const ancestors = (span: ReceivedSpan): Array<ReceivedSpan> => {
  const out: Array<ReceivedSpan> = []
  for (let s: ReceivedSpan | undefined = span; s?.parentSpanId !== undefined;) {
    s = otlp.spans.find((p) => p.spanId === s!.parentSpanId && p.traceId === span.traceId)
    if (s !== undefined) out.push(s)
  }
  return out
}

describe("traces", () => {
  it("an upstream record's traceparent is the parent of the fan-out span, and it of every attempt's span across a retry; the attempt log has their trace id", async () => {
    const { platform, receiver } = rig
    const tenant = uniqueTenant()
    const { key } = await platform.createKey(tenant)
    const path = `/traced-${hex(4)}`
    // The first attempt fails, the retry (one second later) succeeds.
    let calls = 0
    receiver.respond(path, () => (++calls === 1 ? 503 : 200))
    const endpoint = (await platform.client(key).webhooks.create({
      url: receiver.url(path),
      events: ["message.delivered"],
      retry_policy: { strategy: "custom", delays_seconds: [1] }
    } as CreateEndpointRequest)).data

    const traceId = hex(16)
    const upstreamSpanId = hex(8)
    await platform.publish(tenant, { headers: { traceparent: `00-${traceId}-${upstreamSpanId}-01`, tracestate: "upstream=1" } })

    const attempts = await platform.eventually("a failed attempt and a successful retry in the attempt log", async () => {
      const all: Array<DeliveryAttempt> = []
      for await (const a of platform.client(key).webhooks.allDeliveries(endpoint.id, { limit: 100 })) all.push(a)
      return all.some((a) => a.outcome === "succeeded") && all.length >= 2 ? all.reverse() : undefined
    })
    expect(attempts.map((a) => [a.attempt, a.outcome])).toEqual([[1, "failed"], [2, "succeeded"]])

    const { fanOut, attemptSpans } = await platform.eventually("the fan-out span and both attempt spans at the OTLP receiver", () => {
      const spans = traceOf(traceId)
      const fanOut = spans.find((s) => s.name === "dispatcher.fan-out")
      const attemptSpans = spans.filter((s) => s.name === "delivery.attempt")
      return fanOut !== undefined && attemptSpans.length >= 2 ? { fanOut, attemptSpans } : undefined
    })
    expect(fanOut).toMatchObject({ service: "orbit-dispatcher", parentSpanId: upstreamSpanId, kind: 5 })
    // Each attempt its own span, both children of the fan-out span, in the upstream's trace.
    expect(new Set(attemptSpans.map((s) => s.spanId)).size).toBe(attemptSpans.length)
    for (const span of attemptSpans) {
      expect(span).toMatchObject({ service: "orbit-dispatcher", traceId, parentSpanId: fanOut.spanId, kind: 3 })
      expect(span.attributes["orbit.delivery_id"]).toBe(attempts[0]!.delivery_id)
    }
    const byAttempt = new Map(attemptSpans.map((s) => [s.attributes["orbit.attempt"], s]))
    expect(byAttempt.get(1)).toMatchObject({ statusCode: 2, attributes: { "http.response.status_code": 503 } })
    expect(byAttempt.get(2)).toMatchObject({ statusCode: 1, attributes: { "http.response.status_code": 200 } })

    // The attempt log's trace id is the exported trace's.
    for (const a of attempts) expect(a.trace_id).toBe(traceId)
    // Each attempt event's projection continues its attempt's span.
    const attemptIds = new Set(attemptSpans.map((s) => s.spanId))
    await platform.eventually("the attempt log projection's apply spans under both attempt spans", () =>
      traceOf(traceId).filter((s) =>
        s.name === "projection.apply" && s.attributes["orbit.projection"] === "delivery_attempts" && attemptIds.has(s.parentSpanId ?? "")
      ).length >= 2)
  })

  it("POST /api/v1/webhooks → the endpoint event record → the projection's apply is one trace", async () => {
    const { platform, receiver } = rig
    const { key } = await platform.createKey(uniqueTenant())
    const traceId = hex(16)
    const callerSpanId = hex(8)
    const created = await platform.api("POST", "/api/v1/webhooks", {
      key,
      headers: { traceparent: `00-${traceId}-${callerSpanId}-01` },
      body: { url: receiver.url("/post-traced"), events: ["message.delivered"] }
    })
    expect(created.status).toBe(201)

    const apply = await platform.eventually("the projection's apply span of the endpoint event", () =>
      traceOf(traceId).find((s) => s.name === "projection.apply" && s.attributes["orbit.projection"] === "endpoints"))
    expect(apply.service).toBe("orbit-projection")
    // Its chain of parents runs through the registration service's spans up to the caller's span.
    const chain = await platform.eventually("the registration service's spans of the request", () => {
      const up = ancestors(apply)
      return up.at(-1)?.parentSpanId === callerSpanId ? up : undefined
    })
    expect(chain[0]).toMatchObject({ service: "orbit-registration", name: "Producer.send", kind: 4 })
    expect(chain.at(-1)).toMatchObject({ service: "orbit-registration", kind: 2 })
    expect(chain.every((s) => s.traceId === traceId)).toBe(true)
  })

  it("the services export protobuf, the OTLP/HTTP default; health probes make no spans", () => {
    expect([...otlp.contentTypes]).toEqual(["application/x-protobuf"])
    // The platform was polled on /readyz until it was up; the requests of the tests above were traced.
    expect(otlp.spans.filter((s) => s.kind === 2).map((s) => s.attributes["url.path"])).toContain("/api/v1/webhooks")
    expect(otlp.spans.filter((s) => s.attributes["url.path"] === "/readyz" || s.attributes["url.path"] === "/healthz")).toEqual([])
  })
})
