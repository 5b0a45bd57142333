/**
 * Bounded concurrency overall and per key (endpoint id), FIFO within a key and fair across keys:
 * a key at its own limit waits without holding a global slot, so a slow endpoint never takes
 * capacity from the others.
 */
export class KeyedLimiter {
  private running = 0
  private readonly perKey = new Map<string, { running: number; waiting: Array<() => void> }>()
  /** Keys that have waiters and are below their own limit, in arrival order. */
  private readonly ready: Array<string> = []

  private readonly limits: { readonly global: number; readonly perKey: number }

  constructor(limits: { readonly global: number; readonly perKey: number }) {
    this.limits = limits
  }

  get active(): number {
    return this.running
  }

  /** Runs `job` once a global and a per-key slot are free. */
  async run<A>(key: string, job: () => Promise<A>): Promise<A> {
    await this.acquire(key)
    try {
      return await job()
    } finally {
      this.release(key)
    }
  }

  private acquire(key: string): Promise<void> {
    let state = this.perKey.get(key)
    if (state === undefined) {
      state = { running: 0, waiting: [] }
      this.perKey.set(key, state)
    }
    if (state.waiting.length === 0 && state.running < this.limits.perKey && this.running < this.limits.global) {
      state.running++
      this.running++
      return Promise.resolve()
    }
    const s = state
    return new Promise<void>((resolve) => {
      s.waiting.push(resolve)
      if (s.waiting.length === 1 && s.running < this.limits.perKey) this.ready.push(key)
    })
  }

  private release(key: string): void {
    const state = this.perKey.get(key)!
    state.running--
    this.running--
    // The released key may have become eligible again.
    if (state.waiting.length > 0 && state.running === this.limits.perKey - 1) this.ready.push(key)
    this.pump()
    if (state.running === 0 && state.waiting.length === 0) this.perKey.delete(key)
  }

  private pump(): void {
    while (this.running < this.limits.global && this.ready.length > 0) {
      const key = this.ready.shift()!
      const state = this.perKey.get(key)
      if (state === undefined || state.waiting.length === 0 || state.running >= this.limits.perKey) continue
      const wake = state.waiting.shift()!
      state.running++
      this.running++
      // Still eligible with more waiters: queue it behind the other keys (round robin).
      if (state.waiting.length > 0 && state.running < this.limits.perKey) this.ready.push(key)
      wake()
    }
  }
}
