import { sql, type Selectable } from 'kysely';
import type { Db } from './db.js';
import { fen, type Fen } from '../domain/money.js';
import type {
  ChannelCallsTable,
  DeskRequestsTable,
  NotificationsTable,
  NotifyAttemptsTable,
  ReconDifferencesTable,
  ReconRunsTable,
  RefundsTable,
  TradesTable,
} from './schema.js';
import { listAudit, type AuditEntry, type AuditFilter } from './audit.js';

/**
 * The trade desk's reads (/desk): the search, its CSV export, the audit trail list — all from `read` (a replica
 * may serve them) — and everything recorded about one trade for its page, from `db` (the page must show an
 * action's result right after it). Every search is limited to the viewer's hospitals in its SQL.
 *
 * Personal data never leaves here in clear: the patient's name comes out masked (张*三), the buyer's account too;
 * the phone number, the cashier token and the fingerprint are never selected.
 */

/** A person's name as the desk shows it: 张三 → 张*, 张小三 → 张*三, 欧阳小明 → 欧*明; a single character → *. */
export function maskPersonName(name: string | null): string | null {
  if (name === null) return null;
  const chars = [...name.trim()];
  if (chars.length === 0) return '';
  if (chars.length === 1) return '*';
  if (chars.length === 2) return `${chars[0] ?? ''}*`;
  return `${chars[0] ?? ''}*${chars[chars.length - 1] ?? ''}`;
}

/** A buyer's account (e-mail, phone, user id) as the desk shows it: its first 3 and last 2 characters. */
export function maskAccount(text: string | null): string | null {
  if (text === null || text === '') return text;
  const chars = [...text];
  if (chars.length <= 6) return '***';
  return `${chars.slice(0, 3).join('')}***${chars.slice(-2).join('')}`;
}

export type DeskStatusFilter = TradesTable['status'] | 'REFUNDED' | 'VOID';

/** What the desk searches by (checked and converted at the door). */
export interface TradeSearch {
  /** The viewer's hospitals: only these (appScope); null = every hospital. */
  apps: readonly string[] | null;
  /** One hospital among them. */
  appId?: string;
  /** OutTradeNo: exact, or a prefix. */
  outTradeNo?: { value: string; prefix: boolean };
  /** Our TradeNo or the channel's trade number (exact). */
  number?: string;
  inhospitalNo?: string;
  /** The patient's full name (exact). */
  patientName?: string;
  payType?: string;
  channel?: string;
  status?: DeskStatusFilter;
  category?: string;
  terminalId?: string;
  operatorId?: string;
  minFen?: Fen;
  maxFen?: Fen;
  /** created_at in [from, to); null = any day (a trade looked up by an exact number). */
  from: Date | null;
  to: Date | null;
  /** Paging: trades older than this (created_at, id). */
  before?: { at: Date; id: number };
  limit: number;
}

/** One trade in the search's list (and the export's line). */
export interface TradeSearchRow {
  id: number;
  app_id: string;
  out_trade_no: string;
  trade_no: string;
  channel_trade_no: string | null;
  kind: TradesTable['kind'];
  status: TradesTable['status'];
  pay_type: string | null;
  channel: string | null;
  category: string;
  total_fen: Fen;
  refunded_fen: Fen;
  subject: string;
  /** Masked (maskPersonName). */
  patient: string | null;
  inhospital_no: string | null;
  terminal_id: string | null;
  operator_id: string | null;
  created_at: Date;
  paid_at: Date | null;
}

/** The trade of a desk page: what may be shown (personal data masked, no token, no phone). */
export interface DeskTrade extends TradeSearchRow {
  order_type: string;
  body: string | null;
  hospital_id: string | null;
  refund_reserved_fen: Fen;
  insurance_fen: Fen;
  insurance_refunded_fen: Fen;
  insurance_state: string;
  settlement_no: string | null;
  timeout_express: string | null;
  cancel_action: string | null;
  /** Masked (maskAccount). */
  buyer: string | null;
  updated_at: Date;
  expires_at: Date;
  closed_at: Date | null;
  notify_url: string | null;
}

export type DeskRefund = Selectable<RefundsTable>;
export type DeskNotification = Selectable<NotificationsTable>;
export type DeskNotifyAttempt = Selectable<NotifyAttemptsTable>;
export type DeskChannelCall = Omit<Selectable<ChannelCallsTable>, 'request' | 'response'>;
export type DeskDifference = Selectable<ReconDifferencesTable>;
export type DeskRun = Pick<
  Selectable<ReconRunsTable>,
  'business_date' | 'pay_type' | 'status' | 'matched' | 'differences' | 'finished_at'
>;
export type DeskRequestRow = Selectable<DeskRequestsTable>;

/** Everything recorded about one trade (desk-timeline.ts makes its timeline). */
export interface TradeRecords {
  trade: DeskTrade;
  refunds: DeskRefund[];
  notifications: DeskNotification[];
  attempts: DeskNotifyAttempt[];
  calls: DeskChannelCall[];
  differences: DeskDifference[];
  runs: DeskRun[];
  requests: DeskRequestRow[];
}

/** At most this many channel calls and notification attempts on a trade's page (the newest kept). */
export const TRADE_PAGE_MAX_RECORDS = 500;

const SEARCH_COLUMNS = [
  't.id',
  't.app_id',
  't.out_trade_no',
  't.trade_no',
  't.channel_trade_no',
  't.kind',
  't.status',
  't.pay_type',
  't.channel',
  't.category',
  't.total_fen',
  't.refunded_fen',
  't.subject',
  't.patient_name',
  't.inhospital_no',
  't.terminal_id',
  't.operator_id',
  't.created_at',
  't.paid_at',
] as const;

/** LIKE's special characters taken literally. */
function likePrefix(text: string): string {
  return `${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The shanghai day ('yyyy-MM-dd') of an instant. */
function shanghaiDay(d: Date): string {
  return new Date(d.getTime() + 8 * 3_600_000).toISOString().slice(0, 10);
}

export class DeskRepository {
  constructor(
    private readonly db: Db,
    private readonly read: Db,
  ) {}

  /** A page of the search, newest first (created_at, id), at most `limit` rows. */
  async search(f: TradeSearch): Promise<TradeSearchRow[]> {
    if (f.apps !== null && f.apps.length === 0) return [];
    let q = this.read.selectFrom('trades as t').select(SEARCH_COLUMNS);
    if (f.apps !== null) q = q.where('t.app_id', 'in', [...f.apps]);
    if (f.appId !== undefined) q = q.where('t.app_id', '=', f.appId);
    if (f.outTradeNo !== undefined)
      q = f.outTradeNo.prefix
        ? q.where(sql<boolean>`t.out_trade_no LIKE ${likePrefix(f.outTradeNo.value)} ESCAPE '\\'`)
        : q.where('t.out_trade_no', '=', f.outTradeNo.value);
    if (f.number !== undefined) {
      const n = f.number;
      q = q.where((eb) => eb.or([eb('t.trade_no', '=', n), eb('t.channel_trade_no', '=', n)]));
    }
    if (f.inhospitalNo !== undefined) q = q.where('t.inhospital_no', '=', f.inhospitalNo);
    if (f.patientName !== undefined) q = q.where('t.patient_name', '=', f.patientName);
    if (f.payType !== undefined) q = q.where('t.pay_type', '=', f.payType);
    if (f.channel !== undefined) q = q.where('t.channel', '=', f.channel);
    if (f.status === 'REFUNDED') q = q.where('t.refunded_fen', '>', fen(0));
    else if (f.status === 'VOID') q = q.where('t.kind', '=', 'void');
    else if (f.status !== undefined) q = q.where('t.status', '=', f.status).where('t.kind', '<>', 'void');
    if (f.category !== undefined) q = q.where('t.category', '=', f.category);
    if (f.terminalId !== undefined) q = q.where('t.terminal_id', '=', f.terminalId);
    if (f.operatorId !== undefined) q = q.where('t.operator_id', '=', f.operatorId);
    if (f.minFen !== undefined) q = q.where('t.total_fen', '>=', f.minFen);
    if (f.maxFen !== undefined) q = q.where('t.total_fen', '<=', f.maxFen);
    if (f.from !== null) q = q.where('t.created_at', '>=', f.from);
    if (f.to !== null) q = q.where('t.created_at', '<', f.to);
    if (f.before !== undefined)
      q = q.where(sql<boolean>`(t.created_at, t.id) < (${f.before.at}, ${f.before.id})`);
    const rows = await q.orderBy('t.created_at', 'desc').orderBy('t.id', 'desc').limit(f.limit).execute();
    return rows.map(({ patient_name, ...r }) => ({ ...r, patient: maskPersonName(patient_name) }));
  }

  /**
   * The search's rows for an export, newest first, in batches (bounded memory), at most `max`; then one more
   * `truncated: true` marker when there were more.
   */
  async *exportRows(
    f: Omit<TradeSearch, 'limit' | 'before'>,
    max: number,
    batch = 1000,
  ): AsyncGenerator<TradeSearchRow | { truncated: true }> {
    let sent = 0;
    let before: TradeSearch['before'];
    for (;;) {
      const want = Math.min(batch, max - sent + 1);
      const rows = await this.search({ ...f, limit: want, ...(before ? { before } : {}) });
      for (const r of rows) {
        if (sent === max) {
          yield { truncated: true };
          return;
        }
        sent++;
        yield r;
      }
      const last = rows[rows.length - 1];
      if (rows.length < want || !last) return;
      before = { at: last.created_at, id: last.id };
    }
  }

  /** The audit trail, newest first, scoped (like AuditRepository.list, from `read`). */
  audit(f: AuditFilter): Promise<AuditEntry[]> {
    return listAudit(this.read, f);
  }

  /** Everything recorded about one trade, from the primary (`db`); undefined when there is no such trade. */
  async tradeRecords(appId: string, outTradeNo: string): Promise<TradeRecords | undefined> {
    const t = await this.db
      .selectFrom('trades as t')
      .select([
        ...SEARCH_COLUMNS,
        't.order_type',
        't.body',
        't.hospital_id',
        't.refund_reserved_fen',
        't.insurance_fen',
        't.insurance_refunded_fen',
        't.insurance_state',
        't.settlement_no',
        't.timeout_express',
        't.cancel_action',
        't.buyer_logon_id',
        't.updated_at',
        't.expires_at',
        't.closed_at',
        't.notify_url',
      ])
      .where('t.app_id', '=', appId)
      .where('t.out_trade_no', '=', outTradeNo)
      .executeTakeFirst();
    if (!t) return undefined;
    const { patient_name, buyer_logon_id, ...rest } = t;
    const trade: DeskTrade = {
      ...rest,
      patient: maskPersonName(patient_name),
      buyer: maskAccount(buyer_logon_id),
    };
    const [refunds, notifications, callsNewest, differences, requests] = await Promise.all([
      this.db.selectFrom('refunds').selectAll().where('trade_id', '=', t.id).orderBy('id').execute(),
      this.db.selectFrom('notifications').selectAll().where('trade_id', '=', t.id).orderBy('id').execute(),
      this.db
        .selectFrom('channel_calls')
        .select([
          'id',
          'app_id',
          'channel_id',
          'operation',
          'out_trade_no',
          'started_at',
          'latency_ms',
          'http_status',
          'outcome',
          'error',
        ])
        .where('app_id', '=', appId)
        .where('out_trade_no', '=', outTradeNo)
        .orderBy('id', 'desc')
        .limit(TRADE_PAGE_MAX_RECORDS)
        .execute(),
      this.db
        .selectFrom('recon_differences')
        .selectAll()
        .where('app_id', '=', appId)
        .where('out_trade_no', '=', outTradeNo)
        .orderBy('id')
        .execute(),
      this.db.selectFrom('desk_requests').selectAll().where('trade_id', '=', t.id).orderBy('id').execute(),
    ]);
    const attempts =
      notifications.length === 0
        ? []
        : (
            await this.db
              .selectFrom('notify_attempts')
              .selectAll()
              .where(
                'notification_id',
                'in',
                notifications.map((n) => n.id),
              )
              .orderBy('id', 'desc')
              .limit(TRADE_PAGE_MAX_RECORDS)
              .execute()
          ).reverse();
    // The reconciliation runs of the days its money moved (paid, refunded), for its pay type.
    const days = new Set<string>();
    if (t.paid_at) days.add(shanghaiDay(t.paid_at));
    for (const r of refunds) if (r.finished_at) days.add(shanghaiDay(r.finished_at));
    const runs =
      days.size === 0 || t.pay_type === null
        ? []
        : await this.db
            .selectFrom('recon_runs')
            .select(['business_date', 'pay_type', 'status', 'matched', 'differences', 'finished_at'])
            .where('app_id', '=', appId)
            .where('pay_type', '=', t.pay_type)
            .where('business_date', 'in', [...days])
            .orderBy('business_date')
            .execute();
    return {
      trade,
      refunds,
      notifications,
      attempts,
      calls: callsNewest.reverse(),
      differences,
      runs,
      requests,
    };
  }
}
