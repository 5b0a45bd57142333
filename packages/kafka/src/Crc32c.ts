/**
 * CRC-32C (Castagnoli), the checksum of Kafka record batches, eight bytes per step
 * ("slicing-by-8"). kafkajs computes it one byte per step, a hot spot of every produce; this gives
 * the same values (`test/Crc32c.test.ts` checks them against kafkajs' and the standard check
 * value) several times faster.
 */
const POLY = 0x82f63b78
const T = new Int32Array(8 * 256)
for (let b = 0; b < 256; b++) {
  let c = b
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1
  T[b] = c
}
for (let b = 0; b < 256; b++) {
  for (let t = 1; t < 8; t++) T[t * 256 + b] = (T[(t - 1) * 256 + b]! >>> 8) ^ T[T[(t - 1) * 256 + b]! & 0xff]!
}

export const crc32c = (buf: Uint8Array): number => {
  let crc = -1
  let i = 0
  const n = buf.length
  for (const end = n - 7; i < end; i += 8) {
    const a = crc ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24))
    crc = T[1792 + (a & 0xff)]! ^ T[1536 + ((a >>> 8) & 0xff)]! ^ T[1280 + ((a >>> 16) & 0xff)]! ^ T[1024 + (a >>> 24)]! ^
      T[768 + buf[i + 4]!]! ^ T[512 + buf[i + 5]!]! ^ T[256 + buf[i + 6]!]! ^ T[buf[i + 7]!]!
  }
  for (; i < n; i++) crc = T[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8)
  return (crc ^ -1) >>> 0
}
