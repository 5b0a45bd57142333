import postgres from "postgres"
import { randomBytes, randomUUID } from "node:crypto"
import { Writable } from "node:stream"
const sql = postgres("postgres://postgres@127.0.0.1:5432/postgres", { max: 4, onnotice: () => {} })
await sql`DROP SCHEMA IF EXISTS pgins CASCADE`
await sql`CREATE SCHEMA pgins`
const ddl = (t: string, index: boolean) => sql.unsafe(`
CREATE ${process.env.UNLOGGED ? "UNLOGGED" : ""} TABLE pgins.${t} (id text PRIMARY KEY, tenant_id text NOT NULL, mode text NOT NULL, url text NOT NULL, events jsonb NOT NULL,
 description text, active boolean NOT NULL, timeout_seconds integer NOT NULL, retry_policy jsonb NOT NULL, secret_box text NOT NULL,
 previous_secret_box text, previous_expires_at timestamptz, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
 headers jsonb NOT NULL DEFAULT '{}'::jsonb, disabled_reason text CHECK (disabled_reason IN ('failing')), disabled_at timestamptz, rate_limit_per_second integer);
${index ? `CREATE INDEX ON pgins.${t} (tenant_id, mode, created_at DESC, id DESC);` : ""}`)
const N = 100_000, B = 7_700
const rows = Array.from({ length: N }, (_, i) => ({
  id: "ep_" + randomBytes(12).toString("base64url"), tenant_id: `scale_t${i % 1000}`, mode: "live", url: `https://93.184.216.34/hooks/${i}`,
  events: ["message.failed"], description: null, active: true, timeout_seconds: 5,
  retry_policy: { strategy: "custom", delays_seconds: [1, 2, 4, 8, 15, 30, 60, 120, 300] },
  secret_box: "v2.k1." + randomBytes(80).toString("base64url"), previous_secret_box: null, previous_expires_at: null,
  created_at: new Date(Date.UTC(2026, 0, 1) + i).toISOString(), updated_at: new Date(Date.UTC(2026, 0, 1) + i).toISOString(),
  headers: {}, disabled_reason: null, disabled_at: null, rate_limit_per_second: null
}))
const batches: Array<typeof rows> = []
for (let i = 0; i < N; i += B) batches.push(rows.slice(i, i + B))
const upsertTail = `ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, events = EXCLUDED.events, updated_at = EXCLUDED.updated_at`
const cols = ["id","tenant_id","mode","url","events","description","active","timeout_seconds","retry_policy","secret_box","previous_secret_box","previous_expires_at","created_at","updated_at","headers","disabled_reason","disabled_at","rate_limit_per_second"] as const
const esc = (v: unknown) => v === null || v === undefined ? "\\N" : (typeof v === "object" ? JSON.stringify(v) : String(v)).replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\t/g, "\\t").replace(/\r/g, "\\r")
const copyText = (b: typeof rows) => b.map((r) => cols.map((c) => esc((r as any)[c])).join("\t")).join("\n") + "\n"
const variants: Record<string, (t: string, b: typeof rows) => Promise<unknown>> = {
  jsonb_upsert: (t, b) => sql.begin(async (tx) => { await tx`SELECT id FROM ${tx("pgins." + t)} WHERE id = ANY(${b.map((r) => r.id)}) FOR UPDATE`; await tx.unsafe(`INSERT INTO pgins.${t} SELECT * FROM jsonb_populate_recordset(NULL::pgins.${t}, $1::text::jsonb) ${upsertTail}`, [JSON.stringify(b)]) }),
  jsonb_upsert_noselect: (t, b) => sql.begin(async (tx) => { await tx.unsafe(`INSERT INTO pgins.${t} SELECT * FROM jsonb_populate_recordset(NULL::pgins.${t}, $1::text::jsonb) ${upsertTail}`, [JSON.stringify(b)]) }),
  json_upsert: (t, b) => sql.begin(async (tx) => { await tx.unsafe(`INSERT INTO pgins.${t} SELECT * FROM json_populate_recordset(NULL::pgins.${t}, $1::text::json) ${upsertTail}`, [JSON.stringify(b)]) }),
  copy: (t, b) => sql.begin(async (tx) => { const w = await tx.unsafe(`COPY pgins.${t} (${cols.join(",")}) FROM STDIN`).writable(); await new Promise<void>((res, rej) => { w.on("error", rej); w.on("finish", res); w.end(copyText(b)) }) }),
  jsonb_plain: (t, b) => sql.begin(async (tx) => { await tx.unsafe(`INSERT INTO pgins.${t} SELECT * FROM jsonb_populate_recordset(NULL::pgins.${t}, $1::text::jsonb)`, [JSON.stringify(b)]) }),
}
for (const round of [1]) for (const [name, f] of Object.entries(variants)) for (const index of [true, false]) {
  const t = `${name}_${index ? "ix" : "noix"}_${round}`
  await ddl(t, index)
  const t0 = performance.now()
  for (const b of batches) await f(t, b)
  const ms = performance.now() - t0
  console.log(`${name.padEnd(24)} index=${index} ${ms.toFixed(0)} ms  ${(N / (ms / 1000)).toFixed(0)} rows/s`)
}
await sql`DROP SCHEMA pgins CASCADE`
await sql.end()
