import { defineConfig } from "vitest/config"

// Every test here runs against the real Postgres (no broker), each in a schema of its own.
export default defineConfig({
  test: { include: ["test/**/*.test.ts"], testTimeout: 60_000, hookTimeout: 60_000 }
})
