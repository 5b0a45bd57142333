import parsePrometheusTextFormat from "parse-prometheus-text-format"

/** One metric family as parse-prometheus-text-format reads it (prom2json's shape). */
export interface MetricFamily {
  readonly name: string
  readonly help: string
  readonly type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED"
  readonly metrics: ReadonlyArray<{ readonly value?: string; readonly labels?: Readonly<Record<string, string>> }>
}

/** One sample line: a series' name (a histogram's `_bucket`, `_sum`, `_count` apart), labels and value. */
export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/**
 * A scrape of one `/metrics` endpoint, parsed by a Prometheus text-format parser (never by hand).
 * The parser folds a histogram family into one object and, with labels beside `le`, loses its
 * `_count` and `_sum` per label set (prom2json's shape has room for one histogram per family); so
 * the samples are read from a second parse in which histogram families are declared `untyped`,
 * which keeps every `_bucket`, `_sum` and `_count` line with its labels. Types come from the first.
 */
export class Scrape {
  readonly families: ReadonlyArray<MetricFamily>
  readonly samples: ReadonlyArray<Sample>
  readonly text: string
  constructor(text: string) {
    this.text = text
    this.families = parsePrometheusTextFormat(text) as ReadonlyArray<MetricFamily>
    const flat = parsePrometheusTextFormat(text.replace(/^# TYPE (\S+) histogram$/gm, "# TYPE $1 untyped")) as ReadonlyArray<MetricFamily>
    this.samples = flat.flatMap((f) => f.metrics.map((m) => ({ name: f.name, labels: m.labels ?? {}, value: Number(m.value) })))
  }

  family(name: string): MetricFamily | undefined {
    return this.families.find((f) => f.name === name)
  }

  /** The series of `name` whose labels include `labels`; for a histogram, its `_count` series. */
  series(name: string, labels: Readonly<Record<string, string>> = {}): ReadonlyArray<Sample> {
    const sampleName = this.family(name)?.type === "HISTOGRAM" ? `${name}_count` : name
    return this.samples.filter((s) => s.name === sampleName && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  }

  /** Sum of the matching series' values (a counter or gauge; a histogram's observation count); 0 when there is none. */
  value(name: string, labels: Readonly<Record<string, string>> = {}): number {
    return this.series(name, labels).reduce((n, s) => n + s.value, 0)
  }
}

export const scrape = async (url: string): Promise<Scrape> => {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  const text = await res.text()
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${text.slice(0, 200)}`)
  return new Scrape(text)
}
