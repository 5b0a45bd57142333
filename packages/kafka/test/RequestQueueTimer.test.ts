// kafkajs 2.2.4's RequestQueue re-arms a timer on every broker connection even when no request is
// waiting (`KafkajsPatch.ts`): an idle client spins. With the patch, an idle queue arms nothing.
import { createRequire } from "node:module"
import { describe, expect, it } from "vitest"
import "../src/index.ts" // the package entry installs the patch

const require = createRequire(import.meta.url)

interface RequestQueue {
  pending: Array<unknown>
  inflight: Map<number, unknown>
  requestTimeoutIntervalId: ReturnType<typeof setInterval> | null | undefined
  scheduleRequestTimeoutCheck(): void
  push(request: { entry: { correlationId: number; resolve: () => void; reject: () => void }; expectResponse: boolean; sendRequest: () => void; requestTimeout?: number }): void
  fulfillRequest(response: { correlationId: number; payload: Buffer; size: number }): void
  throttledUntil: number
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null
  scheduleCheckPendingRequests(): void
  destroy(): void
}
const RequestQueue = require("kafkajs/src/network/requestQueue/index.js") as new(options: Record<string, unknown>) => RequestQueue
const noop = () => undefined
const logger = { debug: noop, info: noop, warn: noop, error: noop, namespace: () => logger }

const queue = () =>
  new RequestQueue({
    maxInFlightRequests: 1,
    requestTimeout: 1_000,
    enforceRequestTimeout: true,
    clientId: "request-queue-timer-test",
    broker: "127.0.0.1:1",
    isConnected: () => true,
    logger
  })

describe("kafkajs RequestQueue timer (patched)", () => {
  it("arms no timer while no request is waiting, throttled or not", () => {
    const q = queue()
    try {
      q.scheduleCheckPendingRequests()
      expect(q.throttleCheckTimeoutId).toBeNull()
      q.throttledUntil = Date.now() + 60_000
      q.scheduleCheckPendingRequests()
      expect(q.throttleCheckTimeoutId).toBeNull()
    } finally {
      q.destroy()
    }
  })

  it("still checks waiting requests: when the throttle ends, or soon when there is none", () => {
    const q = queue()
    try {
      q.pending.push({})
      q.scheduleCheckPendingRequests()
      expect(q.throttleCheckTimeoutId).not.toBeNull()
    } finally {
      q.destroy()
    }
  })

  it("runs the request-timeout check only while a request is in flight", async () => {
    const q = queue()
    try {
      q.scheduleRequestTimeoutCheck() // what kafkajs calls on connect
      expect(q.requestTimeoutIntervalId ?? null).toBeNull()
      q.push({ entry: { correlationId: 1, resolve: () => undefined, reject: () => undefined }, expectResponse: true, sendRequest: () => undefined })
      expect(q.inflight.size).toBe(1)
      expect(q.requestTimeoutIntervalId ?? null).not.toBeNull()
      q.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 })
      // The next check finds nothing in flight and drops the interval.
      for (let i = 0; i < 50 && q.requestTimeoutIntervalId != null; i++) await new Promise((r) => setTimeout(r, 50))
      expect(q.requestTimeoutIntervalId ?? null).toBeNull()
    } finally {
      q.destroy()
    }
  })
})
