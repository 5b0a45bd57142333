/** A paced key's last `size` starts by sequence number: when each ended (NaN while running). */
interface Window {
  readonly size: number
  next: number
  readonly ends: Float64Array
  running: number
  lastEnd: number
}

/** A granted slot of a paced key: its window and sequence number, to record its end. */
class Ticket {
  readonly window: Window
  readonly seq: number
  constructor(window: Window, seq: number) {
    this.window = window
    this.seq = seq
  }
}

/** A granted slot (`null` for an unpaced key), or `false` when the job is shed. */
type Grant = Ticket | null | false

interface KeyState {
  readonly group: GroupState
  running: number
  /** Resolved with the grant when the slot is granted, `false` when the task is shed. */
  waiting: Array<(granted: Grant) => void>
  /** In its group's `ready` (at most once). */
  queued: boolean
  /** A timer that makes the key eligible again when its pace allows the next start. */
  timer: NodeJS.Timeout | undefined
  /** Milliseconds between two starts (0: unpaced), from the latest `run` of the key. */
  interval: number
}

interface GroupState {
  readonly name: string
  running: number
  /** Keys of this group with waiters that may start now, in arrival order (round robin). */
  readonly ready: Array<string>
  /** Position in the limiter's heap of groups with ready keys; -1 when not in it. */
  heapIndex: number
  /** When this group was last granted a slot (a tick), to break ties between equal groups. */
  lastServed: number
  /** Keys of this group that have state (running, waiting or paced). */
  keys: number
}

/** What `run` returns instead of running the job: the key is unresponsive and already probed. */
export const SHED: unique symbol = Symbol("KeyedLimiter.shed")

/** What `run` returns instead of running the job: the key's pace puts its start past the horizon. */
export class Deferred {
  readonly until: number
  constructor(until: number) {
    this.until = until
  }
}

/** How a job is scheduled besides its key. */
export interface Lane {
  /** Whose share of the global slots the job uses (the tenant); one group by default. */
  readonly group?: string
  /** Starts of the key per second (its whole history in this limiter), or none. */
  readonly ratePerSecond?: number | null | undefined
}

export interface Limits {
  readonly global: number
  readonly perKey: number
  /**
   * Global slots one group never takes, so that another group's job starts at once even while
   * one group's slow jobs hold the rest (default: an eighth of `global`).
   */
  readonly groupReserve?: number
  /** A paced job whose start lies further ahead than this is returned as `Deferred` (default 5 s). */
  readonly horizonMs?: number
  /** The clock (tests). */
  readonly now?: () => number
}

/**
 * Bounded concurrency overall and per key (endpoint id), FIFO within a key, fair across keys and
 * across groups (tenants):
 * - a key at its own limit waits without holding a global slot, so a slow endpoint never takes
 *   capacity from the others;
 * - a freed global slot goes to the group with the fewest running jobs among those with a job
 *   waiting (max-min fairness; ties in round robin), and within that group to the next key in
 *   round robin. So a group above its fair share (the global slots divided among the groups that
 *   want them) never gets a freed slot while a group below it waits; and no group holds more than
 *   `global − groupReserve`, so another group's first job never waits for a slot to be freed;
 * - a key may be paced (`ratePerSecond`: starts at least 1/rate s apart) and paused (`pauseUntil`,
 *   for a receiver's `Retry-After`); a paced job waits without a slot, and a job whose start lies
 *   past the horizon is returned `Deferred` for the caller to put aside;
 * - a key marked unresponsive (its last attempt timed out or could not connect) is probed one job
 *   at a time until it answers again: its waiting jobs and any that arrive meanwhile are shed
 *   (`run` returns `SHED`) for the caller to put aside, instead of waiting in memory behind one
 *   attempt per timeout — or holding the key's full share of connections open until each times
 *   out and reopening them all at once.
 */
export class KeyedLimiter {
  private running = 0
  private readonly perKey = new Map<string, KeyState>()
  private readonly groups = new Map<string, GroupState>()
  /** Groups with ready keys, a binary min-heap by (running, lastServed). */
  private readonly heap: Array<GroupState> = []
  private tick = 0
  private readonly unresponsive = new Set<string>()
  /** Per key, the earliest time its next job may start (pace and pauses); past entries are dropped. */
  private readonly nextStart = new Map<string, number>()
  /** Per key, the time its latest `Deferred` job was given back for (deferred jobs are spread at the pace). */
  private readonly deferredTail = new Map<string, number>()
  /**
   * Per paced key, when its recent jobs ended: the job `rate` starts after another starts only a
   * second after that one ended. The receiver sees a request between its start and its end, so
   * however late the earlier ones arrived (a new connection's handshake, a busy host), no second
   * holds more than `rate` of them at the receiver.
   */
  private readonly windows = new Map<string, Window>()

  private readonly limits: { readonly global: number; readonly perKey: number }
  private readonly groupCap: number
  private readonly horizonMs: number
  private readonly now: () => number

  constructor(limits: Limits) {
    this.limits = limits
    this.groupCap = Math.max(1, limits.global - (limits.groupReserve ?? Math.floor(limits.global / 8)))
    this.horizonMs = limits.horizonMs ?? 5_000
    this.now = limits.now ?? (() => Date.now())
  }

  get active(): number {
    return this.running
  }

  /** Jobs of `group` running now (tests and metrics). */
  activeIn(group: string): number {
    return this.groups.get(group)?.running ?? 0
  }

  /**
   * Runs `job` once a global, a group and a per-key slot are free and the key's pace allows it,
   * unless the key's jobs are being shed (`SHED`) or its start lies past the horizon (`Deferred`).
   */
  async run<A>(key: string, job: () => Promise<A>, lane: Lane = {}): Promise<A | typeof SHED | Deferred> {
    const granted = await this.acquire(key, lane)
    if (granted === false) return SHED
    if (granted instanceof Deferred) return granted
    try {
      return await job()
    } finally {
      this.release(key, granted)
    }
  }

  /**
   * Runs `job` only if it may start at once: an unpaced key with no job of its own waiting, below
   * its limit, and a global and a group slot free (so it passes nobody who waits). Otherwise
   * returns `undefined` without running it, for the caller to queue the job elsewhere.
   */
  runIfReady<A>(key: string, job: () => Promise<A>, lane: Lane = {}): Promise<A> | undefined {
    if (lane.ratePerSecond !== undefined && lane.ratePerSecond !== null && lane.ratePerSecond > 0) return undefined
    const state = this.stateOf(key, lane)
    const now = this.now()
    if (
      this.waitOf(key, state, now) > 0 || state.waiting.length > 0 || state.running >= this.limitOf(key) ||
      this.running >= this.limits.global || state.group.running >= this.groupCap
    ) {
      this.forgetIfIdle(key, state)
      return undefined
    }
    const granted = this.grant(key, state, now)
    const run = async () => {
      try {
        return await job()
      } finally {
        this.release(key, granted)
      }
    }
    return run()
  }

  /** After an attempt: `false` sheds the key's waiting jobs and runs one at a time until `true` again. */
  /** Keys marked unresponsive: each is probed one job at a time. */
  get unresponsiveCount(): number {
    return this.unresponsive.size
  }

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

  /** No job of `key` starts before `until` (a receiver's `Retry-After`); later pauses win. */
  pauseUntil(key: string, until: number): void {
    // A key already in its group's ready list is skipped there until the pause ends (`pump`).
    if (until > (this.nextStart.get(key) ?? 0)) this.setNextStart(key, until)
  }

  /**
   * Forgets the pace history of keys whose next start is due (after a rebalance, when keys may
   * have moved here): their next start waits one interval, as for a key never seen. Pending
   * paces and pauses stay.
   */
  restartPacing(): void {
    const now = this.now()
    for (const [key, at] of this.nextStart) if (at <= now) this.nextStart.delete(key)
  }

  private setNextStart(key: string, at: number): void {
    this.remember(this.nextStart, key, at)
  }

  /** Sets a per-key time, dropping past ones first when the map is large (bounded, whatever the key churn). */
  private remember(times: Map<string, number>, key: string, at: number): void {
    if (times.size >= 100_000) {
      const now = this.now()
      for (const [k, t] of times) if (t <= now) times.delete(k)
      if (times.size >= 100_000) times.clear()
    }
    times.set(key, at)
  }

  private limitOf(key: string): number {
    return this.unresponsive.has(key) ? 1 : this.limits.perKey
  }

  /**
   * How long until the key's pace, pause and window allow a start (≤ 0: now; Infinity: once a job
   * of the key ends). Sub-millisecond waits for the pace count as none.
   */
  private waitOf(key: string, state: KeyState, now: number): number {
    const at = this.nextStart.get(key)
    const paced = at === undefined ? 0 : at - now
    let wait = state.interval < 1 && paced < 1 ? 0 : paced
    const w = state.interval > 0 ? this.windows.get(key) : undefined
    if (w !== undefined && w.next >= w.size) {
      const ended = w.ends[w.next % w.size]!
      wait = Number.isNaN(ended) ? Infinity : Math.max(wait, ended + 1_000 - now)
    }
    return wait
  }

  private enqueue(key: string, state: KeyState): void {
    if (state.queued || state.waiting.length === 0 || state.running >= this.limitOf(key)) return
    const wait = this.waitOf(key, state, this.now())
    if (wait > 0) {
      // Infinity: a job of the key still runs, and its end (`release`) brings the key back.
      if (state.timer === undefined && wait !== Infinity) {
        state.timer = setTimeout(() => {
          state.timer = undefined
          if (this.perKey.get(key) !== state) return
          this.enqueue(key, state)
          this.pump()
          this.forgetIfIdle(key, state)
        }, Math.ceil(wait))
      }
      return
    }
    state.queued = true
    state.group.ready.push(key)
    if (state.group.heapIndex < 0) this.heapPush(state.group)
  }

  private stateOf(key: string, lane: Lane): KeyState {
    let state = this.perKey.get(key)
    if (state === undefined) {
      const name = lane.group ?? ""
      let group = this.groups.get(name)
      if (group === undefined) {
        group = { name, running: 0, ready: [], heapIndex: -1, lastServed: 0, keys: 0 }
        this.groups.set(name, group)
      }
      group.keys++
      state = { group, running: 0, waiting: [], queued: false, timer: undefined, interval: 0 }
      this.perKey.set(key, state)
    }
    const rate = lane.ratePerSecond
    state.interval = rate === undefined || rate === null || rate <= 0 ? 0 : 1_000 / rate
    // No pace history here: another process may have paced the key until just now (it owned the
    // key's partition before a rebalance), so its first start here is one interval away.
    if (state.interval > 0 && !this.nextStart.has(key)) this.setNextStart(key, this.now() + state.interval)
    return state
  }

  private acquire(key: string, lane: Lane): Promise<Grant | Deferred> {
    const state = this.stateOf(key, lane)
    if (this.unresponsive.has(key) && state.running > 0) return Promise.resolve(false) // being probed
    const now = this.now()
    const wait = this.waitOf(key, state, now)
    if (
      wait <= 0 && state.waiting.length === 0 && state.running < this.limitOf(key) &&
      this.running < this.limits.global && state.group.running < this.groupCap
    ) {
      return Promise.resolve(this.grant(key, state, now))
    }
    // Its start, were every waiter of the key started at the key's pace: past the horizon, defer,
    // one interval behind the key's last deferred job, so that deferred jobs come back at the pace.
    const start = now + (wait === Infinity ? 0 : Math.max(0, wait)) + state.waiting.length * state.interval
    if (start - now > this.horizonMs) {
      this.forgetIfIdle(key, state)
      const behind = (this.deferredTail.get(key) ?? 0) + state.interval
      const until = Math.max(start, behind)
      this.remember(this.deferredTail, key, until)
      return Promise.resolve(new Deferred(until))
    }
    return new Promise<Grant>((resolve) => {
      state.waiting.push(resolve)
      this.enqueue(key, state)
    })
  }

  private grant(key: string, state: KeyState, now: number): Ticket | null {
    state.running++
    state.group.running++
    this.running++
    if (state.group.heapIndex >= 0) this.heapFix(state.group)
    if (state.interval <= 0) return null
    this.setNextStart(key, Math.max(this.nextStart.get(key) ?? 0, now) + state.interval)
    const size = Math.max(1, Math.round(1_000 / state.interval))
    let w = this.windows.get(key)
    if (w === undefined || w.size !== size) {
      if (this.windows.size >= 1_000) {
        for (const [k, x] of this.windows) if (x.running === 0 && x.lastEnd + 1_000 <= now) this.windows.delete(k)
      }
      w = { size, next: 0, ends: new Float64Array(size), running: 0, lastEnd: 0 }
      this.windows.set(key, w)
    }
    const seq = w.next++
    w.ends[seq % size] = Number.NaN
    w.running++
    return new Ticket(w, seq)
  }

  private release(key: string, ticket: Ticket | null): void {
    if (ticket !== null) {
      const now = this.now()
      ticket.window.ends[ticket.seq % ticket.window.size] = now
      ticket.window.running--
      ticket.window.lastEnd = now
    }
    const state = this.perKey.get(key)!
    state.running--
    state.group.running--
    this.running--
    if (state.group.heapIndex >= 0) this.heapFix(state.group)
    this.enqueue(key, state) // the released key may have become eligible again
    this.pump()
    this.forgetIfIdle(key, state)
  }

  /** A key with nothing running, waiting, queued or timed needs no state (keys are endpoint ids: many). */
  private forgetIfIdle(key: string, state: KeyState): void {
    if (state.running === 0 && state.waiting.length === 0 && !state.queued && state.timer === undefined) {
      this.perKey.delete(key)
      const group = state.group
      group.keys--
      if (group.keys === 0 && group.running === 0 && group.heapIndex < 0) this.groups.delete(group.name)
    }
  }

  private pump(): void {
    while (this.running < this.limits.global && this.heap.length > 0) {
      const group = this.heap[0]!
      if (group.running >= this.groupCap) return // the least served group is at the cap: so are all
      const key = group.ready.shift()!
      if (group.ready.length === 0) this.heapPop()
      const state = this.perKey.get(key)
      if (state === undefined) continue
      state.queued = false
      const now = this.now()
      if (state.waiting.length === 0 || state.running >= this.limitOf(key) || this.waitOf(key, state, now) > 0) {
        this.enqueue(key, state) // paused meanwhile: its timer brings it back
        this.forgetIfIdle(key, state)
        continue
      }
      const wake = state.waiting.shift()!
      group.lastServed = ++this.tick
      const ticket = this.grant(key, state, now)
      this.enqueue(key, state) // still eligible with more waiters: behind the group's other keys (round robin)
      wake(ticket)
    }
  }

  // A binary min-heap of groups by (running, lastServed), each knowing its index.

  private less(a: GroupState, b: GroupState): boolean {
    return a.running < b.running || (a.running === b.running && a.lastServed < b.lastServed)
  }

  private heapPush(group: GroupState): void {
    group.heapIndex = this.heap.length
    this.heap.push(group)
    this.siftUp(group.heapIndex)
  }

  private heapPop(): void {
    const top = this.heap[0]!
    const last = this.heap.pop()!
    top.heapIndex = -1
    if (last !== top) {
      this.heap[0] = last
      last.heapIndex = 0
      this.siftDown(0)
    }
    if (top.keys === 0 && top.running === 0) this.groups.delete(top.name)
  }

  private heapFix(group: GroupState): void {
    this.siftUp(group.heapIndex)
    this.siftDown(group.heapIndex)
  }

  private swap(i: number, j: number): void {
    const a = this.heap[i]!
    const b = this.heap[j]!
    this.heap[i] = b
    this.heap[j] = a
    a.heapIndex = j
    b.heapIndex = i
  }

  private siftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.less(this.heap[i]!, this.heap[parent]!)) return
      this.swap(i, parent)
      i = parent
    }
  }

  private siftDown(i: number): void {
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < this.heap.length && this.less(this.heap[l]!, this.heap[m]!)) m = l
      if (r < this.heap.length && this.less(this.heap[r]!, this.heap[m]!)) m = r
      if (m === i) return
      this.swap(i, m)
      i = m
    }
  }
}
