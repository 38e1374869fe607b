/**
 * Progress of long work (reconcile, backup, restore, the benchmark's history fill): a bar on a terminal (items
 * done, rate, time left), plain lines otherwise or with --json. To be built (cli-progress).
 */
export interface Progress {
  /** `n` more items done (default 1). */
  tick(n?: number): void;
  /** Changes the total when it becomes known. */
  setTotal(total: number): void;
  /** The work ended (ok or not); prints the final line. */
  done(summary?: string): void;
}

export interface ProgressOptions {
  /** What is being done, e.g. "对账 reconcile 2026-12-01". */
  label: string;
  /** Items expected; 0 when unknown yet. */
  total: number;
  /** The unit shown after the counts, e.g. "days", "MiB". */
  unit?: string;
  /** Machine-readable output asked for: JSON lines, no bar. */
  json?: boolean;
  /** Where to write (default process.stderr). */
  stream?: NodeJS.WriteStream;
}

export function createProgress(_opts: ProgressOptions): Progress {
  return { tick() {}, setTotal() {}, done() {} };
}
