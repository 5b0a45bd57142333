import type { Tx } from "@orbit/db"

/** The channel on which the projection announces applied offsets (read-your-writes waiters). */
export const OFFSETS_CHANNEL = "orbit_projection_offsets"

/** The stored next offset of one partition, locked; a pending query, so it can be pipelined. */
export const selectNextOffset = (tx: Tx, projection: string, topic: string, partition: number) =>
  tx<Array<{ next_offset: string }>>`
    SELECT next_offset FROM projection_offsets
    WHERE projection = ${projection} AND topic = ${topic} AND partition = ${partition}
    FOR UPDATE`

export const nextOffsetOf = (rows: ReadonlyArray<{ next_offset: string }>) => (rows[0] ? BigInt(rows[0].next_offset) : 0n)

export const readNextOffset = async (tx: Tx, projection: string, topic: string, partition: number) =>
  nextOffsetOf(await selectNextOffset(tx, projection, topic, partition))

/** Stores the next offset; a pending query, so it can be pipelined with the rows it goes with. */
export const writeNextOffset = (tx: Tx, projection: string, topic: string, partition: number, next: bigint) =>
  tx`
    INSERT INTO projection_offsets (projection, topic, partition, next_offset)
    VALUES (${projection}, ${topic}, ${partition}, ${next.toString()})
    ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset`
