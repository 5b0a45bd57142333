import { mkdtempSync, rmSync } from "node:fs"
import { once } from "node:events"
import net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type LocalKafka, localKafka } from "../../infra/kafka.ts"

/** True if nothing listens on 127.0.0.1:`port` (we could bind it a moment ago). */
const bindable = async (port: number): Promise<boolean> => {
  const server = net.createServer()
  server.listen(port, "127.0.0.1")
  const ok = await Promise.race([once(server, "listening").then(() => true), once(server, "error").then(() => false)])
  if (ok) await new Promise((r) => server.close(r))
  return ok
}

/**
 * `count` consecutive free ports in [`from`, `to`] (OWN_KAFKA_PORTS="from-to" overrides the range),
 * starting at a random place so parallel runs rarely race for the same ones.
 */
export const freePortRun = async (count: number): Promise<number> => {
  const [from, to] = (process.env.OWN_KAFKA_PORTS ?? "20000-20999").split("-").map(Number) as [number, number]
  const span = to - from + 1 - count
  const offset = Math.floor(Math.random() * span)
  for (let i = 0; i < span; i++) {
    const first = from + ((offset + i) % span)
    let free = true
    for (let p = first; p < first + count && free; p++) free = await bindable(p)
    if (free) return first
  }
  throw new Error(`no ${count} consecutive free ports in ${from}-${to}`)
}

export type OwnKafka = LocalKafka & {
  /** Stops every node and deletes the data directory. */
  readonly remove: () => Promise<void>
}

/**
 * A Kafka broker (or a KRaft cluster of `nodes`) of a test's own: its own free ports and a temporary
 * data directory, so a test can kill -9 or stop it without touching the broker other tests, or a
 * running `npm start`, use.
 */
export const startOwnKafka = async (nodes = 1): Promise<OwnKafka> => {
  const port = await freePortRun(2 * nodes)
  const dataDir = mkdtempSync(join(tmpdir(), "own-kafka-"))
  const kafka = localKafka({ port, dataDir, nodes })
  const remove = async () => {
    await kafka.stop().catch(() => false)
    rmSync(dataDir, { recursive: true, force: true })
  }
  try {
    await kafka.start()
  } catch (e) {
    await remove()
    throw e
  }
  return Object.assign(kafka, { remove })
}
