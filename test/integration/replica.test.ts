/**
 * Reads from a replica (HOSPAY_READ_DATABASE_URL): the replica here is a second database on the local PostgreSQL
 * holding a copy of the primary taken when the test says, so it lags on purpose. Reports, the desk's search and
 * the platform's side of a settled reconciliation day show the copy; what must see its own writes (a trade after
 * a refund, a reconciliation run and then its result, a resolution and then the finance page) shows the primary.
 * A replica that is down sends the reads to the primary; the read pool never writes. The embedded database
 * refuses the setting.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { openReadStore, type Store } from '../../src/store/db.js';
import { TEST_DB } from '../support/db.js';
import { authCode, barcodeFields } from '../support/platform.js';
import { startReplicaPlatform, type ReplicaPlatform } from '../support/replica.js';
import { deskRequest, loginCookie, makeOperator } from '../support/desk.js';

const DAY = '2026-11-25';
const NO_REPLICA =
  TEST_DB !== 'postgres' ? 'a replica needs PostgreSQL (the embedded database has none)' : false;

interface Summary {
  paymentCount: number;
  paymentFen: number;
  refundCount: number;
  refundFen: number;
}
interface Outcome {
  payType: string;
  matched: number;
  differences: number;
  open: number;
  error?: string;
}
interface DifferenceRow {
  id: number;
  code: string;
  out_trade_no: string;
  state: string;
  present: boolean;
}

describe(`reads from a replica (${TEST_DB})`, () => {
  let t: ReplicaPlatform;
  const paid: Array<{ outTradeNo: string; tradeNo: string; amount: string }> = [];

  before(async () => {
    if (NO_REPLICA) return;
    t = await startReplicaPlatform();
  });
  after(async () => {
    if (!NO_REPLICA) await t.close();
  });

  const pay = async (amount: string) => {
    const f = barcodeFields({ AuthCode: authCode('00', 'alipay'), TotalAmount: amount });
    const a = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    const p = { outTradeNo: f.OutTradeNo ?? '', tradeNo: a.result.TradeNo ?? '', amount };
    paid.push(p);
    return p;
  };
  const summary = async () => {
    const r = await t.admin('GET', `/admin/reports/day?date=${DAY}&app=${t.appId}`);
    assert.equal(r.status, 200, JSON.stringify(r.data));
    return {
      summary: r.data['summary'] as Summary,
      reconciliation: r.data['reconciliation'] as Array<{ payType: string; matched: number }>,
    };
  };
  const reconcile = async () => {
    const r = await t.admin('POST', '/admin/reconcile', { date: DAY, app_id: t.appId });
    assert.equal(r.status, 200, JSON.stringify(r.data));
    const outcomes = r.data['outcomes'] as Outcome[];
    const alipay = outcomes.find((o) => o.payType === 'alipay');
    assert.ok(alipay && !alipay.error, JSON.stringify(outcomes));
    return alipay;
  };
  const differences = async () => {
    const r = await t.admin(
      'GET',
      `/admin/reconciliation/differences?date=${DAY}&app=${t.appId}&present=true`,
    );
    assert.equal(r.status, 200, JSON.stringify(r.data));
    return r.data['differences'] as DifferenceRow[];
  };

  it(
    'the report and the desk search show the replica (behind), the trade after a refund shows the primary',
    {
      skip: NO_REPLICA,
    },
    async () => {
      const a = await pay('10.00');
      t.replica.sync(); // the replica has A
      const b = await pay('20.00');
      const refund = await t.offline('FWC_IF_Barcode_Pay_Refund', {
        TradeNo: a.tradeNo,
        RefundAmount: '10.00',
        OutRequestNo: 'RR1',
        OutTradeNo: a.outTradeNo,
        TotalAmount: '10.00',
      });
      assert.equal(refund.rr.IsSuccess, '1', refund.text);

      // The trade right after its refund: the primary (the query door reads its own writes).
      const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: a.outTradeNo });
      assert.equal(q.result.TradeStatus, 'TRADE_CLOSED', q.text);
      const qb = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: b.outTradeNo });
      assert.equal(qb.result.TradeStatus, 'TRADE_SUCCESS', qb.text);

      // The report's totals: the replica, still without B and the refund.
      const behind = await summary();
      assert.equal(behind.summary.paymentCount, 1, JSON.stringify(behind.summary));
      assert.equal(behind.summary.paymentFen, 1000);
      assert.equal(behind.summary.refundCount, 0);

      // The desk's search: the replica too (A found, B not yet).
      await makeOperator(t, { username: 'desk.replica', role: 'finance', apps: 'all' });
      const cookie = await loginCookie(t.url, 'desk.replica', 'desk-test-password-1');
      const search = (no: string) =>
        deskRequest(`${t.url}/desk?${new URLSearchParams({ out_trade_no: no, from: DAY, to: DAY })}`, cookie);
      const sa = await search(a.outTradeNo);
      assert.equal(sa.status, 200, sa.text.slice(0, 300));
      assert.ok(sa.text.includes(a.outTradeNo), 'A is on the replica');
      const sb = await search(b.outTradeNo);
      assert.equal(sb.status, 200);
      assert.ok(!sb.text.includes(`>${b.outTradeNo}<`), 'B is not on the replica yet');
      // The trade's own page after the refund: the primary.
      const page = await deskRequest(`${t.url}/desk/trades/${t.appId}/${a.outTradeNo}`, cookie);
      assert.equal(page.status, 200, page.text.slice(0, 300));
      assert.ok(page.text.includes('RR1'), 'the refund just made is on the trade page');

      // The replica catches up: so does the report.
      t.replica.sync();
      const caught = await summary();
      assert.equal(caught.summary.paymentCount, 2, JSON.stringify(caught.summary));
      assert.equal(caught.summary.paymentFen, 3000);
      assert.equal(caught.summary.refundCount, 1);
      assert.equal(caught.summary.refundFen, 1000);
      assert.ok((await search(b.outTradeNo)).text.includes(b.outTradeNo));
    },
  );

  it(
    'reconciliation: the day in progress reads the primary; a settled day the replica; a run and a resolution are seen at once',
    {
      skip: NO_REPLICA,
    },
    async () => {
      const [a, b] = paid;
      assert.ok(a && b);
      const c = await pay('30.00'); // on the primary only
      // The day is still going on (10:00 in Shanghai): its movements are read from the primary, all matched.
      const today = await reconcile();
      assert.equal(today.differences, 0, JSON.stringify(today));
      assert.ok(today.matched >= 4, JSON.stringify(today)); // A, its refund, B, C
      // The run just written is the report's (the run table is read from the primary, the replica has none).
      const right = await summary();
      assert.equal(right.reconciliation.find((r) => r.payType === 'alipay')?.matched, today.matched);

      // Past the end of the day (+15 min): the platform's side comes from the replica, which does not have C.
      t.clock.set('2026-11-26T02:00:00Z');
      const settled = await reconcile();
      assert.equal(settled.differences, 1, JSON.stringify(settled));
      assert.equal(settled.open, 1);
      // The run's result right after it: the primary.
      const found = await differences();
      assert.deepEqual(
        found.map((d) => [d.code, d.out_trade_no, d.state]),
        [['CHANNEL_ONLY', c.outTradeNo, 'OPEN']],
      );
      const id = found[0]?.id ?? 0;

      // A resolution through the finance page, then the finance page: the primary.
      await makeOperator(t, { username: 'fin.replica', role: 'finance', apps: 'all' });
      const cookie = await loginCookie(t.url, 'fin.replica', 'desk-test-password-1');
      const view = await deskRequest(`${t.url}/finance/differences/${id}`, cookie);
      assert.equal(view.status, 200, view.text.slice(0, 300));
      const csrf = /name="csrf" value="([^"]+)"/.exec(view.text)?.[1] ?? '';
      const resolved = await deskRequest(`${t.url}/finance/differences/${id}/resolve`, cookie, {
        csrf,
        note: '副本滞后所致 / replica lag',
      });
      assert.equal(resolved.status, 303, resolved.text.slice(0, 300));
      const day = await deskRequest(`${t.url}/finance?date=${DAY}&app=${t.appId}&filter=resolved`, cookie);
      assert.equal(day.status, 200);
      assert.ok(day.text.includes(c.outTradeNo), 'the difference just resolved is listed as resolved');
      assert.ok(day.text.includes('已处理'));

      // The replica catches up: the settled day has no difference any more.
      t.replica.sync();
      const again = await reconcile();
      assert.equal(again.differences, 0, JSON.stringify(again));
      assert.equal((await differences()).length, 0);
    },
  );

  it(
    'a replica that is down: the reads go to the primary, and the log says so',
    { skip: NO_REPLICA },
    async () => {
      const down = await t.another('postgres://postgres@127.0.0.1:1/nothing');
      const res = await fetch(`${down.url}/admin/reports/day?date=${DAY}&app=${t.appId}`, {
        headers: { authorization: 'Bearer test-admin-token-0123456789abcdef' },
      });
      assert.equal(res.status, 200);
      const report = (await res.json()) as { summary: Summary };
      assert.equal(report.summary.paymentCount, 3, 'the primary: A, B and C');
      assert.match(down.logs(), /read replica unreachable: reading from the primary/);
      assert.doesNotMatch(down.logs(), /postgres:\/\/postgres@/, 'no database URL in the log');
    },
  );

  it(
    'the read pool never writes, on the replica or on the primary it falls back to',
    { skip: NO_REPLICA },
    async () => {
      const stores: Store[] = [];
      try {
        for (const readUrl of [t.replica.url, 'postgres://postgres@127.0.0.1:1/nothing']) {
          const fallbacks: string[] = [];
          const read = await openReadStore(
            { kind: 'postgres', url: t.primaryUrl, readUrl },
            { onFallback: (e) => fallbacks.push(e.message) },
          );
          assert.ok(read);
          stores.push(read);
          const n = await sql<{ n: number }>`SELECT count(*)::int AS n FROM apps`.execute(read.db);
          assert.equal(n.rows[0]?.n, 1);
          await assert.rejects(
            sql`UPDATE apps SET name = 'x'`.execute(read.db),
            (e: unknown) => (e as { code?: string }).code === '25006', // read_only_sql_transaction
          );
          assert.equal(fallbacks.length > 0, readUrl.includes(':1/'), fallbacks.join('; '));
        }
      } finally {
        for (const s of stores) await s.close();
      }
      const app = await t.platform.deps.apps.get(t.appId);
      assert.equal(app?.name, '副本医院');
    },
  );
});

describe('HOSPAY_READ_DATABASE_URL (configuration)', () => {
  it('is refused with the embedded database, clearly; a bad URL is refused without repeating it', () => {
    assert.throws(
      () => loadConfig({ HOSPAY_READ_DATABASE_URL: 'postgres://u:pw@replica/db' }),
      (e: unknown) =>
        e instanceof ConfigError &&
        /HOSPAY_READ_DATABASE_URL/.test(e.message) &&
        /PostgreSQL/.test(e.message),
    );
    assert.throws(
      () =>
        loadConfig({
          DATABASE_URL: 'postgres://p/db',
          HOSPAY_READ_DATABASE_URL: 'mysql://u:s3cret@replica/db',
        }),
      (e: unknown) => e instanceof ConfigError && !e.message.includes('s3cret'),
    );
    assert.throws(
      () =>
        loadConfig({
          DATABASE_URL: 'postgres://p/db',
          HOSPAY_READ_DATABASE_URL: 'postgres://r/db',
          HOSPAY_READ_DB_POOL: '0',
        }),
      /HOSPAY_READ_DB_POOL/,
    );
  });

  it('with PostgreSQL: the read URL and its pool (default: HOSPAY_DB_POOL); none when unset', () => {
    const c = loadConfig({
      DATABASE_URL: 'postgres://p/db',
      HOSPAY_DB_POOL: '7',
      HOSPAY_READ_DATABASE_URL: 'postgresql://r/db',
    });
    assert.deepEqual(c.store.kind === 'postgres' && [c.store.readUrl, c.store.readPoolSize], [
      'postgresql://r/db',
      7,
    ]);
    const d = loadConfig({ DATABASE_URL: 'postgres://p/db' });
    assert.equal(d.store.kind === 'postgres' && d.store.readUrl, undefined);
  });
});
