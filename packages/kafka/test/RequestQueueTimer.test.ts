// kafkajs 2.2.4's RequestQueue re-arms a timer on every broker connection even when no request is
// waiting, and checks its requests' timeouts on a short interval (`KafkajsPatch.ts`): an idle client, or
// one whose long-poll fetch is parked at the broker, spins. With the patch, an idle queue arms
// nothing and a queue with requests in flight wakes at their earliest deadline.
import { createRequire } from "node:module"
import { afterEach, describe, expect, it, vi } from "vitest"
import "../src/index.ts" // the package entry installs the patch

const require = createRequire(import.meta.url)

interface RequestQueue {
  pending: Array<unknown>
  inflight: Map<number, unknown>
  requestTimeoutIntervalId: ReturnType<typeof setInterval> | null | undefined
  scheduleRequestTimeoutCheck(): void
  push(request: {
    entry: { correlationId: number; resolve: () => void; reject: (error: Error) => void }
    expectResponse: boolean
    sendRequest: () => void
    requestTimeout?: number
  }): void
  fulfillRequest(response: { correlationId: number; payload: Buffer; size: number }): void
  throttledUntil: number
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null
  scheduleCheckPendingRequests(): void
  destroy(): void
}
const RequestQueue = require("kafkajs/src/network/requestQueue/index.js") as new(options: Record<string, unknown>) => RequestQueue
const noop = () => undefined
const logger = { debug: noop, info: noop, warn: noop, error: noop, namespace: () => logger }

const queue = (isConnected: () => boolean = () => true) =>
  new RequestQueue({
    maxInFlightRequests: 1,
    requestTimeout: 1_000,
    enforceRequestTimeout: true,
    clientId: "request-queue-timer-test",
    broker: "127.0.0.1:1",
    isConnected,
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

  afterEach(() => {
    vi.useRealTimers()
  })

  it("checks request timeouts only at the earliest deadline in flight, and arms nothing once none is", () => {
    vi.useFakeTimers()
    let checks = 0 // every check asks whether the connection is still up
    const q = queue(() => {
      checks++
      return true
    })
    try {
      q.scheduleRequestTimeoutCheck() // what kafkajs calls on connect
      expect(q.requestTimeoutIntervalId ?? null).toBeNull()
      const errors: Array<Error> = []
      const request = (correlationId: number, requestTimeout?: number) =>
        q.push({
          entry: { correlationId, resolve: () => undefined, reject: (e) => errors.push(e) },
          expectResponse: true,
          sendRequest: () => undefined,
          ...(requestTimeout === undefined ? {} : { requestTimeout })
        })
      request(1, 5_000) // a long-poll fetch: its own, longer timeout
      expect(q.inflight.size).toBe(1)
      expect(q.requestTimeoutIntervalId ?? null).not.toBeNull()
      vi.advanceTimersByTime(4_000)
      expect(checks).toBe(0) // no wake-up while the fetch is parked (kafkajs' interval: many)
      q.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 })
      request(2) // 1 s timeout, never answered
      vi.advanceTimersByTime(999)
      expect(checks).toBe(0)
      expect(errors).toEqual([])
      vi.advanceTimersByTime(2)
      expect(checks).toBe(1)
      expect(errors.map((e) => e.name)).toEqual(["KafkaJSRequestTimeoutError"])
      expect(q.inflight.size).toBe(0)
      // Nothing in flight: the check that timed it out armed nothing more.
      vi.advanceTimersByTime(60_000)
      expect(checks).toBe(1)
      expect(q.requestTimeoutIntervalId ?? null).toBeNull()
    } finally {
      q.destroy()
    }
  })
})
