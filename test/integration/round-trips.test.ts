import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type KyselyPlugin, type RootOperationNode } from 'kysely';
import { barcodeFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { gateway, TEST_APP_KEY } from '../support/gateway.js';
import type { Store } from '../../src/store/db.js';

/**
 * The database round trips of each money path, through the real doors: the budget that the benchmark's
 * figures rest on (docs/performance.md). A change that adds a statement to a hot path fails here, on purpose:
 * raise the budget only knowingly. Statements are counted as Kysely runs them (builder and sql`` alike),
 * transactions as they are opened (each one is BEGIN and COMMIT besides its statements). The buffered record of
 * channel calls (written in batches, off the request) is left out.
 */
describe('round trips per request', () => {
  let t: TestPlatform;
  const counts = { statements: 0, transactions: 0, tables: [] as string[] };

  const tableOf = (node: RootOperationNode): string => {
    const n = node as unknown as {
      kind: string;
      into?: { table?: { identifier?: { name?: string } } };
      from?: { froms?: Array<{ table?: { identifier?: { name?: string } } }> };
      table?: { table?: { identifier?: { name?: string } } };
      sqlFragments?: readonly string[];
    };
    // A fixed statement (store/trades.ts runFixed) is a raw query: its first table written or read.
    const raw = n.sqlFragments?.join(' ');
    return (
      n.into?.table?.identifier?.name ??
      n.from?.froms?.[0]?.table?.identifier?.name ??
      n.table?.table?.identifier?.name ??
      (raw ? /\b(?:insert into|update|from)\s+"?(\w+)/i.exec(raw)?.[1] : undefined) ??
      n.kind
    );
  };

  const counting = (store: Store): Store => {
    const plugin: KyselyPlugin = {
      transformQuery: (args) => {
        const table = tableOf(args.node);
        if (table !== 'channel_calls') {
          counts.statements++;
          counts.tables.push(table);
        }
        return args.node;
      },
      transformResult: async (args) => args.result,
    };
    const counted = store.db.withPlugin(plugin);
    const db = new Proxy(counted, {
      get(target, prop) {
        if (prop === 'transaction' || prop === 'startTransaction') counts.transactions++;
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    return { ...store, db, close: () => store.close() };
  };

  const measure = async <T>(fn: () => Promise<T>): Promise<{ result: T; statements: number; tx: number }> => {
    counts.statements = 0;
    counts.transactions = 0;
    counts.tables = [];
    const result = await fn();
    return { result, statements: counts.statements, tx: counts.transactions };
  };

  before(async () => {
    t = await startTestPlatform({ wrapStore: counting });
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    // Warm: the app cache, the platform key, the channel configuration.
    assert.equal((await t.offline('FWC_IF_Barcode_Pay', barcodeFields())).rr.IsSuccess, '1');
    const h5 = await gateway(t, 'lc.trade.h5.pay', {
      out_trade_no: `MZ${Date.now()}W`,
      total_amount: '1.00',
      subject: '挂号费',
      order_type: 'APPOINTMENT',
    });
    assert.equal(h5.json.code, '10000', h5.raw);
  });
  after(async () => {
    await t.close();
  });

  it('barcode pay: 3 statements (the trade, the channel, paid + outbox), no transaction', async () => {
    const m = await measure(() => t.offline('FWC_IF_Barcode_Pay', barcodeFields()));
    assert.equal(m.result.rr.IsSuccess, '1', m.result.text);
    assert.deepEqual([m.statements, m.tx], [3, 0], counts.tables.join(' '));
  });

  it('query: 1 statement', async () => {
    const f = barcodeFields();
    assert.equal((await t.offline('FWC_IF_Barcode_Pay', f)).rr.IsSuccess, '1');
    const m = await measure(() => t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo }));
    assert.equal(m.result.result.TradeStatus, 'TRADE_SUCCESS', m.result.text);
    assert.deepEqual([m.statements, m.tx], [1, 0], counts.tables.join(' '));
  });

  it('refund: 3 statements (the trade with its reservation, the channel, completion), no transaction', async () => {
    const f = barcodeFields({ TotalAmount: '50.00' });
    const paid = await t.offline('FWC_IF_Barcode_Pay', f);
    const refund = (no: string) =>
      t.offline('FWC_IF_Barcode_Pay_Refund', {
        OutTradeNo: f.OutTradeNo,
        TradeNo: paid.result.TradeNo,
        TotalAmount: '50.00',
        RefundAmount: '0.01',
        OutRequestNo: no,
      });
    const m = await measure(() => refund('RT1'));
    assert.equal(m.result.rr.IsSuccess, '1', m.result.text);
    assert.equal(m.result.result.RefundChange, 'Y');
    assert.deepEqual([m.statements, m.tx], [3, 0], counts.tables.join(' '));
    // A repeat: the trade with the request number, then the refund; no money moves.
    const again = await measure(() => refund('RT1'));
    assert.equal(again.result.result.RefundChange, 'N');
    assert.deepEqual([again.statements, again.tx], [2, 0], counts.tables.join(' '));
  });

  it('lc.trade.h5.pay: 1 statement (the nonce and the trade); a replay is still refused', async () => {
    const biz = {
      out_trade_no: `MZ${Date.now()}H`,
      total_amount: '12.34',
      subject: '门诊缴费',
      order_type: 'TREATMENT',
    };
    let form: Record<string, string> | undefined;
    const m = await measure(() =>
      gateway(t, 'lc.trade.h5.pay', biz, {
        after: (p) => {
          form = { ...p };
        },
      }),
    );
    assert.equal(m.result.json.code, '10000', m.result.raw);
    assert.deepEqual([m.statements, m.tx], [1, 0], counts.tables.join(' '));
    const replay = await fetch(`${t.url}/gateway`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body: new URLSearchParams(form).toString(),
    });
    const answer = (await replay.json()) as { biz_content: { sub_code: string } };
    assert.equal(answer.biz_content.sub_code, 'isv.repeated-nonce');
    const n = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM trades WHERE out_trade_no = ${biz.out_trade_no}`.execute(t.store.db);
    assert.equal(n.rows[0]?.n, 1);
  });

  it('an h5 request refused before its write still uses up its nonce: its replay is a replay', async () => {
    let form: Record<string, string> | undefined;
    const bad = await gateway(
      t,
      'lc.trade.h5.pay',
      { out_trade_no: `MZ${Date.now()}B`, total_amount: '1.001', subject: 'x', order_type: 'TREATMENT' },
      {
        after: (p) => {
          form = { ...p };
        },
      },
    );
    assert.notEqual(bad.json.code, '10000');
    assert.notEqual(bad.biz['sub_code'], 'isv.repeated-nonce');
    const replay = await fetch(`${t.url}/gateway`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body: new URLSearchParams(form).toString(),
    });
    const answer = (await replay.json()) as { biz_content: { sub_code: string } };
    assert.equal(answer.biz_content.sub_code, 'isv.repeated-nonce');
  });
});

describe('the app cache (HOSPAY_APP_CACHE)', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform({ env: { HOSPAY_APP_CACHE: '300ms' } });
  });
  after(async () => {
    await t.close();
  });

  it('a change through the server is seen at once; one made straight in the database within the cache time', async () => {
    const pay = () => t.offline('FWC_IF_Barcode_Pay', barcodeFields());
    assert.equal((await pay()).rr.IsSuccess, '1');
    await t.platform.deps.apps.setStatus(t.appId, 'disabled');
    assert.equal((await pay()).rr.IsSuccess, '3', 'through the repository: at once');
    await t.platform.deps.apps.setStatus(t.appId, 'active');
    assert.equal((await pay()).rr.IsSuccess, '1');
    // As another server or an operator with psql would.
    await t.store.db.updateTable('apps').set({ status: 'disabled' }).where('id', '=', t.appId).execute();
    await sleep(350);
    assert.equal((await pay()).rr.IsSuccess, '3', 'after the cache time: seen');
    await t.store.db.updateTable('apps').set({ status: 'active' }).where('id', '=', t.appId).execute();
    assert.equal((await pay()).rr.IsSuccess, '1', 'a disabled app is never cached');
  });
});
