import { Effect } from "effect"
import type postgres from "postgres"
import { type DbUnavailable, query, type Sql } from "./Db.ts"

/** A position in a newest-first listing: the last item of the previous page (full-precision instant). */
export interface KeysetPosition {
  readonly createdAt: string
  readonly id: string
}

/** One page of a newest-first listing. */
export interface KeysetPage<A> {
  readonly items: ReadonlyArray<A>
  /** The position after the last item, when there is a next page. */
  readonly next: KeysetPosition | undefined
}

/**
 * One page of a newest-first listing, walked by keyset over `(time, id)`: rows strictly before the
 * cursor's position in `time DESC, id DESC` order, so with an index on the filter columns followed
 * by `(time DESC, id DESC)` a page costs one page of rows however long the listing is. One row more
 * than `limit` is read to learn whether a next page exists. The cursor's instant goes in as text for
 * Postgres to parse: as a timestamptz parameter the driver would round it to milliseconds, and a
 * page could skip rows that share the millisecond.
 */
export const keysetPage = <R extends object, A>(sql: Sql, page: {
  /** `SELECT … FROM … WHERE <filter>`: the filter must be a complete condition (the keyset ANDs onto it). */
  readonly select: postgres.PendingQuery<postgres.Row[]>
  /** The ordering columns, qualified by their table (a selected column may reuse the name, formatted). */
  readonly time: string
  readonly id: string
  readonly limit: number
  readonly after: KeysetPosition | undefined
  readonly item: (row: R) => A
  /** The full-precision position of a row, for the cursor. */
  readonly position: (row: R) => KeysetPosition
}): Effect.Effect<KeysetPage<A>, DbUnavailable> => {
  const { select, time, id, limit, after } = page
  return query(() =>
    sql<Array<R>>`${select}
      ${after === undefined ? sql`` : sql`AND (${sql(time)}, ${sql(id)}) < (${after.createdAt}::text::timestamptz, ${after.id})`}
      ORDER BY ${sql(time)} DESC, ${sql(id)} DESC LIMIT ${limit + 1}`
  ).pipe(
    Effect.map((rows) => {
      const items = rows.slice(0, limit)
      const last = items[items.length - 1]
      return { items: items.map(page.item), next: rows.length > limit && last !== undefined ? page.position(last) : undefined }
    })
  )
}
