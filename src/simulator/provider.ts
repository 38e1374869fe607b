import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { isUniqueViolation, type Db } from '../store/db.js';
import { runFixed } from '../store/trades.js';
import { Batcher, columnsOf } from '../store/batcher.js';
import type { Clock } from '../domain/clock.js';
import { compactShanghai } from '../domain/clock.js';
import { fen, negFen, ZERO_FEN, type Fen } from '../domain/money.js';
import { formatShanghai } from '../domain/clock.js';
import type { BillLine } from '../domain/bill.js';
import { buildAlipayTradeBill } from '../channels/alipay/bill.js';
import { buildWechatTradeBill } from '../channels/wechat/bill.js';
import type {
  SimCancelAnswer,
  SimPayAnswer,
  SimPayType,
  SimPrecreateAnswer,
  SimRefundAnswer,
  SimTrade,
  SimulatorApi,
} from '../channels/simulator/api.js';

/**
 * The simulated payment provider: a stand-in for Alipay / WeChat Pay / UnionPay with its own books (sim_*
 * tables), which survive restarts. The platform never reads these tables: it reaches the provider only through
 * the simulator channel adapter, exactly as it reaches a real provider through its adapter.
 *
 * Barcode rules, by the last two digits of the payment code (docs/simulator.md):
 */
export const BARCODE_RULES = {
  /** The patient is entering a password: "user paying"; paid on the 2nd query. */
  PAID_ON_SECOND_QUERY: '01',
  /** The patient never pays: stays "user paying" until cancelled or closed. */
  NEVER_PAYS: '02',
  /** Declined: balance not enough. */
  BALANCE_NOT_ENOUGH: '03',
  /** The pay call fails with a system error, but the payment went through (a query reveals it). */
  SYSTEM_ERROR_BUT_PAID: '04',
  /** The payment code is invalid or expired. */
  AUTH_CODE_INVALID: '05',
  /** Never pays, and the first cancel fails transiently (retry_flag=Y); the next one succeeds. */
  CANCEL_NEEDS_RETRY: '06',
} as const;

/** Refund rules, by the refund reason text. */
export const REFUND_RULES = {
  /** The refund is made, but the answer is a system error (retrying the same request number shows success). */
  SYSTEM_ERROR_BUT_REFUNDED: 'SIMULATE_REFUND_ERROR',
  /** The refund is declined for good. */
  DECLINED: 'SIMULATE_REFUND_DECLINE',
} as const;

// The provider's API as the simulator channel sees it (channels/simulator/api.ts).
export type {
  SimCancelAnswer,
  SimPayAnswer,
  SimPayType,
  SimPrecreateAnswer,
  SimRefundAnswer,
  SimTrade,
} from '../channels/simulator/api.js';

export interface SimulatorOptions {
  db: Db;
  clock: Clock;
  /** Base URL of the simulator's payer pages (the platform's PUBLIC_BASE_URL). */
  publicBaseUrl: string;
}

type Row = {
  merchant: string;
  out_trade_no: string;
  pay_type: string;
  channel_trade_no: string;
  amount_fen: Fen;
  subject: string;
  status: SimTrade['status'];
  rule: string;
  query_count: number;
  refunded_fen: Fen;
  buyer_logon_id: string | null;
  buyer_user_id: string | null;
  paid_at: Date | null;
  return_url?: string | null;
};

function toTrade(r: Row): SimTrade {
  return {
    merchant: r.merchant,
    outTradeNo: r.out_trade_no,
    payType: r.pay_type as SimPayType,
    channelTradeNo: r.channel_trade_no,
    amountFen: r.amount_fen,
    subject: r.subject,
    status: r.status,
    refundedFen: r.refunded_fen,
    buyerLogonId: r.buyer_logon_id,
    buyerUserId: r.buyer_user_id,
    paidAt: r.paid_at,
    returnUrl: r.return_url ?? null,
  };
}

/** Random bytes drawn 4 KB at a time: one draw costs microseconds, whatever its size. */
let pool = Buffer.alloc(0);
let used = 0;

/** n random decimal digits, uniform (bytes of 250 and above are skipped). */
function digits(n: number): string {
  let s = '';
  while (s.length < n) {
    if (used >= pool.length) {
      pool = randomBytes(4096);
      used = 0;
    }
    const b = pool[used++] ?? 255;
    if (b < 250) s += String(b % 10);
  }
  return s;
}

/**
 * The trade unless one exists for (merchant, out_trade_no), with its charge in the ledger when $15 is true, as
 * one fixed statement (store/trades.ts runFixed); the inserted row, or none.
 */
const INSERT_TRADE =
  'with ins as (insert into sim_trades (merchant, out_trade_no, pay_type, channel_trade_no, amount_fen, subject, ' +
  'status, rule, buyer_logon_id, buyer_user_id, paid_at, return_url, created_at) ' +
  'values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ' +
  'on conflict (merchant, out_trade_no) do nothing returning *), ' +
  'led as (insert into sim_ledger (merchant, out_trade_no, entry, amount_fen, created_at) ' +
  "select ins.merchant, ins.out_trade_no, 'charge', $14::bigint, $13::timestamptz from ins where $15::boolean) " +
  'select * from ins';

/**
 * A refund in one fixed statement. An earlier refund with this request number answers first (whatever the reason
 * says now); else the guarded update of the trade (paid, and not refunded beyond its amount), and only from its
 * result the refund and its ledger line. Two refunds of one trade serialise on the trade's row; the same request
 * number twice at once fails the primary key of sim_refunds, undoing the statement, and is asked again.
 */
const REFUND =
  'with prior as (select amount_fen, refund_no, created_at from sim_refunds ' +
  'where merchant = $1 and out_trade_no = $2 and out_request_no = $3), ' +
  't as (update sim_trades set refunded_fen = refunded_fen + $4, ' +
  "status = case when refunded_fen + $4 = amount_fen then 'REFUNDED' else status end " +
  "where merchant = $1 and out_trade_no = $2 and status = 'PAID' and refunded_fen + $4 <= amount_fen " +
  'and not $5::boolean and not exists (select 1 from prior) returning merchant), ' +
  'rf as (insert into sim_refunds (merchant, out_trade_no, out_request_no, amount_fen, refund_no, created_at) ' +
  'select $1::text, $2::text, $3::text, $4::bigint, $6::text, $7::timestamptz from t), ' +
  'led as (insert into sim_ledger (merchant, out_trade_no, entry, amount_fen, created_at) ' +
  "select $1::text, $2::text, 'refund', -($4::bigint), $7::timestamptz from t) " +
  'select (select amount_fen from prior) as prior_amount, (select refund_no from prior) as prior_no, ' +
  '(select created_at from prior) as prior_at, exists (select 1 from t) as refunded, ' +
  '(select status from sim_trades where merchant = $1 and out_trade_no = $2) as status';

/**
 * INSERT_TRADE for several trades in one statement (the simulator's batcher, store/batcher.ts): a row per trade in
 * its order, the inserted trade's columns (null where one existed) and `ord`.
 */
const INSERT_TRADES =
  'with u as (select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], ' +
  '$7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::text[], $13::timestamptz[], ' +
  '$14::bigint[], $15::boolean[]) with ordinality as u(merchant, out_trade_no, pay_type, channel_trade_no, ' +
  'amount_fen, subject, status, rule, buyer_logon_id, buyer_user_id, paid_at, return_url, created_at, charge_fen, ' +
  'book, ord)), ' +
  'ins as (insert into sim_trades (merchant, out_trade_no, pay_type, channel_trade_no, amount_fen, subject, ' +
  'status, rule, buyer_logon_id, buyer_user_id, paid_at, return_url, created_at) ' +
  'select merchant, out_trade_no, pay_type, channel_trade_no, amount_fen, subject, status, rule, buyer_logon_id, ' +
  'buyer_user_id, paid_at, return_url, created_at from u ' +
  'on conflict (merchant, out_trade_no) do nothing returning *), ' +
  'led as (insert into sim_ledger (merchant, out_trade_no, entry, amount_fen, created_at) ' +
  "select ins.merchant, ins.out_trade_no, 'charge', u.charge_fen, u.created_at from ins " +
  'join u on u.merchant = ins.merchant and u.out_trade_no = ins.out_trade_no where u.book) ' +
  'select ins.*, u.ord::int as batch_ord from u ' +
  'left join ins on ins.merchant = u.merchant and ins.out_trade_no = u.out_trade_no order by u.ord';

/**
 * REFUND for several refunds in one statement (the simulator's batcher; never two of one trade): a row per refund
 * in its order, with the same columns. As in REFUND, `status` is the trade's status before the statement.
 */
const REFUNDS =
  'with u as (select * from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::boolean[], $6::text[], ' +
  '$7::timestamptz[]) with ordinality as u(merchant, out_trade_no, out_request_no, amount_fen, declined, ' +
  'refund_no, at, ord)), ' +
  'prior as (select u.ord, s.amount_fen, s.refund_no, s.created_at from u join sim_refunds s ' +
  'on s.merchant = u.merchant and s.out_trade_no = u.out_trade_no and s.out_request_no = u.out_request_no), ' +
  't as (update sim_trades st set refunded_fen = st.refunded_fen + u.amount_fen, ' +
  "status = case when st.refunded_fen + u.amount_fen = st.amount_fen then 'REFUNDED' else st.status end " +
  "from u where st.merchant = u.merchant and st.out_trade_no = u.out_trade_no and st.status = 'PAID' " +
  'and st.refunded_fen + u.amount_fen <= st.amount_fen and not u.declined ' +
  'and not exists (select 1 from prior where prior.ord = u.ord) returning st.merchant, st.out_trade_no), ' +
  'rf as (insert into sim_refunds (merchant, out_trade_no, out_request_no, amount_fen, refund_no, created_at) ' +
  'select u.merchant, u.out_trade_no, u.out_request_no, u.amount_fen, u.refund_no, u.at from u ' +
  'join t on t.merchant = u.merchant and t.out_trade_no = u.out_trade_no), ' +
  'led as (insert into sim_ledger (merchant, out_trade_no, entry, amount_fen, created_at) ' +
  "select u.merchant, u.out_trade_no, 'refund', -u.amount_fen, u.at from u " +
  'join t on t.merchant = u.merchant and t.out_trade_no = u.out_trade_no) ' +
  'select u.ord::int as batch_ord, prior.amount_fen as prior_amount, prior.refund_no as prior_no, ' +
  'prior.created_at as prior_at, t.merchant is not null as refunded, ' +
  '(select status from sim_trades s where s.merchant = u.merchant and s.out_trade_no = u.out_trade_no) as status ' +
  'from u left join prior on prior.ord = u.ord ' +
  'left join t on t.merchant = u.merchant and t.out_trade_no = u.out_trade_no order by u.ord';

type RefundRow = {
  prior_amount: number | null;
  prior_no: string | null;
  prior_at: Date | null;
  refunded: boolean;
  status: string | null;
};

export class SimulatorProvider implements SimulatorApi {
  private readonly db: Db;
  private readonly clock: Clock;
  readonly publicBaseUrl: string;

  /**
   * The trade's insert, batched under load (store/batcher.ts): the simulator stands for a provider far away, and
   * should not take more of the platform's database than it must.
   */
  private readonly inserts: Batcher<unknown[], Row | undefined>;
  /** The refund statement, batched likewise (two refunds of one trade never share a statement). */
  private readonly refunds: Batcher<unknown[], RefundRow | undefined>;

  constructor(opts: SimulatorOptions) {
    this.db = opts.db;
    this.clock = opts.clock;
    this.publicBaseUrl = opts.publicBaseUrl.replace(/\/+$/, '');
    this.inserts = new Batcher({
      name: 'simulator_trade',
      key: (p) => `${String(p[0])}\u0000${String(p[1])}`,
      one: async (p) => (await runFixed<Row>(this.db, INSERT_TRADE, p))[0],
      many: async (items) => {
        const rows = await runFixed<Row & { batch_ord?: number }>(
          this.db,
          INSERT_TRADES,
          columnsOf(items, 15),
        );
        return rows.map((r) => {
          if (r.merchant === null) return undefined;
          delete r.batch_ord;
          return r;
        });
      },
    });
    this.refunds = new Batcher({
      name: 'simulator_refund',
      key: (p) => `${String(p[0])}\u0000${String(p[1])}`,
      one: async (p) => (await runFixed<RefundRow>(this.db, REFUND, p))[0],
      many: async (items) => {
        const rows = await runFixed<RefundRow & { batch_ord?: number }>(
          this.db,
          REFUNDS,
          columnsOf(items, 7),
        );
        return rows.map((r) => {
          delete r.batch_ord;
          return r;
        });
      },
    });
  }

  /** How the batched statements ran (statements, items, items retried alone): for tests and diagnosis. */
  batchStats(): Batcher<never, unknown>['stats'] & { refund: Batcher<never, unknown>['stats'] } {
    return { ...this.inserts.stats, refund: this.refunds.stats };
  }

  payerPageUrl(channelTradeNo: string): string {
    return `${this.publicBaseUrl}/simulator/pay/${channelTradeNo}`;
  }

  private newTradeNo(payType: SimPayType): string {
    const day = compactShanghai(this.clock.now()).slice(0, 8);
    if (payType === 'alipay') return `${day}22001${digits(15)}`; // 28 digits, like Alipay's
    if (payType === 'weixin') return `4200${digits(6)}${day}${digits(10)}`; // 28 digits, like WeChat's
    // e-CNY: the operating institution's order number (no public format): 8-digit day + 'DC' code 31 + 16 digits.
    if (payType === 'elecny') return `${day}31${digits(16)}`; // 26 digits
    return `${compactShanghai(this.clock.now())}${digits(7)}`; // 21 digits, like UnionPay's queryId
  }

  private buyer(payType: SimPayType): { logon: string; user: string } {
    if (payType === 'alipay') return { logon: `138****${digits(4)}`, user: `2088${digits(12)}` };
    if (payType === 'weixin') return { logon: '', user: `oSim${digits(12)}` };
    // e-CNY: the payer's wallet id (16 digits), shown masked as the operating institutions do.
    if (payType === 'elecny') return { logon: `0021****${digits(4)}`, user: `dc${digits(12)}` };
    return { logon: `6212****${digits(4)}`, user: `up${digits(12)}` };
  }

  async find(merchant: string, outTradeNo: string): Promise<SimTrade | null> {
    const r = await this.db
      .selectFrom('sim_trades')
      .selectAll()
      .where('merchant', '=', merchant)
      .where('out_trade_no', '=', outTradeNo)
      .executeTakeFirst();
    return r ? toTrade(r as Row) : null;
  }

  async findByChannelTradeNo(channelTradeNo: string): Promise<SimTrade | null> {
    const r = await this.db
      .selectFrom('sim_trades')
      .selectAll()
      .where('channel_trade_no', '=', channelTradeNo)
      .executeTakeFirst();
    return r ? toTrade(r as Row) : null;
  }

  /**
   * Inserts the trade unless one exists for (merchant, out_trade_no), booking the charge with it, in one
   * statement (one round trip, atomic); returns the stored row either way.
   */
  private async insertOrGet(
    row: Omit<Row, 'query_count' | 'refunded_fen'>,
    chargeFen: Fen | null,
  ): Promise<{ row: Row; inserted: boolean }> {
    const now = this.clock.now();
    const ins = await this.inserts.run([
      row.merchant,
      row.out_trade_no,
      row.pay_type,
      row.channel_trade_no,
      row.amount_fen,
      row.subject,
      row.status,
      row.rule,
      row.buyer_logon_id,
      row.buyer_user_id,
      row.paid_at,
      row.return_url ?? null,
      now,
      chargeFen ?? 0,
      chargeFen !== null,
    ]);
    if (ins) return { row: ins, inserted: true };
    const existing = await this.db
      .selectFrom('sim_trades')
      .selectAll()
      .where('merchant', '=', row.merchant)
      .where('out_trade_no', '=', row.out_trade_no)
      .executeTakeFirstOrThrow();
    return { row: existing as Row, inserted: false };
  }

  /** Marks a WAITING trade PAID (guarded) and books the charge. */
  private async settle(merchant: string, outTradeNo: string): Promise<Row | null> {
    const now = this.clock.now();
    return this.db.transaction().execute(async (tx) => {
      const existing = await tx
        .selectFrom('sim_trades')
        .select(['pay_type'])
        .where('merchant', '=', merchant)
        .where('out_trade_no', '=', outTradeNo)
        .executeTakeFirst();
      if (!existing) return null;
      const b = this.buyer(existing.pay_type as SimPayType);
      const r = await tx
        .updateTable('sim_trades')
        .set({ status: 'PAID', paid_at: now, buyer_logon_id: b.logon || null, buyer_user_id: b.user })
        .where('merchant', '=', merchant)
        .where('out_trade_no', '=', outTradeNo)
        .where('status', '=', 'WAITING')
        .returningAll()
        .executeTakeFirst();
      if (!r) return null;
      await tx
        .insertInto('sim_ledger')
        .values({
          merchant,
          out_trade_no: outTradeNo,
          entry: 'charge',
          amount_fen: r.amount_fen,
          created_at: now,
        })
        .execute();
      return r as Row;
    });
  }

  async barcodePay(input: {
    merchant: string;
    outTradeNo: string;
    payType: SimPayType;
    amountFen: Fen;
    authCode: string;
    subject: string;
  }): Promise<SimPayAnswer> {
    const rule = input.authCode.slice(-2);
    if (rule === BARCODE_RULES.AUTH_CODE_INVALID) {
      return {
        result: 'FAIL',
        code: 'AUTH_CODE_INVALID',
        zh: '付款码无效或已过期，请刷新后重试',
        en: 'payment code invalid or expired',
      };
    }
    const now = this.clock.now();
    const paidAtOnce = !['01', '02', '03', '06'].includes(rule);
    const b = this.buyer(input.payType);
    const status: Row['status'] =
      rule === BARCODE_RULES.BALANCE_NOT_ENOUGH ? 'CLOSED' : paidAtOnce ? 'PAID' : 'WAITING';
    const { row, inserted } = await this.insertOrGet(
      {
        merchant: input.merchant,
        out_trade_no: input.outTradeNo,
        pay_type: input.payType,
        channel_trade_no: this.newTradeNo(input.payType),
        amount_fen: input.amountFen,
        subject: input.subject,
        status,
        rule,
        buyer_logon_id: status === 'PAID' ? b.logon || null : null,
        buyer_user_id: status === 'PAID' ? b.user : null,
        paid_at: status === 'PAID' ? now : null,
      },
      status === 'PAID' ? input.amountFen : null,
    );
    if (inserted) {
      if (rule === BARCODE_RULES.BALANCE_NOT_ENOUGH) {
        return {
          result: 'FAIL',
          code: 'BUYER_BALANCE_NOT_ENOUGH',
          zh: '买家余额不足',
          en: "the buyer's balance is not enough",
        };
      }
      if (rule === BARCODE_RULES.SYSTEM_ERROR_BUT_PAID) return { result: 'SYSTEM_ERROR' };
    } else if (row.amount_fen !== input.amountFen) {
      return {
        result: 'FAIL',
        code: 'TRADE_INFO_MISMATCH',
        zh: '交易信息被篡改',
        en: 'the trade number was used with other details',
      };
    }
    // A repeated pay for the same order answers with the trade's current state, as the real providers do.
    if (row.status === 'PAID') return { result: 'SUCCESS', trade: toTrade(row) };
    if (row.status === 'WAITING') return { result: 'USER_PAYING', trade: toTrade(row) };
    if (row.status === 'REFUNDED')
      return { result: 'FAIL', code: 'TRADE_HAS_CLOSE', zh: '交易已关闭', en: 'the trade is closed' };
    if (row.rule === BARCODE_RULES.BALANCE_NOT_ENOUGH) {
      return {
        result: 'FAIL',
        code: 'BUYER_BALANCE_NOT_ENOUGH',
        zh: '买家余额不足',
        en: "the buyer's balance is not enough",
      };
    }
    return { result: 'FAIL', code: 'TRADE_HAS_CLOSE', zh: '交易已关闭', en: 'the trade is closed' };
  }

  async precreate(input: {
    merchant: string;
    outTradeNo: string;
    payType: SimPayType;
    amountFen: Fen;
    subject: string;
    /** Wap (H5) pay: where the payer page sends the payer afterwards. */
    returnUrl?: string | undefined;
  }): Promise<SimPrecreateAnswer> {
    const { row } = await this.insertOrGet(
      {
        merchant: input.merchant,
        out_trade_no: input.outTradeNo,
        pay_type: input.payType,
        channel_trade_no: this.newTradeNo(input.payType),
        amount_fen: input.amountFen,
        subject: input.subject,
        status: 'WAITING',
        rule: input.returnUrl ? 'wap' : 'qr',
        return_url: input.returnUrl ?? null,
        buyer_logon_id: null,
        buyer_user_id: null,
        paid_at: null,
      },
      null,
    );
    if (row.amount_fen !== input.amountFen || row.pay_type !== input.payType) {
      return {
        result: 'FAIL',
        code: 'TRADE_INFO_MISMATCH',
        zh: '交易信息被篡改',
        en: 'the trade number was used with other details',
      };
    }
    if (row.status === 'PAID')
      return { result: 'FAIL', code: 'TRADE_HAS_SUCCESS', zh: '交易已被支付', en: 'the trade has been paid' };
    if (row.status !== 'WAITING')
      return { result: 'FAIL', code: 'TRADE_HAS_CLOSE', zh: '交易已关闭', en: 'the trade is closed' };
    return { result: 'SUCCESS', codeUrl: this.payerPageUrl(row.channel_trade_no), trade: toTrade(row) };
  }

  async query(merchant: string, outTradeNo: string): Promise<SimTrade | null> {
    const r = await this.db
      .updateTable('sim_trades')
      .set({ query_count: sql`query_count + 1` })
      .where('merchant', '=', merchant)
      .where('out_trade_no', '=', outTradeNo)
      .returningAll()
      .executeTakeFirst();
    if (!r) return null;
    if (r.status === 'WAITING' && r.rule === BARCODE_RULES.PAID_ON_SECOND_QUERY && r.query_count >= 2) {
      await this.settle(merchant, outTradeNo);
      return this.find(merchant, outTradeNo);
    }
    return toTrade(r as Row);
  }

  /** Cancel (revoke): unpaid -> closed; paid without refunds -> refunded in full. Unknown trades are closed. */
  async cancel(merchant: string, outTradeNo: string, payType: SimPayType): Promise<SimCancelAnswer> {
    const now = this.clock.now();
    const existing = await this.find(merchant, outTradeNo);
    if (!existing) {
      // Like the real providers: a cancel for a trade they never saw closes the number, so a late pay fails.
      const { row } = await this.insertOrGet(
        {
          merchant,
          out_trade_no: outTradeNo,
          pay_type: payType,
          channel_trade_no: this.newTradeNo(payType),
          amount_fen: fen(1),
          subject: '',
          status: 'CLOSED',
          rule: 'cancelled-unseen',
          buyer_logon_id: null,
          buyer_user_id: null,
          paid_at: null,
        },
        null,
      );
      if (row.status === 'CLOSED') return { result: 'SUCCESS', action: 'close', trade: toTrade(row) };
      return this.cancel(merchant, outTradeNo, payType);
    }
    const t = await this.db
      .selectFrom('sim_trades')
      .select(['rule', 'query_count'])
      .where('merchant', '=', merchant)
      .where('out_trade_no', '=', outTradeNo)
      .executeTakeFirstOrThrow();
    if (existing.status === 'WAITING' && t.rule === BARCODE_RULES.CANCEL_NEEDS_RETRY) {
      // The first cancel fails transiently: remember it by moving the rule on.
      const moved = await this.db
        .updateTable('sim_trades')
        .set({ rule: '06-cancel-tried' })
        .where('merchant', '=', merchant)
        .where('out_trade_no', '=', outTradeNo)
        .where('rule', '=', BARCODE_RULES.CANCEL_NEEDS_RETRY)
        .returning('rule')
        .executeTakeFirst();
      if (moved) return { result: 'RETRY', reason: 'simulated transient cancel failure (rule 06)' };
    }
    if (existing.status === 'WAITING') {
      const r = await this.db
        .updateTable('sim_trades')
        .set({ status: 'CLOSED' })
        .where('merchant', '=', merchant)
        .where('out_trade_no', '=', outTradeNo)
        .where('status', '=', 'WAITING')
        .returningAll()
        .executeTakeFirst();
      if (r) return { result: 'SUCCESS', action: 'close', trade: toTrade(r as Row) };
      return this.cancel(merchant, outTradeNo, payType);
    }
    if (existing.status === 'CLOSED') return { result: 'SUCCESS', action: 'close', trade: existing };
    if (existing.status === 'REFUNDED') return { result: 'SUCCESS', action: 'refund', trade: existing };
    // PAID
    if (existing.refundedFen > 0) {
      return {
        result: 'FAIL',
        code: 'TRADE_HAS_REFUND',
        zh: '交易已有退款，不能撤销',
        en: 'the trade has refunds and cannot be reversed',
      };
    }
    const refunded = await this.db.transaction().execute(async (tx) => {
      const r = await tx
        .updateTable('sim_trades')
        .set({ status: 'REFUNDED', refunded_fen: sql`amount_fen` })
        .where('merchant', '=', merchant)
        .where('out_trade_no', '=', outTradeNo)
        .where('status', '=', 'PAID')
        .where('refunded_fen', '=', ZERO_FEN)
        .returningAll()
        .executeTakeFirst();
      if (r) {
        await tx
          .insertInto('sim_ledger')
          .values({
            merchant,
            out_trade_no: outTradeNo,
            entry: 'reverse',
            amount_fen: negFen(r.amount_fen),
            created_at: now,
          })
          .execute();
      }
      return r;
    });
    if (refunded) return { result: 'SUCCESS', action: 'refund', trade: toTrade(refunded as Row) };
    return this.cancel(merchant, outTradeNo, payType);
  }

  /** Close: only unpaid trades; a paid one stays paid. Unknown trades are closed (the number is burnt). */
  async close(merchant: string, outTradeNo: string, payType: SimPayType): Promise<SimTrade> {
    const r = await this.db
      .updateTable('sim_trades')
      .set({ status: 'CLOSED' })
      .where('merchant', '=', merchant)
      .where('out_trade_no', '=', outTradeNo)
      .where('status', '=', 'WAITING')
      .returningAll()
      .executeTakeFirst();
    if (r) return toTrade(r as Row);
    const existing = await this.find(merchant, outTradeNo);
    if (existing) return existing;
    const { row } = await this.insertOrGet(
      {
        merchant,
        out_trade_no: outTradeNo,
        pay_type: payType,
        channel_trade_no: this.newTradeNo(payType),
        amount_fen: fen(1),
        subject: '',
        status: 'CLOSED',
        rule: 'closed-unseen',
        buyer_logon_id: null,
        buyer_user_id: null,
        paid_at: null,
      },
      null,
    );
    return toTrade(row);
  }

  async refund(input: {
    merchant: string;
    outTradeNo: string;
    outRequestNo: string;
    amountFen: Fen;
    reason?: string | undefined;
  }): Promise<SimRefundAnswer> {
    const now = this.clock.now();
    const refundNo = `R${compactShanghai(now)}${digits(10)}`;
    const declined = input.reason === REFUND_RULES.DECLINED;
    const { merchant, outTradeNo, outRequestNo, amountFen } = input;
    // One statement (REFUND); the same request number twice at once is asked again.
    const run = () =>
      this.refunds.run([merchant, outTradeNo, outRequestNo, amountFen, declined, refundNo, now]);
    let row;
    try {
      row = await run();
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
      row = await run();
    }
    if (!row) throw new Error('the refund statement returned no row');
    if (row.prior_no !== null) {
      if (Number(row.prior_amount) !== amountFen) {
        return {
          result: 'FAIL',
          code: 'REQUEST_AMOUNT_MISMATCH',
          zh: '退款请求号已用于其他金额',
          en: 'request number used with another amount',
        };
      }
      const at = row.prior_at instanceof Date ? row.prior_at : new Date(row.prior_at ?? now);
      return { result: 'SUCCESS', refundNo: row.prior_no, createdAt: at };
    }
    if (declined) {
      return {
        result: 'FAIL',
        code: 'REFUND_DECLINED',
        zh: '渠道拒绝退款（模拟）',
        en: 'refund declined by the channel (simulated)',
      };
    }
    if (!row.refunded) {
      if (row.status === null)
        return { result: 'FAIL', code: 'TRADE_NOT_EXIST', zh: '交易不存在', en: 'trade does not exist' };
      if (row.status !== 'PAID')
        return {
          result: 'FAIL',
          code: 'TRADE_STATUS_ERROR',
          zh: '交易状态不允许退款',
          en: 'trade status does not allow a refund',
        };
      return {
        result: 'FAIL',
        code: 'REFUND_AMOUNT_EXCEEDED',
        zh: '退款金额超限',
        en: 'refund amount exceeds the payment',
      };
    }
    if (input.reason === REFUND_RULES.SYSTEM_ERROR_BUT_REFUNDED) return { result: 'SYSTEM_ERROR' };
    return { result: 'SUCCESS', refundNo, createdAt: now };
  }

  /** The payer's action on the simulator's payer page (QR and H5): pay or abandon. */
  async payerAction(channelTradeNo: string, action: 'pay' | 'abandon'): Promise<SimTrade | null> {
    const t = await this.findByChannelTradeNo(channelTradeNo);
    if (!t) return null;
    if (t.status !== 'WAITING') return t;
    if (action === 'pay') await this.settle(t.merchant, t.outTradeNo);
    else {
      await this.db
        .updateTable('sim_trades')
        .set({ status: 'CLOSED' })
        .where('channel_trade_no', '=', channelTradeNo)
        .where('status', '=', 'WAITING')
        .execute();
    }
    return this.findByChannelTradeNo(channelTradeNo);
  }

  /**
   * The day's trade bill as the provider serves it: Alipay's ZIP of GBK CSV for alipay, WeChat's CSV for weixin,
   * unionpay and elecny (the simulator has no UnionPay or e-CNY file format of its own: neither is public). Fees are 0.6 % (60 bp), half up,
   * returned in proportion on refunds. Reversals made by cancel appear as refunds numbered '#CANCEL'.
   */
  async billFile(merchant: string, payType: SimPayType, date: string): Promise<Buffer> {
    const dayStart = new Date(`${date}T00:00:00+08:00`);
    const dayEnd = new Date(dayStart.getTime() + 86_400_000);
    const fee = (amount: Fen) => fen(Math.floor((amount * 60 + 5_000) / 10_000));
    const lines: BillLine[] = [];
    const paid = await this.db
      .selectFrom('sim_trades')
      .selectAll()
      .where('merchant', '=', merchant)
      .where('pay_type', '=', payType)
      .where('paid_at', '>=', dayStart)
      .where('paid_at', '<', dayEnd)
      .orderBy('paid_at')
      .execute();
    for (const t of paid) {
      lines.push({
        kind: 'payment',
        channelTradeNo: t.channel_trade_no,
        outTradeNo: t.out_trade_no,
        amountFen: t.amount_fen,
        feeFen: fee(t.amount_fen),
        time: formatShanghai(t.paid_at ?? dayStart),
        payType,
        ...(t.subject ? { subject: t.subject.replace(/[,\t`"\r\n]/g, ' ') } : {}),
      });
    }
    const refunds = await this.db
      .selectFrom('sim_refunds')
      .innerJoin('sim_trades', (j) =>
        j
          .onRef('sim_trades.merchant', '=', 'sim_refunds.merchant')
          .onRef('sim_trades.out_trade_no', '=', 'sim_refunds.out_trade_no'),
      )
      .select([
        'sim_refunds.out_trade_no',
        'sim_refunds.out_request_no',
        'sim_refunds.amount_fen',
        'sim_refunds.refund_no',
        'sim_refunds.created_at',
        'sim_trades.channel_trade_no',
      ])
      .where('sim_refunds.merchant', '=', merchant)
      .where('sim_trades.pay_type', '=', payType)
      .where('sim_refunds.created_at', '>=', dayStart)
      .where('sim_refunds.created_at', '<', dayEnd)
      .orderBy('sim_refunds.created_at')
      .execute();
    const reversals = await this.db
      .selectFrom('sim_ledger')
      .innerJoin('sim_trades', (j) =>
        j
          .onRef('sim_trades.merchant', '=', 'sim_ledger.merchant')
          .onRef('sim_trades.out_trade_no', '=', 'sim_ledger.out_trade_no'),
      )
      .select([
        'sim_ledger.out_trade_no',
        'sim_ledger.amount_fen',
        'sim_ledger.created_at',
        'sim_trades.channel_trade_no',
      ])
      .where('sim_ledger.merchant', '=', merchant)
      .where('sim_ledger.entry', '=', 'reverse')
      .where('sim_trades.pay_type', '=', payType)
      .where('sim_ledger.created_at', '>=', dayStart)
      .where('sim_ledger.created_at', '<', dayEnd)
      .execute();
    const refundLines: BillLine[] = [
      ...refunds.map((r) => ({
        kind: 'refund' as const,
        channelTradeNo: r.channel_trade_no,
        outTradeNo: r.out_trade_no,
        outRequestNo: r.out_request_no,
        channelRefundNo: r.refund_no,
        amountFen: r.amount_fen,
        feeFen: fee(r.amount_fen),
        time: formatShanghai(r.created_at),
        payType,
      })),
      ...reversals.map((r) => ({
        kind: 'refund' as const,
        channelTradeNo: r.channel_trade_no,
        outTradeNo: r.out_trade_no,
        outRequestNo: '#CANCEL',
        amountFen: negFen(r.amount_fen),
        feeFen: fee(negFen(r.amount_fen)),
        time: formatShanghai(r.created_at),
        payType,
      })),
    ].sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
    lines.push(...refundLines);
    return payType === 'alipay'
      ? buildAlipayTradeBill(date, lines, { pid: merchant.slice(0, 16) })
      : buildWechatTradeBill(date, lines);
  }
}
