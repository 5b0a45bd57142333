import { execFile } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { promisify } from "node:util"
import { chromium } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

/**
 * The API's front door: the OpenAPI document passes `redocly lint` (recommended rules) and
 * describes the contract a client needs (key, summaries, statuses, typed query), and
 * /api/v1/docs renders it in a real browser, from the service alone (no CDN).
 */
const OUTPUT = new URL("../output/", import.meta.url)
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const redocly = createRequire(import.meta.url).resolve("@redocly/cli/bin/cli.js")

let platform: Platform
beforeAll(async () => {
  mkdirSync(OUTPUT, { recursive: true })
  platform = await startPlatform()
})
afterAll(() => platform?.close())

type Operation = {
  summary?: string
  description?: string
  tags: Array<string>
  security: Array<Record<string, Array<string>>>
  parameters: Array<{ name: string; in: string; schema: Record<string, unknown> }>
  requestBody?: { content: Record<string, { schema: { $ref?: string } }> }
  responses: Record<string, { headers?: Record<string, unknown>; content?: Record<string, { schema: Record<string, unknown> }> }>
}
type Spec = {
  servers?: Array<{ url: string }>
  tags: Array<{ name: string; description?: string }>
  paths: Record<string, Record<string, Operation>>
  components: { schemas: Record<string, Record<string, unknown>>; securitySchemes: Record<string, unknown> }
}

const fetchSpec = async () => (await platform.api("GET", "/api/v1/openapi.json")).json as Spec
const operations = (spec: Spec) =>
  Object.entries(spec.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ path, method, op })))

/** `redocly lint` with its recommended rules on the document as served; the problem counts. */
const lint = async (spec: Spec, name: string) => {
  const file = new URL(`${name}.json`, OUTPUT)
  writeFileSync(file, JSON.stringify(spec, null, 2))
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [redocly, "lint", "--extends=recommended", "--format=json", file.pathname],
    { env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" }, maxBuffer: 64 * 1024 * 1024 }
  ).catch((e: { stdout: string }) => e) // exits 1 when there are errors; the JSON says which
  const report = JSON.parse(stdout) as { totals: { errors: number; warnings: number }; problems: Array<{ ruleId: string; message: string }> }
  return { ...report.totals, problems: report.problems.map((p) => `${p.ruleId}: ${p.message}`) }
}

describe("GET /api/v1/openapi.json", () => {
  it("passes redocly lint's recommended rules with 0 errors", async () => {
    const result = await lint(await fetchSpec(), "openapi")
    expect(result.errors, result.problems.join("\n")).toBe(0)
  })

  it("declares the X-API-Key scheme on every webhook and event-type operation, and no key for health and docs", async () => {
    const spec = await fetchSpec()
    expect(spec.components.securitySchemes).toEqual({ apiKey: expect.objectContaining({ type: "apiKey", in: "header", name: "X-API-Key" }) })
    for (const { path, method, op } of operations(spec)) {
      const keyless = !path.startsWith("/api/v1/webhooks") && !path.startsWith("/api/v1/event-types")
      expect(op.security, `${method} ${path}`).toEqual(keyless ? [] : [{ apiKey: [] }])
    }
    expect(operations(spec).filter(({ op }) => op.security.length === 0).map(({ path }) => path).sort())
      .toEqual(["/api/v1/docs", "/api/v1/openapi.json", "/healthz", "/readyz"])
  })

  it("gives every operation a summary and a description, and every tag a description", async () => {
    const spec = await fetchSpec()
    for (const { path, method, op } of operations(spec)) {
      expect(op.summary, `${method} ${path}`).toMatch(/\S/)
      expect(op.description, `${method} ${path}`).toMatch(/\S/)
    }
    expect(spec.tags.length).toBeGreaterThanOrEqual(3)
    for (const tag of spec.tags) expect(tag.description, tag.name).toMatch(/\S/)
  })

  it("types the list's limit as an integer 1–200 with its default, and the deliveries' as 1–100", async () => {
    const spec = await fetchSpec()
    const limit = (op: Operation) => op.parameters.find((p) => p.in === "query" && p.name === "limit")?.schema
    expect(limit(spec.paths["/api/v1/webhooks"]!.get!)).toEqual({ type: "integer", minimum: 1, maximum: 200, default: 25 })
    expect(limit(spec.paths["/api/v1/webhooks/{id}/deliveries"]!.get!)).toEqual({ type: "integer", minimum: 1, maximum: 100, default: 25 })
    // The wire is unchanged: the default page is 25, and "0x10" is still not a number.
    const { key } = await platform.createKey(`t_${Date.now()}`)
    expect((await platform.api("GET", "/api/v1/webhooks?limit=0x10", { key })).status).toBe(422)
    expect((await platform.api("GET", "/api/v1/webhooks?limit=201", { key })).status).toBe(422)
  })

  it("lists the statuses each route answers (API.md §2): 401, 429 with Retry-After and 503 on every webhook operation", async () => {
    const spec = await fetchSpec()
    const statuses = (path: string, method: string) => Object.keys(spec.paths[path]![method]!.responses).sort()
    const base = "/api/v1/webhooks"
    expect(statuses(base, "get")).toEqual(["200", "400", "401", "422", "429", "500", "503"])
    expect(statuses(base, "post")).toEqual(["201", "400", "401", "403", "413", "422", "429", "500", "503"])
    expect(statuses(`${base}/{id}`, "get")).toEqual(["200", "401", "404", "429", "500", "503"])
    expect(statuses(`${base}/{id}`, "put")).toEqual(["200", "400", "401", "403", "404", "413", "422", "429", "500", "503"])
    expect(statuses(`${base}/{id}`, "delete")).toEqual(["204", "401", "403", "404", "429", "500", "503"])
    for (const p of [`${base}/{id}/rotate-secret`, `${base}/{id}/test`]) {
      expect(statuses(p, "post")).toEqual([p.endsWith("test") ? "202" : "200", "400", "401", "403", "404", "413", "422", "429", "500", "503"])
    }
    expect(statuses(`${base}/{id}/deliveries`, "get")).toEqual(["200", "400", "401", "404", "422", "429", "500", "503"])
    for (const p of [`${base}/{id}/recover`, `${base}/{id}/deliveries/{delivery_id}/retry`]) {
      expect(statuses(p, "post"), p).toEqual(["202", "400", "401", "403", "404", "413", "422", "429", "500", "503"])
    }
    expect(statuses("/readyz", "get")).toEqual(["200", "503"])
    for (const { path, method, op } of operations(spec).filter(({ path }) => path.startsWith(base))) {
      expect(Object.keys(op.responses["429"]!.headers ?? {}), `${method} ${path}`).toContain("retry-after")
    }
    expect(Object.keys(spec.paths[base]!.post!.responses["201"]!.headers ?? {})).toEqual(expect.arrayContaining(["location", "x-request-id"]))
  })

  it("has examples for the request bodies and the 201", async () => {
    const spec = await fetchSpec()
    const resolve = (schema: { $ref?: string }) =>
      schema.$ref ? spec.components.schemas[schema.$ref.replace("#/components/schemas/", "")]! : schema as Record<string, unknown>
    for (const { path, method, op } of operations(spec).filter(({ op }) => op.requestBody)) {
      expect(resolve(op.requestBody!.content["application/json"]!.schema).examples, `${method} ${path}`).toHaveLength(1)
    }
    const created = spec.paths["/api/v1/webhooks"]!.post!.responses["201"]!.content!["application/json"]!.schema
    expect(created.examples).toEqual([expect.objectContaining({ data: expect.objectContaining({ signing_secret: expect.stringMatching(/^whsec_/) }) })])
    // The request example is one the API accepts.
    const [example] = resolve(spec.paths["/api/v1/webhooks"]!.post!.requestBody!.content["application/json"]!.schema).examples as Array<unknown>
    const { key } = await platform.createKey(`t_${Date.now()}`)
    expect((await platform.api("POST", "/api/v1/webhooks", { key, body: example })).status).toBe(201)
  })

  it("names the server: \"/\" by default, ORBIT_PUBLIC_URL when set (still lint-clean)", async () => {
    expect((await fetchSpec()).servers).toEqual([expect.objectContaining({ url: "/" })])
    await platform.stop("registration")
    platform.env.ORBIT_PUBLIC_URL = `${platform.baseUrl}/`
    platform.start("registration")
    await platform.ready()
    const spec = await fetchSpec()
    expect(spec.servers).toEqual([expect.objectContaining({ url: platform.baseUrl })])
    const result = await lint(spec, "openapi-public-url")
    expect(result.errors, result.problems.join("\n")).toBe(0)
  })
})

describe("GET /api/v1/docs", () => {
  it("renders every operation in headless Chromium, with nothing fetched from elsewhere", async () => {
    const spec = await fetchSpec()
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true })
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
      // Offline: any request that does not go to the service itself is refused and recorded.
      const elsewhere: Array<string> = []
      await page.route("**/*", (route) => {
        const url = route.request().url()
        if (url.startsWith(`${platform.baseUrl}/`) || url.startsWith("data:") || url.startsWith("blob:")) return route.continue()
        elsewhere.push(url)
        return route.abort()
      })
      const errors: Array<string> = []
      page.on("pageerror", (e) => errors.push(e.message))
      await page.goto(`${platform.baseUrl}/api/v1/docs`)
      for (const { op } of operations(spec)) {
        await page.getByText(op.summary!, { exact: true }).first().waitFor({ state: "visible", timeout: 30_000 })
      }
      await page.screenshot({ path: new URL("api-reference.png", OUTPUT).pathname, fullPage: false })
      expect(errors).toEqual([])
      expect(elsewhere).toEqual([])
    } finally {
      await browser.close()
    }
  })

  it("\"try it\" sends the key typed into the page as X-API-Key and shows the 200", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true })
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
      const sent: Array<{ url: string; apiKey: string | undefined }> = []
      page.on("request", (r) => {
        if (new URL(r.url()).pathname === "/api/v1/webhooks") sent.push({ url: r.url(), apiKey: r.headers()["x-api-key"] })
      })
      await page.goto(`${platform.baseUrl}/api/v1/docs`)
      await page.getByText("List endpoints", { exact: true }).first().waitFor({ state: "visible", timeout: 30_000 })
      // The apiKey scheme's value field in the page's Authentication box (Scalar's own placeholder).
      await page.getByPlaceholder("QUxMIFlPVVIgQkFTRSBBUkUgQkVMT05HIFRPIFVT").first().fill(key)
      await page.getByRole("button", { name: /Test Request/ }).first().click()
      await page.getByRole("button", { name: /^Send/ }).first().click()
      await page.getByText("200 OK").first().waitFor({ state: "visible", timeout: 30_000 })
      await page.screenshot({ path: new URL("api-reference-try-it.png", OUTPUT).pathname })
      expect(sent).toEqual([{ url: `${platform.baseUrl}/api/v1/webhooks?limit=25`, apiKey: key }])
    } finally {
      await browser.close()
    }
  })
})
