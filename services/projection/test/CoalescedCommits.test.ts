/**
 * The projection commits a partition's Kafka offset at most once per delay, with the last offset
 * applied by then (ProjectionRunner.ts, `coalescedCommits`), not once per transaction.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { coalescedCommits } from "../src/ProjectionRunner.ts"

describe("coalescedCommits", () => {
  it.effect("sends one commit a delay after the first offset, with the last offset given by then", () =>
    Effect.gen(function*() {
      const sent: Array<string> = []
      const commit = (offset: string) => Effect.sync(() => void sent.push(offset))
      const offer = coalescedCommits("1 second")

      for (const offset of ["11", "12", "15"]) yield* offer(commit, offset)
      yield* TestClock.adjust("999 millis")
      expect(sent).toEqual([])
      yield* TestClock.adjust("1 millis")
      expect(sent).toEqual(["15"])

      // Nothing given since: nothing more is sent.
      yield* TestClock.adjust("5 seconds")
      expect(sent).toEqual(["15"])

      // The next offsets start the next delay.
      yield* offer(commit, "20")
      yield* offer(commit, "21")
      yield* TestClock.adjust("1 second")
      expect(sent).toEqual(["15", "21"])
    }))

  it.effect("a failed commit is dropped (the next offsets are committed in their turn)", () =>
    Effect.gen(function*() {
      const sent: Array<string> = []
      const offer = coalescedCommits("1 second")
      yield* offer(() => Effect.fail(new Error("not the group's generation")), "7")
      yield* TestClock.adjust("1 second")
      yield* offer((offset) => Effect.sync(() => void sent.push(offset)), "9")
      yield* TestClock.adjust("1 second")
      expect(sent).toEqual(["9"])
    }))
})
