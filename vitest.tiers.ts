import { configDefaults, defineConfig, type ViteUserConfig } from "vitest/config"

type TestOptions = NonNullable<ViteUserConfig["test"]>

/**
 * A package's tests in two vitest projects. `unit` names its files one by one: they need neither
 * the broker nor Postgres, and `npm run test:unit` (`vitest run --project unit`) runs them alone.
 * Every other file under `test/` is `integration` (real broker, real Postgres), so a new test file
 * lands there unless it is added to the unit list. `vitest run` runs both.
 */
export const tiers = (options: {
  readonly unit: ReadonlyArray<string>
  /** Test options of both projects. */
  readonly common?: TestOptions
  /** Test options of the integration project (timeouts, pool, global setup). */
  readonly integration?: TestOptions
  /** Where the test files are (default `test/**`). */
  readonly include?: ReadonlyArray<string>
}) =>
  defineConfig({
    test: {
      ...options.common,
      projects: [
        {
          extends: true,
          test: {
            name: "unit",
            include: [...options.unit],
            // Pure files share one worker and one module graph: no process start per file.
            isolate: false,
            maxWorkers: 1,
            sequence: { groupOrder: 0 }
          }
        },
        {
          extends: true,
          test: {
            name: "integration",
            include: [...(options.include ?? ["test/**/*.test.ts"])],
            exclude: [...configDefaults.exclude, ...options.unit],
            ...options.integration,
            sequence: { groupOrder: 1 }
          }
        }
      ]
    }
  })

/** A package whose tests are all unit tests: one worker, one module graph. */
export const unitOnly = () =>
  defineConfig({
    test: { include: ["test/**/*.test.ts"], isolate: false, maxWorkers: 1 }
  })
