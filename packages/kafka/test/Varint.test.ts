import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import "../src/index.ts" // the package entry installs the patch

const require = createRequire(import.meta.url)
const ENCODER = require.resolve("kafkajs/src/protocol/encoder.js")

interface EncoderClass {
  new(): { writeUVarInt(v: number): unknown; writeVarInt(v: number): unknown; writeVarLong(v: unknown): unknown; buffer: Buffer }
  sizeOfVarLong(v: unknown): number
}

// kafkajs' own Encoder as the reference, evaluated from its file (the loaded one is patched).
const Reference = (() => {
  const module = { exports: {} as unknown }
  new Function("module", "exports", "require", readFileSync(ENCODER, "utf8"))(module, module.exports, createRequire(ENCODER))
  return module.exports as EncoderClass
})()
const Patched = require(ENCODER) as EncoderClass

const bytes = (E: EncoderClass, write: (e: InstanceType<EncoderClass>) => void) => {
  const e = new E()
  write(e)
  return e.buffer.toString("hex")
}

const ints = [0, 1, 63, 64, 127, 128, 255, 300, 16383, 16384, 2 ** 21, 2 ** 28, 2 ** 30 - 1, 2 ** 30, 2 ** 31 - 1, -1, -2, -64, -65, -(2 ** 30), -(2 ** 31)]
const randomInts = Array.from({ length: 2000 }, () => Math.floor((Math.random() - 0.5) * 2 ** 32) | 0)

describe("record varints", () => {
  it("writeUVarInt and writeVarInt write kafkajs' bytes for every int32", () => {
    for (const v of [...ints, ...randomInts, 2 ** 32 - 1, 2 ** 31]) {
      expect(bytes(Patched, (e) => e.writeUVarInt(v))).toBe(bytes(Reference, (e) => e.writeUVarInt(v)))
      expect(bytes(Patched, (e) => e.writeVarInt(v))).toBe(bytes(Reference, (e) => e.writeVarInt(v)))
    }
  })

  it("writeVarLong and sizeOfVarLong match kafkajs for small and large longs, numbers and strings", () => {
    const longs: Array<unknown> = [...ints, ...randomInts, 2 ** 40, -(2 ** 40), Number.MAX_SAFE_INTEGER, "123", "-9223372036854775808"]
    for (const v of longs) {
      expect(bytes(Patched, (e) => e.writeVarLong(v))).toBe(bytes(Reference, (e) => e.writeVarLong(v)))
      expect(Patched.sizeOfVarLong(v)).toBe(Reference.sizeOfVarLong(v))
    }
  })

  it("several varints in a row land one after another, across buffer growth", () => {
    const values = Array.from({ length: 500 }, (_, i) => i * 7919 - 100_000)
    expect(bytes(Patched, (e) => values.forEach((v) => e.writeVarLong(v)))).toBe(bytes(Reference, (e) => values.forEach((v) => e.writeVarLong(v))))
  })

  it("is installed on kafkajs' Encoder once the patch is loaded", () => {
    expect(Object.getOwnPropertySymbols(Patched).map(String)).toContain("Symbol(@orbit/kafka/varint)")
  })
})
