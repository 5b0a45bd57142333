import { spawn, execSync } from "node:child_process"
import fs from "node:fs"
import { serviceArgs } from "../../infra/services.ts"
import { startPlatform, uniqueTenant } from "../src/Platform.ts"
import { freePort } from "../src/freePort.ts"
import { LoadClient } from "./LoadClient.ts"
const platform = await startPlatform({ env: { ORBIT_DB_POOL_SIZE: "10", ORBIT_RATE_LIMIT_PER_SECOND: "1000000" } })
const tenant = uniqueTenant()
const { key } = await platform.createKey(tenant)
const { hostname, port } = new URL(platform.baseUrl)
const api = new LoadClient(hostname, Number(port), 16)
const create = api.prepare("POST", "/api/v1/webhooks", { "x-api-key": key, "content-type": "application/json" },
  JSON.stringify({ url: "https://93.184.216.34/bench", events: ["message.delivered"] }))
for (let i = 0; i < 200; i += 20) await Promise.all(Array.from({ length: 20 }, () => api.request(create)))
const path = process.env.P ?? "/api/v1/webhooks"
const variants = (process.env.V ?? "|").split("|")
const servers: Array<{ name: string; pid: number; client: LoadClient; req: Buffer }> = []
for (const v of variants) {
  const p = await freePort()
  const toks = v.split(" ").filter(Boolean); const envs = Object.fromEntries(toks.filter((t) => /^[A-Z_]+=/.test(t)).map((t) => t.split("=")))
  const root = toks.find((t) => t.startsWith("@"))?.slice(1)
  const args = serviceArgs("registration", toks.filter((t) => !/^[A-Z_]+=/.test(t) && !t.startsWith("@")))
  if (root) args[args.length - 1] = `${root}/services/registration/src/main.ts`
  const child = spawn(process.execPath, args, { env: { ...platform.env, ...envs, PORT: String(p) }, stdio: ["ignore", "inherit", "inherit"] })
  console.log("spawned", v); await platform.waitFor("b", async () => (await fetch(`http://127.0.0.1:${p}/readyz`)).ok)
  const client = new LoadClient("127.0.0.1", p, 16)
  servers.push({ name: v || "(default)", pid: child.pid!, client, req: client.prepare("GET", path, { "x-api-key": key }) })
}
const ticks = (pid: number) => { const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" "); return Number(f[11]) + Number(f[12]) }
const run = async (c: LoadClient, r: Buffer, s: number) => { let n = 0; const end = performance.now() + s * 1000
  await Promise.all(Array.from({ length: 16 }, async () => { while (performance.now() < end) { const res = await c.request(r); if (res.status !== 200) throw new Error(String(res.status)); n++ } })); return n }
const bodies = await Promise.all(servers.map(async (s) => { const r = await fetch(`http://127.0.0.1:${(s.client as any).port}${path}`, { headers: { "x-api-key": key }, signal: AbortSignal.timeout(5000) }); const j = await r.json() as any; delete j.meta.request_id; delete j.meta.timestamp; return JSON.stringify(j) }))
console.log("bodies equal:", bodies.every((b) => b === bodies[0]), bodies[0]!.length)
for (const s of servers) await run(s.client, s.req, 8)
const res = new Map<string, Array<number>>()
for (let round = 0; round < Number(process.env.ROUNDS ?? 4); round++) for (const s of servers) {
  const t0 = ticks(s.pid); const n = await run(s.client, s.req, 5); const us = ((ticks(s.pid) - t0) * 10000) / n
  res.set(s.name, [...(res.get(s.name) ?? []), Math.round(us)])
}
for (const [k, v] of res) console.log(`${k.padEnd(50)} server µs/req ${v.join(" ")}  median ${[...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]}`)
for (const s of servers) { s.client.close(); process.kill(s.pid) }
api.close(); await platform.close(); process.exit(0)
