// Baseline for `npm run bench:api`: the list endpoint's Postgres query (the same SQL text as
// EndpointStore.list sends for a first page) behind a bare node:http handler, with none of the
// platform around it (no auth, no validation, no Effect).
import http from "node:http"
import { postgres } from "@orbit/db"

const sql = postgres(process.env.DATABASE_URL!, { max: 10, connection: { search_path: process.env.ORBIT_DB_SCHEMA! } })
const tenant = process.env.BENCH_TENANT!

http
  .createServer(async (_req, res) => {
    const rows = await sql`
      SELECT id, url, events, description, active, timeout_seconds, retry_policy, headers, rate_limit_per_second,
        disabled_reason, to_char(disabled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS disabled_at,
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created_at,
        to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS updated_at,
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_key
      FROM endpoints WHERE tenant_id = ${tenant} AND mode = ${"live"}
      ORDER BY endpoints.created_at DESC, endpoints.id DESC LIMIT ${26}`
    const body = JSON.stringify({ data: rows.slice(0, 25), meta: { pagination: { has_more: rows.length > 25 } } })
    // An exact Content-Length, as the platform sends (without it Node would frame the body chunked).
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body)
  })
  .listen(Number(process.env.PORT), "127.0.0.1", () => process.stdout.write("listening\n"))
process.on("SIGTERM", () => process.exit(0)) // exit normally, so node flags like --cpu-prof write their output
