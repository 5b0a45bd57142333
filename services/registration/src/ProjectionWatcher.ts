import { Db, query } from "@orbit/db"
import { Context, Effect, Layer } from "effect"

/** Must match the projection's channel and offsets table (services/projection/src/OffsetStore.ts). */
const CHANNEL = "orbit_projection_offsets"
const PROJECTION = "endpoints"

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
      const waiters = new Set<{ key: string; offset: bigint; resolve: () => void }>()

      const advance = (key: string, next: bigint) => {
        if ((applied.get(key) ?? -1n) >= next) return
        applied.set(key, next)
        for (const w of waiters) {
          if (w.key === key && w.offset < next) {
            waiters.delete(w)
            w.resolve()
          }
        }
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

      // The poll runs only while a request waits, so an idle API never wakes for it.
      let poll: NodeJS.Timeout | undefined
      const pollWhileWaiting = () => {
        if (poll !== undefined) return
        poll = setInterval(() => {
          if (waiters.size === 0) {
            clearInterval(poll)
            poll = undefined
            return
          }
          void refresh().catch(() => undefined)
        }, 200)
      }
      yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(poll)))

      const waitForOffset = (topic: string, partition: number, offset: bigint, timeoutMs: number) =>
        Effect.callback<boolean>((resume) => {
          const key = `${topic}|${partition}`
          if ((applied.get(key) ?? -1n) > offset) return resume(Effect.succeed(true))
          const waiter = { key, offset, resolve: () => { clearTimeout(timer); resume(Effect.succeed(true)) } }
          const timer = setTimeout(() => {
            waiters.delete(waiter)
            resume(Effect.succeed(false))
          }, timeoutMs)
          waiters.add(waiter)
          pollWhileWaiting()
          return Effect.sync(() => {
            clearTimeout(timer)
            waiters.delete(waiter)
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
