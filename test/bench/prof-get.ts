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
const run = async (s: number) => { let n = 0; const end = performance.now() + s * 1000
  await Promise.all(Array.from({ length: 16 }, async () => { while (performance.now() < end) { await api.request(list); n++ } })); return n / s }
console.log("warm", await run(10))
console.log("measured", await run(Number(process.env.S ?? 10)))
api.close()
await platform.close()
process.exit(0)
