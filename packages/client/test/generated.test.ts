import { execFile } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { afterAll, describe, expect, it } from "vitest"

const script = new URL("../scripts/generate.ts", import.meta.url).pathname
const committed = new URL("../src/generated/", import.meta.url).pathname
const fresh = mkdtempSync(join(tmpdir(), "orbit-client-"))
afterAll(() => rmSync(fresh, { recursive: true, force: true }))

describe("the generated client", () => {
  it("is what regenerating from the served document gives (run `npm run generate -w @orbit/client` after changing the API)", async () => {
    await promisify(execFile)(process.execPath, [script, fresh])
    const names = readdirSync(fresh).sort()
    expect(names).toEqual(["openapi.json", "openapi.ts"])
    expect(readdirSync(committed).sort()).toEqual(names)
    for (const name of names) {
      const want = readFileSync(join(fresh, name), "utf8").split("\n")
      const got = readFileSync(join(committed, name), "utf8").split("\n")
      // The first differing line, so a failure says where (the files are thousands of lines long).
      const line = want.findIndex((text, i) => got[i] !== text)
      const at = line === -1 ? want.length : line
      expect({ file: `src/generated/${name}`, line: at + 1, text: got[at] }).toEqual({
        file: `src/generated/${name}`,
        line: at + 1,
        text: want[at]
      })
      expect(got.length, `src/generated/${name}: line count`).toBe(want.length)
    }
    // A node process that loads Effect and openapi-typescript: seconds on a busy 2-core machine,
    // more than vitest's 5 s default allows.
  }, 60_000)
})
