/** `npm run orbit -- rebuild endpoints`: rebuild the endpoint read model from offset 0, then exit. */
import { JsonLogging } from "@orbit/runtime"
import { Db } from "@orbit/db"
import { KafkaClient, TopicAdmin } from "@orbit/kafka"
import { Cause, Effect, Exit, Layer } from "effect"
import { planEachStatement } from "./ProjectionSession.ts"
import { rebuildEndpoints } from "./Rebuild.ts"

const started = Date.now()
const exit = await Effect.runPromiseExit(
  Effect.scoped(rebuildEndpoints()).pipe(
    // `ms`: from the command's start (connecting to Kafka and Postgres included) to the swap.
    Effect.tap(({ events }) => Effect.logInfo("endpoint read model rebuilt", { events, ms: Date.now() - started })),
    Effect.provide(Layer.mergeAll(Db.layerWith({ session: planEachStatement }), TopicAdmin.layer).pipe(Layer.provideMerge(KafkaClient.layer))),
    Effect.provide(JsonLogging)
  )
)
if (Exit.isFailure(exit)) {
  process.stderr.write(`replay failed: ${Cause.pretty(exit.cause)}\n`)
  process.exit(1)
}
process.exit(0)
