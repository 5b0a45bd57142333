/**
 * kafkajs' `Encoder` with its buffers taken from `Buffer.allocUnsafe` instead of `Buffer.alloc`.
 * kafkajs builds a new encoder for every record and every record header (512 bytes at least),
 * grows it by doubling, and each of those buffers is a zero-filled ArrayBuffer of its own: native
 * memory that the garbage collector tracks one by one. An encoder never shows a byte it did not
 * write (every write lands at `offset`, and `buffer` is `buf.slice(0, offset)`), so the zero-fill
 * is never seen; `allocUnsafe` skips it and serves buffers under 4 KB from Node's shared pool.
 * Installed in place of kafkajs' encoder module by `KafkajsPatch.ts`; `test/PooledEncoder.test.ts`
 * checks its bytes against kafkajs' own encoder.
 */

interface EncoderInstance {
  buf: Buffer
  offset: number
}

export interface EncoderClass {
  new(initialSize?: number): EncoderInstance
  nextPowerOfTwo(value: number): number
}

export const makePooledEncoder = <E extends EncoderClass>(Encoder: E): E => {
  const Base: EncoderClass = Encoder
  class PooledEncoder extends Base {
    constructor(initialSize = 511) {
      // kafkajs' constructor allocates `nextPowerOfTwo(0)`, one byte (kept in V8's heap); replaced at once.
      super(0)
      this.buf = Buffer.allocUnsafe(Encoder.nextPowerOfTwo(initialSize))
    }

    ensureAvailable(length: number): void {
      if (this.offset + length <= this.buf.length) return
      const grown = Buffer.allocUnsafe(Encoder.nextPowerOfTwo(this.offset + length))
      this.buf.copy(grown, 0, 0, this.offset)
      this.buf = grown
    }
  }
  return PooledEncoder as unknown as E
}
