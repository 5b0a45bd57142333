import type { Tx } from "@orbit/db"

/** The channel on which the projection announces applied offsets (read-your-writes waiters). */
export const OFFSETS_CHANNEL = "orbit_projection_offsets"

export const readNextOffset = async (tx: Tx, projection: string, topic: string, partition: number) => {
  const rows = await tx<Array<{ next_offset: string }>>`
    SELECT next_offset FROM projection_offsets
    WHERE projection = ${projection} AND topic = ${topic} AND partition = ${partition}
    FOR UPDATE`
  return rows[0] ? BigInt(rows[0].next_offset) : 0n
}

export const writeNextOffset = async (tx: Tx, projection: string, topic: string, partition: number, next: bigint) => {
  await tx`
    INSERT INTO projection_offsets (projection, topic, partition, next_offset)
    VALUES (${projection}, ${topic}, ${partition}, ${next.toString()})
    ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset`
}
