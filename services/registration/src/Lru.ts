/**
 * A map bounded to `capacity` entries that drops its least recently written entry to make room.
 * Recency is refreshed by `set` only, so a read stays a plain Map lookup (the cached-key fast
 * path reads on every request and writes once per cache period).
 */
export class Lru<K, V> {
  private readonly map = new Map<K, V>()
  readonly capacity: number
  constructor(capacity: number) {
    this.capacity = capacity
  }

  get size() {
    return this.map.size
  }

  get(key: K): V | undefined {
    return this.map.get(key)
  }

  set(key: K, value: V): void {
    this.map.delete(key)
    this.map.set(key, value)
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K)
  }

  delete(key: K): void {
    this.map.delete(key)
  }
}
