// How a service process is started, shared by `npm start` (infra/start.ts), the tests
// (test/src/Platform.ts) and the benchmarks: node, the flags the service's package.json names
// ("orbit": { "nodeArgs": [...] }), then its entry point, with `serviceEnv` around its environment.
import { spawnSync } from "node:child_process"
import fs from "node:fs"
import path from "node:path"
import { bundleIsFresh, bundlePath, type ServiceName } from "./bundle.ts"

const ROOT = path.join(import.meta.dirname, "..")

export type { ServiceName }

/**
 * The file a service runs from: its bundle (infra/bundle.ts), built first when it is missing or
 * older than a source, so what runs is always the code checked out. `ORBIT_RUN_FROM_SOURCE=1`
 * runs `src/main.ts` itself instead (to compare the two, or to debug with the sources' own lines).
 */
export const serviceEntry = (name: ServiceName): string => {
  if (process.env.ORBIT_RUN_FROM_SOURCE === "1") return path.join(ROOT, "services", name, "src", "main.ts")
  if (!bundleIsFresh(name)) {
    const built = spawnSync(process.execPath, [path.join(import.meta.dirname, "bundle.ts"), name], { stdio: ["ignore", "ignore", "inherit"] })
    if (built.status !== 0) throw new Error(`bundling the ${name} service failed (node infra/bundle.ts ${name})`)
  }
  return bundlePath(name)
}

export const serviceArgs = (name: ServiceName, extraNodeArgs: ReadonlyArray<string> = []): Array<string> => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "services", name, "package.json"), "utf8")) as {
    orbit?: { nodeArgs?: Array<string> }
  }
  return [...(pkg.orbit?.nodeArgs ?? []), ...extraNodeArgs, serviceEntry(name)]
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
