import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import "../src/index.ts" // the package entry installs the patch

const require = createRequire(import.meta.url)
const ENCODER = require.resolve("kafkajs/src/protocol/encoder.js")
const RECORD = require.resolve("kafkajs/src/protocol/recordBatch/record/v0/index.js")

interface Encoder {
  buf: Buffer
  buffer: Buffer
  writeInt8(v: number): Encoder
  writeInt32(v: number): Encoder
  writeVarIntBytes(v: Buffer | string | null): Encoder
  writeVarIntString(v: string): Encoder
  writeBytes(v: Buffer): Encoder
  writeEncoder(v: Encoder): Encoder
}
type EncoderClass = new(initialSize?: number) => Encoder

// kafkajs' own Encoder as the reference, evaluated from its file (the loaded one is replaced).
const Reference = (() => {
  const module = { exports: {} as unknown }
  new Function("module", "exports", "require", readFileSync(ENCODER, "utf8"))(module, module.exports, createRequire(ENCODER))
  return module.exports as EncoderClass
})()
const Pooled = require(ENCODER) as EncoderClass

// Writes of every kind, long enough to grow the buffer several times past its first 512 bytes.
const write = (E: EncoderClass) => {
  const e = new E()
  for (let i = 0; i < 300; i++) {
    const inner = new E().writeVarIntString(`header-${i}`).writeVarIntBytes(Buffer.from("x".repeat(i)))
    e.writeInt8(i & 0x7f).writeInt32(i * 7919).writeVarIntBytes(i % 7 === 0 ? null : `value ${i}`).writeEncoder(inner)
    if (i % 50 === 0) e.writeBytes(Buffer.alloc(5_000, i))
  }
  return e
}

describe("pooled encoder", () => {
  it("writes kafkajs' bytes, across buffer growth", () => {
    expect(write(Pooled).buffer.equals(write(Reference).buffer)).toBe(true)
  })

  it("encodes a record with headers as kafkajs does", () => {
    const record = require(RECORD) as (r: object) => Encoder
    const input = { offsetDelta: 3, timestampDelta: 12, key: "ep_1", value: Buffer.from("{\"a\":1}".repeat(200)), headers: { traceparent: "00-abc", "orbit-index": "1:2" } }
    const expected = (() => {
      const module = { exports: {} as unknown }
      const req = createRequire(RECORD)
      new Function("module", "exports", "require", readFileSync(RECORD, "utf8"))(module, module.exports, (id: string) => id === "../../../encoder" ? Reference : req(id))
      return (module.exports as (r: object) => Encoder)(input).buffer
    })()
    expect(record(input).buffer.equals(expected)).toBe(true)
  })

  it("takes small buffers from Node's shared pool instead of an ArrayBuffer of their own", () => {
    expect(new Reference().buf.buffer.byteLength).toBe(512)
    expect(new Pooled().buf.buffer.byteLength).toBe(Buffer.poolSize)
  })
})
