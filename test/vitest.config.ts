import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["e2e/**/*.test.ts"],
    globalSetup: ["./src/globalSetup.ts"],
    // One broker and two cores: files run one after another; fault tests stop shared parts.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000
  }
})
