/**
 * One process for QueryRetention.test.ts, run with --expose-gc: awaits 300 queries of 40 rows one
 * after another, with nothing kept, then runs two young-generation collections and prints how much
 * V8's old space grew against the size of the row text the queries returned.
 */
import v8 from "node:v8"
import postgres from "postgres"

const gc = (globalThis as { gc?: (options?: { type: "minor" | "major" }) => void }).gc!
const oldSpaceUsed = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === "old_space")!.space_used_size

const sql = postgres(process.env.DATABASE_URL!, { max: 2, onnotice: () => undefined })
await sql`SELECT 1`
gc()
const before = oldSpaceUsed()
let rowTextBytes = 0
for (let i = 0; i < 300; i++) {
  const rows = await sql<Array<{ n: number; pad: string }>>`SELECT g AS n, repeat('x', 200) AS pad FROM generate_series(1, 40) g`
  rowTextBytes += rows.reduce((sum, row) => sum + row.pad.length, 0)
}
gc({ type: "minor" })
gc({ type: "minor" })
process.stdout.write(JSON.stringify({ oldSpaceGrowth: oldSpaceUsed() - before, rowTextBytes }) + "\n")
await sql.end()
