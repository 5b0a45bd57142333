import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { AutoDisableAfter, disabledNoticeId, parseAutoDisableAfter, sweepIntervalSeconds } from "../src/AutoDisable.ts"

describe("ORBIT_AUTO_DISABLE_AFTER", () => {
  it("reads whole seconds and ISO-8601 durations", () => {
    expect(parseAutoDisableAfter("3")).toBe(3)
    expect(parseAutoDisableAfter("432000")).toBe(432_000)
    expect(parseAutoDisableAfter("P5D")).toBe(432_000)
    expect(parseAutoDisableAfter("PT36H")).toBe(129_600)
    expect(parseAutoDisableAfter("PT3S")).toBe(3)
    expect(parseAutoDisableAfter("P1W")).toBe(604_800)
    expect(parseAutoDisableAfter("P1DT2H3M4S")).toBe(86_400 + 7200 + 180 + 4)
    expect(parseAutoDisableAfter("P30D")).toBe(30 * 86_400)
  })

  it("refuses anything else, and periods outside 1 second to 30 days", () => {
    for (const bad of ["", "0", "-1", "1.5", "5 days", "5d", "P", "PT", "P1DT", "p5d", "PT1.5S", "P31D", "2592001", " 3"]) {
      expect(parseAutoDisableAfter(bad), bad).toBeUndefined()
    }
  })

  it.effect("defaults to 5 days; a bad value is an error naming the setting", () =>
    Effect.gen(function*() {
      const read = (env: Record<string, string>) => AutoDisableAfter.parse(ConfigProvider.fromEnv({ env }))
      expect(yield* read({})).toBe(432_000)
      expect(yield* read({ ORBIT_AUTO_DISABLE_AFTER: "PT3S" })).toBe(3)
      const error = yield* Effect.flip(read({ ORBIT_AUTO_DISABLE_AFTER: "5 days" }))
      expect(String(error)).toContain("ORBIT_AUTO_DISABLE_AFTER")
      expect(String(error)).toContain("ISO-8601")
    }))

  it("sweeps a few times per period, between once a second and once a minute", () => {
    expect(sweepIntervalSeconds(3)).toBe(1)
    expect(sweepIntervalSeconds(120)).toBe(30)
    expect(sweepIntervalSeconds(432_000)).toBe(60)
  })

  it("names one notice per streak", () => {
    const a = disabledNoticeId("wh_a", "2026-11-27T10:00:00.000000Z")
    expect(a).toMatch(/^evt_[0-9a-f]{32}$/)
    expect(disabledNoticeId("wh_a", "2026-11-27T10:00:00.000000Z")).toBe(a)
    expect(disabledNoticeId("wh_a", "2026-11-28T10:00:00.000000Z")).not.toBe(a)
    expect(disabledNoticeId("wh_b", "2026-11-27T10:00:00.000000Z")).not.toBe(a)
  })
})
