import cliProgress from 'cli-progress';
import { ConfigError } from '../config/config.js';

/**
 * Progress of long work (reconcile, backup, restore, the benchmark's history fill): a bar on a terminal (items
 * done, rate, time left), plain lines otherwise or with --json. Always on stderr (the default stream): stdout
 * carries the command's data, which a progress line must never mix with.
 *
 * - terminal (the stream's isTTY): a bar redrawn in place (cli-progress), cleared at the end and replaced by
 *   the final line;
 * - not a terminal (a log file, a pipe, cron): a plain line at most every `intervalMs` (5 s), plus the final
 *   line; work that ends sooner prints the final line only;
 * - `json`: the same moments as JSON lines, `{"type":"progress",…}` then `{"type":"progress_done",…}`.
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
  /** Plain and JSON lines: at most one per this many milliseconds, plus the last (HOSPAY_PROGRESS_INTERVAL, 5 s). */
  intervalMs?: number;
  /** The clock in milliseconds (tests); default Date.now. */
  now?: () => number;
}

/** A progress line as `--json` writes it (one JSON object per line, on stderr). */
export interface ProgressJsonLine {
  type: 'progress' | 'progress_done';
  label: string;
  done: number;
  /** 0 when unknown. */
  total: number;
  unit: string;
  /** Items per second since the start. */
  rate: number;
  elapsed_s: number;
  /** Seconds left at the current rate; null when unknown (no total, nothing done yet). */
  eta_s: number | null;
  /** progress_done only, when given. */
  summary?: string;
}

const DEFAULT_INTERVAL_MS = 5_000;

/**
 * HOSPAY_PROGRESS_INTERVAL: how often plain and JSON progress lines are written ("5s" by default; "500ms", "1m"):
 * a cron log may want one a minute.
 */
export function progressInterval(env: Record<string, string | undefined> = process.env): number {
  const raw = env['HOSPAY_PROGRESS_INTERVAL'];
  if (raw === undefined || raw === '') return DEFAULT_INTERVAL_MS;
  const m = /^([0-9]{1,7})(ms|s|m)$/.exec(raw);
  if (!m)
    throw new ConfigError(
      'HOSPAY_PROGRESS_INTERVAL',
      `must be a duration like 500ms, 5s or 1m, got "${raw}"`,
    );
  return Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm'] ?? 1);
}

/** "45s", "3m05s", "2h03m". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function formatRate(rate: number): string {
  return rate >= 10 ? String(Math.round(rate)) : rate.toFixed(1);
}

/** The numbers every mode shows, from the same state. */
class Counter {
  done = 0;
  readonly startedAt: number;
  constructor(
    public total: number,
    private readonly now: () => number,
  ) {
    this.startedAt = now();
    this.total = Math.max(0, Math.floor(total));
  }
  elapsedS(): number {
    return Math.max(0, (this.now() - this.startedAt) / 1000);
  }
  rate(): number {
    const e = this.elapsedS();
    return e > 0 ? this.done / e : 0;
  }
  etaS(): number | null {
    const r = this.rate();
    if (this.total <= 0 || r <= 0) return null;
    return Math.max(0, (this.total - this.done) / r);
  }
  counts(unit: string): string {
    const of = this.total > 0 ? `${this.done}/${this.total}` : `${this.done}`;
    const pct =
      this.total > 0 ? ` (${Math.floor((100 * Math.min(this.done, this.total)) / this.total)}%)` : '';
    return `${of}${unit ? ` ${unit}` : ''}${pct}`;
  }
  /** The plain line while working. */
  line(label: string, unit: string): string {
    const eta = this.etaS();
    return (
      `${label}: ${this.counts(unit)}, ${formatRate(this.rate())}/s` +
      (eta === null ? '' : `, 剩余 left ${formatDuration(eta)}`)
    );
  }
  /** The final line. */
  finalLine(label: string, unit: string, summary: string | undefined): string {
    return (
      `${label}: 完成 done ${this.counts(unit)} in ${formatDuration(this.elapsedS())} ` +
      `(${formatRate(this.rate())}/s)${summary ? ` — ${summary}` : ''}`
    );
  }
  json(type: ProgressJsonLine['type'], label: string, unit: string, summary?: string): ProgressJsonLine {
    const eta = this.etaS();
    return {
      type,
      label,
      done: this.done,
      total: this.total,
      unit,
      rate: Math.round(this.rate() * 100) / 100,
      elapsed_s: Math.round(this.elapsedS() * 10) / 10,
      eta_s: type === 'progress_done' ? 0 : eta === null ? null : Math.round(eta),
      ...(summary !== undefined ? { summary } : {}),
    };
  }
}

/** The progress of one piece of work; after done() it is a no-op (a late tick never prints under the final line). */
export function createProgress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? Date.now;
  const unit = opts.unit ?? '';
  const label = opts.label.replace(/[\r\n]+/g, ' ');
  const counter = new Counter(opts.total, now);
  if (!opts.json && stream.isTTY) return barProgress(stream, label, unit, counter);
  const interval = opts.intervalMs ?? progressInterval();
  let lastLine = now();
  let finished = false;
  const write = opts.json
    ? (type: ProgressJsonLine['type'], summary?: string) =>
        stream.write(`${JSON.stringify(counter.json(type, label, unit, summary))}\n`)
    : (type: ProgressJsonLine['type'], summary?: string) =>
        stream.write(
          `${type === 'progress' ? counter.line(label, unit) : counter.finalLine(label, unit, summary)}\n`,
        );
  return {
    tick(n = 1) {
      if (finished) return;
      counter.done += n;
      if (now() - lastLine >= interval) {
        lastLine = now();
        write('progress');
      }
    },
    setTotal(total) {
      counter.total = Math.max(0, Math.floor(total));
    },
    done(summary) {
      if (finished) return;
      finished = true;
      write('progress_done', summary);
    },
  };
}

/** On a terminal: cli-progress's bar, redrawn in place; at the end the bar is cleared and the final line stays. */
function barProgress(stream: NodeJS.WriteStream, label: string, unit: string, counter: Counter): Progress {
  const bar = new cliProgress.SingleBar({
    stream,
    fps: 5,
    barsize: 24,
    hideCursor: false,
    clearOnComplete: true,
    stopOnComplete: false,
    linewrap: false,
    format: (options, params) => {
      const width = options.barsize ?? 24;
      const ratio = counter.total > 0 ? Math.min(1, Math.max(0, params.value / counter.total)) : 0;
      const full = Math.round(ratio * width);
      const shown = counter.total > 0 ? `${'█'.repeat(full)}${'░'.repeat(width - full)}` : '░'.repeat(width);
      const eta = counter.etaS();
      return (
        `${label} [${shown}] ${counter.counts(unit)} | ${formatRate(counter.rate())}/s | ` +
        `剩余 ETA ${eta === null ? '--' : formatDuration(eta)}`
      );
    },
  });
  bar.start(Math.max(1, counter.total), 0);
  let finished = false;
  return {
    tick(n = 1) {
      if (finished) return;
      counter.done += n;
      bar.update(counter.done);
    },
    setTotal(total) {
      if (finished) return;
      counter.total = Math.max(0, Math.floor(total));
      bar.setTotal(Math.max(1, counter.total));
    },
    done(summary) {
      if (finished) return;
      finished = true;
      bar.stop();
      stream.write(`${counter.finalLine(label, unit, summary)}\n`);
    },
  };
}
