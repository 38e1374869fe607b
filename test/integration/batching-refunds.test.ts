import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, TEST_DB, type TestDatabase } from '../support/db.js';
import { migrate, openStore, type Store } from '../../src/store/db.js';
import { TradeRepository } from '../../src/store/trades.js';
import { RefundRepository } from '../../src/store/refunds.js';
import type { TradeRowFields } from '../../src/store/trade-row.js';
import { REFUND_RULES, SimulatorProvider, type SimRefundAnswer } from '../../src/simulator/provider.js';
import type { Clock } from '../../src/domain/clock.js';
import type { PaidInfo } from '../../src/domain/payment.js';
import { fen } from '../../src/domain/money.js';
import type { Refund, Trade } from '../../src/store/schema.js';

/**
 * The batched statements of the refund path (src/store/batcher.ts), through the real repositories, on the
 * database: RefundRepository.lookupAndReserve and complete, TradeRepository.byOutTradeNo and the simulator's
 * refund. Every scenario runs twice, on trades of its own: once call by call ('alone': each call is a batch of
 * one, i.e. the one-row statement), once as a burst issued in one synchronous loop ('burst': after the first two,
 * which go alone, the calls form batches and run the batch statement). Both runs must meet the same expectations,
 * written out per call, so a batch statement that answers or writes anything other than its one-row statement
 * fails the burst. A burst must not have been retried item by item (except where one request number is sent
 * twice, see assertRan): a failed batch is answered by the one-row statement, which would hide the batch
 * statement's answer.
 */
describe(`batched refund statements on the ${TEST_DB} database`, () => {
  const APP = 'hprefund';
  /** A second app: an order number of another app is not this app's trade. */
  const APP2 = 'hprefund2';
  let db: TestDatabase;
  let store: Store;
  /** Repositories that make the scenarios' trades and earlier refunds (their statements are not under test). */
  let setupTrades: TradeRepository;
  let setupRefunds: RefundRepository;

  let seq = 0;
  /** A barcode pay's trade as the payment path makes it (services/barcode-pay.ts), 1000 fen, with its own numbers. */
  const fields = (outTradeNo: string, over: Partial<TradeRowFields> = {}): TradeRowFields => {
    seq++;
    const now = new Date(Date.UTC(2026, 11, 6, 8, 0, 0) + seq);
    return {
      trade_no: `HPR${String(seq).padStart(12, '0')}`,
      app_id: APP,
      out_trade_no: outTradeNo,
      kind: 'barcode',
      pay_type: 'alipay',
      channel: 'simulator',
      category: 'MZ',
      order_type: 'TREATMENT',
      total_fen: fen(1000),
      subject: `门诊缴费 ${outTradeNo}`,
      body: null,
      operator_id: 'op1',
      terminal_id: null,
      hospital_id: null,
      patient_name: '张三',
      inhospital_no: `IN${seq}`,
      fingerprint: 'f'.repeat(64),
      created_at: now,
      expires_at: new Date(now.getTime() + 120_000),
      ...over,
    };
  };
  let paidSeq = 0;
  const paidInfo = (tag: string): PaidInfo => {
    paidSeq++;
    return {
      channelTradeNo: `CT-${tag}-${paidSeq}`,
      paidAt: new Date(Date.UTC(2026, 11, 6, 9, 0, 0) + paidSeq * 1000),
      buyerLogonId: `b***${paidSeq}`,
      buyerUserId: `2088${String(paidSeq).padStart(6, '0')}`,
    };
  };

  /** A trade inserted and (unless `unpaid`) paid through markPaid, one statement at a time. */
  const makeTrade = async (
    outTradeNo: string,
    over: Partial<TradeRowFields> = {},
    unpaid = false,
  ): Promise<Trade> => {
    const { trade, inserted } = await setupTrades.insertNewOrGet(fields(outTradeNo, over));
    assert.ok(inserted, `${outTradeNo} exists already`);
    if (unpaid || trade.status !== 'WAIT_BUYER_PAY') return trade;
    const paid = await setupTrades.markPaid(trade.id, paidInfo(outTradeNo), new Date());
    assert.ok(paid);
    return paid;
  };

  const tradeRow = (id: number) =>
    store.db.selectFrom('trades').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const tradeByNo = (appId: string, outTradeNo: string) =>
    store.db
      .selectFrom('trades')
      .selectAll()
      .where('app_id', '=', appId)
      .where('out_trade_no', '=', outTradeNo)
      .executeTakeFirst();
  const refundsOf = (tradeId: number) =>
    store.db.selectFrom('refunds').selectAll().where('trade_id', '=', tradeId).orderBy('id').execute();
  const refundRow = (id: number) =>
    store.db.selectFrom('refunds').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const notificationsOf = (tradeId: number) =>
    store.db.selectFrom('notifications').selectAll().where('trade_id', '=', tradeId).orderBy('id').execute();

  type Mode = 'alone' | 'burst';
  const MODES: readonly Mode[] = ['alone', 'burst'];

  /** The calls in their order: one at a time (each alone), or all issued in one synchronous loop. */
  async function issue<T>(mode: Mode, calls: ReadonlyArray<() => Promise<T>>): Promise<T[]> {
    if (mode === 'burst') return Promise.all(calls.map((c) => c()));
    const out: T[] = [];
    for (const c of calls) out.push(await c());
    return out;
  }

  type Stats = { statements: number; items: number; retried: number };
  /**
   * How the calls ran: alone, one statement each; in a burst, in batches, and (`strict`) none retried alone. Without
   * `strict` (a burst with one request number twice: on PostgreSQL the two batches may be in flight at once, and
   * the one that commits second fails on the unique key and is retried item by item) a retry is allowed, and the
   * outcomes are checked all the same.
   */
  function assertRan(mode: Mode, s: Stats, n: number, strict = true): void {
    assert.equal(s.items, n, `not every call went through the batcher: ${JSON.stringify(s)}`);
    if (mode === 'alone') {
      assert.equal(s.statements, n, `alone, yet batched: ${JSON.stringify(s)}`);
      assert.equal(s.retried, 0);
    } else {
      assert.ok(s.items > s.statements, `no batch formed: ${JSON.stringify(s)}`);
      if (strict) assert.equal(s.retried, 0, `a batch was retried item by item: ${JSON.stringify(s)}`);
    }
  }

  before(async () => {
    db = await freshDatabase();
    store = await openStore(db.store);
    await migrate(store.db);
    for (const id of [APP, APP2]) {
      await store.db
        .insertInto('apps')
        .values({
          id,
          name: `Refund batch ${id}`,
          hospital_id: null,
          token_hash: (id === APP ? 'r' : 's').repeat(64),
          status: 'active',
          categories: null,
          channel_map: '{}',
          created_at: new Date(),
        })
        .execute();
    }
    setupTrades = new TradeRepository(store.db);
    setupRefunds = new RefundRepository(store.db);
  });
  after(async () => {
    await store.close();
    await db.drop();
  });

  type ReserveInput = Parameters<RefundRepository['lookupAndReserve']>[0];
  type ReserveResult = Awaited<ReturnType<RefundRepository['lookupAndReserve']>>;
  type Reserved = Exclude<ReserveResult, undefined | 'raced'>;

  const T0 = Date.UTC(2026, 11, 7, 2, 0, 0);
  /** A refund request for trade `t` as the service makes it, with its own times, lease and texts. */
  const callFor = (t: Trade, i: number, over: Partial<ReserveInput> = {}): ReserveInput => ({
    appId: APP,
    outTradeNo: t.out_trade_no,
    outRequestNo: `RQ-${i}`,
    amountFen: fen(100 + i),
    tradeNo: undefined,
    totalFen: undefined,
    payType: undefined,
    paidAfter: new Date((t.paid_at?.getTime() ?? T0) - 86_400_000),
    reason: i % 3 === 0 ? null : `退款原因 ${i}`,
    hospitalId: i % 2 === 0 ? null : `H${i}`,
    terminalId: i % 4 === 1 ? null : `T${i}`,
    now: new Date(T0 + i * 1000 + 7),
    leaseMs: 60_000 + i,
    ...over,
  });
  /** A refund reserved before the scenario (alone), for the trade's state: it must succeed. */
  const reserveEarlier = async (t: Trade, outRequestNo: string, amount: number): Promise<Refund> => {
    const r = await setupRefunds.lookupAndReserve(
      callFor(t, 0, { outRequestNo, amountFen: fen(amount), now: new Date(T0 - 3_600_000) }),
    );
    assert.ok(r && r !== 'raced' && r.refund, `earlier refund ${outRequestNo} of ${t.out_trade_no}`);
    return r.refund;
  };
  /** Request numbers that an array literal must quote (or that look like its NULL). */
  const AWKWARD = [
    'NULL',
    'null',
    'a,b',
    'q"uote',
    '{x}',
    'back\\slash',
    ' ',
    '退款 1',
    "it's",
    '\\N',
    'l\nb',
  ];

  describe('lookupAndReserve', () => {
    type Expect = 'reserved' | 'refused' | 'prior' | 'unknown';
    interface ReserveCase {
      name: string;
      expect: Expect;
      /** Makes the case's trade (default: paid, 1000 fen, alipay). */
      make?: (no: string) => Promise<Trade>;
      /** What happened to the trade before the scenario. */
      earlier?: (t: Trade) => Promise<void>;
      /** The call's own fields, over callFor's. */
      call?: (t: Trade) => Partial<ReserveInput>;
    }
    const paidAt = (t: Trade) => (t.paid_at as Date).getTime();

    const plain = (k: number): ReserveCase => ({
      name: `plain-${k}`,
      expect: 'reserved',
      // What the caller checks, given right (or not given): none of it stops the reservation.
      call: (t) => ({
        outRequestNo: AWKWARD[k] ?? `RQ-plain-${k}`,
        ...(k % 4 === 1 ? { tradeNo: t.trade_no } : {}),
        ...(k % 4 === 2 ? { tradeNo: t.channel_trade_no as string, totalFen: t.total_fen } : {}),
        ...(k % 4 === 3 ? { tradeNo: t.trade_no, totalFen: t.total_fen, payType: 'alipay' } : {}),
        ...(k === 5 ? { reason: 'NULL', hospitalId: '', terminalId: 'a,"b"' } : {}),
      }),
    });
    const CASES: ReserveCase[] = [
      { name: 'lead-0', expect: 'reserved' },
      { name: 'lead-1', expect: 'reserved' },
      ...Array.from({ length: 6 }, (_, k) => plain(k)),
      {
        name: 'channel-trade-no',
        expect: 'reserved',
        call: (t) => ({ tradeNo: t.channel_trade_no as string }),
      },
      { name: 'trade-no', expect: 'reserved', call: (t) => ({ tradeNo: t.trade_no }) },
      { name: 'whole-amount', expect: 'reserved', call: () => ({ amountFen: fen(1000) }) },
      {
        name: 'cash-part-exactly',
        expect: 'reserved',
        make: (no) => makeTrade(no, { insurance_fen: fen(400) }),
        call: () => ({ amountFen: fen(600) }),
      },
      {
        name: 'rest-exactly',
        expect: 'reserved',
        earlier: async (t) => void (await reserveEarlier(t, 'RQ-earlier', 700)),
        call: () => ({ amountFen: fen(300) }),
      },
      {
        name: 'no-pay-type-on-trade',
        expect: 'reserved',
        make: (no) => makeTrade(no, { pay_type: null }),
        call: () => ({ payType: 'weixin' }),
      },
      {
        name: 'request-no-of-another-trade',
        expect: 'reserved',
        earlier: async (t) =>
          void (await reserveEarlier(await makeTrade(`${t.out_trade_no}-other`), 'RQ-shared', 100)),
        call: () => ({ outRequestNo: 'RQ-shared' }),
      },
      {
        name: 'same-number-in-another-app',
        expect: 'reserved',
        earlier: async (t) => void (await makeTrade(t.out_trade_no, { app_id: APP2 })),
      },
      ...Array.from({ length: 6 }, (_, k) => plain(k + 6)),
      { name: 'wrong-trade-no', expect: 'refused', call: (t) => ({ tradeNo: `${t.trade_no}9` }) },
      { name: 'wrong-total', expect: 'refused', call: (t) => ({ totalFen: fen(t.total_fen + 1) }) },
      {
        name: 'right-total-wrong-trade-no',
        expect: 'refused',
        call: (t) => ({ totalFen: t.total_fen, tradeNo: 'NOPE' }),
      },
      { name: 'wrong-pay-type', expect: 'refused', call: () => ({ payType: 'weixin' }) },
      {
        name: 'paid-before-window',
        expect: 'refused',
        call: (t) => ({ paidAfter: new Date(paidAt(t) + 1) }),
      },
      { name: 'paid-at-window-edge', expect: 'refused', call: (t) => ({ paidAfter: new Date(paidAt(t)) }) },
      { name: 'above-total', expect: 'refused', call: () => ({ amountFen: fen(1001) }) },
      {
        name: 'above-rest',
        expect: 'refused',
        earlier: async (t) => void (await reserveEarlier(t, 'RQ-earlier', 700)),
        call: () => ({ amountFen: fen(301) }),
      },
      {
        name: 'above-cash-part',
        expect: 'refused',
        make: (no) => makeTrade(no, { insurance_fen: fen(400) }),
        call: () => ({ amountFen: fen(601) }),
      },
      { name: 'waiting', expect: 'refused', make: (no) => makeTrade(no, {}, true) },
      {
        // Only the status is wrong (the table allows a waiting trade with a payment time).
        name: 'waiting-with-paid-at',
        expect: 'refused',
        make: (no) =>
          makeTrade(no, { paid_at: new Date(T0 - 86_400_000), channel_trade_no: `CT-${no}` }, true),
      },
      {
        name: 'closed',
        expect: 'refused',
        make: (no) =>
          makeTrade(no, {
            status: 'TRADE_CLOSED',
            paid_at: new Date(T0 - 86_400_000),
            closed_at: new Date(T0 - 3_600_000),
            channel_trade_no: `CT-${no}`,
            cancel_action: 'refund',
          }),
      },
      {
        name: 'finished',
        expect: 'refused',
        make: (no) =>
          makeTrade(no, {
            status: 'TRADE_FINISHED',
            paid_at: new Date(T0 - 86_400_000),
            channel_trade_no: `CT-${no}`,
          }),
      },
      {
        name: 'known-request-no',
        expect: 'prior',
        earlier: async (t) => void (await reserveEarlier(t, 'RQ-known', 200)),
        call: () => ({ outRequestNo: 'RQ-known', amountFen: fen(100) }),
      },
      {
        name: 'known-request-no-completed',
        expect: 'prior',
        earlier: async (t) => {
          const r = await reserveEarlier(t, 'RQ-done', 200);
          assert.ok(await setupRefunds.complete(r, 'CR-earlier', new Date(T0 - 1_800_000)));
        },
        call: () => ({ outRequestNo: 'RQ-done', amountFen: fen(200) }),
      },
      {
        name: 'known-request-no-would-not-fit',
        expect: 'prior',
        earlier: async (t) => void (await reserveEarlier(t, 'RQ-known', 900)),
        call: () => ({ outRequestNo: 'RQ-known', amountFen: fen(900) }),
      },
      { name: 'unknown-number', expect: 'unknown', call: (t) => ({ outTradeNo: `${t.out_trade_no}-NOPE` }) },
      {
        name: 'only-in-another-app',
        expect: 'unknown',
        make: (no) => makeTrade(no, { app_id: APP2 }),
      },
      ...Array.from({ length: 4 }, (_, k) => plain(k + 12)),
    ];

    for (const mode of MODES) {
      it(`${mode}: ${CASES.length} refund requests, each reserved or refused exactly as the one-row statement does`, async () => {
        const tag = `LR${mode === 'alone' ? 'A' : 'B'}-`;
        const trades: Trade[] = [];
        for (const c of CASES) {
          const no = `${tag}${c.name}`;
          const t = await (c.make ?? ((n: string) => makeTrade(n)))(no);
          await c.earlier?.(t);
          trades.push(await tradeRow(t.id));
        }
        const calls = CASES.map((c, i) => callFor(trades[i] as Trade, i, c.call?.(trades[i] as Trade)));
        const refundsBefore = await Promise.all(trades.map((t) => refundsOf(t.id)));
        const twins = await Promise.all(trades.map((t) => tradeByNo(APP2, t.out_trade_no)));

        const repo = new RefundRepository(store.db);
        const got = await issue(
          mode,
          calls.map((input) => () => repo.lookupAndReserve(input)),
        );

        const ids = new Set<number>();
        for (let i = 0; i < CASES.length; i++) {
          const c = CASES[i] as ReserveCase;
          const t = trades[i] as Trade;
          const input = calls[i] as ReserveInput;
          const r = got[i];
          const what = `call ${i} (${c.name})`;
          const now = await tradeRow(t.id);
          const refunds = await refundsOf(t.id);
          const earlier = refundsBefore[i] as Refund[];
          assert.notEqual(r, 'raced', what);
          if (c.expect === 'unknown') {
            assert.equal(r, undefined, what);
            assert.deepEqual(now, t, `${what}: the trade changed`);
            assert.deepEqual(refunds, earlier, `${what}: a refund was recorded`);
            continue;
          }
          assert.ok(r && r !== 'raced', `${what}: no trade`);
          // The trade as read before the statement, whatever became of the request.
          assert.deepEqual(r.trade, t, `${what}: not the trade as read`);
          if (c.expect === 'reserved') {
            assert.equal(r.priorRefundId, null, what);
            assert.ok(r.refund, `${what}: refused`);
            assert.equal(typeof r.refund.id, 'number');
            assert.ok(!ids.has(r.refund.id), `${what}: another caller's refund id`);
            ids.add(r.refund.id);
            assert.equal(r.refund.trade_id, t.id, what);
            assert.equal(r.refund.app_id, APP, what);
            assert.equal(r.refund.out_request_no, input.outRequestNo, what);
            assert.equal(r.refund.amount_fen, input.amountFen, what);
            assert.equal(r.refund.status, 'PROCESSING', what);
            assert.equal(r.refund.lease_until?.getTime(), input.now.getTime() + input.leaseMs, what);
            // The refund the caller got is the stored one, column by column.
            assert.deepEqual(await refundRow(r.refund.id), r.refund, what);
            assert.deepEqual(refunds, [...earlier, r.refund], `${what}: refunds of the trade`);
            assert.deepEqual(
              now,
              { ...t, refund_reserved_fen: t.refund_reserved_fen + input.amountFen, updated_at: input.now },
              `${what}: the reservation`,
            );
          } else {
            assert.equal(r.refund, null, `${what}: reserved`);
            if (c.expect === 'prior') {
              const known = earlier.find((x) => x.out_request_no === input.outRequestNo);
              assert.ok(known);
              assert.equal(r.priorRefundId, known.id, what);
            } else assert.equal(r.priorRefundId, null, what);
            assert.deepEqual(now, t, `${what}: the trade changed`);
            assert.deepEqual(refunds, earlier, `${what}: a refund was recorded`);
          }
          // Another app's trade with the same number is never touched.
          assert.deepEqual(await tradeByNo(APP2, t.out_trade_no), twins[i], `${what}: the other app's trade`);
        }
        assert.equal(ids.size, CASES.filter((c) => c.expect === 'reserved').length);
        assertRan(mode, repo.batchStats().reserve, CASES.length);
      });
    }

    for (const mode of MODES) {
      it(`${mode}: two refunds of one trade (never in one batch): both reserved if they fit, else exactly one`, async () => {
        const tag = `LS${mode === 'alone' ? 'A' : 'B'}-`;
        const fillers = await Promise.all(Array.from({ length: 6 }, (_, k) => makeTrade(`${tag}f${k}`)));
        const fit: Trade[] = [];
        const oneFits: Trade[] = [];
        for (let k = 0; k < 4; k++) fit.push(await makeTrade(`${tag}fit${k}`));
        for (let k = 0; k < 4; k++) oneFits.push(await makeTrade(`${tag}one${k}`));
        // The first of each pair, then the second: the seconds wait for the next batch (and form one).
        const calls: ReserveInput[] = [
          callFor(fillers[0] as Trade, 0),
          callFor(fillers[1] as Trade, 1),
          ...fit.map((t, k) => callFor(t, 10 + k, { outRequestNo: 'RQ-a', amountFen: fen(300) })),
          ...oneFits.map((t, k) => callFor(t, 20 + k, { outRequestNo: 'RQ-a', amountFen: fen(600) })),
          ...fillers.slice(2).map((t, k) => callFor(t, 2 + k)),
          ...fit.map((t, k) => callFor(t, 40 + k, { outRequestNo: 'RQ-b', amountFen: fen(700) })),
          ...oneFits.map((t, k) => callFor(t, 50 + k, { outRequestNo: 'RQ-b', amountFen: fen(600) })),
        ];
        const repo = new RefundRepository(store.db);
        const got = (await issue(
          mode,
          calls.map((input) => () => repo.lookupAndReserve(input)),
        )) as Reserved[];
        const byTrade = (id: number) => got.filter((g) => g.trade.id === id);

        for (const t of fillers) assert.ok(byTrade(t.id)[0]?.refund);
        for (const t of fit) {
          const [a, b] = byTrade(t.id);
          assert.ok(a?.refund && b?.refund, `${t.out_trade_no}: both fit`);
          assert.notEqual(a.refund.id, b.refund.id);
          assert.deepEqual(
            [a.refund.out_request_no, b.refund.out_request_no, a.refund.amount_fen, b.refund.amount_fen],
            ['RQ-a', 'RQ-b', 300, 700],
          );
          assert.equal((await tradeRow(t.id)).refund_reserved_fen, 1000, 'the reserved total is the sum');
          assert.deepEqual(
            (await refundsOf(t.id)).map((r) => r.id).sort((x, y) => x - y),
            [a.refund.id, b.refund.id].sort((x, y) => x - y),
          );
        }
        for (const t of oneFits) {
          const pair = byTrade(t.id);
          assert.equal(pair.length, 2);
          const won = pair.filter((g) => g.refund !== null);
          assert.equal(won.length, 1, `${t.out_trade_no}: ${won.length} reserved`);
          const lost = pair.find((g) => g.refund === null);
          assert.equal(lost?.priorRefundId, null);
          assert.equal((await tradeRow(t.id)).refund_reserved_fen, 600);
          const stored = await refundsOf(t.id);
          assert.equal(stored.length, 1);
          assert.deepEqual(stored[0], won[0]?.refund);
        }
        assertRan(mode, repo.batchStats().reserve, calls.length);
      });
    }

    for (const mode of MODES) {
      it(`${mode}: one request number twice in a burst: one reservation, the other call a repeat of it`, async () => {
        const tag = `LD${mode === 'alone' ? 'A' : 'B'}-`;
        const fillers = await Promise.all(Array.from({ length: 4 }, (_, k) => makeTrade(`${tag}f${k}`)));
        const twice: Trade[] = [];
        for (let k = 0; k < 4; k++) twice.push(await makeTrade(`${tag}same${k}`));
        const calls: ReserveInput[] = [
          callFor(fillers[0] as Trade, 0),
          callFor(fillers[1] as Trade, 1),
          ...twice.map((t, k) => callFor(t, 10 + k, { outRequestNo: 'RQ-same', amountFen: fen(100) })),
          ...fillers.slice(2).map((t, k) => callFor(t, 2 + k)),
          ...twice.map((t, k) => callFor(t, 20 + k, { outRequestNo: 'RQ-same', amountFen: fen(100) })),
        ];
        const repo = new RefundRepository(store.db);
        const got = (await issue(
          mode,
          calls.map((input) => () => repo.lookupAndReserve(input)),
        )) as Reserved[];

        for (const t of fillers) assert.ok(got.find((g) => g.trade.id === t.id)?.refund);
        for (const t of twice) {
          // Which of the two is reserved is not fixed on PostgreSQL: the two batches may be in flight at once,
          // and the later one may commit first.
          const same = got.filter((g) => g.trade.id === t.id);
          assert.equal(same.length, 2);
          const reserved = same.filter((g) => g.refund !== null);
          assert.equal(reserved.length, 1, `${reserved.length} reserved: ${JSON.stringify(same)}`);
          const again = same.find((g) => g.refund === null);
          assert.equal(again?.priorRefundId, reserved[0]?.refund?.id, 'the repeat does not see the first');
          if (mode === 'alone') assert.ok(same[0]?.refund, 'alone, the first request is reserved');
          assert.equal((await tradeRow(t.id)).refund_reserved_fen, 100);
          assert.deepEqual(await refundsOf(t.id), [reserved[0]?.refund]);
        }
        assertRan(mode, repo.batchStats().reserve, calls.length, false);
      });
    }
  });

  describe('complete', () => {
    const NOTIFY = 'https://his.example/notify-refund';
    interface CompleteCase {
      name: string;
      /** The refund's amount. */
      amount: number;
      make?: (no: string) => Promise<Trade>;
      /** Refunds completed before the scenario. */
      earlier?: (t: Trade) => Promise<void>;
      /** The refund's state before the call (default PROCESSING). */
      state?: 'SUCCESS' | 'FAILED';
    }
    const withUrl = (no: string) => makeTrade(no, { notify_url: NOTIFY });
    const completeEarlier = async (t: Trade, amount: number) => {
      const r = await reserveEarlier(t, 'RC-earlier', amount);
      assert.ok(await setupRefunds.complete(r, 'CR-earlier', new Date(T0 - 1_800_000)));
    };
    const filler = (k: number): CompleteCase => ({
      name: `f${k}`,
      amount: k % 3 === 0 ? 1000 : 100 + k,
      ...(k % 2 === 0 ? { make: withUrl } : {}),
    });
    const CASES: CompleteCase[] = [
      { name: 'lead-0', amount: 300, make: withUrl },
      { name: 'lead-1', amount: 1000, make: withUrl },
      ...Array.from({ length: 8 }, (_, k) => filler(k)),
      { name: 'partial-notify', amount: 999, make: withUrl },
      { name: 'partial-plain', amount: 1 },
      { name: 'full-notify', amount: 1000, make: withUrl },
      { name: 'full-plain', amount: 1000 },
      { name: 'rest-notify', amount: 700, make: withUrl, earlier: (t) => completeEarlier(t, 300) },
      { name: 'rest-plain', amount: 600, earlier: (t) => completeEarlier(t, 400) },
      { name: 'not-yet-rest', amount: 500, make: withUrl, earlier: (t) => completeEarlier(t, 300) },
      {
        name: 'cash-part-full',
        amount: 600,
        make: (no) => makeTrade(no, { notify_url: NOTIFY, insurance_fen: fen(400) }),
      },
      {
        name: 'cash-part-partial',
        amount: 500,
        make: (no) => makeTrade(no, { notify_url: NOTIFY, insurance_fen: fen(400) }),
      },
      { name: 'already-done', amount: 1000, make: withUrl, state: 'SUCCESS' },
      { name: 'already-done-partial', amount: 200, make: withUrl, state: 'SUCCESS' },
      { name: 'failed', amount: 1000, make: withUrl, state: 'FAILED' },
      ...Array.from({ length: 6 }, (_, k) => filler(k + 8)),
    ];

    for (const mode of MODES) {
      it(`${mode}: ${CASES.length} refunds completed, each trade's refunded total, closing and notification as the one-row statement`, async () => {
        const tag = `CP${mode === 'alone' ? 'A' : 'B'}-`;
        const trades: Trade[] = [];
        const refunds: Refund[] = [];
        for (const c of CASES) {
          const no = `${tag}${c.name}`;
          const t = await (c.make ?? ((n: string) => makeTrade(n)))(no);
          await c.earlier?.(t);
          const r = await reserveEarlier(t, `RC-${c.name}`, c.amount);
          if (c.state === 'SUCCESS')
            assert.ok(await setupRefunds.complete(r, 'CR-before', new Date(T0 - 60_000)));
          if (c.state === 'FAILED') assert.ok(await setupRefunds.fail(r, 'DECLINED', new Date(T0 - 60_000)));
          trades.push(await tradeRow(t.id));
          refunds.push(await refundRow(r.id));
        }
        const notesBefore = await Promise.all(trades.map((t) => notificationsOf(t.id)));
        const nowOf = (i: number) => new Date(T0 + 3_600_000 + i * 1000 + 3);
        const channelNo = (i: number) => `CR-${tag}${i}`;

        const repo = new RefundRepository(store.db);
        const got = await issue(
          mode,
          refunds.map((r, i) => () => repo.complete(r, channelNo(i), nowOf(i))),
        );

        for (let i = 0; i < CASES.length; i++) {
          const c = CASES[i] as CompleteCase;
          const t = trades[i] as Trade;
          const r = refunds[i] as Refund;
          const what = `call ${i} (${c.name})`;
          const tNow = await tradeRow(t.id);
          const rNow = await refundRow(r.id);
          const notes = await notificationsOf(t.id);
          const earlierNotes = notesBefore[i] as Awaited<ReturnType<typeof notificationsOf>>;
          if (c.state) {
            assert.equal(got[i], undefined, `${what}: completed a refund that was ${c.state}`);
            assert.deepEqual(tNow, t, `${what}: the trade changed`);
            assert.deepEqual(rNow, r, `${what}: the refund changed`);
            assert.deepEqual(notes, earlierNotes, `${what}: notified`);
            continue;
          }
          const now = nowOf(i);
          const closes = t.refunded_fen + c.amount === t.total_fen - t.insurance_fen;
          assert.ok(got[i], `${what}: not completed`);
          // The caller gets the trade as the statement left it, and that is the stored row.
          assert.deepEqual(got[i], tNow, what);
          assert.deepEqual(
            tNow,
            {
              ...t,
              refunded_fen: t.refunded_fen + c.amount,
              status: closes ? 'TRADE_CLOSED' : 'TRADE_SUCCESS',
              closed_at: closes ? now : null,
              updated_at: now,
            },
            `${what}: the trade`,
          );
          assert.deepEqual(
            rNow,
            {
              ...r,
              status: 'SUCCESS',
              channel_refund_no: channelNo(i),
              updated_at: now,
              finished_at: now,
              lease_until: null,
            },
            `${what}: the refund`,
          );
          assert.deepEqual(notes.slice(0, earlierNotes.length), earlierNotes);
          const added = notes.slice(earlierNotes.length);
          if (closes && t.notify_url !== null) {
            assert.equal(added.length, 1, `${what}: ${added.length} notifications`);
            const n = added[0];
            assert.equal(n?.trade_id, t.id);
            assert.equal(n?.app_id, APP);
            assert.equal(n?.url, NOTIFY);
            assert.equal(n?.trade_status, 'TRADE_CLOSED');
            assert.equal(n?.status, 'PENDING');
            assert.equal(n?.attempts, 0);
            assert.equal(n?.created_at.getTime(), now.getTime());
            assert.equal(n?.next_attempt_at.getTime(), now.getTime());
            assert.match(n?.notify_id ?? '', /^[0-9a-f]{32}$/);
          } else assert.equal(added.length, 0, `${what}: ${added.length} notifications`);
        }
        assertRan(mode, repo.batchStats().complete, CASES.length);
      });
    }

    for (const mode of MODES) {
      it(`${mode}: two refunds of one trade completed in one burst: both applied, one after the other; one refund twice: once`, async () => {
        const tag = `CS${mode === 'alone' ? 'A' : 'B'}-`;
        const fillers = [await withUrl(`${tag}f0`), await withUrl(`${tag}f1`), await withUrl(`${tag}f2`)];
        const closing: Trade[] = [];
        const partial: Trade[] = [];
        for (let k = 0; k < 4; k++) closing.push(await withUrl(`${tag}close${k}`));
        for (let k = 0; k < 2; k++) partial.push(await withUrl(`${tag}part${k}`));
        const twice: Trade[] = [];
        for (let k = 0; k < 3; k++) twice.push(await withUrl(`${tag}twice${k}`));
        const reserve = async (t: Trade, no: string, amount: number) =>
          refundRow((await reserveEarlier(t, no, amount)).id);
        const items: Array<{ t: Trade; r: Refund; amount: number }> = [];
        const add = async (t: Trade, no: string, amount: number) =>
          items.push({ t, r: await reserve(t, no, amount), amount });
        for (const [k, t] of fillers.entries()) await add(t, `RC-f${k}`, 100);
        for (const t of closing) await add(t, 'RC-a', 300);
        for (const t of partial) await add(t, 'RC-a', 200);
        for (const t of twice) await add(t, 'RC-a', 400);
        for (const t of closing) await add(t, 'RC-b', 700);
        for (const t of partial) await add(t, 'RC-b', 300);
        // The same PROCESSING refund once more (as two callers holding it would).
        for (const x of items.filter((x) => twice.includes(x.t))) items.push({ ...x });
        const nowOf = (i: number) => new Date(T0 + 7_200_000 + i * 1000);

        const repo = new RefundRepository(store.db);
        const got = await issue(
          mode,
          items.map(
            ({ r }, i) =>
              () =>
                repo.complete(r, `CR-${tag}${i}`, nowOf(i)),
          ),
        );

        got.forEach((g, i) => {
          if (!twice.includes(items[i]?.t as Trade)) assert.equal(g?.id, items[i]?.t.id, `call ${i}`);
        });
        for (const t of [...closing, ...partial]) {
          const mine = items.map((it, i) => ({ ...it, g: got[i] as Trade })).filter((x) => x.t.id === t.id);
          assert.equal(mine.length, 2);
          const total = mine.reduce((sum, x) => sum + x.amount, 0);
          const row = await tradeRow(t.id);
          assert.equal(row.refunded_fen, total, `${t.out_trade_no}: both applied`);
          // One statement after the other: one answer shows its own amount only, the other the sum.
          const lastOne = mine.find((x) => x.g.refunded_fen === total);
          const firstOne = mine.find((x) => x.g.refunded_fen !== total);
          assert.ok(
            lastOne && firstOne,
            `${t.out_trade_no}: ${JSON.stringify(mine.map((x) => x.g.refunded_fen))}`,
          );
          assert.equal(firstOne.g.refunded_fen, firstOne.amount, 'the first answer is its own amount only');
          assert.deepEqual(lastOne.g, row);
          const closes = total === 1000;
          assert.equal(row.status, closes ? 'TRADE_CLOSED' : 'TRADE_SUCCESS');
          assert.equal(firstOne.g.status, 'TRADE_SUCCESS');
          const closedAt = row.closed_at;
          if (closes) assert.equal(closedAt?.getTime(), lastOne.g.updated_at.getTime());
          else assert.equal(closedAt, null);
          const added = (await notificationsOf(t.id)).filter((n) => n.trade_status === 'TRADE_CLOSED');
          assert.equal(added.length, closes ? 1 : 0, `${t.out_trade_no}: ${added.length} notifications`);
          for (const x of mine) assert.equal((await refundRow(x.r.id)).status, 'SUCCESS');
        }
        for (const t of twice) {
          const mine = items.map((it, i) => ({ ...it, i, g: got[i] })).filter((x) => x.t.id === t.id);
          assert.equal(mine.length, 2);
          const done = mine.filter((x) => x.g !== undefined);
          assert.equal(done.length, 1, `${t.out_trade_no}: completed ${done.length} times`);
          const row = await tradeRow(t.id);
          assert.equal(row.refunded_fen, 400, `${t.out_trade_no}: applied twice`);
          assert.deepEqual(done[0]?.g, row);
          const r = await refundRow(mine[0]?.r.id as number);
          assert.equal(r.status, 'SUCCESS');
          assert.equal(
            r.channel_refund_no,
            `CR-${tag}${done[0]?.i}`,
            'the refund has the other call’s answer',
          );
        }
        for (const t of fillers) assert.equal((await tradeRow(t.id)).refunded_fen, 100);
        assertRan(mode, repo.batchStats().complete, items.length);
      });
    }
  });

  describe('byOutTradeNo', () => {
    /**
     * The read's batcher's stats: batchStats().read where the repository reports it, else the batcher itself
     * (TradeRepository.batchStats() does not list the read yet).
     */
    const readStats = (repo: TradeRepository): Stats =>
      (repo.batchStats() as Record<string, Stats>)['read'] ??
      (repo as unknown as { reads: { stats: Stats } }).reads.stats;
    /** Trades of many shapes, and order numbers an array literal must quote. */
    const NUMBERS = [
      'RD-waiting',
      'RD-paid',
      'RD-closed',
      'RD-notify',
      'RD-nopay',
      'RD-insured',
      'RD-twin',
      ...AWKWARD.map((a) => `RD ${a}`),
      'NULL',
      '',
      'q"x',
    ];
    let known: string[] = [];

    before(async () => {
      for (const no of NUMBERS) {
        if (no === 'RD-waiting') await makeTrade(no, {}, true);
        else if (no === 'RD-closed')
          await makeTrade(
            no,
            { status: 'TRADE_CLOSED', closed_at: new Date(T0), cancel_action: 'close', extra: '{"a":1}' },
            true,
          );
        else if (no === 'RD-notify') await makeTrade(no, { notify_url: 'https://his.example/n?a=1&b=2' });
        else if (no === 'RD-nopay') await makeTrade(no, { pay_type: null, body: 'b,o"d{y}' });
        else if (no === 'RD-insured') await makeTrade(no, { insurance_fen: fen(333), trade_detail: '[1,2]' });
        else await makeTrade(no);
      }
      // The same number in the other app, and a number only there.
      await makeTrade('RD-twin', { app_id: APP2, total_fen: fen(42) });
      await makeTrade('RD-other-app', { app_id: APP2 });
      // A reservation, so that not every defaulted column is zero.
      await reserveEarlier((await tradeByNo(APP, 'RD-paid')) as Trade, 'RQ-read', 123);
      known = NUMBERS;
    });

    for (const mode of MODES) {
      it(`${mode}: every caller gets the stored row of its number (or undefined), as selectAll reads it`, async () => {
        const unknown = ['RD-nope', 'RD-other-app', 'rd-paid', 'RD-paid ', 'null', '{}', 'RD a,b,c'];
        const order: string[] = [];
        for (let i = 0; i < known.length; i++) {
          order.push(known[i] as string);
          if (i % 3 === 1) order.push(unknown[i % unknown.length] as string);
          if (i % 5 === 2) order.push('RD-paid', 'RD-twin');
        }
        order.push(...unknown, 'RD-paid', 'NULL');
        const expected = new Map<string, Trade | undefined>();
        for (const no of order) expected.set(no, await tradeByNo(APP, no));
        assert.equal(expected.get('RD-other-app'), undefined);
        assert.equal(expected.get('RD-twin')?.app_id, APP);

        const repo = new TradeRepository(store.db);
        const got = await issue(
          mode,
          order.map((no) => () => repo.byOutTradeNo(APP, no)),
        );
        order.forEach((no, i) =>
          assert.deepEqual(got[i], expected.get(no), `call ${i} (${JSON.stringify(no)})`),
        );
        assert.ok(order.length >= 40, `${order.length} reads`);
        assertRan(mode, readStats(repo), order.length);
      });
    }

    it('a read issued right after a write resolved sees the write, in a batch', async () => {
      const repo = new TradeRepository(store.db);
      const writer = new TradeRepository(store.db);
      const noise: Array<Promise<unknown>> = [];
      for (let k = 0; k < 8; k++) {
        const no = `RW-${k}`;
        const { trade } = await writer.insertNewOrGet(fields(no));
        // Reads of other numbers first, so that this one waits for (and goes in) a batch.
        for (const other of known.slice(0, 6)) noise.push(repo.byOutTradeNo(APP, other));
        const seen = await repo.byOutTradeNo(APP, no);
        assert.deepEqual(seen, trade, `${no}: the insert not seen`);
        const paid = await writer.markPaid(trade.id, paidInfo(no), new Date());
        for (const other of known.slice(6, 12)) noise.push(repo.byOutTradeNo(APP, other));
        const seenPaid = await repo.byOutTradeNo(APP, no);
        assert.equal(seenPaid?.status, 'TRADE_SUCCESS', `${no}: the payment not seen`);
        assert.deepEqual(seenPaid, paid);
      }
      await Promise.all(noise);
      const s = readStats(repo);
      assert.equal(s.items, 8 * 2 * 7);
      assert.equal(s.retried, 0);
      assert.ok(s.items > s.statements, `no batch formed: ${JSON.stringify(s)}`);
    });
  });

  describe('the simulator’s refund', () => {
    const MERCHANT = '2088000000000777';
    const MERCHANT2 = '2088000000000778';
    let tick = 0;
    /** A clock a second further on each call: every refund has its own time. */
    const clock: Clock = { now: () => new Date(Date.UTC(2026, 11, 7, 3, 0, 0) + ++tick * 1000) };
    const code = (rule: string) => `28651234567890${'12'}${rule}`;
    let setupSim: SimulatorProvider;
    before(() => {
      setupSim = new SimulatorProvider({ db: store.db, clock, publicBaseUrl: 'http://127.0.0.1:1' });
    });
    const simPay = async (outTradeNo: string, amount = 1000, rule = '00', merchant = MERCHANT) => {
      const a = await setupSim.barcodePay({
        merchant,
        outTradeNo,
        payType: 'alipay',
        amountFen: fen(amount),
        authCode: code(rule),
        subject: outTradeNo,
      });
      assert.equal(a.result, rule === '00' ? 'SUCCESS' : rule === '02' ? 'USER_PAYING' : 'FAIL', outTradeNo);
    };
    const simRefundEarlier = async (outTradeNo: string, outRequestNo: string, amount: number) => {
      const a = await setupSim.refund({
        merchant: MERCHANT,
        outTradeNo,
        outRequestNo,
        amountFen: fen(amount),
      });
      assert.equal(a.result, 'SUCCESS', `earlier refund ${outTradeNo}/${outRequestNo}`);
    };
    const simTrade = (merchant: string, outTradeNo: string) =>
      store.db
        .selectFrom('sim_trades')
        .selectAll()
        .where('merchant', '=', merchant)
        .where('out_trade_no', '=', outTradeNo)
        .executeTakeFirst();
    const simRefunds = (merchant: string, outTradeNo: string) =>
      store.db
        .selectFrom('sim_refunds')
        .selectAll()
        .where('merchant', '=', merchant)
        .where('out_trade_no', '=', outTradeNo)
        .orderBy('created_at')
        .orderBy('out_request_no')
        .execute();
    const simLedger = (merchant: string, outTradeNo: string) =>
      store.db
        .selectFrom('sim_ledger')
        .selectAll()
        .where('merchant', '=', merchant)
        .where('out_trade_no', '=', outTradeNo)
        .orderBy('id')
        .execute();
    const booksOf = async (outTradeNo: string) => ({
      trade: await simTrade(MERCHANT, outTradeNo),
      refunds: await simRefunds(MERCHANT, outTradeNo),
      ledger: await simLedger(MERCHANT, outTradeNo),
    });

    type SimExpect = 'refunded' | 'system-error' | 'repeat' | { code: string };
    interface SimCase {
      name: string;
      expect: SimExpect;
      /** Makes the case's simulator trade (default: paid at once, 1000 fen). */
      make?: (no: string) => Promise<void>;
      earlier?: (no: string) => Promise<void>;
      /** The request: its number, amount, reason, and (for an unknown trade) another order number. */
      call?: { req?: string; amount?: number; reason?: string; outTradeNo?: (no: string) => string };
    }
    const filler = (k: number): SimCase => ({
      name: `f${k}`,
      expect: 'refunded',
      call: { amount: k % 3 === 0 ? 1000 : 100 + k, req: AWKWARD[k] ?? `REQ-f${k}`, reason: `原因 ${k}` },
    });
    const CASES: SimCase[] = [
      { name: 'lead-0', expect: 'refunded', call: { amount: 100 } },
      { name: 'lead-1', expect: 'refunded', call: { amount: 1000 } },
      ...Array.from({ length: 6 }, (_, k) => filler(k)),
      {
        name: 'rest',
        expect: 'refunded',
        earlier: (no) => simRefundEarlier(no, 'E', 400),
        call: { amount: 600 },
      },
      {
        name: 'repeat-same-amount',
        expect: 'repeat',
        earlier: (no) => simRefundEarlier(no, 'E', 300),
        call: { req: 'E', amount: 300 },
      },
      {
        name: 'repeat-other-amount',
        expect: { code: 'REQUEST_AMOUNT_MISMATCH' },
        earlier: (no) => simRefundEarlier(no, 'E', 300),
        call: { req: 'E', amount: 200 },
      },
      {
        name: 'repeat-declined',
        expect: 'repeat',
        earlier: (no) => simRefundEarlier(no, 'E', 300),
        call: { req: 'E', amount: 300, reason: REFUND_RULES.DECLINED },
      },
      {
        name: 'repeat-of-full',
        expect: 'repeat',
        earlier: (no) => simRefundEarlier(no, 'E', 1000),
        call: { req: 'E', amount: 1000 },
      },
      { name: 'unknown', expect: { code: 'TRADE_NOT_EXIST' }, call: { outTradeNo: (no) => `${no}-NOPE` } },
      {
        name: 'other-merchant-only',
        expect: { code: 'TRADE_NOT_EXIST' },
        make: (no) => simPay(no, 1000, '00', MERCHANT2),
      },
      { name: 'above-amount', expect: { code: 'REFUND_AMOUNT_EXCEEDED' }, call: { amount: 1001 } },
      {
        name: 'above-rest',
        expect: { code: 'REFUND_AMOUNT_EXCEEDED' },
        earlier: (no) => simRefundEarlier(no, 'E', 700),
        call: { amount: 301 },
      },
      {
        name: 'refunded-trade',
        expect: { code: 'TRADE_STATUS_ERROR' },
        earlier: (no) => simRefundEarlier(no, 'E', 1000),
        call: { amount: 1 },
      },
      { name: 'waiting', expect: { code: 'TRADE_STATUS_ERROR' }, make: (no) => simPay(no, 1000, '02') },
      { name: 'closed', expect: { code: 'TRADE_STATUS_ERROR' }, make: (no) => simPay(no, 1000, '03') },
      { name: 'declined', expect: { code: 'REFUND_DECLINED' }, call: { reason: REFUND_RULES.DECLINED } },
      {
        name: 'declined-above-amount',
        expect: { code: 'REFUND_DECLINED' },
        call: { reason: REFUND_RULES.DECLINED, amount: 5000 },
      },
      {
        name: 'system-error-but-refunded',
        expect: 'system-error',
        call: { reason: REFUND_RULES.SYSTEM_ERROR_BUT_REFUNDED, amount: 250 },
      },
      ...Array.from({ length: 6 }, (_, k) => filler(k + 6)),
    ];

    for (const mode of MODES) {
      it(`${mode}: ${CASES.length} refunds at the simulator, each answered and booked as the one-row statement does`, async () => {
        const tag = `SR${mode === 'alone' ? 'A' : 'B'}-`;
        const nos = CASES.map((c) => `${tag}${c.name}`);
        for (const [i, c] of CASES.entries()) {
          await (c.make ?? ((no: string) => simPay(no)))(nos[i] as string);
          await c.earlier?.(nos[i] as string);
        }
        const inputs = CASES.map((c, i) => ({
          merchant: MERCHANT,
          outTradeNo: c.call?.outTradeNo?.(nos[i] as string) ?? (nos[i] as string),
          outRequestNo: c.call?.req ?? `REQ-${i}`,
          amountFen: fen(c.call?.amount ?? 100 + i),
          ...(c.call?.reason !== undefined ? { reason: c.call.reason } : {}),
        }));
        const before = await Promise.all(nos.map(booksOf));
        const others = await simTrade(MERCHANT2, `${tag}other-merchant-only`);

        const sim = new SimulatorProvider({ db: store.db, clock, publicBaseUrl: 'http://127.0.0.1:1' });
        const got: SimRefundAnswer[] = await issue(
          mode,
          inputs.map((input) => () => sim.refund(input)),
        );

        const refundNos = new Set<string>();
        for (let i = 0; i < CASES.length; i++) {
          const c = CASES[i] as SimCase;
          const input = inputs[i] as (typeof inputs)[number];
          const was = before[i] as Awaited<ReturnType<typeof booksOf>>;
          const books = await booksOf(nos[i] as string);
          const a = got[i] as SimRefundAnswer;
          const what = `call ${i} (${c.name}): ${JSON.stringify(a)}`;
          if (c.expect === 'refunded' || c.expect === 'system-error') {
            if (c.expect === 'refunded') assert.equal(a.result, 'SUCCESS', what);
            else assert.equal(a.result, 'SYSTEM_ERROR', what);
            const trade = was.trade;
            assert.ok(trade);
            const refunded = trade.refunded_fen + input.amountFen;
            assert.deepEqual(
              books.trade,
              {
                ...trade,
                refunded_fen: refunded,
                status: refunded === trade.amount_fen ? 'REFUNDED' : 'PAID',
              },
              `${what}: the trade`,
            );
            assert.equal(books.refunds.length, was.refunds.length + 1, `${what}: refunds`);
            const mine = books.refunds.find((r) => r.out_request_no === input.outRequestNo);
            assert.ok(mine, `${what}: no refund stored`);
            assert.equal(mine.amount_fen, input.amountFen);
            assert.ok(!refundNos.has(mine.refund_no), `${what}: another refund's number`);
            refundNos.add(mine.refund_no);
            if (a.result === 'SUCCESS') {
              assert.equal(a.refundNo, mine.refund_no, `${what}: not its own refund number`);
              assert.equal(a.createdAt.getTime(), mine.created_at.getTime());
            }
            assert.deepEqual(books.ledger.slice(0, was.ledger.length), was.ledger);
            const lines = books.ledger.slice(was.ledger.length);
            assert.equal(lines.length, 1, `${what}: ${lines.length} ledger lines`);
            assert.equal(lines[0]?.entry, 'refund');
            assert.equal(lines[0]?.amount_fen, -input.amountFen);
            assert.equal(lines[0]?.created_at.getTime(), mine.created_at.getTime());
          } else {
            if (c.expect === 'repeat') {
              const prior = was.refunds.find((r) => r.out_request_no === input.outRequestNo);
              assert.ok(prior);
              assert.ok(a.result === 'SUCCESS', what);
              assert.equal(a.refundNo, prior.refund_no, `${what}: not the earlier refund number`);
              assert.equal(a.createdAt.getTime(), prior.created_at.getTime());
            } else {
              assert.ok(a.result === 'FAIL', what);
              assert.equal(a.code, c.expect.code, what);
            }
            assert.deepEqual(books, was, `${what}: something was booked`);
          }
        }
        assert.deepEqual(await simTrade(MERCHANT2, `${tag}other-merchant-only`), others);
        assertRan(mode, sim.batchStats().refund, CASES.length);
      });
    }

    for (const mode of MODES) {
      it(`${mode}: two refunds of one simulator trade in one burst: both if they fit, else exactly one`, async () => {
        const tag = `SS${mode === 'alone' ? 'A' : 'B'}-`;
        const groups = { fit: 3, one: 3, filler: 4 };
        const nos = (g: keyof typeof groups) => Array.from({ length: groups[g] }, (_, k) => `${tag}${g}${k}`);
        for (const g of Object.keys(groups) as Array<keyof typeof groups>)
          for (const no of nos(g)) await simPay(no);
        const req = (outTradeNo: string, outRequestNo: string, amount: number) => ({
          merchant: MERCHANT,
          outTradeNo,
          outRequestNo,
          amountFen: fen(amount),
        });
        const f = nos('filler');
        const inputs = [
          req(f[0] as string, 'R', 100),
          req(f[1] as string, 'R', 100),
          ...nos('fit').map((no) => req(no, 'A', 300)),
          ...nos('one').map((no) => req(no, 'A', 600)),
          ...f.slice(2).map((no) => req(no, 'R', 100)),
          ...nos('fit').map((no) => req(no, 'B', 700)),
          ...nos('one').map((no) => req(no, 'B', 600)),
        ];
        const sim = new SimulatorProvider({ db: store.db, clock, publicBaseUrl: 'http://127.0.0.1:1' });
        const got = await issue(
          mode,
          inputs.map((input) => () => sim.refund(input)),
        );
        const of = (no: string) => got.filter((_, i) => inputs[i]?.outTradeNo === no);

        for (const no of f) assert.equal(of(no)[0]?.result, 'SUCCESS');
        for (const no of nos('fit')) {
          const [a, b] = of(no);
          assert.ok(a?.result === 'SUCCESS' && b?.result === 'SUCCESS', `${no}: ${JSON.stringify([a, b])}`);
          assert.notEqual(a.refundNo, b.refundNo);
          const t = await simTrade(MERCHANT, no);
          assert.equal(t?.refunded_fen, 1000);
          assert.equal(t?.status, 'REFUNDED');
          assert.equal((await simRefunds(MERCHANT, no)).length, 2);
          const lines = (await simLedger(MERCHANT, no)).filter((l) => l.entry === 'refund');
          assert.deepEqual(
            lines.map((l) => l.amount_fen).sort((x, y) => x - y),
            [-700, -300],
          );
        }
        for (const no of nos('one')) {
          const answers = of(no);
          assert.equal(
            answers.filter((a) => a.result === 'SUCCESS').length,
            1,
            `${no}: ${JSON.stringify(answers)}`,
          );
          const lost = answers.find((a) => a.result !== 'SUCCESS');
          assert.ok(lost?.result === 'FAIL');
          assert.equal(lost.code, 'REFUND_AMOUNT_EXCEEDED');
          assert.equal((await simTrade(MERCHANT, no))?.refunded_fen, 600);
          assert.equal((await simRefunds(MERCHANT, no)).length, 1);
          assert.equal((await simLedger(MERCHANT, no)).filter((l) => l.entry === 'refund').length, 1);
        }
        assertRan(mode, sim.batchStats().refund, inputs.length);
      });
    }

    for (const mode of MODES) {
      it(`${mode}: one request number twice in a burst at the simulator: one refund, the same answer twice`, async () => {
        const tag = `SD${mode === 'alone' ? 'A' : 'B'}-`;
        const f = Array.from({ length: 4 }, (_, k) => `${tag}f${k}`);
        const same = Array.from({ length: 3 }, (_, k) => `${tag}same${k}`);
        for (const no of [...f, ...same]) await simPay(no);
        const req = (outTradeNo: string, outRequestNo: string, amount: number) => ({
          merchant: MERCHANT,
          outTradeNo,
          outRequestNo,
          amountFen: fen(amount),
        });
        const inputs = [
          req(f[0] as string, 'R', 100),
          req(f[1] as string, 'R', 100),
          ...same.map((no) => req(no, 'S', 500)),
          ...f.slice(2).map((no) => req(no, 'R', 100)),
          ...same.map((no) => req(no, 'S', 500)),
        ];
        const sim = new SimulatorProvider({ db: store.db, clock, publicBaseUrl: 'http://127.0.0.1:1' });
        const got = await issue(
          mode,
          inputs.map((input) => () => sim.refund(input)),
        );
        const of = (no: string) => got.filter((_, i) => inputs[i]?.outTradeNo === no);

        for (const no of f) assert.equal(of(no)[0]?.result, 'SUCCESS');
        for (const no of same) {
          const [a, b] = of(no);
          assert.ok(a?.result === 'SUCCESS' && b?.result === 'SUCCESS', `${no}: ${JSON.stringify([a, b])}`);
          assert.equal(b.refundNo, a.refundNo, 'the repeat got another refund');
          assert.equal(b.createdAt.getTime(), a.createdAt.getTime());
          assert.equal((await simTrade(MERCHANT, no))?.refunded_fen, 500);
          const stored = await simRefunds(MERCHANT, no);
          assert.equal(stored.length, 1);
          assert.equal(stored[0]?.refund_no, a.refundNo);
          assert.equal((await simLedger(MERCHANT, no)).filter((l) => l.entry === 'refund').length, 1);
        }
        assertRan(mode, sim.batchStats().refund, inputs.length, false);
      });
    }
  });
});
