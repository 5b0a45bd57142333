/** The local broker's tooling (infra/kafka.ts) where it is pure. */
import { randomBytes } from "node:crypto"
import { describe, expect, it } from "vitest"
import { brokersOption, localKafka, newClusterId } from "../../infra/kafka.ts"

describe("newClusterId", () => {
  it("never starts with '-', which the storage tool would read as an option, and draws again instead", () => {
    // 0xf8 in the first byte is 111110xx: base64url character 62, "-".
    const draws = [Buffer.alloc(16, 0xf8), Buffer.alloc(16, 0xfb), Buffer.alloc(16, 0x01)]
    const random = () => draws.shift()!
    expect(Buffer.alloc(16, 0xf8).toString("base64url")).toMatch(/^-/)
    expect(newClusterId(random)).toBe(Buffer.alloc(16, 0x01).toString("base64url"))
    expect(draws).toHaveLength(0)
  })

  it("is 22 base64url characters from 16 random bytes", () => {
    for (let i = 0; i < 1000; i++) expect(newClusterId(randomBytes)).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/)
  })
})

describe("a local cluster (`--brokers N`)", () => {
  it("reads --brokers N and --brokers=N; absent is 1; anything but a whole number >= 1 is an error naming the option", () => {
    expect(brokersOption([])).toBe(1)
    expect(brokersOption(["--brokers", "3"])).toBe(3)
    expect(brokersOption(["--brokers=3"])).toBe(3)
    for (const bad of [["--brokers"], ["--brokers", "0"], ["--brokers", "two"], ["--brokers=1.5"]]) {
      expect(() => brokersOption(bad)).toThrow(/--brokers/)
    }
  })

  it("gives node n the broker port base + 2(n-1) and its controller the next one, each with files of its own", () => {
    const cluster = localKafka({ port: 20100, dataDir: "/tmp/x", nodes: 3 })
    expect(cluster.brokers).toEqual(["127.0.0.1:20100", "127.0.0.1:20102", "127.0.0.1:20104"])
    expect(cluster.nodes.map((n) => [n.id, n.port, n.controllerPort])).toEqual([[1, 20100, 20101], [2, 20102, 20103], [3, 20104, 20105]])
    expect(new Set(cluster.nodes.map((n) => n.logDir)).size).toBe(3)
    // A single broker keeps the layout infra/.data always had.
    const single = localKafka({ port: 9092, dataDir: "/d" }).nodes[0]!
    expect([single.logDir, single.props, single.pidFile]).toEqual(["/d/kafka", "/d/kafka.properties", "/d/kafka.pid"])
  })
})
