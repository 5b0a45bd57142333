// The dependency rules of `.dependency-cruiser.json` (services never import each other; kafkajs,
// the Postgres driver and undici each have one owner; the domain stays free of Kafka and SQL),
// checked over every source, test, benchmark and infra file. `npx depcruise -c
// .dependency-cruiser.json services packages test infra` at the root prints the same verdict.
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { cruise, type ICruiseResult, type IForbiddenRuleType } from "dependency-cruiser"
import { describe, expect, it } from "vitest"

const root = join(import.meta.dirname, "..", "..")
const config = JSON.parse(readFileSync(join(root, ".dependency-cruiser.json"), "utf8")) as {
  readonly forbidden: Array<IForbiddenRuleType>
  readonly options: Record<string, unknown>
}

describe("dependency rules", () => {
  it("holds for services, packages, tests, benchmarks and infra", async () => {
    const { output } = await cruise(["services", "packages", "test", "infra"], {
      ...config.options,
      baseDir: root,
      validate: true,
      ruleSet: { forbidden: config.forbidden }
    })
    const result = output as ICruiseResult
    // Something was cruised: a rule set that silently sees nothing would pass anything.
    expect(result.summary.totalCruised).toBeGreaterThan(100)
    const violations = result.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`)
    expect(violations).toEqual([])
  }, 60_000)
})
