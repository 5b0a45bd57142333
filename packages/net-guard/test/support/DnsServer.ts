/**
 * A tiny authoritative DNS server on 127.0.0.1 (UDP) for tests: A and AAAA records from a table,
 * NXDOMAIN for unknown names, and no answer at all for the names marked `hang`. It records every
 * question it receives, so a test can tell whether a lookup reached the network.
 */
import { createSocket } from "node:dgram"
import { once } from "node:events"
import type { AddressInfo } from "node:net"
import * as packet from "dns-packet"

export interface DnsRecordSet {
  readonly a?: ReadonlyArray<string>
  readonly aaaa?: ReadonlyArray<string>
  /** Seconds; default 300. */
  readonly ttl?: number
  /** Never answer questions for this name. */
  readonly hang?: boolean
}

export interface DnsServer {
  /** `127.0.0.1:<port>`, for `setServers` / `ORBIT_DNS_SERVERS`. */
  readonly address: string
  /** Every question received, in order: `{ name, type }`. */
  readonly questions: Array<{ readonly name: string; readonly type: string }>
  /** Questions received for a name (any type). */
  asked(name: string): number
  /** Replaces or adds the records of a name. */
  set(name: string, records: DnsRecordSet): void
  close(): Promise<void>
}

export const startDnsServer = async (zone: Record<string, DnsRecordSet>): Promise<DnsServer> => {
  const records = new Map(Object.entries(zone).map(([k, v]) => [k.toLowerCase(), v]))
  const questions: Array<{ name: string; type: string }> = []
  const socket = createSocket("udp4")
  socket.on("message", (message, remote) => {
    let query: packet.Packet
    try {
      query = packet.decode(message)
    } catch {
      return
    }
    const question = query.questions?.[0]
    if (question === undefined) return
    const name = question.name.toLowerCase()
    questions.push({ name, type: question.type })
    const set = records.get(name)
    if (set?.hang === true) return
    const ttl = set?.ttl ?? 300
    const data = question.type === "A" ? set?.a ?? [] : question.type === "AAAA" ? set?.aaaa ?? [] : []
    const answers = data.map((address) =>
      ({ type: question.type as "A" | "AAAA", name: question.name, ttl, class: "IN" as const, data: address })
    )
    const reply = packet.encode({
      id: query.id,
      type: "response",
      // Authoritative answer, recursion desired/available; NXDOMAIN (rcode 3) for unknown names.
      flags: packet.AUTHORITATIVE_ANSWER | packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | (set === undefined ? 3 : 0),
      questions: [question],
      answers
    })
    socket.send(reply, remote.port, remote.address)
  })
  socket.bind(0, "127.0.0.1")
  await once(socket, "listening")
  const { port } = socket.address() as AddressInfo
  return {
    address: `127.0.0.1:${port}`,
    questions,
    asked: (name) => questions.filter((q) => q.name === name.toLowerCase()).length,
    set: (name, set) => void records.set(name.toLowerCase(), set),
    close: () => new Promise<void>((resolve) => socket.close(() => resolve()))
  }
}
