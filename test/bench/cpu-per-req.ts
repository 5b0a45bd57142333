import { spawn, execSync } from "node:child_process"
import { once } from "node:events"
import fs from "node:fs"
import path from "node:path"
import { startPlatform, uniqueTenant } from "../src/Platform.ts"
import { LoadClient } from "./LoadClient.ts"
const platform = await startPlatform({ env: { ORBIT_DB_POOL_SIZE: "10", ORBIT_RATE_LIMIT_PER_SECOND: "1000000" } })
const tenant = uniqueTenant()
const { key } = await platform.createKey(tenant)
const { hostname, port } = new URL(platform.baseUrl)
const api = new LoadClient(hostname, Number(port), 16)
const list = api.prepare("GET", "/api/v1/webhooks", { "x-api-key": key })
const create = api.prepare("POST", "/api/v1/webhooks", { "x-api-key": key, "content-type": "application/json" },
  JSON.stringify({ url: "https://93.184.216.34/bench", events: ["message.delivered"] }))
for (let i = 0; i < 200; i += 20) await Promise.all(Array.from({ length: 20 }, () => api.request(create)))
const barePort = 20000 + Math.floor(Math.random() * 20000)
const bare = spawn(process.execPath, [...(process.env.BARE_ARGS?.split(" ") ?? []), path.join(import.meta.dirname, "bare-list-server.ts")], { env: { ...platform.env, PORT: String(barePort), BENCH_TENANT: tenant }, stdio: ["ignore", "pipe", "inherit"] })
await once(bare.stdout!, "data")
const bareClient = new LoadClient("127.0.0.1", barePort, 16)
const bareList = bareClient.prepare("GET", "/", {})
const pidOnPort = (p: number) => Number(/pid=(\d+)/.exec(execSync(`ss -ltnpH 'sport = :${p}'`).toString())![1])
const regPid = pidOnPort(Number(port))
const ticks = (pid: number) => { const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" "); return Number(f[11]) + Number(f[12]) }
const pgPids = (): number[] => { const out = execSync(`ps -eo pid,args | grep 'postgres: ' | grep -v grep`).toString(); return out.trim().split("\n").map((l) => Number(l.trim().split(/\s+/)[0])) }
const pgTicks = () => pgPids().reduce((a, p) => { try { return a + ticks(p) } catch { return a } }, 0)
const run = async (c: LoadClient, r: Buffer, s: number) => { let n = 0; const end = performance.now() + s * 1000
  await Promise.all(Array.from({ length: 16 }, async () => { while (performance.now() < end) { await c.request(r); n++ } })); return n }
const measure = async (name: string, c: LoadClient, r: Buffer, server: number) => {
  const s0 = ticks(server), p0 = pgTicks(), l0 = process.cpuUsage()
  if (process.env.SNAP && name === "api") setTimeout(() => process.kill(server, "SIGUSR2"), 5000)
  const n = await run(c, r, 10)
  const s1 = ticks(server), p1 = pgTicks(), l1 = process.cpuUsage(l0)
  const us = (t: number) => (t * 10000 / n).toFixed(0)
  console.log(`${name.padEnd(6)} ${(n / 10).toFixed(0)} req/s  server ${us(s1 - s0)} µs/req  postgres ${us(p1 - p0)} µs/req  loadgen ${((l1.user + l1.system) / n).toFixed(0)} µs/req`)
  return n
}
if (process.env.ONLY1) { const get1 = api.prepare("GET", `/api/v1/webhooks?limit=${process.env.LIMIT ?? 1}`, { "x-api-key": key }); await run(api, get1, 5); await measure("limit1", api, get1, regPid); await measure("limit1", api, get1, regPid); api.close(); bareClient.close(); bare.kill(); await platform.close(); process.exit(0) }
await run(api, list, 8); await run(bareClient, bareList, 8)
if (process.env.EXTRA) {
  const health = api.prepare("GET", "/healthz", {})
  const nf = api.prepare("GET", "/nope", {})
  const badKey = api.prepare("GET", "/api/v1/webhooks", { "x-api-key": "dv_live_sk_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" })
  const get1 = api.prepare("GET", `/api/v1/webhooks?limit=${process.env.LIMIT ?? 1}`, { "x-api-key": key })
  for (const [n, r] of [["healthz", health], ["404", nf], ["401", badKey], ["limit1", get1]] as const) { await run(api, r, 3); await measure(n, api, r, regPid) }
}
for (let i = 0; i < Number(process.env.ROUNDS ?? 2); i++) {
  const a = await measure("api", api, list, regPid)
  const b = await measure("bare", bareClient, bareList, bare.pid!)
  console.log(`ratio ${(a / b).toFixed(2)}`)
}
api.close(); bareClient.close(); bare.kill()
console.log((platform.logs.get("registration") ?? []).filter((x) => x.includes("CTX")).slice(-3).join("\n"))
if (process.env.GCLOG) { const l = platform.logs.get("registration") ?? []; const g = l.filter((x) => /gc=/.test(x)); console.log(g.length, "gc lines"); console.log(g.filter((x) => /Mark/.test(x)).length, "mark-compact"); console.log(g.filter((x) => /Mark/.test(x)).join("\n")); console.log(g.slice(-4).join("\n")) }
await platform.close()
process.exit(0)
