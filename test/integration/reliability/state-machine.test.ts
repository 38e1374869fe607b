import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { sql } from 'kysely';
import { TRANSITIONS, type TradeStatus } from '../../../src/domain/trade.js';
import { fen, formatFen } from '../../../src/domain/money.js';
import { NotifyJob } from '../../../src/jobs/notifier.js';
import { ExpiryJob } from '../../../src/jobs/expirer.js';
import { TEST_DB } from '../../support/db.js';
import { TEST_APP_KEY, gateway } from '../../support/gateway.js';
import { authCode, orderNo, startTestPlatform, type TestPlatform } from '../../support/platform.js';

/**
 * Reliability battery, item 13: a property test of the trade state machine. fast-check draws a few orders and a
 * random sequence of pay, payer actions, query, cancel, refund, expiry-job ticks (moving the fake clock) and
 * notify-job ticks; each command goes through the real doors (offline XML and the signed gateway) and the real
 * jobs. After every step the invariants are checked against the platform's books and the simulator's own:
 *
 * - refunded <= reserved <= paid; refunded never shrinks; a payment is never forgotten;
 * - a trade's state only moves along the allowed transitions (src/domain/trade.ts), never back;
 * - the channel's money equals the platform's: at most one charge; a settled trade was charged exactly when the
 *   platform holds it paid; every refund at the channel is a refund record here (SUCCESS, or PROCESSING while
 *   its outcome is unknown) and every SUCCESS record was made at the channel;
 * - every TRADE_SUCCESS / TRADE_CLOSED transition of a trade with a notify_url has its notification, exactly one;
 * - what a door answered as done is what the books say; no answer is a system error.
 *
 * At the end of each run everything is driven to rest (queries, retried refunds, the clock moved past every
 * deadline, the jobs), and then the channel's money must equal the platform's exactly.
 * FC_RUNS sets the number of runs (default 30, modest for `npm test`); FC_SEED=<seed> replays a run exactly.
 */

const RUNS = Number(process.env['FC_RUNS'] ?? 30);
const SEED = Number(process.env['FC_SEED'] ?? Date.now() % 2 ** 31);
const ORDERS = 3;
const MIN = 60_000;
const DAY = 86_400_000;

type Door = 'offline' | 'gateway';
interface OrderSpec {
  kind: 'barcode' | 'h5';
  /** Barcode: the simulator's rule (last two digits of the payment code). */
  rule: '00' | '01' | '02' | '03' | '04' | '06';
  amount: '10.00' | '0.04' | '88.88';
}
type Cmd =
  | { c: 'pay'; o: number; cnt: '0' | '1' | '3' }
  | { c: 'payer'; o: number; action: 'pay' | 'abandon' | 'return' }
  | { c: 'query'; o: number; door: Door }
  | { c: 'cancel'; o: number; door: Door }
  | {
      c: 'refund';
      o: number;
      door: Door;
      no: 'R1' | 'R2' | 'R3';
      quarters: 1 | 2 | 4;
      reason: '' | 'SIMULATE_REFUND_ERROR' | 'SIMULATE_REFUND_DECLINE';
    }
  | { c: 'expire'; advanceMs: number }
  | { c: 'notify'; answer: 'success' | 'fail' | '500' };

const door = fc.constantFrom<Door>('offline', 'gateway');
const o = fc.integer({ min: 0, max: ORDERS - 1 });
const orderArb: fc.Arbitrary<OrderSpec> = fc.record({
  kind: fc.constantFrom('barcode', 'h5'),
  rule: fc.constantFrom('00', '01', '02', '03', '04', '06'),
  amount: fc.constantFrom('10.00', '0.04', '88.88'),
});
const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ c: fc.constant('pay' as const), o, cnt: fc.constantFrom('0', '1', '3') }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      c: fc.constant('payer' as const),
      o,
      action: fc.constantFrom('pay', 'abandon', 'return'),
    }),
  },
  { weight: 2, arbitrary: fc.record({ c: fc.constant('query' as const), o, door }) },
  { weight: 2, arbitrary: fc.record({ c: fc.constant('cancel' as const), o, door }) },
  {
    weight: 4,
    arbitrary: fc.record({
      c: fc.constant('refund' as const),
      o,
      door,
      no: fc.constantFrom('R1', 'R2', 'R3'),
      quarters: fc.constantFrom(1, 2, 4),
      reason: fc.constantFrom('', '', 'SIMULATE_REFUND_ERROR', 'SIMULATE_REFUND_DECLINE'),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      c: fc.constant('expire' as const),
      advanceMs: fc.constantFrom(0, 30_000, 3 * MIN, 6 * MIN, 25 * 3_600_000, 91 * DAY),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      c: fc.constant('notify' as const),
      answer: fc.constantFrom('success', 'fail', '500'),
    }),
  },
);

/** Reachable from `from` along the allowed transitions (a step may make two transitions at once). */
function reachable(from: TradeStatus, to: TradeStatus): boolean {
  if (from === to) return true;
  return TRANSITIONS[from].some((next) => reachable(next, to));
}

interface Row {
  id: number;
  out_trade_no: string;
  kind: string;
  status: TradeStatus;
  total_fen: number;
  cash_fen: number;
  refunded_fen: number;
  reserved_fen: number;
  paid: boolean;
  has_notify: boolean;
  charges: number;
  charged_fen: number;
  reversals: number;
  reversed_fen: number;
  ledger_refunds: number;
  ledger_refunded_fen: number;
}

describe(`reliability: the trade state machine under random interleavings (${TEST_DB})`, () => {
  let t: TestPlatform;
  let notifier: NotifyJob;
  let expiry: ExpiryJob;
  let receiver: http.Server;
  let notifyUrl = '';
  let answer: 'success' | 'fail' | '500' = 'success';
  let deliveries = 0;

  before(async () => {
    t = await startTestPlatform({
      env: { HOSPAY_NOTIFY_TIMEOUT: '2s', HOSPAY_BARCODE_POLL_INTERVAL: '1', HOSPAY_JOB_BATCH: '100' },
    });
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    notifier = new NotifyJob(t.platform.deps);
    expiry = new ExpiryJob(t.platform.deps);
    receiver = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        deliveries++;
        if (answer === '500') res.writeHead(500).end('error');
        else res.end(answer);
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    notifyUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/notify`;
  });
  after(async () => {
    receiver.closeAllConnections();
    await new Promise<void>((r) => receiver.close(() => r()));
    await t.close();
  });

  async function form(url: string, method: 'GET' | 'POST', body?: string) {
    const r = await fetch(url, {
      method,
      redirect: 'manual',
      ...(body !== undefined
        ? { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body }
        : {}),
    });
    await r.arrayBuffer();
    return { status: r.status, location: r.headers.get('location') ?? '' };
  }

  /** One run: fresh orders, the commands, the checks after every step, then rest and the final check. */
  class Run {
    readonly nos: string[];
    readonly codes: string[];
    readonly platformNos: Array<string | null> = [];
    readonly gotoUrls: Array<string | null> = [];
    readonly cashiers: Array<string | null> = [];
    /** Last seen per order number. */
    private readonly seen = new Map<
      string,
      { status: TradeStatus; paid: boolean; refunded: number; success: boolean }
    >();
    readonly trace: string[] = [];

    constructor(readonly orders: OrderSpec[]) {
      this.nos = orders.map(() => orderNo('MZ'));
      this.codes = orders.map((s) => authCode(s.rule));
    }

    private fen(i: number): number {
      return Math.round(Number(this.orders[i]?.amount) * 100);
    }

    /** Runs one command; returns what the door claimed (a status it answered as current, a refund done). */
    async exec(cmd: Cmd): Promise<{ status?: string; refundDone?: { no: string; fen: number } }> {
      if (cmd.c === 'expire') {
        t.clock.advance(cmd.advanceMs);
        await expiry.tick();
        return {};
      }
      if (cmd.c === 'notify') {
        answer = cmd.answer;
        await notifier.tick();
        return {};
      }
      const i = cmd.o;
      const spec = this.orders[i];
      const no = this.nos[i] ?? '';
      if (!spec) return {};
      const amount = spec.amount;
      switch (cmd.c) {
        case 'pay': {
          if (spec.kind === 'barcode') {
            const a = await t.offline('FWC_IF_Barcode_Pay', {
              OutTradeNo: no,
              AuthCode: this.codes[i],
              TotalAmount: amount,
              Caption: '门诊缴费',
              PatientName: '张三',
              InhospitalNo: 'MZ0001',
              OrderType: 'TREATMENT',
              Cnt: cmd.cnt,
            });
            this.noSystemError(a.rr.IsSuccess, a.rr.SubCode, a.text);
            if (a.result.PlatformTradeNo) this.platformNos[i] = a.result.PlatformTradeNo;
            return a.rr.IsSuccess === '1' ? { status: a.result.TradeStatus ?? '' } : {};
          }
          const a = await gateway(t, 'lc.trade.h5.pay', {
            out_trade_no: no,
            total_amount: amount,
            subject: '门诊缴费',
            return_url: 'https://his.example.cn/pay/return',
            notify_url: notifyUrl,
            order_type: 'TREATMENT',
            timeout_express: '5m',
          });
          this.noSystemError(a.json.code === '10000' ? '1' : '0', String(a.biz['sub_code'] ?? ''), a.raw);
          if (a.json.code === '10000') {
            this.platformNos[i] = String(a.biz['platform_trade_no']);
            this.gotoUrls[i] = String(a.biz['goto_url']);
          }
          return {};
        }
        case 'payer': {
          const gotoUrl = this.gotoUrls[i];
          if (spec.kind !== 'h5' || !gotoUrl) return {};
          if (cmd.action === 'return') {
            const back = await form(`${gotoUrl}/return`, 'GET');
            assert.ok(back.status === 302, `return: HTTP ${back.status}`);
            const biz = new URL(back.location).searchParams.get('biz_content') ?? '{}';
            return { status: String((JSON.parse(biz) as Record<string, unknown>)['trade_status']) };
          }
          if (!this.cashiers[i]) {
            const chosen = await form(gotoUrl, 'POST', 'pay_type=alipay');
            assert.ok(chosen.status === 302 || chosen.status === 200, `choose: HTTP ${chosen.status}`);
            if (chosen.status !== 302) return {}; // the trade is no longer waiting: a status page
            this.cashiers[i] = chosen.location;
          }
          const acted = await form(this.cashiers[i] ?? '', 'POST', `action=${cmd.action}`);
          assert.ok(acted.status === 303 || acted.status === 200, `payer page: HTTP ${acted.status}`);
          return {};
        }
        case 'query': {
          if (cmd.door === 'offline') {
            const a = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: no });
            this.noSystemError(a.rr.IsSuccess, a.rr.SubCode, a.text);
            return a.rr.IsSuccess === '1' ? { status: a.result.TradeStatus ?? '' } : {};
          }
          const a = await gateway(t, 'lc.trade.query', { out_trade_no: no });
          this.noSystemError(a.json.code === '10000' ? '1' : '0', String(a.biz['sub_code'] ?? ''), a.raw);
          return a.json.code === '10000' ? { status: String(a.biz['trade_status']) } : {};
        }
        case 'cancel': {
          if (cmd.door === 'offline') {
            const a = await t.offline('FWC_IF_Barcode_Pay_Cancel', { OutTradeNo: no });
            this.noSystemError(a.rr.IsSuccess, a.rr.SubCode, a.text);
            return a.rr.IsSuccess === '1' ? { status: a.result.TradeStatus ?? '' } : {};
          }
          const a = await gateway(t, 'lc.trade.cancel', { out_trade_no: no });
          this.noSystemError(a.json.code === '10000' ? '1' : '0', String(a.biz['sub_code'] ?? ''), a.raw);
          return a.json.code === '10000' ? { status: String(a.biz['trade_status']) } : {};
        }
        case 'refund': {
          const part = (this.fen(i) * cmd.quarters) / 4;
          const reason = cmd.reason || undefined;
          if (cmd.door === 'offline') {
            const a = await t.offline('FWC_IF_Barcode_Pay_Refund', {
              TradeNo: this.platformNos[i] ?? 'HP0',
              RefundAmount: formatFen(fen(part)),
              OutRequestNo: cmd.no,
              OutTradeNo: no,
              TotalAmount: amount,
              RefundmentReason: reason,
            });
            this.noSystemError(a.rr.IsSuccess, a.rr.SubCode, a.text);
            return a.rr.IsSuccess === '1'
              ? { status: a.result.TradeStatus ?? '', refundDone: { no: cmd.no, fen: part } }
              : {};
          }
          const a = await gateway(t, 'lc.trade.refund', {
            out_trade_no: no,
            refund_amount: formatFen(fen(part)),
            out_request_no: cmd.no,
            ...(reason ? { refund_reason: reason } : {}),
          });
          this.noSystemError(a.json.code === '10000' ? '1' : '0', String(a.biz['sub_code'] ?? ''), a.raw);
          return a.json.code === '10000'
            ? { status: String(a.biz['trade_status']), refundDone: { no: cmd.no, fen: part } }
            : {};
        }
      }
    }

    /** A system error is a crash behind the door; "unknown, ask again" answers are fine. */
    private noSystemError(isSuccess: string, subCode: string, text: string): void {
      assert.ok(
        !/SYSTEM_ERROR|isp\.unknow/i.test(subCode) && isSuccess !== '3',
        `a system error: ${subCode}\n${text}`,
      );
    }

    // SQL on purpose: the platform's trades beside the simulated provider's ledger (sim_*), in one read.
    private async rows(): Promise<Row[]> {
      const r = await sql<Row>`
        SELECT t.id, t.out_trade_no, t.kind, t.status, t.total_fen::int AS total_fen,
          (t.total_fen - t.insurance_fen)::int AS cash_fen, t.refunded_fen::int AS refunded_fen,
          t.refund_reserved_fen::int AS reserved_fen, (t.paid_at IS NOT NULL) AS paid,
          (t.notify_url IS NOT NULL) AS has_notify,
          (SELECT count(*)::int FROM sim_ledger l
            WHERE l.merchant = t.app_id AND l.out_trade_no = t.out_trade_no AND l.entry = 'charge') AS charges,
          (SELECT coalesce(sum(l.amount_fen), 0)::int FROM sim_ledger l
            WHERE l.merchant = t.app_id AND l.out_trade_no = t.out_trade_no AND l.entry = 'charge') AS charged_fen,
          (SELECT count(*)::int FROM sim_ledger l
            WHERE l.merchant = t.app_id AND l.out_trade_no = t.out_trade_no AND l.entry = 'reverse') AS reversals,
          (SELECT coalesce(-sum(l.amount_fen), 0)::int FROM sim_ledger l
            WHERE l.merchant = t.app_id AND l.out_trade_no = t.out_trade_no AND l.entry = 'reverse') AS reversed_fen,
          (SELECT count(*)::int FROM sim_ledger l
            WHERE l.merchant = t.app_id AND l.out_trade_no = t.out_trade_no AND l.entry = 'refund') AS ledger_refunds,
          (SELECT coalesce(-sum(l.amount_fen), 0)::int FROM sim_ledger l
            WHERE l.merchant = t.app_id AND l.out_trade_no = t.out_trade_no AND l.entry = 'refund')
            AS ledger_refunded_fen
        FROM trades t
        WHERE t.app_id = ${t.appId} AND t.out_trade_no IN (${sql.join(this.nos)})`.execute(t.store.db);
      return r.rows;
    }

    /** The invariants; `atRest` adds the exact equalities that hold once nothing is in flight. */
    async check(
      claim: { status?: string; refundDone?: { no: string; fen: number } },
      cmd: Cmd | null,
      atRest = false,
    ) {
      const rows = await this.rows();
      const ids = rows.map((r) => r.id);
      const refunds = await t.platform.deps.refunds.ofTrades(ids);
      // The provider's own books (sim_refunds): the other ledger, read as it is kept.
      const simRefunds = await t.store.db
        .selectFrom('sim_refunds')
        .select(['out_trade_no', 'out_request_no', 'amount_fen'])
        .where('merchant', '=', t.appId)
        .where('out_trade_no', 'in', this.nos)
        .execute();
      const notes = await t.platform.deps.notifications.ofTrades(ids);
      const problems: string[] = [];
      for (const r of rows) {
        const at = `${r.out_trade_no} [${r.kind} ${r.status}]`;
        const mine = refunds.filter((x) => x.trade_id === r.id);
        const ok = mine.filter((x) => x.status === 'SUCCESS');
        const open = mine.filter((x) => x.status === 'PROCESSING');
        const atSim = simRefunds.filter((x) => x.out_trade_no === r.out_trade_no);
        const paidFen = r.paid ? r.cash_fen : 0;
        const sumOf = (xs: Array<{ amount_fen: number }>) => xs.reduce((s, x) => s + x.amount_fen, 0);

        // Refunds never exceed what was paid; the reservation covers them.
        if (!(r.refunded_fen <= r.reserved_fen && r.reserved_fen <= r.cash_fen))
          problems.push(`${at}: refunded ${r.refunded_fen}, reserved ${r.reserved_fen}, cash ${r.cash_fen}`);
        if (r.refunded_fen > paidFen) problems.push(`${at}: refunded ${r.refunded_fen} of ${paidFen} paid`);
        if (sumOf(ok) !== r.refunded_fen)
          problems.push(`${at}: SUCCESS records ${sumOf(ok)} ≠ ${r.refunded_fen}`);
        if (r.reserved_fen !== r.refunded_fen + sumOf(open))
          problems.push(
            `${at}: reserved ${r.reserved_fen} ≠ refunded + open ${r.refunded_fen + sumOf(open)}`,
          );

        // State moves only forward along the allowed transitions.
        const before = this.seen.get(r.out_trade_no);
        if (before) {
          if (!reachable(before.status, r.status))
            problems.push(`${at}: moved ${before.status} → ${r.status}`);
          if (before.paid && !r.paid) problems.push(`${at}: a payment was forgotten`);
          if (r.refunded_fen < before.refunded) problems.push(`${at}: refunded went down`);
        }
        const everSuccess =
          (before?.success ?? false) || r.status === 'TRADE_SUCCESS' || r.status === 'TRADE_FINISHED';
        this.seen.set(r.out_trade_no, {
          status: r.status,
          paid: r.paid,
          refunded: r.refunded_fen,
          success: everSuccess,
        });

        // The channel's money is the platform's money.
        if (r.charges > 1) problems.push(`${at}: charged ${r.charges} times`);
        if (r.status === 'WAIT_BUYER_PAY') {
          // An unknown outcome: the channel may be ahead (charged), the next query or the job catches up.
          if (r.charged_fen !== 0 && r.charged_fen !== r.cash_fen)
            problems.push(`${at}: charged ${r.charged_fen}`);
          if (atRest) problems.push(`${at}: still waiting at rest`);
        } else if (r.charged_fen !== paidFen) {
          problems.push(`${at}: the channel charged ${r.charged_fen}, the platform holds ${paidFen} paid`);
        }
        if (r.reversals > 1) problems.push(`${at}: reversed ${r.reversals} times`);
        const cancelOk = ok.filter((x) => x.kind === 'cancel');
        if (
          r.reversed_fen !== sumOf(cancelOk) &&
          !(r.reversals === 1 && mine.some((x) => x.kind === 'cancel' && x.status === 'PROCESSING'))
        )
          problems.push(`${at}: the channel reversed ${r.reversed_fen}, cancel records ${sumOf(cancelOk)}`);
        if (r.ledger_refunds !== atSim.length || r.ledger_refunded_fen !== sumOf(atSim))
          problems.push(`${at}: the simulator's ledger and its refunds disagree`);
        for (const s of atSim) {
          const rec = mine.find((x) => x.out_request_no === s.out_request_no && x.kind === 'refund');
          if (
            !rec ||
            rec.amount_fen !== s.amount_fen ||
            (rec.status !== 'SUCCESS' && rec.status !== 'PROCESSING')
          )
            problems.push(
              `${at}: refund ${s.out_request_no} made at the channel is ${rec?.status ?? 'unknown'} here`,
            );
          if (atRest && rec?.status !== 'SUCCESS')
            problems.push(`${at}: refund ${s.out_request_no} still open at rest`);
        }
        for (const x of ok.filter((y) => y.kind === 'refund'))
          if (!atSim.some((s) => s.out_request_no === x.out_request_no))
            problems.push(`${at}: refund ${x.out_request_no} is SUCCESS but was never made at the channel`);
        if (atRest && r.charged_fen - r.reversed_fen - r.ledger_refunded_fen !== paidFen - r.refunded_fen)
          problems.push(
            `${at}: at rest the channel holds ${r.charged_fen - r.reversed_fen - r.ledger_refunded_fen}, the platform ${paidFen - r.refunded_fen}`,
          );

        // One notification per transition, for a trade with a notify_url.
        const n = notes.filter((x) => x.trade_id === r.id);
        const nSuccess = n.filter((x) => x.trade_status === 'TRADE_SUCCESS').length;
        const nClosed = n.filter((x) => x.trade_status === 'TRADE_CLOSED').length;
        if (!r.has_notify) {
          if (n.length) problems.push(`${at}: notified without a notify_url`);
        } else {
          if (nSuccess > 1 || nClosed > 1)
            problems.push(`${at}: ${nSuccess} SUCCESS, ${nClosed} CLOSED notifications`);
          if (everSuccess && nSuccess !== 1) problems.push(`${at}: was TRADE_SUCCESS, not notified`);
          if (r.status === 'TRADE_CLOSED' && nClosed !== 1)
            problems.push(`${at}: TRADE_CLOSED, not notified`);
          if (nSuccess && !r.paid) problems.push(`${at}: TRADE_SUCCESS notified for an unpaid trade`);
          if (nClosed && r.status !== 'TRADE_CLOSED')
            problems.push(`${at}: TRADE_CLOSED notified, trade is ${r.status}`);
          if (atRest)
            for (const x of n)
              if (x.status !== 'DELIVERED' && !(x.status === 'FAILED' && x.attempts >= 8))
                problems.push(
                  `${at}: ${x.trade_status} notification ${x.status} after ${x.attempts} attempts at rest`,
                );
        }
      }
      // What the door claimed is what the books say.
      if (cmd && 'o' in cmd) {
        const r = rows.find((x) => x.out_trade_no === this.nos[cmd.o]);
        if (claim.status && claim.status !== r?.status)
          problems.push(`the door answered ${claim.status}, the books say ${r?.status ?? 'no trade'}`);
        if (claim.refundDone) {
          const rec = refunds.find((x) => x.trade_id === r?.id && x.out_request_no === claim.refundDone?.no);
          if (rec?.status !== 'SUCCESS' || rec.amount_fen !== claim.refundDone.fen)
            problems.push(
              `refund ${claim.refundDone.no} answered done, the record is ${rec?.status ?? 'missing'}`,
            );
        }
      }
      if (problems.length)
        throw new Error(`invariants broken after ${this.trace.length} steps:\n  ${problems.join('\n  ')}`);
    }

    /** Drives everything to rest: the HIS retries what is unknown, time passes, the jobs run. */
    async settle(): Promise<void> {
      answer = 'success';
      for (let round = 0; round < 12; round++) {
        const rows = await this.rows();
        const ids = rows.map((r) => r.id);
        const open = (await t.platform.deps.refunds.ofTrades(ids)).filter((x) => x.status === 'PROCESSING');
        const pending = (await t.platform.deps.notifications.ofTrades(ids)).filter(
          (n) => n.status === 'PENDING',
        );
        if (!rows.some((r) => r.status === 'WAIT_BUYER_PAY') && open.length === 0 && pending.length === 0)
          return;
        for (const x of open) {
          const r = rows.find((y) => y.id === x.trade_id);
          if (!r) continue;
          if (x.kind === 'cancel')
            await t.offline('FWC_IF_Barcode_Pay_Cancel', { OutTradeNo: r.out_trade_no });
          else
            await gateway(t, 'lc.trade.refund', {
              out_trade_no: r.out_trade_no,
              refund_amount: formatFen(x.amount_fen),
              out_request_no: x.out_request_no,
            });
          this.trace.push(`(rest) retry ${x.kind} ${x.out_request_no}`);
        }
        for (const r of rows.filter((y) => y.status === 'WAIT_BUYER_PAY'))
          await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: r.out_trade_no });
        t.clock.advance(round < 4 ? 10 * MIN : DAY);
        await expiry.tick();
        await notifier.tick();
      }
    }
  }

  it(`random interleavings of pay, payer actions, query, cancel, refund, expiry and notify keep the invariants (${RUNS} runs)`, async (ctx) => {
    let runs = 0;
    let steps = 0;
    const seenStatuses = new Map<string, number>();
    const commandCounts = new Map<string, number>();
    const started = performance.now();
    const deliveredBefore = deliveries;
    await fc.assert(
      fc.asyncProperty(
        fc.array(orderArb, { minLength: ORDERS, maxLength: ORDERS }),
        fc.array(cmdArb, { minLength: 4, maxLength: 24, size: 'max' }),
        async (orders, cmds) => {
          runs++;
          const run = new Run(orders);
          run.trace.push(
            `orders: ${orders.map((s, i) => `#${i} ${s.kind} ${s.amount}${s.kind === 'barcode' ? ` rule ${s.rule}` : ''}`).join(', ')}`,
          );
          const step = async (what: () => Promise<void>) => {
            const logFrom = t.logs().length;
            try {
              await what();
            } catch (e) {
              // The trace of the run and what the platform logged as an error during the step.
              const errors = t
                .logs()
                .slice(logFrom)
                .split('\n')
                .filter((l) => /"level":(50|60)/.test(l));
              throw new Error(
                `${e instanceof Error ? e.message : String(e)}\ntrace:\n  ${run.trace.join('\n  ')}` +
                  (errors.length ? `\nplatform errors:\n  ${errors.join('\n  ')}` : ''),
                { cause: e },
              );
            }
          };
          for (const cmd of cmds) {
            run.trace.push(JSON.stringify(cmd));
            commandCounts.set(cmd.c, (commandCounts.get(cmd.c) ?? 0) + 1);
            await step(async () => run.check(await run.exec(cmd), cmd));
            steps++;
          }
          await step(async () => {
            await run.settle();
            await run.check({}, null, true);
          });
          for (const r of await sql<{ status: string }>`
            SELECT status FROM trades WHERE app_id = ${t.appId} AND out_trade_no IN (${sql.join(run.nos)})`
            .execute(t.store.db)
            .then((x) => x.rows))
            seenStatuses.set(r.status, (seenStatuses.get(r.status) ?? 0) + 1);
        },
      ),
      { numRuns: RUNS, seed: SEED },
    );
    ctx.diagnostic(
      `state machine (seed ${SEED}): ${runs} runs, ${steps} commands checked step by step in ` +
        `${Math.round(performance.now() - started)} ms; commands: ` +
        [...commandCounts].map(([k, v]) => `${k} ${v}`).join(', ') +
        `; trades at rest: ` +
        [...seenStatuses].map(([k, v]) => `${k} ${v}`).join(', ') +
        `; ${deliveries - deliveredBefore} notification deliveries`,
    );
  });

  // The property test found this one: a trade used to become TRADE_FINISHED under a refund whose outcome was
  // unknown, and completing that refund then moved it TRADE_FINISHED → TRADE_CLOSED, out of a final state.
  it('a refund in flight when the refund window ends: the trade does not finish under it; completing it closes the trade', async () => {
    const no = orderNo('MZ');
    const paid = await t.offline('FWC_IF_Barcode_Pay', {
      OutTradeNo: no,
      AuthCode: authCode('00'),
      TotalAmount: '10.00',
      Caption: '门诊缴费',
      PatientName: '张三',
      InhospitalNo: 'MZ0001',
      OrderType: 'TREATMENT',
    });
    assert.equal(paid.rr.IsSuccess, '1', paid.text);
    const refund = (requestNo: string, amount: string, reason?: string) =>
      t.offline('FWC_IF_Barcode_Pay_Refund', {
        TradeNo: paid.result.PlatformTradeNo,
        RefundAmount: amount,
        OutRequestNo: requestNo,
        OutTradeNo: no,
        TotalAmount: '10.00',
        RefundmentReason: reason,
      });
    const unknown = await refund('W1', '10.00', 'SIMULATE_REFUND_ERROR'); // made at the channel, answer lost
    assert.equal(unknown.rr.SubCode, 'REFUND_PROCESSING');
    t.clock.advance(91 * DAY);
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: no });
    assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS', 'not finished while the refund is in flight');
    const late = await refund('W2', '0.01');
    assert.equal(late.rr.SubCode, 'TRADE_HAS_FINISHED', 'but the window is over for new refunds');
    const done = await refund('W1', '10.00');
    assert.equal(done.rr.IsSuccess, '1', done.text);
    assert.equal(done.result.RefundChange, 'Y');
    assert.equal(done.result.TradeStatus, 'TRADE_CLOSED');
    const ledger = await sql<{ n: number; fen: number }>`
      SELECT count(*)::int AS n, coalesce(-sum(amount_fen), 0)::int AS fen FROM sim_ledger
      WHERE merchant = ${t.appId} AND out_trade_no = ${no} AND entry = 'refund'`.execute(t.store.db);
    assert.deepEqual(ledger.rows[0], { n: 1, fen: 1000 });
  });
});
