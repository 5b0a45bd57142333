/**
 * How long the oldest record not yet done on a partition has been in the log, from periodic
 * samples of (end offset, done offset), without reading any record. Each sample remembers when an
 * end offset was first seen; the oldest record not done is at the `done` offset, which was
 * already in the log at the first remembered sample whose end lies beyond it. The age is a lower
 * bound, short by at most one sampling interval (and by the time before the first sample).
 */
export class BacklogAge {
  readonly #samples = new Map<string, Array<{ readonly end: bigint; readonly at: number }>>()
  readonly #maxSamples: number

  constructor(maxSamples = 1_000) {
    this.#maxSamples = Math.max(2, maxSamples)
  }

  /** Records one sample of a partition (`key`) and returns the age in ms of its oldest record not done (0 when none). */
  observe(key: string, end: bigint, done: bigint, now: number): number {
    let samples = this.#samples.get(key)
    if (samples === undefined || (samples.length > 0 && samples[samples.length - 1]!.end > end)) {
      // New, or the log was replaced (its end went back): start over.
      samples = []
      this.#samples.set(key, samples)
    }
    if (samples.length === 0 || samples[samples.length - 1]!.end < end) {
      samples.push({ end, at: now })
      // Keep the oldest sample (it bounds the age) and drop the next one: coarser, never older.
      if (samples.length > this.#maxSamples) samples.splice(1, 1)
    }
    while (samples.length > 0 && samples[0]!.end <= done) samples.shift()
    if (done >= end || samples.length === 0) return 0
    return Math.max(0, now - samples[0]!.at)
  }

  /** Forgets partitions not in `keys` (e.g. after a topic is deleted). */
  retain(keys: ReadonlySet<string>): void {
    for (const key of this.#samples.keys()) if (!keys.has(key)) this.#samples.delete(key)
  }
}
