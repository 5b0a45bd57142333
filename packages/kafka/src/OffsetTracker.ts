/**
 * Which offset of one partition may be committed (pure bookkeeping, no I/O). Records are handed
 * out in offset order and finish in any order; the committable offset is the one after the
 * longest contiguous prefix of finished records, so a commit never skips unfinished work.
 */
export class OffsetTracker {
  /** Offsets handed out and not finished yet, in hand-out order. */
  private readonly pending: Array<bigint> = []
  private readonly finished = new Set<bigint>()
  /** The next offset to commit once everything before it is finished. */
  private next: bigint | undefined

  /** Records `offset` as started. Offsets must be handed out in increasing order. */
  start(offset: bigint): void {
    if (this.pending.length === 0 && this.next !== undefined && offset < this.next) return
    this.pending.push(offset)
  }

  /** Records `offset` as finished (its outcome is durable). */
  finish(offset: bigint): void {
    this.finished.add(offset)
    while (this.pending.length > 0 && this.finished.has(this.pending[0]!)) {
      const head = this.pending.shift()!
      this.finished.delete(head)
      this.next = head + 1n
    }
  }

  /** The offset to commit (next to read), or undefined when nothing has finished yet. */
  committable(): bigint | undefined {
    return this.next
  }

  get inFlight(): number {
    return this.pending.length
  }
}
