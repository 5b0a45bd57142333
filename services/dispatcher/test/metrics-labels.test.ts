import { describe, expect, it } from "vitest"
import { AttemptErrorClass } from "@orbit/domain"
import { delayTiersOf } from "@orbit/kafka"
import { topicsFor } from "@orbit/domain"
import { buildWebhookBody } from "../src/fan-out/WebhookBody.ts"
import { createdAtOf, DELIVERY_OUTCOMES, outcomeOf, tierLabel } from "../src/DispatcherMetrics.ts"

describe("delivery metric labels", () => {
  it("fold every attempt error class into the closed outcome set", () => {
    expect(outcomeOf(true, null)).toBe("success")
    const folded = Object.fromEntries(AttemptErrorClass.literals.map((c) => [c, outcomeOf(false, c)]))
    expect(folded).toEqual({
      http_status: "http_error",
      redirect: "http_error",
      timeout: "timeout",
      ssrf_blocked: "refused_by_ssrf_rule",
      dns: "connect_error",
      tls: "tls_error",
      connection: "connect_error",
      signing: "other",
      internal: "other"
    })
    for (const outcome of Object.values(folded)) expect(DELIVERY_OUTCOMES).toContain(outcome)
  })

  it("name each delay tier by its delay", () => {
    expect(delayTiersOf(topicsFor("")).map((t) => tierLabel(t.delayMs))).toEqual(["1s", "5s", "30s", "2m", "10m", "1h", "4h"])
  })

  it("read an event's created_at from the webhook body, whatever its id and type hold", () => {
    const created_at = "2026-01-02T03:04:05.678Z"
    const body = buildWebhookBody({ id: 'evt_"created_at":"1999-01-01T00:00:00Z"', type: "message.delivered", tenant_id: "t", created_at, data: { created_at: "2000-01-01T00:00:00Z" } } as never)
    expect(createdAtOf(body)).toBe(Date.parse(created_at))
    expect(createdAtOf("{}")).toBeUndefined()
  })
})
