import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, TEST_DB, type TestDatabase } from '../support/db.js';
import { isCheckViolation, migrate, openStore, type Store } from '../../src/store/db.js';
import { TradeRepository } from '../../src/store/trades.js';
import { newTradeRow, type TradeRowFields } from '../../src/store/trade-row.js';
import { NonceReplayError, type GatewayNonce } from '../../src/store/nonces.js';
import { SimulatorProvider } from '../../src/simulator/provider.js';
import type { Clock } from '../../src/domain/clock.js';
import type { PaidInfo } from '../../src/domain/payment.js';
import { fen } from '../../src/domain/money.js';
import type { Trade } from '../../src/store/schema.js';

/**
 * Natural batching (src/store/batcher.ts) through the real repositories, on the database: many concurrent calls
 * issued in one synchronous loop (so that the statements after the first ones do form batches), then the
 * database itself is read to see that every row was written once, for the right caller, and that each caller got
 * its own outcome: its trade, its nonce replay, its constraint error.
 */
describe(`batched statements on the ${TEST_DB} database`, () => {
  const APP = 'hpbatch';
  let db: TestDatabase;
  let store: Store;

  let seq = 0;
  /** A barcode pay's trade as the payment path makes it (services/barcode-pay.ts), with its own numbers. */
  const fields = (outTradeNo: string, over: Partial<TradeRowFields> = {}): TradeRowFields => {
    seq++;
    const now = new Date(Date.UTC(2026, 11, 6, 8, 0, 0) + seq);
    return {
      trade_no: `HPB${String(seq).padStart(12, '0')}`,
      app_id: APP,
      out_trade_no: outTradeNo,
      kind: 'barcode',
      pay_type: 'alipay',
      channel: 'simulator',
      category: 'MZ',
      order_type: 'TREATMENT',
      total_fen: fen(100 + seq),
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
  const nonceOf = (nonce: string): GatewayNonce => ({
    appId: APP,
    nonce,
    expiresAt: new Date(Date.now() + 600_000),
    consumed: false,
  });

  const rowsLike = (prefix: string) =>
    store.db.selectFrom('trades').selectAll().where('out_trade_no', 'like', `${prefix}%`).execute();
  const rowOf = (outTradeNo: string) =>
    store.db
      .selectFrom('trades')
      .selectAll()
      .where('app_id', '=', APP)
      .where('out_trade_no', '=', outTradeNo)
      .executeTakeFirst();
  const noncesLike = (prefix: string) =>
    store.db.selectFrom('gateway_nonces').selectAll().where('nonce', 'like', `${prefix}%`).execute();

  /** Waiting trades made for a markPaid test (inserted one by one: not what is under test here). */
  const waitingTrades = async (
    prefix: string,
    n: number,
    over: Partial<TradeRowFields> = {},
  ): Promise<Trade[]> => {
    const repo = new TradeRepository(store.db);
    const out: Trade[] = [];
    for (let i = 0; i < n; i++) out.push((await repo.insertNewOrGet(fields(`${prefix}${i}`, over))).trade);
    return out;
  };
  const paidInfo = (tag: string, i: number): PaidInfo => ({
    channelTradeNo: `CT-${tag}-${i}`,
    paidAt: new Date(Date.UTC(2026, 11, 6, 9, 0, 0) + i * 1000),
    buyerLogonId: `b***${i}`,
    buyerUserId: `2088${String(i).padStart(6, '0')}`,
  });

  before(async () => {
    db = await freshDatabase();
    store = await openStore(db.store);
    await migrate(store.db);
    await store.db
      .insertInto('apps')
      .values({
        id: APP,
        name: 'Batch',
        hospital_id: null,
        token_hash: 'b'.repeat(64),
        status: 'active',
        categories: null,
        channel_map: '{}',
        created_at: new Date(),
      })
      .execute();
  });
  after(async () => {
    await store.close();
    await db.drop();
  });

  describe('the trade insert', () => {
    it('60 concurrent inserts of distinct order numbers: 60 rows, each caller its own, in batches', async () => {
      const repo = new TradeRepository(store.db);
      const given = Array.from({ length: 60 }, (_, i) => fields(`D60-${i}`));
      const pending = given.map((f) => repo.insertNewOrGet(f));
      const got = await Promise.all(pending);

      const rows = await rowsLike('D60-');
      assert.equal(rows.length, 60);
      const byNo = new Map(rows.map((r) => [r.out_trade_no, r]));
      for (let i = 0; i < 60; i++) {
        const f = given[i] as TradeRowFields;
        const { trade, inserted } = got[i] as { trade: Trade; inserted: boolean };
        assert.equal(inserted, true, `caller ${i}`);
        assert.equal(trade.out_trade_no, f.out_trade_no, `caller ${i} got another's trade`);
        assert.equal(trade.trade_no, f.trade_no);
        assert.equal(trade.total_fen, f.total_fen);
        const row = byNo.get(f.out_trade_no);
        assert.ok(row, `no row for ${f.out_trade_no}`);
        assert.equal(typeof trade.id, 'number');
        assert.equal(trade.id, row.id, `caller ${i}: the id of another row`);
        // The whole trade each caller got is the stored row, column by column.
        assert.deepEqual(trade, row, `caller ${i}`);
      }
      assert.equal(new Set(got.map((g) => g.trade.id)).size, 60);

      const s = repo.batchStats().insert;
      assert.equal(s.items, 60, 'every insert went through the batcher');
      assert.equal(s.retried, 0);
      assert.ok(s.items > s.statements, `no batch formed: ${JSON.stringify(s)}`);
    });

    it('insertOrGet with a whole row (newTradeRow) is batched the same way', async () => {
      const repo = new TradeRepository(store.db);
      const given = Array.from({ length: 20 }, (_, i) => newTradeRow(fields(`ROW-${i}`)));
      const pending = given.map((t) => repo.insertOrGet(t));
      const got = await Promise.all(pending);

      const rows = new Map((await rowsLike('ROW-')).map((r) => [r.out_trade_no, r]));
      assert.equal(rows.size, 20);
      got.forEach((g, i) => {
        assert.equal(g.inserted, true);
        assert.deepEqual(g.trade, rows.get(`ROW-${i}`), `caller ${i}`);
      });
      const s = repo.batchStats().insert;
      assert.equal(s.items, 20, 'every insert went through the batcher');
      assert.ok(s.items > s.statements, `no batch formed: ${JSON.stringify(s)}`);
    });

    it('one order number submitted 10 times among 30 others: one row, one caller inserted it', async () => {
      const repo = new TradeRepository(store.db);
      const DUP = 'DUP-1';
      // The repeated number first, then every 4th call: some go alone at once, the others wait in the queue.
      const given = Array.from({ length: 40 }, (_, i) => fields(i % 4 === 0 ? DUP : `DUPX-${i}`));
      const pending = given.map((f) => repo.insertNewOrGet(f));
      const got = await Promise.all(pending);

      const dupRows = await rowsLike(DUP);
      assert.equal(dupRows.length, 1);
      const stored = dupRows[0] as Trade;
      const dups = got.filter((_, i) => i % 4 === 0);
      assert.equal(dups.length, 10);
      assert.equal(dups.filter((g) => g.inserted).length, 1, 'exactly one caller inserted it');
      const winner = given.findIndex((_, i) => i % 4 === 0 && got[i]?.inserted);
      assert.equal(stored.trade_no, given[winner]?.trade_no, 'the row is the inserting caller’s');
      for (const g of dups) {
        assert.equal(g.trade.id, stored.id);
        assert.equal(g.trade.trade_no, stored.trade_no, 'the others got the stored trade');
        assert.deepEqual(g.trade, stored);
      }
      const others = got.filter((_, i) => i % 4 !== 0);
      assert.ok(others.every((g) => g.inserted));
      assert.equal((await rowsLike('DUPX-')).length, 30);
      const s = repo.batchStats().insert;
      assert.equal(s.items, 40);
      assert.ok(s.items > s.statements, `no batch formed: ${JSON.stringify(s)}`);
    });

    it('text that an array literal must quote is stored as given by a batch', async () => {
      const repo = new TradeRepository(store.db);
      const awkward = [
        'NULL',
        'null',
        '',
        ' padded ',
        'a,b',
        '{braces}',
        '{"k":"v","n":[1,2]}',
        'q"uote',
        'back\\slash',
        'back\\\\"both',
        'line\nbreak\ttab',
        '门诊缴费 张三',
        'emoji 😀',
        "apostrophe ' here",
        '\\N',
      ];
      const given = awkward.map((text, i) =>
        fields(`TXT-${i}`, {
          subject: text,
          body: text,
          patient_name: text,
          extra: text,
          trade_detail: i % 2 ? null : text,
          notify_url: i % 3 ? text : null,
        }),
      );
      // Two more first, so that all of the awkward ones wait and go in batches.
      const lead = [fields('TXT-lead-0'), fields('TXT-lead-1')].map((f) => repo.insertNewOrGet(f));
      const pending = given.map((f) => repo.insertNewOrGet(f));
      await Promise.all(lead);
      const got = await Promise.all(pending);

      for (let i = 0; i < given.length; i++) {
        const f = given[i] as TradeRowFields;
        const row = await rowOf(f.out_trade_no);
        assert.ok(row);
        for (const c of ['subject', 'body', 'patient_name', 'extra', 'trade_detail', 'notify_url'] as const) {
          assert.equal(row[c], f[c], `${f.out_trade_no}.${c}`);
          assert.equal(got[i]?.trade[c], f[c], `${f.out_trade_no}.${c} as answered`);
        }
      }
      const s = repo.batchStats().insert;
      assert.equal(s.retried, 0);
      assert.ok(s.statements < s.items, `no batch formed: ${JSON.stringify(s)}`);
    });

    it('a batch that fails on a CHECK: that caller gets the error, the 20 others are stored', async () => {
      const repo = new TradeRepository(store.db);
      // Not among the first two (they go alone at once): the bad row waits, and fails a batch.
      const BAD = 10;
      const given = Array.from({ length: 21 }, (_, i) =>
        fields(`CHK-${i}`, i === BAD ? { total_fen: fen(0) } : {}),
      );
      const pending = given.map((f) => repo.insertNewOrGet(f));
      const got = await Promise.allSettled(pending);

      for (let i = 0; i < 21; i++) {
        const r = got[i] as PromiseSettledResult<{ trade: Trade; inserted: boolean }>;
        if (i === BAD) {
          assert.equal(r.status, 'rejected');
          assert.ok(
            isCheckViolation((r as PromiseRejectedResult).reason),
            `not the database's CHECK error: ${String((r as PromiseRejectedResult).reason)}`,
          );
        } else {
          assert.equal(r.status, 'fulfilled', `caller ${i}: ${String((r as PromiseRejectedResult).reason)}`);
          assert.equal(r.value.inserted, true);
          assert.equal(r.value.trade.out_trade_no, `CHK-${i}`);
        }
      }
      const rows = await rowsLike('CHK-');
      assert.equal(rows.length, 20);
      assert.equal(await rowOf(`CHK-${BAD}`), undefined);
      for (const r of rows) {
        const i = given.findIndex((f) => f.out_trade_no === r.out_trade_no);
        const g = got[i] as PromiseFulfilledResult<{ trade: Trade }>;
        assert.equal(g.value.trade.id, r.id);
      }
      const s = repo.batchStats().insert;
      assert.ok(s.retried > 0, `the failed batch was not retried alone: ${JSON.stringify(s)}`);
      assert.ok(s.items > s.statements, `no batch formed: ${JSON.stringify(s)}`);
    });
  });

  describe('the trade insert with a gateway nonce', () => {
    it('40 concurrent inserts with distinct nonces all succeed, each nonce stored once', async () => {
      const repo = new TradeRepository(store.db);
      const given = Array.from({ length: 40 }, (_, i) => fields(`NN-${i}`));
      const nonces = given.map((_, i) => nonceOf(`NN-${i}`));
      const pending = given.map((f, i) => repo.insertNewOrGet(f, nonces[i]));
      const got = await Promise.all(pending);

      for (let i = 0; i < 40; i++) {
        assert.equal(got[i]?.inserted, true);
        assert.equal(got[i]?.trade.out_trade_no, `NN-${i}`);
        assert.equal(nonces[i]?.consumed, true);
      }
      const rows = await rowsLike('NN-');
      assert.equal(rows.length, 40);
      const ids = new Map(rows.map((r) => [r.out_trade_no, r.id]));
      got.forEach((g, i) => assert.equal(g.trade.id, ids.get(`NN-${i}`)));
      const stored = await noncesLike('NN-');
      assert.equal(stored.length, 40);
      assert.deepEqual(stored.map((n) => n.nonce).sort(), nonces.map((n) => n.nonce).sort());
      assert.ok(stored.every((n) => n.app_id === APP));
      const s = repo.batchStats().insertWithNonce;
      assert.equal(s.items, 40);
      assert.equal(s.retried, 0);
      assert.ok(s.items > s.statements, `no batch formed: ${JSON.stringify(s)}`);
      assert.equal(repo.batchStats().insert.items, 0);
    });

    for (const [a, b] of [
      [5, 12],
      [2, 3],
      [0, 1],
      [0, 9],
    ] as const) {
      it(`two requests sharing one nonce in a burst (calls ${a} and ${b} of 20): one succeeds, one is a replay`, async () => {
        const repo = new TradeRepository(store.db);
        const tag = `SH${a}x${b}-`;
        const given = Array.from({ length: 20 }, (_, i) => fields(`${tag}${i}`));
        const nonces = given.map((_, i) => nonceOf(i === a || i === b ? `${tag}shared` : `${tag}n${i}`));
        const pending = given.map((f, i) => repo.insertNewOrGet(f, nonces[i]));
        const got = await Promise.allSettled(pending);

        const pair = [got[a], got[b]] as Array<PromiseSettledResult<{ trade: Trade; inserted: boolean }>>;
        const ok = pair.filter((r) => r.status === 'fulfilled');
        const replays = pair.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        assert.equal(ok.length, 1, 'exactly one of the two succeeds');
        assert.equal(replays.length, 1);
        assert.ok(
          replays[0]?.reason instanceof NonceReplayError,
          `not a NonceReplayError: ${String(replays[0]?.reason)}`,
        );
        const loser = got[a]?.status === 'rejected' ? a : b;
        const winner = loser === a ? b : a;
        assert.equal(await rowOf(`${tag}${loser}`), undefined, 'the replay wrote its trade');
        assert.ok(await rowOf(`${tag}${winner}`));
        for (let i = 0; i < 20; i++) {
          if (i === a || i === b) continue;
          assert.equal(got[i]?.status, 'fulfilled', `caller ${i}`);
        }
        assert.equal((await rowsLike(tag)).length, 19);
        assert.equal((await noncesLike(tag)).length, 19);
        if (a >= 2) {
          const s = repo.batchStats().insertWithNonce;
          assert.ok(s.items > s.statements, `no batch formed: ${JSON.stringify(s)}`);
        }
      });
    }

    it('a nonce stored earlier: that request is a replay, the others of the burst succeed', async () => {
      const repo = new TradeRepository(store.db);
      const old = nonceOf('OLD-nonce');
      await repo.insertNewOrGet(fields('OLD-0'), old);
      assert.equal(old.consumed, true);

      const REPLAY = 7;
      const given = Array.from({ length: 20 }, (_, i) => fields(`OLDB-${i}`));
      const nonces = given.map((_, i) => (i === REPLAY ? nonceOf('OLD-nonce') : nonceOf(`OLDB-${i}`)));
      const before = { ...repo.batchStats().insertWithNonce };
      const pending = given.map((f, i) => repo.insertNewOrGet(f, nonces[i]));
      const got = await Promise.allSettled(pending);

      for (let i = 0; i < 20; i++) {
        const r = got[i];
        if (i === REPLAY) {
          assert.equal(r?.status, 'rejected');
          assert.ok(
            (r as PromiseRejectedResult).reason instanceof NonceReplayError,
            String((r as PromiseRejectedResult).reason),
          );
          assert.equal(nonces[i]?.consumed, false);
        } else {
          assert.equal(r?.status, 'fulfilled', `caller ${i}: ${String((r as PromiseRejectedResult).reason)}`);
          assert.equal(nonces[i]?.consumed, true);
        }
      }
      assert.equal(await rowOf(`OLDB-${REPLAY}`), undefined);
      assert.equal((await rowsLike('OLDB-')).length, 19);
      const s = repo.batchStats().insertWithNonce;
      assert.ok(
        s.items - before.items > s.statements - before.statements,
        `no batch formed: ${JSON.stringify(s)}`,
      );
      // The batch statement tells the replay apart by itself: no retry of the others needed.
      assert.equal(s.retried, before.retried);
    });

    it('a batch with nonces failing on a CHECK: nothing of it stays, each retried alone with its nonce', async () => {
      const repo = new TradeRepository(store.db);
      const BAD = 6;
      const given = Array.from({ length: 15 }, (_, i) =>
        fields(`NCHK-${i}`, i === BAD ? { status: 'NOT_A_STATUS' as unknown as Trade['status'] } : {}),
      );
      const nonces = given.map((_, i) => nonceOf(`NCHK-${i}`));
      const pending = given.map((f, i) => repo.insertNewOrGet(f, nonces[i]));
      const got = await Promise.allSettled(pending);

      for (let i = 0; i < 15; i++) {
        const r = got[i] as PromiseSettledResult<{ trade: Trade; inserted: boolean }>;
        if (i === BAD) {
          assert.equal(r.status, 'rejected');
          assert.ok(
            isCheckViolation((r as PromiseRejectedResult).reason),
            String((r as PromiseRejectedResult).reason),
          );
        } else {
          // Were the failed batch's nonces kept, these would now be taken for replays.
          assert.equal(r.status, 'fulfilled', `caller ${i}: ${String((r as PromiseRejectedResult).reason)}`);
          assert.equal(r.value.inserted, true);
        }
      }
      assert.equal((await rowsLike('NCHK-')).length, 14);
      const stored = await noncesLike('NCHK-');
      assert.equal(stored.length, 14);
      assert.ok(!stored.some((n) => n.nonce === `NCHK-${BAD}`), 'the failed request’s nonce was kept');
      assert.ok(repo.batchStats().insertWithNonce.retried > 0);
    });
  });

  describe('markPaid', () => {
    it('40 waiting trades paid concurrently: each paid with its own details, each caller its own trade', async () => {
      const waiting = await waitingTrades('PAY-', 40);
      const repo = new TradeRepository(store.db);
      const now = new Date();
      const pending = waiting.map((t, i) => repo.markPaid(t.id, paidInfo('PAY', i), now));
      const got = await Promise.all(pending);

      const rows = new Map((await rowsLike('PAY-')).map((r) => [r.id, r]));
      for (let i = 0; i < 40; i++) {
        const t = waiting[i] as Trade;
        const info = paidInfo('PAY', i);
        const g = got[i];
        assert.ok(g, `caller ${i} got nothing`);
        assert.equal(g.id, t.id, `caller ${i} got another's trade`);
        assert.equal(g.status, 'TRADE_SUCCESS');
        assert.equal(g.channel_trade_no, info.channelTradeNo);
        assert.equal(g.paid_at?.getTime(), info.paidAt.getTime());
        const row = rows.get(t.id);
        assert.ok(row);
        assert.equal(row.status, 'TRADE_SUCCESS');
        assert.equal(row.channel_trade_no, info.channelTradeNo);
        assert.equal(row.paid_at?.getTime(), info.paidAt.getTime());
        assert.equal(row.buyer_logon_id, info.buyerLogonId);
        assert.equal(row.buyer_user_id, info.buyerUserId);
        assert.equal(row.updated_at.getTime(), now.getTime());
        assert.deepEqual(g, row);
      }
      const s = repo.batchStats().markPaid;
      assert.equal(s.items, 40);
      assert.equal(s.retried, 0);
      assert.ok(s.items > s.statements, `no batch formed: ${JSON.stringify(s)}`);
    });

    for (const [a, b] of [
      [3, 7],
      [0, 1],
    ] as const) {
      it(`the same trade paid twice in a burst (calls ${a} and ${b}): one caller gets it, the other undefined`, async () => {
        const tag = `PP${a}x${b}-`;
        const waiting = await waitingTrades(tag, 12);
        const target = waiting[0] as Trade;
        const repo = new TradeRepository(store.db);
        const now = new Date();
        // The burst pays trades 1..11 and, at calls a and b, trade 0 (with different details).
        const ids: number[] = [];
        for (let i = 0, next = 1; i < 12 + 1; i++)
          ids.push(i === a || i === b ? target.id : (waiting[next++] as Trade).id);
        const pending = ids.map((id, i) => repo.markPaid(id, paidInfo(tag, i), now));
        const got = await Promise.all(pending);

        const pair = [got[a], got[b]];
        assert.equal(pair.filter((g) => g !== undefined).length, 1, 'exactly one caller paid it');
        const winner = got[a] ? a : b;
        const row = await rowOf(target.out_trade_no);
        assert.equal(row?.status, 'TRADE_SUCCESS');
        assert.equal(
          row?.channel_trade_no,
          paidInfo(tag, winner).channelTradeNo,
          'paid with the winner’s details',
        );
        assert.equal(got[winner]?.id, target.id);
        got.forEach((g, i) => {
          if (i !== a && i !== b) assert.equal(g?.id, ids[i], `caller ${i}`);
        });
        if (a >= 2) {
          const s = repo.batchStats().markPaid;
          assert.ok(s.items > s.statements, `no batch formed: ${JSON.stringify(s)}`);
        }
      });
    }

    it('a trade with a notify_url gets exactly one notification, the others none', async () => {
      const plain = await waitingTrades('NTP-', 15);
      const [alone, batched] = await waitingTrades('NTU-', 2, { notify_url: 'https://his.example/notify' });
      assert.ok(alone && batched);
      const repo = new TradeRepository(store.db);
      const now = new Date();
      // Call 0 goes alone (the one-row statement); the batched one is paid twice, at calls 5 and 9.
      const ids = plain.map((t) => t.id);
      ids.splice(0, 0, alone.id);
      ids.splice(5, 0, batched.id);
      ids.splice(9, 0, batched.id);
      const pending = ids.map((id, i) => repo.markPaid(id, paidInfo('NT', i), now));
      const got = await Promise.all(pending);
      assert.equal(got.filter((g) => g?.id === batched.id).length, 1);

      for (const t of [alone, batched]) {
        const ns = await store.db
          .selectFrom('notifications')
          .selectAll()
          .where('trade_id', '=', t.id)
          .execute();
        assert.equal(ns.length, 1, `trade ${t.out_trade_no}: ${ns.length} notifications`);
        const n = ns[0];
        assert.equal(n?.status, 'PENDING');
        assert.equal(n?.url, 'https://his.example/notify');
        assert.equal(n?.trade_status, 'TRADE_SUCCESS');
        assert.equal(n?.app_id, APP);
        assert.equal(n?.attempts, 0);
      }
      const others = await store.db
        .selectFrom('notifications')
        .select('id')
        .where(
          'trade_id',
          'in',
          plain.map((t) => t.id),
        )
        .execute();
      assert.equal(others.length, 0);
      const s = repo.batchStats().markPaid;
      assert.ok(s.items > s.statements, `no batch formed: ${JSON.stringify(s)}`);
    });

    it('a closed trade stays closed, its caller gets undefined, the others of the burst are paid', async () => {
      const open = await waitingTrades('CLO-', 14);
      const [closed] = await waitingTrades('CLX-', 1, {
        status: 'TRADE_CLOSED',
        closed_at: new Date(),
        cancel_action: 'close',
        notify_url: 'https://his.example/notify',
      });
      assert.ok(closed);
      const repo = new TradeRepository(store.db);
      const ids = open.map((t) => t.id);
      ids.splice(6, 0, closed.id);
      const pending = ids.map((id, i) => repo.markPaid(id, paidInfo('CLO', i), new Date()));
      const got = await Promise.all(pending);

      assert.equal(got[6], undefined);
      got.forEach((g, i) => {
        if (i !== 6) assert.equal(g?.id, ids[i], `caller ${i}`);
      });
      const row = await rowOf(closed.out_trade_no);
      assert.equal(row?.status, 'TRADE_CLOSED');
      assert.equal(row?.paid_at, null);
      assert.equal(row?.channel_trade_no, null);
      const ns = await store.db
        .selectFrom('notifications')
        .select('id')
        .where('trade_id', '=', closed.id)
        .execute();
      assert.equal(ns.length, 0);
      assert.equal((await rowsLike('CLO-')).filter((r) => r.status === 'TRADE_SUCCESS').length, 14);
      const s = repo.batchStats().markPaid;
      assert.ok(s.items > s.statements, `no batch formed: ${JSON.stringify(s)}`);
    });
  });

  describe('the simulator’s trade insert', () => {
    const clock: Clock = { now: () => new Date() };
    const MERCHANT = '2088000000000001';
    /** An alipay payment code with the simulator's rule as its last two digits (docs/simulator.md). */
    const code = (rule: string) => `28651234567890${'12'}${rule}`;
    const ledger = (prefix: string) =>
      store.db
        .selectFrom('sim_ledger')
        .selectAll()
        .where('merchant', '=', MERCHANT)
        .where('out_trade_no', 'like', `${prefix}%`)
        .execute();
    const simTrades = (prefix: string) =>
      store.db
        .selectFrom('sim_trades')
        .selectAll()
        .where('merchant', '=', MERCHANT)
        .where('out_trade_no', 'like', `${prefix}%`)
        .execute();

    it('50 concurrent barcode pays: each trade once, one charge per paid trade, none for the unpaid', async () => {
      const sim = new SimulatorProvider({ db: store.db, clock, publicBaseUrl: 'http://127.0.0.1:1' });
      // Mostly paid at once ('00'); every 7th never pays ('02'), every 11th is declined ('03').
      const rule = (i: number) => (i % 7 === 3 ? '02' : i % 11 === 5 ? '03' : '00');
      const inputs = Array.from({ length: 50 }, (_, i) => ({
        merchant: MERCHANT,
        outTradeNo: `SIM-${i}`,
        payType: 'alipay' as const,
        amountFen: fen(1000 + i),
        authCode: code(rule(i)),
        subject: `sim ${i}`,
      }));
      const pending = inputs.map((input) => sim.barcodePay(input));
      const got = await Promise.all(pending);

      const rows = new Map((await simTrades('SIM-')).map((r) => [r.out_trade_no, r]));
      assert.equal(rows.size, 50);
      const charges = await ledger('SIM-');
      for (let i = 0; i < 50; i++) {
        const input = inputs[i] as (typeof inputs)[number];
        const g = got[i];
        const row = rows.get(input.outTradeNo);
        assert.ok(row);
        assert.equal(row.amount_fen, input.amountFen);
        const mine = charges.filter((c) => c.out_trade_no === input.outTradeNo);
        if (rule(i) === '00') {
          assert.equal(g?.result, 'SUCCESS', `caller ${i}`);
          assert.ok(g?.result === 'SUCCESS' && g.trade);
          assert.equal(g.trade.outTradeNo, input.outTradeNo, `caller ${i} got another's trade`);
          assert.equal(g.trade.amountFen, input.amountFen);
          assert.equal(g.trade.channelTradeNo, row.channel_trade_no);
          assert.equal(row.status, 'PAID');
          assert.equal(mine.length, 1, `${input.outTradeNo}: ${mine.length} charges`);
          assert.equal(mine[0]?.entry, 'charge');
          assert.equal(mine[0]?.amount_fen, input.amountFen);
        } else if (rule(i) === '02') {
          assert.equal(g?.result, 'USER_PAYING', `caller ${i}`);
          assert.equal(row.status, 'WAITING');
          assert.equal(mine.length, 0);
        } else {
          assert.ok(g?.result === 'FAIL' && g.code === 'BUYER_BALANCE_NOT_ENOUGH', `caller ${i}`);
          assert.equal(row.status, 'CLOSED');
          assert.equal(mine.length, 0);
        }
      }
      assert.equal(charges.length, inputs.filter((_, i) => rule(i) === '00').length);
      const s = sim.batchStats();
      assert.equal(s.items, 50);
      assert.equal(s.retried, 0);
      assert.ok(s.items > s.statements, `no batch formed: ${JSON.stringify(s)}`);
    });

    it('the same order number twice in a burst: one trade, one charge', async () => {
      const sim = new SimulatorProvider({ db: store.db, clock, publicBaseUrl: 'http://127.0.0.1:1' });
      const outTradeNo = (i: number) => (i === 4 || i === 9 ? 'SIMDUP-X' : `SIMDUP-${i}`);
      const inputs = Array.from({ length: 20 }, (_, i) => ({
        merchant: MERCHANT,
        outTradeNo: outTradeNo(i),
        payType: 'alipay' as const,
        amountFen: fen(i === 4 || i === 9 ? 777 : 2000 + i),
        authCode: code('00'),
        subject: 'dup',
      }));
      const pending = inputs.map((input) => sim.barcodePay(input));
      const got = await Promise.all(pending);

      const rows = await simTrades('SIMDUP-X');
      assert.equal(rows.length, 1);
      const charges = await ledger('SIMDUP-X');
      assert.equal(charges.length, 1);
      assert.equal(charges[0]?.amount_fen, 777);
      for (const i of [4, 9]) {
        const g = got[i];
        assert.ok(g?.result === 'SUCCESS' && g.trade, `caller ${i}: ${JSON.stringify(g)}`);
        assert.equal(g.trade.channelTradeNo, rows[0]?.channel_trade_no);
      }
      assert.equal((await simTrades('SIMDUP-')).length, 19);
      assert.equal((await ledger('SIMDUP-')).length, 19);
      const s = sim.batchStats();
      assert.ok(s.items > s.statements, `no batch formed: ${JSON.stringify(s)}`);
    });
  });
});
