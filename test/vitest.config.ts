import { tiers } from "../vitest.tiers.ts"

export default tiers({
  // The local broker's tooling where it is pure, and the repository's dependency rules.
  unit: ["e2e/infra.test.ts", "e2e/start-prerequisites.test.ts", "checks/dependency-rules.test.ts", "checks/bundle.test.ts"],
  include: ["e2e/**/*.test.ts", "checks/**/*.test.ts"],
  integration: {
    globalSetup: ["./src/globalSetup.ts"],
    // One broker and two cores: files run one after another; fault tests stop shared parts.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000
  }
})
