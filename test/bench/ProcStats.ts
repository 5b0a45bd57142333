import { readFileSync } from "node:fs"

/** Clock ticks per second of /proc's CPU times (USER_HZ on Linux). */
const TICKS_PER_SECOND = 100

/** utime + stime of a process, in seconds (Linux /proc); NaN when it is unknown or gone. */
export const cpuSeconds = (pid: number | undefined): number => {
  if (pid === undefined) return Number.NaN
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND
  } catch {
    return Number.NaN
  }
}

/** Resident memory of a process in MB (VmRSS, Linux /proc); NaN when it is unknown or gone. */
export const rssMb = (pid: number | undefined): number => {
  if (pid === undefined) return Number.NaN
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return m === null ? Number.NaN : Number(m[1]) / 1024
  } catch {
    return Number.NaN
  }
}
