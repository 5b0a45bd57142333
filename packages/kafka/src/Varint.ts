/**
 * kafkajs' record varints without allocating. Its `Encoder.writeUVarInt` collects the bytes in an
 * array and copies them through `Buffer.from` for every varint (several per record), and
 * `writeVarLong` / `sizeOfVarLong` run zigzag and LEB128 on 64-bit `Long` objects, a new BigInt
 * wrapper per step, even for the record's timestamp delta, a small number: a large share of what
 * a producer allocates. These write the same bytes straight into the encoder's buffer;
 * a long outside ±2^30 (never seen in records we write) takes kafkajs' own path. Installed on
 * kafkajs' Encoder by `KafkajsPatch.ts`; a test checks every path against kafkajs' originals.
 */

interface EncoderLike {
  buf: Buffer
  offset: number
  ensureAvailable(length: number): void
}

/** LEB128 of an unsigned 32-bit value (kafkajs' loop and its int32 masking, byte for byte). */
export function writeUVarInt(this: EncoderLike, value: number): EncoderLike {
  this.ensureAvailable(5)
  const buf = this.buf
  let offset = this.offset
  while ((value & 0xffffff80) !== 0) {
    buf[offset++] = (value & 0x7f) | 0x80
    value >>>= 7
  }
  buf[offset++] = value & 0x7f
  this.offset = offset
  return this
}

const SMALL = 2 ** 30

/** Whether a varlong is a number small enough that 64-bit zigzag equals the 32-bit one. */
export const isSmallLong = (value: unknown): value is number =>
  typeof value === "number" && Number.isInteger(value) && value > -SMALL && value < SMALL

/** Zigzag of a small long: non-negative, below 2^31. */
const zigzag = (value: number) => (value << 1) ^ (value >> 31)

export const makeWriteVarLong = (original: (this: EncoderLike, value: unknown) => EncoderLike) =>
  function(this: EncoderLike, value: unknown): EncoderLike {
    return isSmallLong(value) ? writeUVarInt.call(this, zigzag(value)) : original.call(this, value)
  }

export const makeSizeOfVarLong = (original: (value: unknown) => number) => (value: unknown): number => {
  if (!isSmallLong(value)) return original(value)
  let encoded = zigzag(value)
  let bytes = 1
  while ((encoded & 0xffffff80) !== 0) {
    bytes++
    encoded >>>= 7
  }
  return bytes
}
