import { describe, expect, it } from "@effect/vitest"
import { type AttemptSummary, endpointState } from "../src/api/StatsSchemas.ts"

const summary = (s: Partial<AttemptSummary>): AttemptSummary => ({
  total: 0,
  succeeded: 0,
  failed: 0,
  noResponse: 0,
  lastOutcome: null,
  ...s
})

describe("endpointState", () => {
  it("an inactive endpoint is disabled, whatever its attempts", () => {
    expect(endpointState(false, summary({}))).toBe("disabled")
    expect(endpointState(false, summary({ total: 3, failed: 3, noResponse: 3, lastOutcome: "failed" }))).toBe("disabled")
  })

  it("no attempts in the window is healthy", () => {
    expect(endpointState(true, summary({}))).toBe("healthy")
  })

  it("attempts that all went unanswered are unresponsive; one HTTP answer, even an error, is not", () => {
    expect(endpointState(true, summary({ total: 2, failed: 2, noResponse: 2, lastOutcome: "failed" }))).toBe("unresponsive")
    expect(endpointState(true, summary({ total: 2, failed: 2, noResponse: 1, lastOutcome: "failed" }))).toBe("failing")
  })

  it("failing when the latest attempt failed or fewer than half succeeded; healthy otherwise", () => {
    expect(endpointState(true, summary({ total: 4, succeeded: 3, failed: 1, lastOutcome: "failed" }))).toBe("failing")
    expect(endpointState(true, summary({ total: 5, succeeded: 2, failed: 3, lastOutcome: "succeeded" }))).toBe("failing")
    expect(endpointState(true, summary({ total: 4, succeeded: 2, failed: 2, lastOutcome: "succeeded" }))).toBe("healthy")
    expect(endpointState(true, summary({ total: 1, succeeded: 1, lastOutcome: "succeeded" }))).toBe("healthy")
  })
})
