// Write baseline for `npm run bench:api`: what a classic webhooks service does to register an
// endpoint, behind a bare node:http handler: parse the JSON body, one INSERT into Postgres, answer
// 201 with the row. No auth, validation, Kafka, projection or Effect.
import { randomBytes } from "node:crypto"
import http from "node:http"
import { postgres } from "@orbit/db"

const sql = postgres(process.env.DATABASE_URL!, { max: 10, connection: { search_path: process.env.ORBIT_DB_SCHEMA! } })
const tenant = process.env.BENCH_TENANT!

await sql`CREATE TABLE IF NOT EXISTS bench_bare_endpoints (
  id text PRIMARY KEY, tenant_id text NOT NULL, url text NOT NULL, events jsonb NOT NULL,
  secret text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`

http
  .createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", async () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { url: string; events: Array<string> }
      const [row] = await sql`
        INSERT INTO bench_bare_endpoints (id, tenant_id, url, events, secret)
        VALUES (${`wh_${randomBytes(16).toString("base64url")}`}, ${tenant}, ${body.url}, ${sql.json(body.events)},
          ${`whsec_${randomBytes(24).toString("base64")}`})
        RETURNING id, url, events, secret, created_at`
      const text = JSON.stringify({ data: row })
      res.writeHead(201, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text)
    })
  })
  .listen(Number(process.env.PORT), "127.0.0.1", () => process.stdout.write("listening\n"))
process.on("SIGTERM", () => process.exit(0))
