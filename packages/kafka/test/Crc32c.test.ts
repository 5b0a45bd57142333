import { describe, expect, it } from "@effect/vitest"
import { randomBytes } from "node:crypto"
import { createRequire } from "node:module"
import { crc32c } from "../src/Crc32c.ts"
import "../src/index.ts" // the package entry installs the patch

const require = createRequire(import.meta.url)
// kafkajs' own byte-at-a-time implementation, as the reference.
const reference = require("kafkajs/src/protocol/recordBatch/crc32C/crc32C.js") as (b: Buffer) => number

describe("crc32c", () => {
  it("is CRC-32C: the standard check value of '123456789' is e3069283", () => {
    expect(crc32c(Buffer.from("123456789")).toString(16)).toBe("e3069283")
    expect(crc32c(Buffer.alloc(0))).toBe(0)
  })

  it("equals kafkajs' implementation for every length from 0 to 600 bytes and for 1 MiB", () => {
    for (let n = 0; n <= 600; n++) {
      const b = randomBytes(n)
      expect(crc32c(b)).toBe(reference(b) >>> 0)
    }
    const big = randomBytes(1 << 20)
    expect(crc32c(big)).toBe(reference(big) >>> 0)
  })

  it("is what kafkajs' record batch encoder uses once the patch is loaded", () => {
    const encoderCrc = require("kafkajs/src/protocol/recordBatch/crc32C/index.js") as ((b: Buffer) => number) & object
    expect(Object.getOwnPropertySymbols(encoderCrc).map(String)).toContain("Symbol(@orbit/kafka/crc32c)")
    const b = randomBytes(1000)
    expect(encoderCrc(b)).toBe(crc32c(b))
  })
})
