import { Db, query } from "@orbit/db"
import { Context, Effect, Layer } from "effect"

/** Must match the projection's channel and offsets table (services/projection/src/OffsetStore.ts). */
const CHANNEL = "orbit_projection_offsets"
const PROJECTION = "endpoints"

interface Waiter {
  readonly offset: bigint
  /** Epoch milliseconds after which the waiter is answered false. */
  readonly deadline: number
  done: boolean
  readonly resume: (applied: boolean) => void
}

/**
 * Read-your-writes: after producing an endpoint event, the API waits until the projection has
 * applied that offset. The projection announces applied offsets with NOTIFY; a slow poll of
 * the offsets table, while a request waits, covers notifications lost while the LISTEN connection
 * reconnects.
 */
export class ProjectionWatcher extends Context.Service<ProjectionWatcher, {
  /** true once `offset` of (topic, partition) is applied; false when `timeoutMs` passes first. */
  waitForOffset(topic: string, partition: number, offset: bigint, timeoutMs: number): Effect.Effect<boolean>
  /** The projection's next offset per partition of `topic`, as stored in Postgres. */
  appliedOffsets(topic: string): Effect.Effect<Map<number, bigint>, import("@orbit/db").DbUnavailable>
}>()("@orbit/registration/ProjectionWatcher") {
  static readonly layer = Layer.effect(
    ProjectionWatcher,
    Effect.gen(function*() {
      const { sql } = yield* Db
      const applied = new Map<string, bigint>()
      /** Waiters per `topic|partition`; one NOTIFY releases every waiter below the applied offset. */
      const waiting = new Map<string, Array<Waiter>>()
      let waiterCount = 0

      const advance = (key: string, next: bigint) => {
        if ((applied.get(key) ?? -1n) >= next) return
        applied.set(key, next)
        const list = waiting.get(key)
        if (list === undefined) return
        const still = list.filter((w) => {
          if (w.offset >= next) return true
          release(w, true)
          return false
        })
        if (still.length === 0) waiting.delete(key)
        else waiting.set(key, still)
      }

      const release = (w: Waiter, applied: boolean) => {
        if (w.done) return
        w.done = true
        waiterCount--
        w.resume(applied)
      }

      const refresh = async () => {
        const rows = await sql<Array<{ topic: string; partition: number; next_offset: string }>>`
          SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = ${PROJECTION}`
        for (const r of rows) advance(`${r.topic}|${r.partition}`, BigInt(r.next_offset))
      }

      const listener = yield* Effect.acquireRelease(
        Effect.promise(() =>
          sql.listen(CHANNEL, (payload) => {
            const [topic, partition, next] = payload.split("|")
            if (topic && partition && next) advance(`${topic}|${partition}`, BigInt(next))
          }, () => void refresh().catch(() => undefined)).catch(() => undefined)
        ),
        (l) => Effect.promise(() => l?.unlisten().catch(() => undefined) ?? Promise.resolve())
      )
      void listener

      // One timer for all waiters, running only while anyone waits (an idle API never wakes for
      // it): it polls the offsets (a NOTIFY lost while the LISTEN connection reconnected) and
      // answers the waiters whose time is up.
      let tick: NodeJS.Timeout | undefined
      const onTick = () => {
        if (waiterCount === 0) {
          clearInterval(tick)
          tick = undefined
          return
        }
        void refresh().catch(() => undefined)
        const now = Date.now()
        for (const [key, list] of waiting) {
          const still = list.filter((w) => {
            if (w.done) return false
            if (w.deadline > now) return true
            release(w, false)
            return false
          })
          if (still.length === 0) waiting.delete(key)
          else waiting.set(key, still)
        }
      }
      const tickWhileWaiting = () => {
        if (tick === undefined) tick = setInterval(onTick, 200)
      }
      yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(tick)))

      const waitForOffset = (topic: string, partition: number, offset: bigint, timeoutMs: number) =>
        Effect.callback<boolean>((resume) => {
          const key = `${topic}|${partition}`
          if ((applied.get(key) ?? -1n) > offset) return resume(Effect.succeed(true))
          const waiter: Waiter = { offset, deadline: Date.now() + timeoutMs, done: false, resume: (ok) => resume(Effect.succeed(ok)) }
          let list = waiting.get(key)
          if (list === undefined) waiting.set(key, list = [])
          list.push(waiter)
          waiterCount++
          tickWhileWaiting()
          // Interrupted: counted out now, dropped from its list at the next advance or tick.
          return Effect.sync(() => {
            if (!waiter.done) {
              waiter.done = true
              waiterCount--
            }
          })
        })

      const appliedOffsets = (topic: string) =>
        query(() =>
          sql<Array<{ partition: number; next_offset: string }>>`
            SELECT partition, next_offset FROM projection_offsets WHERE projection = ${PROJECTION} AND topic = ${topic}`
        ).pipe(Effect.map((rows) => new Map(rows.map((r) => [r.partition, BigInt(r.next_offset)]))))

      return ProjectionWatcher.of({
        waitForOffset: Effect.fn("ProjectionWatcher.waitForOffset")(waitForOffset),
        appliedOffsets
      })
    })
  )
}
