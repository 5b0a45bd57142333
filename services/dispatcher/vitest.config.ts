import { defineConfig } from "vitest/config"

// Integration tests run against the real broker (KAFKA_BROKERS, else 127.0.0.1:KAFKA_PORT, default 9092); each file uses its own topic prefix.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks"
  }
})
