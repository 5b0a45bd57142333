/**
 * The operator's kit in `infra/observability/`: promtool accepts the scrape config and the alert
 * rules, and the rules' own tests (each alert fires on its series) pass; the Grafana dashboard
 * takes its data source from a variable and lays its panels out without overlap; then Debian's
 * `prometheus`, running the checked-in config pointed at a running platform, finds every service
 * up, counts a real delivery, evaluates every alert rule without error, and answers every query of
 * the Grafana dashboard.
 */
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { CreateEndpointRequest } from "@orbit/client"
import { generateApiKey } from "@orbit/crypto"
import { type DeliveryRig, startDeliveryRig } from "../src/DeliveryRig.ts"
import { type Platform, uniqueTenant } from "../src/Platform.ts"
import {
  JOBS,
  OBSERVABILITY_DIR,
  PROMTOOL,
  type RunningPrometheus,
  scrapeConfigFor,
  startPrometheus,
  type Targets
} from "../src/Prometheus.ts"

/** Runs promtool in the kit's directory; its exit code and output (a failure does not throw). */
const promtool = (...args: Array<string>) =>
  new Promise<{ code: number; output: string }>((resolve) =>
    execFile(PROMTOOL, args, { cwd: OBSERVABILITY_DIR }, (error, stdout, stderr) =>
      resolve({
        code: error === null ? 0 : typeof error.code === "number" ? error.code : -1,
        output: `${stdout}${stderr}${error !== null && typeof error.code !== "number" ? String(error) : ""}`
      })))

describe("promtool", () => {
  it("check config: the scrape config and the rule file it names are valid", async () => {
    const { code, output } = await promtool("check", "config", "prometheus.yml")
    expect(code, output).toBe(0)
    expect(output).toContain("SUCCESS: 1 rule files found")
  })

  it("check rules: every alert rule is valid", async () => {
    const { code, output } = await promtool("check", "rules", "alerts.yml")
    expect(code, output).toBe(0)
    expect(output).toMatch(/SUCCESS: \d+ rules found/)
  })

  it("test rules: each alert fires on its series, with its annotations, and stays quiet on the others", async () => {
    const { code, output } = await promtool("test", "rules", "alerts.test.yml")
    expect(code, output).toBe(0)
    expect(output).toContain("SUCCESS")
  })
})

describe("grafana-dashboard.json", () => {
  type GridPos = { x: number; y: number; w: number; h: number }
  type Panel = { id: number; type: string; title: string; gridPos: GridPos; datasource?: { type: string; uid: string }; targets?: Array<{ expr: string; datasource?: { uid: string } }> }
  const dashboard = () =>
    JSON.parse(readFileSync(join(OBSERVABILITY_DIR, "grafana-dashboard.json"), "utf8")) as {
      uid: string
      panels: Array<Panel>
      templating: { list: Array<{ name: string; type: string; query: string }> }
    }

  it("asks for its Prometheus data source through a variable, which every panel and query uses", () => {
    const d = dashboard()
    expect(d.templating.list).toContainEqual(expect.objectContaining({ name: "datasource", type: "datasource", query: "prometheus" }))
    const queried = d.panels.filter((p) => p.type !== "row")
    expect(queried.length).toBeGreaterThan(0)
    for (const panel of queried) {
      expect(panel.datasource, panel.title).toEqual({ type: "prometheus", uid: "${datasource}" })
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0)
      for (const t of panel.targets ?? []) expect(t.datasource?.uid, panel.title).toBe("${datasource}")
    }
  })

  it("gives every panel its own id and its own place on the 24-column grid", () => {
    const panels = dashboard().panels
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length)
    const overlaps = (a: GridPos, b: GridPos) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
    for (const [i, a] of panels.entries()) {
      expect(a.gridPos.x + a.gridPos.w, a.title).toBeLessThanOrEqual(24)
      for (const b of panels.slice(i + 1)) expect(overlaps(a.gridPos, b.gridPos), `${a.title} / ${b.title}`).toBe(false)
    }
  })
})

/** Each job's target: the `host:port` where the platform's harness serves that service's `/metrics`. */
const metricsTargets = (platform: Platform): Targets => {
  const target = (name: keyof Targets) => {
    const url = new URL(platform.metricsUrl(name))
    if (url.pathname !== "/metrics") throw new Error(`${name} serves metrics at ${url.href}, not at /metrics`)
    return url.host
  }
  return { registration: target("registration"), projection: target("projection"), dispatcher: target("dispatcher") }
}

/** Every PromQL expression of the Grafana dashboard, with Grafana's interval variables filled in. */
const dashboardQueries = () => {
  type Panel = { title: string; targets?: Array<{ expr: string }>; panels?: Array<Panel> }
  const dashboard = JSON.parse(readFileSync(join(OBSERVABILITY_DIR, "grafana-dashboard.json"), "utf8")) as { panels: Array<Panel> }
  const flat = (panels: Array<Panel>): Array<Panel> => panels.flatMap((p) => [p, ...flat(p.panels ?? [])])
  return flat(dashboard.panels).flatMap((panel) =>
    (panel.targets ?? []).map((t) => ({
      panel: panel.title,
      expr: t.expr.replaceAll("$__rate_interval", "5m").replaceAll("$__range", "1h").replaceAll("$__interval", "1s")
    })))
}

describe("prometheus against a running platform", () => {
  let rig: DeliveryRig
  let platform: Platform
  let prometheus: RunningPrometheus

  beforeAll(async () => {
    // The harness gives each service a metrics port of its own, so this run never meets another on
    // the defaults. One lookup of an unknown key per address, so that a second one is refused (429).
    rig = await startDeliveryRig({ ORBIT_KEY_LOOKUP_RATE_PER_SECOND: "0.001", ORBIT_KEY_LOOKUP_BURST: "1" })
    platform = rig.platform
    prometheus = await startPrometheus(scrapeConfigFor(metricsTargets(platform)))
  })

  afterAll(async () => {
    await prometheus?.close()
    await rig?.close()
  })

  /** Polls an instant query until `done` holds for its answer, and returns that answer. */
  const queryUntil = (what: string, expr: string, done: (samples: ReadonlyArray<{ metric: Record<string, string>; value: number }>) => boolean) =>
    platform.eventually(what, async () => {
      const samples = await prometheus.query(expr)
      return done(samples) ? samples : undefined
    }).catch((error: Error) => {
      throw new Error(`${error.message}\n--- prometheus\n${prometheus.output.slice(-20).join("\n")}`)
    })

  it("scrapes every service: up is 1 for each of the three jobs", async () => {
    const up = await queryUntil("every job to be up", `up{job=~"orbit-.*"}`, (s) =>
      Object.values(JOBS).every((job) => s.some((x) => x.metric.job === job && x.value === 1)))
    expect(Object.fromEntries(up.map((s) => [s.metric.job, s.value]))).toEqual({
      [JOBS.registration]: 1,
      [JOBS.projection]: 1,
      [JOBS.dispatcher]: 1
    })
  })

  it("counts a delivery: orbit_deliveries_total{outcome=\"success\"} goes from 0 to the receiver's count of it", async () => {
    // No delivery yet: the dispatcher's counter is scraped, and at 0.
    const before = await queryUntil("the dispatcher's delivery counter to be scraped", `sum(orbit_deliveries_total{job="${JOBS.dispatcher}"})`,
      (s) => s.length === 1)
    expect(before[0]!.value).toBe(0)

    const tenant = uniqueTenant()
    const { key } = await platform.createKey(tenant)
    rig.receiver.respond("/kit", () => 200)
    await platform.client(key).webhooks.create({ url: rig.receiver.url("/kit"), events: ["message.delivered"] } as CreateEndpointRequest)
    await platform.publish(tenant)
    await platform.waitFor("the receiver to get the delivery", async () => rig.receiver.received.some((r) => r.path === "/kit"))

    // One delivery, counted once per request the receiver answered 200 (one, unless a consumer
    // rebalance made the at-least-once dispatcher send it again).
    const received = () => rig.receiver.received.filter((r) => r.path === "/kit").length
    const after = await queryUntil("the delivery to be counted", `sum(orbit_deliveries_total{job="${JOBS.dispatcher}", outcome="success"})`,
      (s) => s.length === 1 && s[0]!.value === received())
    expect(after[0]!.value).toBeGreaterThan(0)
    expect(after[0]!.value).toBe(received())
  })

  it("answers every query of the Grafana dashboard, and its deliveries panel shows the delivery", async () => {
    const queries = dashboardQueries()
    expect(queries.length).toBeGreaterThan(0)
    const failures: Array<string> = []
    for (const { panel, expr } of queries) {
      await prometheus.query(expr).catch((error: Error) => failures.push(`${panel}: ${expr}: ${error.message}`))
    }
    expect(failures).toEqual([])

    const deliveries = queries.find((q) => q.panel === "Deliveries/s by outcome")
    expect(deliveries, "the dashboard's \"Deliveries/s by outcome\" panel").toBeDefined()
    const rates = await queryUntil("the deliveries panel to show a success rate", deliveries!.expr,
      (s) => s.some((x) => x.metric.outcome === "success" && x.value > 0))
    expect(rates.find((x) => x.metric.outcome === "success")!.value).toBeGreaterThan(0)
  })

  it("serves every metric the alert rules and the dashboard read (after a delivery and a rate-limited request)", async () => {
    // Two unknown (well-formed) keys: the first one's lookup takes the address's only token, the
    // second one's is refused. (A key already looked up is answered from a cache, without a token.)
    const unknownKey = () => generateApiKey({ mode: "live", kind: "secret" }).key
    const statuses = [await platform.api("GET", "/api/v1/webhooks", { key: unknownKey() }), await platform.api("GET", "/api/v1/webhooks", { key: unknownKey() })]
    expect(statuses.map((r) => r.status)).toEqual([401, 429])

    const { groups } = await prometheus.api<{ groups: Array<{ rules: Array<{ query: string }> }> }>("rules")
    const exprs = [...groups.flatMap((g) => g.rules.map((r) => r.query)), ...dashboardQueries().map((q) => q.expr)]
    const read = [...new Set(exprs.flatMap((e) => e.match(/\borbit_[a-z0-9_]+/g) ?? []))].sort()
    expect(read).toContain("orbit_deliveries_total")
    let missing: Array<string> = read
    await platform.eventually("every metric the kit reads to be scraped", async () => {
      const scraped = new Set(await prometheus.api<Array<string>>("label/__name__/values"))
      missing = read.filter((name) => !scraped.has(name))
      return missing.length === 0
    }).catch(() => undefined)
    expect(missing, "metric names read by alerts.yml or grafana-dashboard.json that no service exports").toEqual([])
  })

  it("evaluates every alert rule without error, and none fires on a healthy platform", async () => {
    type Rule = { name: string; type: string; health: string; lastError?: string; state?: string; lastEvaluation: string }
    const rules = await platform.eventually("every alert rule to be evaluated", async () => {
      const { groups } = await prometheus.api<{ groups: Array<{ rules: Array<Rule> }> }>("rules")
      const all = groups.flatMap((g) => g.rules)
      return all.length > 0 && all.every((r) => Date.parse(r.lastEvaluation) > 0) ? all : undefined
    })
    const ruleCount = (readFileSync(join(OBSERVABILITY_DIR, "alerts.yml"), "utf8").match(/^\s+- alert: /gm) ?? []).length
    expect(rules.map((r) => r.name)).toHaveLength(ruleCount)
    expect(rules.filter((r) => r.health !== "ok").map((r) => `${r.name}: ${r.health} ${r.lastError ?? ""}`)).toEqual([])
    expect(rules.filter((r) => r.state === "firing").map((r) => r.name)).toEqual([])
  })
})
