import { readFileSync } from "node:fs"

/** Cumulative steal and total jiffies of all CPUs (Linux /proc/stat). */
const read = () => {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1, 9).map(Number)
  return { steal: fields[7] ?? 0, total: fields.reduce((a, b) => a + b, 0) }
}

/**
 * Starts measuring CPU steal: the share of time the hypervisor ran other guests while this VM
 * wanted the CPU. Benchmarks print it, since it moves every absolute number they report.
 */
export const measureCpuSteal = () => {
  const start = read()
  return () => {
    const now = read()
    const total = now.total - start.total
    return total > 0 ? (now.steal - start.steal) / total : 0
  }
}
