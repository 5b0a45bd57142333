// A service runs from one bundled file, `services/<name>/dist/main.mjs`, built by rolldown from
// its TypeScript sources and the packages they import (effect, postgres.js, undici and our own).
// Why: a process that loads hundreds of modules keeps every module's source text and records in
// its heap (Effect's modules with their doc comments, the TypeScript stripper); the bundle keeps
// only the code the service uses, without comments or whitespace. Identifiers are not mangled, so
// stack traces and class names read as in the sources. kafkajs stays in node_modules, external:
// it is patched module by module where Node loads it (packages/kafka/src/KafkajsPatch.ts).
//
// `node infra/bundle.ts [name...]` builds the named services (all three by default);
// `serviceEntry` (infra/services.ts) builds one when its bundle is missing or older than a source.
import fs from "node:fs"
import path from "node:path"
import { build } from "rolldown"

const ROOT = path.join(import.meta.dirname, "..")
export const SERVICE_NAMES = ["registration", "projection", "dispatcher"] as const
export type ServiceName = (typeof SERVICE_NAMES)[number]

export const bundlePath = (name: ServiceName) => path.join(ROOT, "services", name, "dist", "main.mjs")

/**
 * Builds one service's bundle. It is written beside its final name and renamed into place, so a
 * process starting the service at the same moment (parallel test files) reads a whole file.
 */
export const bundleService = async (name: ServiceName): Promise<string> => {
  const target = bundlePath(name)
  const partial = `${target}.${process.pid}.tmp`
  await build({
    input: path.join(ROOT, "services", name, "src", "main.ts"),
    platform: "node",
    // kafkajs is patched where Node loads it (KafkajsPatch.ts edits its modules in require's cache
    // before the first producer or consumer exists): a copy inside the bundle would run unpatched.
    external: [/^kafkajs(\/|$)/],
    logLevel: "warn",
    output: {
      file: partial,
      format: "esm",
      comments: false,
      minify: { compress: false, mangle: false, codegen: { removeWhitespace: true } }
    }
  })
  fs.renameSync(partial, target)
  return target
}

/** The newest modification time of the files a service's bundle is built from. */
export const newestSource = (name: ServiceName): number => {
  let newest = 0
  const visit = (p: string) => {
    const stat = fs.statSync(p, { throwIfNoEntry: false })
    if (stat === undefined) return
    if (stat.isDirectory()) for (const entry of fs.readdirSync(p)) visit(path.join(p, entry))
    else newest = Math.max(newest, stat.mtimeMs)
  }
  visit(path.join(ROOT, "services", name, "src"))
  for (const pkg of fs.readdirSync(path.join(ROOT, "packages"))) visit(path.join(ROOT, "packages", pkg, "src"))
  // A changed dependency, or a change to how bundles are built.
  visit(path.join(ROOT, "package-lock.json"))
  visit(path.join(ROOT, "patches"))
  visit(import.meta.filename)
  return newest
}

/** Whether a service's bundle exists and is newer than every file it is built from. */
export const bundleIsFresh = (name: ServiceName): boolean => {
  const stat = fs.statSync(bundlePath(name), { throwIfNoEntry: false })
  return stat !== undefined && stat.mtimeMs >= newestSource(name)
}

if (import.meta.main) {
  const names = process.argv.length > 2 ? process.argv.slice(2) : SERVICE_NAMES
  for (const name of names) {
    if (!SERVICE_NAMES.includes(name as ServiceName)) {
      process.stderr.write(`unknown service "${name}" (one of ${SERVICE_NAMES.join(", ")})\n`)
      process.exit(2)
    }
    const started = performance.now()
    await bundleService(name as ServiceName)
    process.stdout.write(`[bundle] ${name}: ${path.relative(ROOT, bundlePath(name as ServiceName))} in ${((performance.now() - started) / 1000).toFixed(1)} s\n`)
  }
}
