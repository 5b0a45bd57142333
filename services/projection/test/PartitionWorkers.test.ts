/**
 * partitionWorkers, which both the live projection and the rebuild feed: a batch is done for
 * kafkajs once queued, so fetching goes on while a transaction runs; partitions apply side by
 * side; a partition's batches apply one at a time, in offset order; with `gather`, batches that
 * arrive within it of the first are applied together.
 */
import { describe, expect, it } from "@effect/vitest"
import type { ConsumedBatch } from "@orbit/kafka"
import { Deferred, Effect, Queue, Stream } from "effect"
import { TestClock } from "effect/testing"
import { partitionWorkers } from "../src/ProjectionRunner.ts"

const batch = (partition: number, offset: number): ConsumedBatch => ({
  batch: { topic: "t", partition, messages: [{ offset: String(offset) }] } as unknown as ConsumedBatch["batch"],
  heartbeat: Effect.void,
  commit: () => Effect.void,
  done: Deferred.makeUnsafe<void, unknown>()
})

describe("partitionWorkers", () => {
  it("hands a batch back once queued, applies partitions side by side and each partition in order", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const held = yield* Deferred.make<void>()
      const otherApplied = yield* Deferred.make<void>()
      const applied: Array<string> = []
      const feed = yield* partitionWorkers({ queued: 2, merged: 1 }, (records) =>
        Effect.gen(function*() {
          const at = `${records.partition}:${records.messages.map((m) => m.offset).join(",")}`
          applied.push(at)
          // Partition 0's first transaction does not end until the test says so.
          if (at === "0:0") yield* Deferred.await(held)
          if (records.partition === 1) yield* Deferred.succeed(otherApplied, undefined)
        }))
      const [p0b0, p0b1, p0b2, p1b0, p0b3] = [batch(0, 0), batch(0, 1), batch(0, 2), batch(1, 0), batch(0, 3)]
      yield* Effect.forkScoped(feed(Stream.fromIterable([p0b0, p0b1, p0b2, p1b0, p0b3])))

      // Partition 1 applies while partition 0's first transaction still runs.
      yield* Deferred.await(otherApplied)
      expect(applied).toEqual(["0:0", "1:0"])
      // The batches behind it were handed back to kafkajs once queued, not once applied.
      expect(yield* Deferred.isDone(p0b1.done)).toBe(true)
      expect(yield* Deferred.isDone(p0b2.done)).toBe(true)
      // Its queue (two batches) is full: the next batch waits, and so does the fetching.
      expect(yield* Deferred.isDone(p0b3.done)).toBe(false)

      yield* Deferred.succeed(held, undefined)
      yield* Deferred.await(p0b3.done)
      while (applied.length < 5) yield* Effect.yieldNow
      expect(applied.filter((a) => a.startsWith("0:"))).toEqual(["0:0", "0:1", "0:2", "0:3"])
    }))))

  it.effect("with gather, applies the batches that arrive within it of the first in one transaction", () =>
    Effect.gen(function*() {
      const applied: Array<string> = []
      const feed = yield* partitionWorkers({ queued: 8, merged: 8, gather: "100 millis" }, (records) =>
        Effect.sync(() => void applied.push(records.messages.map((m) => m.offset).join(","))))
      const fetched = yield* Queue.unbounded<ConsumedBatch>()
      yield* Effect.forkScoped(feed(Stream.fromQueue(fetched)))
      const arrive = (b: ConsumedBatch) => Queue.offer(fetched, b).pipe(Effect.andThen(Deferred.await(b.done)))
      const settled = Effect.repeat(Effect.yieldNow, { times: 20 })

      yield* arrive(batch(0, 0))
      yield* TestClock.adjust("60 millis")
      yield* arrive(batch(0, 1))
      yield* settled
      expect(applied).toEqual([])
      yield* TestClock.adjust("40 millis")
      yield* settled
      expect(applied).toEqual(["0,1"])

      // A batch after that waits a whole gather of its own.
      yield* arrive(batch(0, 2))
      yield* TestClock.adjust("99 millis")
      yield* settled
      expect(applied).toEqual(["0,1"])
      yield* TestClock.adjust("1 millis")
      yield* settled
      expect(applied).toEqual(["0,1", "2"])
    }).pipe(Effect.scoped))
})
