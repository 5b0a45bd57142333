/**
 * The longest any Kafka client of the platform waits between two attempts while the broker is
 * away (kafkajs' retry back-off of consumers, producers and admin requests, a crashed consumer's
 * restart, `untilDone` around a record's writes). It bounds how late a client notices that the
 * broker answers again, so it bounds how soon deliveries resume after a broker restart.
 */
export const RECONNECT_MAX_DELAY_MS = 1_000

/** The delays `untilDone` waits between attempts: doubling from `initialMs`, capped at `RECONNECT_MAX_DELAY_MS`. */
export const reconnectDelays = function*(initialMs = 200): Generator<number, never> {
  for (let delay = initialMs;; delay = Math.min(delay * 2, RECONNECT_MAX_DELAY_MS)) yield Math.min(delay, RECONNECT_MAX_DELAY_MS)
}
