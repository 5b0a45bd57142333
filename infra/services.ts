// How a service process is started, shared by `npm start` (infra/start.ts) and the tests
// (test/src/Platform.ts): node, the flags the service's package.json names
// ("orbit": { "nodeArgs": [...] }), then its entry point.
import fs from "node:fs"
import path from "node:path"

const ROOT = path.join(import.meta.dirname, "..")

export type ServiceName = "registration" | "projection" | "dispatcher"

export const serviceArgs = (name: ServiceName, extraNodeArgs: ReadonlyArray<string> = []): Array<string> => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "services", name, "package.json"), "utf8")) as {
    orbit?: { nodeArgs?: Array<string> }
  }
  return [...(pkg.orbit?.nodeArgs ?? []), ...extraNodeArgs, path.join(ROOT, "services", name, "src", "main.ts")]
}
