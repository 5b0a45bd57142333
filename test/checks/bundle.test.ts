/**
 * Services run from their bundles (infra/bundle.ts); `serviceEntry` (infra/services.ts) must never
 * start a bundle older than the code checked out, or every test would run yesterday's service.
 */
import fs from "node:fs"
import path from "node:path"
import { describe, expect, it } from "vitest"
import { bundleIsFresh, bundlePath, SERVICE_NAMES } from "../../infra/bundle.ts"
import { serviceArgs, serviceEntry } from "../../infra/services.ts"

const ROOT = path.join(import.meta.dirname, "..", "..")

describe("serviceEntry", () => {
  it("builds the bundle again once a source is newer than it, and starts the service from it", () => {
    const entry = serviceEntry("projection")
    expect(entry).toBe(bundlePath("projection"))
    expect(bundleIsFresh("projection")).toBe(true)

    // The bundle dates from before a source of a package the service imports was last edited.
    const source = path.join(ROOT, "packages", "domain", "src", "Ids.ts")
    const before = new Date(fs.statSync(source).mtimeMs - 1_000)
    fs.utimesSync(entry, before, before)
    expect(bundleIsFresh("projection")).toBe(false)

    expect(serviceEntry("projection")).toBe(entry)
    expect(fs.statSync(entry).mtimeMs).toBeGreaterThanOrEqual(fs.statSync(source).mtimeMs)
    expect(bundleIsFresh("projection")).toBe(true)
    expect(serviceArgs("projection").at(-1)).toBe(entry)
  })

  it("bundles the patched postgres.js, and builds again once a patch is newer than the bundle", () => {
    const entry = serviceEntry("registration")
    // The patched Query (patches/postgres+3.4.9.patch) settles through methods, not property arrows.
    expect(fs.readFileSync(entry, "utf8")).toContain("this.settle=resolve")
    // The patch is the newest input (edited now), the bundle a second older than it.
    const patch = path.join(ROOT, "patches", "postgres+3.4.9.patch")
    const now = new Date()
    fs.utimesSync(patch, now, now)
    const before = new Date(now.getTime() - 1_000)
    fs.utimesSync(entry, before, before)
    expect(bundleIsFresh("registration")).toBe(false)
    expect(serviceEntry("registration")).toBe(entry)
    expect(bundleIsFresh("registration")).toBe(true)
  })

  it("runs src/main.ts with ORBIT_RUN_FROM_SOURCE=1", () => {
    process.env.ORBIT_RUN_FROM_SOURCE = "1"
    try {
      expect(serviceEntry("dispatcher")).toBe(path.join(ROOT, "services", "dispatcher", "src", "main.ts"))
    } finally {
      delete process.env.ORBIT_RUN_FROM_SOURCE
    }
  })

  it("leaves kafkajs to node_modules, where @orbit/kafka patches it: a copy in the bundle would run unpatched", () => {
    for (const name of SERVICE_NAMES) {
      const text = fs.readFileSync(serviceEntry(name), "utf8")
      // kafkajs' own modules (here, its SASL authenticator class) are not in the bundle...
      expect(text, name).not.toContain("class SASLAuthenticator")
      // ...and the bundle requires kafkajs after the patch's code, as Kafkajs.ts does.
      const patch = text.indexOf("scheduleCheckPendingRequests")
      expect(patch, name).toBeGreaterThan(0)
      expect(text.indexOf("(`kafkajs`)", patch), name).toBeGreaterThan(patch)
    }
  })
})
