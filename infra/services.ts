// How a service process is started, shared by `npm start` (infra/start.ts) and the tests
// (test/src/Platform.ts): node, the flags the service's package.json names
// ("orbit": { "nodeArgs": [...] }), then its entry point, with `serviceEnv` around its environment.
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

/**
 * glibc's malloc settings for a service process, which the C library reads when the process
 * starts. Node's native side (V8's compiler zones, OpenSSL, socket and Kafka buffers) allocates
 * through malloc: with an arena per thread, and thresholds that glibc raises after the first large
 * free, memory freed after a burst stays resident. Two arenas and fixed thresholds hand it back
 * (the resident memory rows of `npm run bench:dispatch`). A value already in the environment wins.
 */
export const MALLOC_SETTINGS: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: "2",
  MALLOC_MMAP_THRESHOLD_: "131072",
  MALLOC_TRIM_THRESHOLD_: "131072"
}

/** A service process's environment: `env` over `MALLOC_SETTINGS`. */
export const serviceEnv = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv => ({ ...MALLOC_SETTINGS, ...env })
