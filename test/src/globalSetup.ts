import { startKafka } from "../../infra/kafka.ts"

/** Tests use the real broker: start the local one unless KAFKA_BROKERS points elsewhere. */
export default async function setup() {
  await startKafka()
}
