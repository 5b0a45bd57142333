interface KeyState {
  running: number
  /** Resolved with `true` when the slot is granted, `false` when the task is shed. */
  waiting: Array<(granted: boolean) => void>
  /** In `ready` (at most once). */
  queued: boolean
}

/** What `run` returns instead of running the job: the key is unresponsive and already probed. */
export const SHED: unique symbol = Symbol("KeyedLimiter.shed")

/**
 * Bounded concurrency overall and per key (endpoint id), FIFO within a key and fair across keys:
 * a key at its own limit waits without holding a global slot, so a slow endpoint never takes
 * capacity from the others. A key marked unresponsive (its last attempt timed out or could not
 * connect) is probed one job at a time until it answers again: its waiting jobs and any that
 * arrive meanwhile are shed (`run` returns `SHED`) for the caller to put aside, instead of waiting
 * in memory behind one attempt per timeout — or holding the key's full share of connections open
 * until each times out and reopening them all at once.
 */
export class KeyedLimiter {
  private running = 0
  private readonly perKey = new Map<string, KeyState>()
  /** Keys with waiters, below their own limit, in arrival order. */
  private readonly ready: Array<string> = []
  private readonly unresponsive = new Set<string>()

  private readonly limits: { readonly global: number; readonly perKey: number }

  constructor(limits: { readonly global: number; readonly perKey: number }) {
    this.limits = limits
  }

  get active(): number {
    return this.running
  }

  /** Runs `job` once a global and a per-key slot are free, unless the key's jobs are being shed. */
  async run<A>(key: string, job: () => Promise<A>): Promise<A | typeof SHED> {
    if (!(await this.acquire(key))) return SHED
    try {
      return await job()
    } finally {
      this.release(key)
    }
  }

  /** After an attempt: `false` sheds the key's waiting jobs and runs one at a time until `true` again. */
  setResponsive(key: string, responsive: boolean): void {
    if (responsive === !this.unresponsive.has(key)) return
    if (!responsive) {
      if (this.unresponsive.size >= 100_000) this.unresponsive.clear() // bounded, whatever the key churn
      this.unresponsive.add(key)
      const state = this.perKey.get(key)
      if (state !== undefined) for (const shed of state.waiting.splice(0)) shed(false)
      return
    }
    this.unresponsive.delete(key)
    const state = this.perKey.get(key)
    if (state !== undefined) {
      this.enqueue(key, state)
      this.pump()
    }
  }

  private limitOf(key: string): number {
    return this.unresponsive.has(key) ? 1 : this.limits.perKey
  }

  private enqueue(key: string, state: KeyState): void {
    if (!state.queued && state.waiting.length > 0 && state.running < this.limitOf(key)) {
      state.queued = true
      this.ready.push(key)
    }
  }

  private acquire(key: string): Promise<boolean> {
    let state = this.perKey.get(key)
    if (state === undefined) {
      state = { running: 0, waiting: [], queued: false }
      this.perKey.set(key, state)
    }
    if (this.unresponsive.has(key) && state.running > 0) return Promise.resolve(false) // being probed
    if (state.waiting.length === 0 && state.running < this.limitOf(key) && this.running < this.limits.global) {
      state.running++
      this.running++
      return Promise.resolve(true)
    }
    const s = state
    return new Promise<boolean>((resolve) => {
      s.waiting.push(resolve)
      this.enqueue(key, s)
    })
  }

  private release(key: string): void {
    const state = this.perKey.get(key)!
    state.running--
    this.running--
    this.enqueue(key, state) // the released key may have become eligible again
    this.pump()
    this.forgetIfIdle(key, state)
  }

  /** A key with nothing running, waiting or queued needs no state (keys are endpoint ids: many). */
  private forgetIfIdle(key: string, state: KeyState): void {
    if (state.running === 0 && state.waiting.length === 0 && !state.queued) this.perKey.delete(key)
  }

  private pump(): void {
    while (this.running < this.limits.global && this.ready.length > 0) {
      const key = this.ready.shift()!
      const state = this.perKey.get(key)
      if (state === undefined) continue
      state.queued = false
      if (state.waiting.length === 0 || state.running >= this.limitOf(key)) {
        this.forgetIfIdle(key, state)
        continue
      }
      const wake = state.waiting.shift()!
      state.running++
      this.running++
      this.enqueue(key, state) // still eligible with more waiters: behind the other keys (round robin)
      wake(true)
    }
  }
}
