/**
 * Natural batching of one statement of the payment paths (group commit done by the application): while a
 * statement of this kind is on its way to the database, the requests that want the same statement wait in a queue,
 * and when it returns they go together, as one statement over arrays (one round trip, one commit, one WAL flush
 * for all of them) instead of one statement each.
 *
 * Nothing waits on purpose: a request that finds fewer than `inFlight` statements of its kind on their way goes at
 * once, alone, as the one-row statement it always was. So a quiet server runs exactly today's statements, and a
 * busy one (where the round trip, not the row, is what costs: a single-row insert spends most of PostgreSQL's CPU
 * in the protocol, the commit and the loopback) makes fewer, larger ones. Every caller still learns the outcome of
 * its own row only after the statement that wrote it has committed.
 *
 * A batch never holds two items with the same key (the same order number, the same nonce, the same trade): those
 * wait for the next batch, so a batch's rows are told apart by their key and a conflict inside one statement can
 * never be ambiguous. A batch that fails as a whole (a constraint, a deadlock with another server's batch) is run
 * again one item at a time, so each caller gets its own outcome and its own error, exactly as without batching.
 * A batch's items go to the statement sorted by their first key, so that batches of one statement in several
 * processes lock their rows in the same order (no deadlock between them).
 */
import { dbBatchItems, dbBatchRetried, dbBatchStatements } from '../metrics.js';

export interface BatcherOptions<I, O> {
  /** The statement's name in the metrics (hospay_db_batch_*_total{statement}): a fixed word. */
  name: string;
  /** The one-row statement, as without batching: used for a batch of one and to retry a failed batch. */
  one: (item: I) => Promise<O>;
  /** The batch statement: one outcome per item, in the items' order. */
  many: (items: readonly I[]) => Promise<O[]>;
  /** Items sharing a key never share a batch (an item may have several: its order number and its nonce). */
  key: (item: I) => string | readonly string[];
  /** The most items in one statement (default 64). */
  max?: number;
  /** How many statements of this kind may be on their way at once (default 2). */
  inFlight?: number;
}

interface Waiting<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export class Batcher<I, O> {
  private readonly queue: Array<Waiting<I, O>> = [];
  private running = 0;
  private readonly max: number;
  private readonly inFlight: number;
  /** Statements run, and items in them (for tests and metrics: items ÷ statements is the mean batch). */
  readonly stats = { statements: 0, items: 0, retried: 0 };
  /** This statement's counters (hospay_db_batch_*_total{statement}), looked up once. */
  private readonly metrics: Record<'statements' | 'items' | 'retried', { inc(n?: number): void }>;

  constructor(private readonly opts: BatcherOptions<I, O>) {
    this.max = Math.max(1, opts.max ?? 64);
    this.inFlight = Math.max(1, opts.inFlight ?? 2);
    this.metrics = {
      statements: dbBatchStatements.labels(opts.name),
      items: dbBatchItems.labels(opts.name),
      retried: dbBatchRetried.labels(opts.name),
    };
  }

  run(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.inFlight && this.queue.length > 0) {
      const batch = this.take();
      this.running++;
      void this.send(batch).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  /**
   * The next batch: the oldest waiting items, up to `max`, no two with one key (the others keep their place),
   * sorted by their first key.
   */
  private take(): Array<Waiting<I, O>> {
    const first = this.queue.shift() as Waiting<I, O>;
    if (this.queue.length === 0) return [first];
    const batch = [first];
    const keys = new Set<string>();
    const keysOf = (w: Waiting<I, O>): readonly string[] => {
      const k = this.opts.key(w.item);
      return typeof k === 'string' ? [k] : k;
    };
    for (const k of keysOf(first)) keys.add(k);
    const rest: Array<Waiting<I, O>> = [];
    for (const w of this.queue) {
      const ks = keysOf(w);
      if (batch.length < this.max && !ks.some((k) => keys.has(k))) {
        for (const k of ks) keys.add(k);
        batch.push(w);
      } else rest.push(w);
    }
    this.queue.length = 0;
    this.queue.push(...rest);
    // In the order of their first keys (unique in a batch): every process's batches of one statement then take
    // their rows' locks in one global order, so two of them can wait for each other's rows but never deadlock.
    const order = new Map(batch.map((w) => [w, keysOf(w)[0] ?? ''] as const));
    return batch.sort((a, b) => {
      const ka = order.get(a) ?? '';
      const kb = order.get(b) ?? '';
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
  }

  private async send(batch: Array<Waiting<I, O>>): Promise<void> {
    this.stats.statements++;
    this.stats.items += batch.length;
    this.metrics.statements.inc();
    this.metrics.items.inc(batch.length);
    if (batch.length === 1) {
      const w = batch[0] as Waiting<I, O>;
      await this.opts.one(w.item).then(w.resolve, w.reject);
      return;
    }
    let out: O[];
    try {
      out = await this.opts.many(batch.map((w) => w.item));
      if (out.length !== batch.length) throw new Error(`batch answered ${out.length} of ${batch.length}`);
    } catch {
      // Nothing of a failed statement was written: each item again on its own, with its own outcome.
      this.stats.retried += batch.length;
      this.metrics.retried.inc(batch.length);
      await Promise.all(batch.map((w) => this.opts.one(w.item).then(w.resolve, w.reject)));
      return;
    }
    for (let i = 0; i < batch.length; i++) (batch[i] as Waiting<I, O>).resolve(out[i] as O);
  }
}

/**
 * The arrays of a batch statement (`unnest($1::type[], $2::type[], …)`): column i of every item's parameters, one
 * array per column, absent values as null.
 */
export function columnsOf(rows: ReadonlyArray<readonly unknown[]>, width: number): unknown[][] {
  const out: unknown[][] = [];
  for (let i = 0; i < width; i++) out.push(rows.map((r) => r[i] ?? null));
  return out;
}
