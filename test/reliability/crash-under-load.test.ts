import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { openStore, type Store } from '../../src/store/db.js';
import { fen, formatFen } from '../../src/domain/money.js';
import { channelDoubles, readBooks } from '../support/books.js';
import { TEST_DB } from '../support/db.js';
import { authCode, orderNo, postRaw, xmlDoc, type OfflineAnswer } from '../support/platform.js';
import { HospayHome, randomPort, sleep, type HospayProcess } from '../support/spawn.js';
import { load } from '../support/storm.js';

/**
 * Reliability battery, item 3: `hospay serve` is killed with SIGKILL at random moments while concurrent barcode
 * pays and refunds (new and repeated request numbers) are in flight, many times over, and started again. Then:
 * every request that was answered as done is stored exactly as answered, and the simulator's books show no
 * doubled charge or refund. Afterwards the HIS does what it must with what went unanswered (sends the same
 * request again), and the channel's money and the platform's must agree exactly.
 */

const ROUNDS = Number(process.env['HOSPAY_CRASH_ROUNDS'] ?? 10);
const WORKERS = 12;
const LEASE_MS = 2_000;

interface Sent {
  round: number;
  kind: 'pay' | 'refund';
  order: string;
  fields: Record<string, string>;
  /** null: no answer (the server died, or was not there). */
  answer: OfflineAnswer | null;
}

/** Each request number always asks for the same amount: R0 1.00 … R4 5.00 (15.00 in all, more than most pays). */
const refundFen = (no: string) => (Number(no.slice(1)) + 1) * 100;

describe(`reliability: kill -9 of the server under load (${TEST_DB})`, () => {
  let home: HospayHome;
  let server: HospayProcess | null = null;
  const port = randomPort();
  const base = `http://127.0.0.1:${port}`;

  before(async () => {
    home = await HospayHome.create('hospay-kill', {
      env: {
        LOG_LEVEL: 'warn',
        PORT: String(port),
        PUBLIC_BASE_URL: base,
        HOSPAY_BARCODE_POLL_INTERVAL: '20ms',
        // A refund cut off by the kill is taken up again by its repeat once this lease has run out.
        HOSPAY_JOB_LEASE: `${LEASE_MS}ms`,
        HOSPAY_RECONCILE_AT: 'off',
      },
    });
  });
  after(async () => {
    await home.close();
  });

  async function start(): Promise<number> {
    const t0 = performance.now();
    server = await home.start(['serve'], { timeoutMs: 90_000, pollMs: 50 });
    return Math.round(performance.now() - t0);
  }
  const out = () => server?.out() ?? '';

  async function kill(): Promise<void> {
    await server?.stop('SIGKILL');
    server = null;
  }

  async function stop(): Promise<void> {
    await server?.stop('SIGTERM');
    server = null;
  }

  it(`${ROUNDS} rounds of load and kill -9: every acknowledged payment and refund is stored as answered, nothing charged or refunded twice`, async (ctx) => {
    const sent: Sent[] = [];
    const token = { value: '' };
    const killsAfterMs: number[] = [];
    const startMs: number[] = [];
    const payFields = new Map<string, Record<string, string>>();
    const call = (name: string, fields: Record<string, string>) =>
      postRaw(`${base}/offline/${name}`, xmlDoc({ AccessToken: token.value, ...fields }));

    for (let round = 0; round < ROUNDS; round++) {
      startMs.push(await start());
      if (!token.value) {
        const m = /AccessToken: (\S+)/.exec(out());
        assert.ok(m?.[1], out());
        token.value = m[1];
      }
      const step = async () => {
        const acked = sent.filter((s) => s.kind === 'pay' && s.answer?.rr.IsSuccess === '1');
        const unanswered = sent.filter((s) => s.kind === 'pay' && s.answer === null);
        const r = Math.random();
        let entry: Sent;
        if (r < 0.45 || acked.length === 0) {
          // A new payment: paid at once, after the payer's password (polled), or after an unclear answer.
          const rule = r < 0.3 ? '00' : r < 0.38 ? '01' : '04';
          const order = orderNo('MZ');
          const fields = {
            OutTradeNo: order,
            AuthCode: authCode(rule),
            TotalAmount: formatFen(fen(100 + Math.floor(Math.random() * 1900))),
            Caption: '门诊缴费',
            PatientName: '张三',
            InhospitalNo: 'MZ0001',
            OrderType: 'TREATMENT',
            Cnt: '3',
          };
          payFields.set(order, fields);
          entry = { round, kind: 'pay', order, fields, answer: null };
        } else if (r < 0.55 && unanswered.length) {
          // The HIS sends a request that got no answer again, unchanged.
          const u = unanswered[Math.floor(Math.random() * unanswered.length)] as Sent;
          entry = { round, kind: 'pay', order: u.order, fields: u.fields, answer: null };
        } else {
          // A refund of an acknowledged payment; request numbers recur, new and repeated at once.
          const p = acked[Math.floor(Math.random() * acked.length)] as Sent;
          const no = `R${Math.floor(Math.random() * 5)}`;
          entry = {
            round,
            kind: 'refund',
            order: p.order,
            fields: {
              TradeNo: p.answer?.result.PlatformTradeNo ?? '',
              RefundAmount: formatFen(fen(refundFen(no))),
              OutRequestNo: no,
              OutTradeNo: p.order,
              TotalAmount: p.fields['TotalAmount'] ?? '',
            },
            answer: null,
          };
        }
        sent.push(entry);
        // Throws once the server is gone: that worker stops.
        entry.answer = await call(
          entry.kind === 'pay' ? 'FWC_IF_Barcode_Pay' : 'FWC_IF_Barcode_Pay_Refund',
          entry.fields,
        );
      };
      const workers = load(WORKERS, step);
      const killAfter = 200 + Math.floor(Math.random() * 1300);
      killsAfterMs.push(killAfter);
      await sleep(killAfter);
      await kill();
      await workers.stop();
    }

    // ---- after the last kill: start again; first, what was acknowledged must be there as answered -----
    startMs.push(await start());
    const q = (no: string) => call('FWC_IF_Barcode_Pay_Query', { OutTradeNo: no });
    let store: Store | null = null;
    try {
      const problems: string[] = [];
      const ackedPays = sent.filter((s) => s.kind === 'pay' && s.answer?.rr.IsSuccess === '1');
      const ackedRefunds = sent.filter((s) => s.kind === 'refund' && s.answer?.rr.IsSuccess === '1');
      // Read through the running server (the embedded database belongs to it): the query interface and, for
      // refunds, a repeat of the same request, which must answer the stored result without moving money.
      for (const s of ackedPays) {
        const a = s.answer as OfflineAnswer;
        const now = await q(s.order);
        if (now.result.PlatformTradeNo !== a.result.PlatformTradeNo)
          problems.push(`${s.order}: another trade`);
        if (now.result.TradeNo !== a.result.TradeNo)
          problems.push(`${s.order}: channel trade ${now.result.TradeNo}`);
        if (now.result.TotalAmount !== a.result.TotalAmount) problems.push(`${s.order}: amount changed`);
        if (!['TRADE_SUCCESS', 'TRADE_CLOSED'].includes(now.result.TradeStatus ?? ''))
          problems.push(`${s.order}: acknowledged as paid, now ${now.result.TradeStatus}`);
        if (now.result.PaymentDateTime !== a.result.PaymentDateTime)
          problems.push(`${s.order}: payment time changed`);
      }
      for (const s of ackedRefunds) {
        const again = await call('FWC_IF_Barcode_Pay_Refund', s.fields);
        if (again.rr.IsSuccess !== '1' || again.result.RefundChange !== 'N')
          problems.push(
            `${s.order} ${s.fields['OutRequestNo']}: acknowledged refund now answers ${again.rr.SubCode} ${again.result.RefundChange}`,
          );
        if (Number(again.result.RefundFee) < Number(s.answer?.result.RefundFee))
          problems.push(`${s.order}: refunded total went down`);
      }
      assert.deepEqual(problems, [], 'acknowledged writes after the last restart');

      // ---- then the HIS catches up on everything unanswered; both books must agree exactly ---------------
      const unsettled = (s: Sent) =>
        s.answer === null ||
        s.answer.rr.IsSuccess === '2' ||
        ['USER_PAYING', 'REFUND_PROCESSING', 'SYSTEM_ERROR'].includes(s.answer.rr.SubCode);
      let resent = 0;
      for (const o of new Set(sent.filter((s) => s.kind === 'pay' && unsettled(s)).map((s) => s.order))) {
        for (let i = 0; i < 5; i++) {
          resent++;
          const a = await call('FWC_IF_Barcode_Pay', payFields.get(o) ?? {});
          if (a.rr.IsSuccess === '1' || a.result.TradeStatus === 'TRADE_CLOSED') break;
          await sleep(100);
        }
      }
      const refundKeys = new Set(
        sent.filter((s) => s.kind === 'refund' && unsettled(s)).map((s) => JSON.stringify(s.fields)),
      );
      for (const key of refundKeys) {
        for (let i = 0; i < 10; i++) {
          resent++;
          const a = await call('FWC_IF_Barcode_Pay_Refund', JSON.parse(key) as Record<string, string>);
          if (a.rr.SubCode !== 'REFUND_PROCESSING') break;
          await sleep(LEASE_MS / 2);
        }
      }
      for (const o of payFields.keys()) await q(o);

      const rest: string[] = [];
      // Stopped cleanly, the books are read straight from the database (the embedded one is the server's).
      await stop();
      store = await openStore(home.store);
      // The channel's books: never two charges for one order, never a refund request made twice.
      const doubled = await channelDoubles(store.db);
      for (const d of doubled.charges) rest.push(`${d.out_trade_no}: charged ${d.charges} times`);
      for (const d of doubled.refunds) rest.push(`${d}: refunds at the channel doubled`);

      const books = await readBooks(store.db);
      for (const b of books) {
        if (b.charged_fen !== (b.paid ? b.total_fen : 0))
          rest.push(`${b.out_trade_no} ${b.status}: charged ${b.charged_fen}, paid=${b.paid} ${b.total_fen}`);
        if (b.channel_refunded_fen !== b.refunded_fen || b.refunds_ok_fen !== b.refunded_fen)
          rest.push(
            `${b.out_trade_no}: channel refunded ${b.channel_refunded_fen}, platform ${b.refunded_fen}`,
          );
        if (b.reserved_fen !== b.refunded_fen)
          rest.push(`${b.out_trade_no}: ${b.reserved_fen - b.refunded_fen} still reserved`);
        if (b.refunded_fen > b.total_fen) rest.push(`${b.out_trade_no}: refunded more than paid`);
      }
      const totals = books.reduce(
        (s, b) => ({ charged: s.charged + b.charged_fen, refunded: s.refunded + b.channel_refunded_fen }),
        { charged: 0, refunded: 0 },
      );
      const count = (f: (s: Sent) => boolean) => sent.filter(f).length;
      ctx.diagnostic(
        `${ROUNDS} kills at ${killsAfterMs.join(', ')} ms into the load; restarts took ${startMs.join(', ')} ms`,
      );
      ctx.diagnostic(
        `${sent.length} requests (${count((s) => s.kind === 'pay')} pays, ${count((s) => s.kind === 'refund')} refunds): ` +
          `${ackedPays.length} pays and ${ackedRefunds.length} refunds acknowledged — all found as answered; ` +
          `${count((s) => s.answer === null)} cut off by a kill, ${count((s) => s.answer !== null && unsettled(s))} ` +
          `answered "unknown / in progress"; ${resent} requests sent again afterwards`,
      );
      ctx.diagnostic(
        `books after catching up: ${books.length} trades, the channel charged ${formatFen(fen(totals.charged))} and ` +
          `refunded ${formatFen(fen(totals.refunded))} yuan; doubled charges ${doubled.charges.length}, doubled refunds ` +
          `${doubled.refunds.length}, disagreements ${rest.length}`,
      );
      assert.deepEqual(rest, [], 'the books agree once the HIS has caught up');
      assert.ok(ackedPays.length > ROUNDS, 'the load did pay');
    } finally {
      await store?.close();
      await kill();
    }
  });
});
