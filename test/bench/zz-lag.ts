import { Kafka, logLevel } from "@orbit/kafka"
const admin = new Kafka({ clientId: "probe", brokers: ["127.0.0.1:19792"], logLevel: logLevel.NOTHING }).admin(); await admin.connect()
const prefix = process.argv[2]!
for (const g of ["orbit-dispatcher-fanout", "orbit-dispatcher-delivery", "orbit-dispatcher-retry"]) {
  const o = await admin.fetchOffsets({ groupId: prefix + g })
  for (const t of o) { const ends = await admin.fetchTopicOffsets(t.topic); const lag = t.partitions.reduce((n, p) => n + Number(ends.find((e) => e.partition === p.partition)!.high) - Math.max(0, Number(p.offset)), 0); const hi = ends.reduce((n, e) => n + Number(e.high), 0); if (hi > 0) console.log(g, t.topic.slice(prefix.length), "end", hi, "lag", lag) }
}
await admin.disconnect()
