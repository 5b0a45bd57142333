import { tiers } from "../../vitest.tiers.ts"

// The CLI runs as a child process, as a person would run it. Integration tests use the real Postgres.
export default tiers({
  unit: ["test/usage.test.ts"],
  // Each case starts a node process: seconds apiece on a loaded host.
  common: { testTimeout: 60_000, hookTimeout: 60_000 }
})
