import { sql, type Insertable } from 'kysely';
import type { Db } from './db.js';
import type { ReconRunsTable } from './schema.js';
import type { Clock } from '../domain/clock.js';

/**
 * The platform's side of a business day is read from the replica only once the day ended this long ago: a
 * replica a few seconds (or minutes) behind has then long caught up with the day's payments and refunds. A day
 * still going on, or one that just ended, is read from the primary.
 */
export const REPLICA_SETTLED_MS = 15 * 60_000;

/**
 * The reconciliation's tables (recon_runs, recon_differences, recon_audit, recon_evidence) and the platform's
 * movements a run compares. The rules (what matches, what is kept, what a difference means) are
 * src/reconcile's; this reads and writes rows.
 */

/** The trade columns the matcher reads (reconcile/matcher.ts platformEntriesFrom). */
const TRADE_COLUMNS = [
  'trades.id',
  'trades.trade_no',
  'trades.out_trade_no',
  'trades.channel_trade_no',
  'trades.status',
  'trades.total_fen',
  'trades.insurance_fen',
  'trades.paid_at',
  'trades.category',
  'trades.kind',
  'trades.created_at',
] as const;

/** The refund columns the matcher reads. */
const REFUND_COLUMNS = [
  'refunds.trade_id',
  'refunds.out_request_no',
  'refunds.kind',
  'refunds.amount_fen',
  'refunds.status',
  'refunds.finished_at',
  'refunds.updated_at',
  'refunds.created_at',
] as const;

/** A difference's columns as the admin API, the CLI, the finance page and the report read them. */
const DIFFERENCE_COLUMNS = [
  'id',
  'app_id',
  'business_date',
  'pay_type',
  'code',
  'kind',
  'out_trade_no',
  'out_request_no',
  'detail',
  'present',
  'state',
  'resolved_by',
  'resolved_note',
  'resolved_at',
  'created_at',
  'updated_at',
] as const;

export interface DifferenceQuery {
  date: string;
  appId?: string;
  state?: 'OPEN' | 'RESOLVED';
  payType?: string;
  present?: boolean;
}

/** A run's row as saved (the differences count without those kept from an earlier run). */
export type RunToSave = Required<Omit<Insertable<ReconRunsTable>, 'id'>>;

export interface EvidenceToSave {
  source: 'HIS_TRADE_LIST' | 'CHANNEL_BILL';
  /** JSON text of what was asked. */
  request: string;
  records: number;
  raw: string | null;
}

export interface DifferenceToSave {
  diffKey: string;
  code: string;
  kind: string;
  outTradeNo: string;
  outRequestNo: string | null;
  /** JSON text. */
  detail: string;
}

/** A difference as `differences` and `difference` read it. */
export type DifferenceRecord = NonNullable<Awaited<ReturnType<ReconciliationRepository['difference']>>>;

export class ReconciliationRepository {
  /**
   * `read`: the read replica (store/db.ts openReadStore), or the primary again when there is none; `clock`
   * decides when a business day is settled enough to be read there (REPLICA_SETTLED_MS). Everything else, the
   * reconciliation's own tables above all (a run and then its result, a resolution and then the day's list),
   * is read from the primary: those pages are read right after their own writes.
   */
  constructor(
    private readonly db: Db,
    private readonly read: Db = db,
    private readonly clock?: Clock,
  ) {}

  /** Where the platform's movements of a day ending at `dayEnd` are read: the replica once it is settled. */
  private movementsDb(dayEnd: Date): Db {
    if (this.read === this.db || !this.clock) return this.db;
    return dayEnd.getTime() + REPLICA_SETTLED_MS <= this.clock.now().getTime() ? this.read : this.db;
  }

  /** The pending pool (JSON text) left by the latest run of the app and pay type before `date`, if any. */
  async previousPending(appId: string, payType: string, date: string): Promise<string | undefined> {
    const previous = await this.db
      .selectFrom('recon_runs')
      .select(['pending'])
      .where('app_id', '=', appId)
      .where('pay_type', '=', payType)
      .where('business_date', '<', date)
      .orderBy('business_date', 'desc')
      .limit(1)
      .executeTakeFirst();
    return previous?.pending;
  }

  /**
   * The platform's movements of [dayStart, dayEnd) for one app and pay type: trades paid in it, trades still
   * unpaid (not 'void') created from `unsettledFrom`, refunds finished in it, refunds still PROCESSING created
   * from `unsettledFrom`; and `otherTrades`, the trades of those refunds that are not among the day's trades
   * (read 1000 ids at a time).
   */
  async movements(input: {
    appId: string;
    payType: string;
    dayStart: Date;
    dayEnd: Date;
    unsettledFrom: Date;
  }) {
    const { appId, payType, dayStart, dayEnd, unsettledFrom } = input;
    const db = this.movementsDb(dayEnd);
    // One app's trades and refunds of one pay type: the base of the four reads below.
    const appTrades = () =>
      db
        .selectFrom('trades')
        .select(TRADE_COLUMNS)
        .where('app_id', '=', appId)
        .where('pay_type', '=', payType);
    const appRefunds = () =>
      db
        .selectFrom('refunds')
        .innerJoin('trades', 'trades.id', 'refunds.trade_id')
        .select(REFUND_COLUMNS)
        .where('refunds.app_id', '=', appId)
        .where('trades.pay_type', '=', payType);
    const trades = await appTrades().where('paid_at', '>=', dayStart).where('paid_at', '<', dayEnd).execute();
    const unpaid = await appTrades()
      .where('paid_at', 'is', null)
      .where('created_at', '>=', unsettledFrom)
      .where('created_at', '<', dayEnd)
      .where('kind', '<>', 'void')
      .execute();
    const refunds = await appRefunds()
      .where('refunds.finished_at', '>=', dayStart)
      .where('refunds.finished_at', '<', dayEnd)
      .execute();
    const processing = await appRefunds()
      .where('refunds.finished_at', 'is', null)
      .where('refunds.status', '=', 'PROCESSING')
      .where('refunds.created_at', '>=', unsettledFrom)
      .where('refunds.created_at', '<', dayEnd)
      .execute();
    const allRefunds = [...refunds, ...processing];
    const dayTrades = [...trades, ...unpaid];
    const loaded = new Set(dayTrades.map((t) => t.id));
    const otherIds = [...new Set(allRefunds.map((r) => r.trade_id).filter((id) => !loaded.has(id)))];
    const otherTrades = [];
    for (let i = 0; i < otherIds.length; i += 1000) {
      otherTrades.push(
        ...(await db
          .selectFrom('trades')
          .select(TRADE_COLUMNS)
          .where('id', 'in', otherIds.slice(i, i + 1000))
          .execute()),
      );
    }
    return { trades: dayTrades, refunds: allRefunds, otherTrades };
  }

  /**
   * Saves a run of one app, business day and pay type in one transaction: the run (replacing the day's earlier
   * run), its evidence (replacing the earlier run's), and its differences (the day's others are marked no longer
   * present, resolutions stay). `keep` chooses among the day's present differences those that stay present
   * (and are counted as this run's); null keeps none and reads nothing. Returns the day's open differences and
   * how many were kept.
   */
  async saveRun(input: {
    run: RunToSave;
    keep: ((d: { id: number; code: string; detail: string }) => boolean) | null;
    evidence: readonly EvidenceToSave[];
    differences: readonly DifferenceToSave[];
  }): Promise<{ open: number; kept: number }> {
    const { app_id: appId, business_date: date, pay_type: payType, finished_at: now } = input.run;
    return this.db.transaction().execute(async (tx) => {
      const keep: number[] = [];
      if (input.keep) {
        const present = await tx
          .selectFrom('recon_differences')
          .select(['id', 'code', 'detail'])
          .where('app_id', '=', appId)
          .where('business_date', '=', date)
          .where('pay_type', '=', payType)
          .where('present', '=', true)
          .execute();
        for (const r of present) if (input.keep(r)) keep.push(r.id);
      }
      const run = { ...input.run, differences: input.run.differences + keep.length };
      await tx
        .insertInto('recon_runs')
        .values(run)
        .onConflict((oc) => oc.columns(['app_id', 'business_date', 'pay_type']).doUpdateSet(run))
        .execute();
      await tx
        .deleteFrom('recon_evidence')
        .where('app_id', '=', appId)
        .where('business_date', '=', date)
        .where('pay_type', '=', payType)
        .execute();
      for (const [seq, e] of input.evidence.entries())
        await tx
          .insertInto('recon_evidence')
          .values({
            app_id: appId,
            business_date: date,
            pay_type: payType,
            source: e.source,
            seq,
            request: e.request,
            records: e.records,
            raw: e.raw,
            fetched_at: now,
          })
          .execute();
      let stale = tx
        .updateTable('recon_differences')
        .set({ present: false, updated_at: now })
        .where('app_id', '=', appId)
        .where('business_date', '=', date)
        .where('pay_type', '=', payType);
      if (keep.length) stale = stale.where('id', 'not in', keep);
      await stale.execute();
      for (const d of input.differences) {
        const row = {
          app_id: appId,
          business_date: date,
          pay_type: payType,
          diff_key: d.diffKey,
          code: d.code,
          kind: d.kind,
          out_trade_no: d.outTradeNo,
          out_request_no: d.outRequestNo,
          detail: d.detail,
          present: true,
          created_at: now,
          updated_at: now,
        };
        await tx
          .insertInto('recon_differences')
          .values(row)
          .onConflict((oc) =>
            oc
              .columns(['app_id', 'business_date', 'pay_type', 'diff_key'])
              .doUpdateSet({ detail: row.detail, present: true, updated_at: now }),
          )
          .execute();
      }
      const open = await tx
        .selectFrom('recon_differences')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('app_id', '=', appId)
        .where('business_date', '=', date)
        .where('pay_type', '=', payType)
        .where('present', '=', true)
        .where('state', '=', 'OPEN')
        .executeTakeFirstOrThrow();
      return { open: Number(open.n), kept: keep.length };
    });
  }

  /** Resolves an OPEN difference (state, note, who) with its audit entry; false when it is not OPEN or absent. */
  async resolve(id: number, actor: string, note: string, now: Date): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const r = await tx
        .updateTable('recon_differences')
        .set({
          state: 'RESOLVED',
          resolved_by: actor,
          resolved_note: note,
          resolved_at: now,
          updated_at: now,
        })
        .where('id', '=', id)
        .where('state', '=', 'OPEN')
        .returning('id')
        .executeTakeFirst();
      if (!r) return false;
      await tx
        .insertInto('recon_audit')
        .values({ difference_id: id, at: now, actor, action: 'RESOLVE', note })
        .execute();
      return true;
    });
  }

  /** A business day's differences (one app, or all apps), filtered, in the order they were found (id). */
  async differences(q: DifferenceQuery) {
    let query = this.db
      .selectFrom('recon_differences')
      .select(DIFFERENCE_COLUMNS)
      .where('business_date', '=', q.date);
    if (q.appId !== undefined) query = query.where('app_id', '=', q.appId);
    if (q.state !== undefined) query = query.where('state', '=', q.state);
    if (q.payType !== undefined) query = query.where('pay_type', '=', q.payType);
    if (q.present !== undefined) query = query.where('present', '=', q.present);
    return query.orderBy('id').execute();
  }

  /** One difference, or undefined. */
  async difference(id: number) {
    return this.db
      .selectFrom('recon_differences')
      .select(DIFFERENCE_COLUMNS)
      .where('id', '=', id)
      .executeTakeFirst();
  }

  /** A difference's state, or undefined when there is no such difference. */
  async differenceState(id: number): Promise<'OPEN' | 'RESOLVED' | undefined> {
    const r = await this.db
      .selectFrom('recon_differences')
      .select('state')
      .where('id', '=', id)
      .executeTakeFirst();
    return r?.state;
  }

  /** A difference's audit trail, oldest first. */
  async audit(differenceId: number) {
    return this.db
      .selectFrom('recon_audit')
      .select(['at', 'actor', 'action', 'note'])
      .where('difference_id', '=', differenceId)
      .orderBy('at')
      .orderBy('id')
      .execute();
  }

  /** The run of one app, business day and pay type, or undefined. */
  async run(appId: string, date: string, payType: string) {
    return this.db
      .selectFrom('recon_runs')
      .select(['status', 'matched', 'differences', 'error', 'finished_at'])
      .where('app_id', '=', appId)
      .where('business_date', '=', date)
      .where('pay_type', '=', payType)
      .executeTakeFirst();
  }

  /** The runs of a business day (one app, or all apps), by app and pay type. */
  async runs(date: string, appId?: string) {
    let q = this.db.selectFrom('recon_runs').selectAll().where('business_date', '=', date);
    if (appId !== undefined) q = q.where('app_id', '=', appId);
    return q.orderBy('app_id').orderBy('pay_type').execute();
  }

  /** How many of a business day's present differences are OPEN, per app and pay type (`n` as the database counts). */
  async openCounts(date: string, appId?: string) {
    let q = this.db
      .selectFrom('recon_differences')
      .select(['app_id', 'pay_type', (eb) => eb.fn.countAll<string>().as('n')])
      .where('business_date', '=', date)
      .where('present', '=', true)
      .where('state', '=', 'OPEN')
      .groupBy(['app_id', 'pay_type']);
    if (appId !== undefined) q = q.where('app_id', '=', appId);
    return q.execute();
  }

  /** What the run of one app, business day and pay type asked (the answers stay in `raw`), in order. */
  async evidence(appId: string, date: string, payType: string) {
    return this.db
      .selectFrom('recon_evidence')
      .select(['source', 'seq', 'request', 'records', 'fetched_at'])
      .where('app_id', '=', appId)
      .where('business_date', '=', date)
      .where('pay_type', '=', payType)
      .orderBy('source')
      .orderBy('seq')
      .execute();
  }

  /** The HIS trade-list answers kept with a run whose text contains `text` (found by the database), at most 5. */
  async hisAnswersContaining(appId: string, date: string, payType: string, text: string) {
    return this.db
      .selectFrom('recon_evidence')
      .select('raw')
      .where('app_id', '=', appId)
      .where('business_date', '=', date)
      .where('pay_type', '=', payType)
      .where('source', '=', 'HIS_TRADE_LIST')
      .where(sql<boolean>`position(${text} in raw) > 0`)
      .orderBy('seq')
      .limit(5)
      .execute();
  }

  /**
   * The platform's paid trades (not 'void') and successful refunds, of one app or all, by id: what a HIS
   * simulator fed "from the database" records (`hospay his-sim --from-db`).
   */
  async paidMovements(appId?: string) {
    let tq = this.db
      .selectFrom('trades')
      .select([
        'id',
        'out_trade_no',
        'status',
        'pay_type',
        'channel_trade_no',
        'trade_no',
        'total_fen',
        'insurance_fen',
        'paid_at',
        'category',
        'patient_name',
        'inhospital_no',
      ])
      .where('kind', '!=', 'void')
      .where('paid_at', 'is not', null)
      .orderBy('id');
    let rq = this.db
      .selectFrom('refunds')
      .select(['id', 'trade_id', 'kind', 'amount_fen', 'status', 'finished_at', 'out_request_no'])
      .where('status', '=', 'SUCCESS')
      .orderBy('id');
    if (appId) {
      tq = tq.where('app_id', '=', appId);
      rq = rq.where('app_id', '=', appId);
    }
    return { trades: await tq.execute(), refunds: await rq.execute() };
  }
}
