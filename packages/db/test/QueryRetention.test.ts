/**
 * A finished query's rows die young. Unpatched, postgres.js 3.4.9 creates each query's resolve and
 * reject as arrow functions assigned to properties, which V8 allocates in its old generation; their
 * context holds the query and so its result, which then survives every young-generation collection
 * until the next full one. patches/postgres+3.4.9.patch makes them methods; this test fails without
 * it (the old space grows by more than the rows' text).
 */
import { spawn } from "node:child_process"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

const run = () =>
  new Promise<{ oldSpaceGrowth: number; rowTextBytes: number }>((resolve, reject) => {
    const child = spawn(process.execPath, ["--expose-gc", join(import.meta.dirname, "query-retention-process.ts")], {
      env: { ...process.env, DATABASE_URL },
      stdio: ["ignore", "pipe", "inherit"]
    })
    let stdout = ""
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d))
    child.on("error", reject)
    child.on("close", (code) => (code === 0 ? resolve(JSON.parse(stdout)) : reject(new Error(`exit ${code}: ${stdout}`))))
  })

describe("postgres.js query results", () => {
  it("are not promoted to the old generation once the query has been awaited", async () => {
    const { oldSpaceGrowth, rowTextBytes } = await run()
    expect(rowTextBytes).toBe(300 * 40 * 200)
    expect(oldSpaceGrowth).toBeLessThan(rowTextBytes / 4)
  })
})
