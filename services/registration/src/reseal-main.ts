/**
 * `npm run orbit -- secrets reseal`: seals every endpoint's secrets anew under the first key of
 * ORBIT_SECRET_KEYS, bound to their endpoint and slot, by appending EndpointSecretsResealed to the
 * endpoint topic; endpoints already in that form are left alone, so running it again is harmless.
 * Prints one summary line on stdout; exits 1 when some endpoint's secret did not open (each one is
 * named on stderr), after resealing all the others.
 */
import { stderrJsonLogging } from "@orbit/runtime"
import { SecretBox } from "@orbit/crypto"
import { Db } from "@orbit/db"
import { KafkaClient, Producer } from "@orbit/kafka"
import { NetGuard } from "@orbit/net-guard"
import { Cause, Effect, Exit, Layer } from "effect"
import { EndpointCommands } from "./EndpointCommands.ts"
import { EndpointStore } from "./EndpointStore.ts"
import { ProjectionWatcher } from "./ProjectionWatcher.ts"

const PAGE = 500

const resealAll = Effect.gen(function*() {
  const store = yield* EndpointStore
  const commands = yield* EndpointCommands
  const counts = { resealed: 0, current: 0, failed: 0 }
  let after = ""
  for (;;) {
    const ids = yield* store.ids(after, PAGE)
    if (ids.length === 0) break
    yield* Effect.forEach(ids, (id) =>
      commands.reseal(id).pipe(
        Effect.tap((outcome) => Effect.sync(() => {
          if (outcome !== "absent") counts[outcome]++
        })),
        Effect.catchTag("SecretDecryptError", (e) => {
          counts.failed++
          return Effect.logError("endpoint secret does not open with ORBIT_SECRET_KEYS; left as it is. Add the key that sealed it " +
            "to ORBIT_SECRET_KEYS (any position but first) and run `orbit secrets reseal` again", { endpoint_id: id, reason: e.reason, detail: e.message })
        })
      ), { concurrency: 8, discard: true })
    after = ids[ids.length - 1]!
  }
  return counts
})

const Infrastructure = Layer.mergeAll(Db.layer, Producer.layer(), SecretBox.layer).pipe(Layer.provideMerge(KafkaClient.layer))
const Services = Layer.mergeAll(
  EndpointStore.layer,
  EndpointCommands.layer.pipe(Layer.provide(Layer.mergeAll(EndpointStore.layer, NetGuard.layer, ProjectionWatcher.layer)))
)

const exit = await Effect.runPromiseExit(
  Effect.scoped(resealAll).pipe(
    Effect.provide(Services.pipe(Layer.provide(Infrastructure))),
    // stdout carries only the summary line.
    Effect.provide(stderrJsonLogging("Info"))
  )
)
if (Exit.isFailure(exit)) {
  process.stderr.write(`reseal failed: ${Cause.pretty(exit.cause)}\n`)
  process.exit(1)
}
const { resealed, current, failed } = exit.value
process.stdout.write(`resealed ${resealed} endpoints; ${current} already current; ${failed} failed\n`)
process.exit(failed > 0 ? 1 : 0)
