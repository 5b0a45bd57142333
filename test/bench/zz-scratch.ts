import { startPlatform, uniqueTenant } from "../src/Platform.ts"
import { LoadClient } from "./LoadClient.ts"
const platform = await startPlatform({ env: { ORBIT_DB_POOL_SIZE: "10", ORBIT_RATE_LIMIT_PER_SECOND: "1000000", LOG_LEVEL: "Debug" } })
try {
  const { key } = await platform.createKey(uniqueTenant())
  const { hostname, port } = new URL(platform.baseUrl)
  const c = new LoadClient(hostname, Number(port), 64)
  const req = c.prepare("POST", "/api/v1/webhooks", { "x-api-key": key, "content-type": "application/json" }, JSON.stringify({ url: "https://93.184.216.34/bench", events: ["message.delivered"] }))
  for (const round of [1, 2]) {
    const end = performance.now() + 8000
    let n = 0
    const lat: number[] = []
    await Promise.all(Array.from({ length: 64 }, async () => { while (performance.now() < end) { const t = performance.now(); const r = await c.request(req); if (r.status === 201) { n++; lat.push(performance.now() - t) } } }))
    lat.sort((a, b) => a - b)
    console.log(`round ${round}: ${n / 8}/s p50 ${lat[Math.floor(lat.length / 2)]}`)
  }
  const lines = platform.logs.get("registration")!.filter((l) => l.includes("endpoint event appended"))
  const prod: number[] = [], wait: number[] = []
  for (const l of lines.slice(-500)) { const j = JSON.parse(l); const a = j.annotations ?? j; prod.push(Number(a.produce_ms ?? JSON.stringify(j).match(/produce_ms\D+(\d+)/)?.[1])); wait.push(Number(JSON.stringify(j).match(/projection_wait_ms\D+(\d+)/)?.[1])) }
  const med = (a: number[]) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)]
  console.log("appended lines", lines.length, "produce median", med(prod), "wait median", med(wait))
  console.log(lines.slice(-2).join("\n"))
  c.close()
} finally { await platform.close() }
process.exit(0)
