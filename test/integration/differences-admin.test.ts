import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { authCode, barcodeFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { startHisSimulator } from '../../src/reconcile/his/his-sim.js';
import { fen } from '../../src/domain/money.js';

/**
 * Reconciliation differences through the admin API: list (with every filter), one difference with its audit
 * trail, resolve as `admin:<by>`; every parameter checked.
 */

interface Row {
  id: number;
  pay_type: string;
  code: string;
  kind: string;
  out_trade_no: string;
  out_request_no: string | null;
  detail: { code?: string; label?: { zh: string; en: string }; amounts?: Record<string, number> };
  present: boolean;
  state: string;
  resolved_by: string | null;
  resolved_note: string | null;
  resolved_at: string | null;
  created_at: string;
  updated_at: string;
}

const DATE = '2026-11-25';
const BASE = '/admin/reconciliation/differences';

describe('admin API: reconciliation differences', () => {
  let t: TestPlatform;
  let his: Awaited<ReturnType<typeof startHisSimulator>>;
  /** alipay 10.00 (lost by the HIS, then found: no longer present), alipay 20.00 (HIS says 29.99), weixin 30.00 (lost). */
  const orders: string[] = [];

  const list = async (query: string) => {
    const r = await t.admin('GET', `${BASE}?${query}`);
    return { status: r.status, data: r.data, rows: (r.data['differences'] ?? []) as Row[] };
  };
  const day = `date=${DATE}`;

  before(async () => {
    t = await startTestPlatform();
    his = await startHisSimulator(0);
    await t.store.db.updateTable('apps').set({ his_base_url: his.url }).where('id', '=', t.appId).execute();
    for (const [amount, payType] of [
      ['10.00', 'alipay'],
      ['20.00', 'alipay'],
      ['30.00', 'weixin'],
    ] as const) {
      const f = barcodeFields({ AuthCode: authCode('00', payType), TotalAmount: amount });
      const a = await t.offline('FWC_IF_Barcode_Pay', f);
      assert.equal(a.rr.IsSuccess, '1', a.text);
      orders.push(f.OutTradeNo ?? '');
    }
    const flows = his.sim.loadFromTrades((await t.platform.recon.reconciliation.paidMovements()).trades);
    const flowOf = (no: string | undefined) => flows.find((f) => f.outTradeNo === no)?.hisFlowId ?? '';
    his.sim.faults.drop.add(flowOf(orders[0]));
    his.sim.faults.amountFen.set(flowOf(orders[1]), fen(2999));
    his.sim.faults.drop.add(flowOf(orders[2]));
    const first = await t.admin('POST', '/admin/reconcile', { date: DATE, app_id: t.appId });
    assert.equal(first.status, 200, JSON.stringify(first.data));
    assert.equal(first.data['open'], 3, JSON.stringify(first.data));
    // The HIS finds the first order again: re-running marks its difference as no longer present.
    his.sim.faults.drop.delete(flowOf(orders[0]));
    const second = await t.admin('POST', '/admin/reconcile', { date: DATE, app_id: t.appId });
    assert.equal(second.data['open'], 2, JSON.stringify(second.data));
  });
  after(async () => {
    await his?.close();
    await t?.close();
  });

  it('lists the day: every difference with its fields, the detail parsed, in pay-type order', async () => {
    const r = await list(`${day}&app=${t.appId}`);
    assert.equal(r.status, 200, JSON.stringify(r.data));
    assert.equal(r.data['date'], DATE);
    assert.equal(r.data['app_id'], t.appId);
    assert.deepEqual(
      r.rows.map((d) => [d.pay_type, d.code, d.out_trade_no, d.present, d.state]),
      [
        ['alipay', 'HIS_MISSING', orders[0], false, 'OPEN'],
        ['alipay', 'AMOUNT_MISMATCH', orders[1], true, 'OPEN'],
        ['weixin', 'HIS_MISSING', orders[2], true, 'OPEN'],
      ],
    );
    const mismatch = r.rows[1];
    assert.ok(mismatch);
    assert.deepEqual(Object.keys(mismatch).sort(), [
      'code',
      'created_at',
      'detail',
      'id',
      'kind',
      'out_request_no',
      'out_trade_no',
      'pay_type',
      'present',
      'resolved_at',
      'resolved_by',
      'resolved_note',
      'state',
      'updated_at',
    ]);
    assert.equal(typeof mismatch.id, 'number');
    assert.equal(mismatch.kind, 'payment');
    assert.equal(mismatch.out_request_no, null);
    assert.equal(mismatch.detail.code, 'AMOUNT_MISMATCH', 'detail is JSON, not text');
    assert.equal(mismatch.detail.amounts?.['his'], 2999);
    assert.equal(mismatch.detail.amounts?.['platform'], 2000);
    assert.match(mismatch.detail.label?.zh ?? '', /金额不符/);
    assert.equal(mismatch.resolved_by, null);
    assert.equal(mismatch.resolved_at, null);
    assert.equal(mismatch.created_at, '2026-11-25T02:00:00.000Z');
    // Another day, or an app with no differences: an empty list.
    const other = await list(`date=2026-11-24&app=${t.appId}`);
    assert.equal(other.status, 200);
    assert.deepEqual(other.rows, []);
  });

  it('filters: pay_type, present, state (and together)', async () => {
    const weixin = await list(`${day}&app=${t.appId}&pay_type=weixin`);
    assert.deepEqual(
      weixin.rows.map((d) => d.out_trade_no),
      [orders[2]],
    );
    const alipay = await list(`${day}&app=${t.appId}&pay_type=alipay`);
    assert.deepEqual(
      alipay.rows.map((d) => d.out_trade_no),
      [orders[0], orders[1]],
    );
    assert.deepEqual((await list(`${day}&app=${t.appId}&pay_type=unionpay`)).rows, []);
    const gone = await list(`${day}&app=${t.appId}&present=false`);
    assert.deepEqual(
      gone.rows.map((d) => d.out_trade_no),
      [orders[0]],
    );
    const present = await list(`${day}&app=${t.appId}&present=true`);
    assert.deepEqual(
      present.rows.map((d) => d.out_trade_no),
      [orders[1], orders[2]],
    );
    assert.equal((await list(`${day}&app=${t.appId}&state=OPEN`)).rows.length, 3);
    assert.deepEqual((await list(`${day}&app=${t.appId}&state=RESOLVED`)).rows, []);
    const both = await list(`${day}&app=${t.appId}&state=OPEN&present=true&pay_type=alipay`);
    assert.deepEqual(
      both.rows.map((d) => d.out_trade_no),
      [orders[1]],
    );
  });

  it('bad parameters: HTTP 400 INVALID_FIELD.<name> with a Chinese / English message; unknown app 404', async () => {
    const app = `app=${t.appId}`;
    const cases: Array<[string, string]> = [
      [app, 'date'],
      [`date=&${app}`, 'date'],
      [`date=2026-02-30&${app}`, 'date'],
      [`date=20261125&${app}`, 'date'],
      [`${day}&${day}&${app}`, 'date'],
      [day, 'app'],
      [`${day}&app=`, 'app'],
      [`${day}&app=${'x'.repeat(65)}`, 'app'],
      [`${day}&${app}&state=open`, 'state'],
      [`${day}&${app}&state=`, 'state'],
      [`${day}&${app}&state=CLOSED`, 'state'],
      [`${day}&${app}&pay_type=cash`, 'pay_type'],
      [`${day}&${app}&pay_type=ALIPAY`, 'pay_type'],
      [`${day}&${app}&present=yes`, 'present'],
      [`${day}&${app}&present=1`, 'present'],
      [`${day}&${app}&status=OPEN`, 'status'],
    ];
    for (const [query, field] of cases) {
      const r = await list(query);
      assert.equal(r.status, 400, `${query}: ${JSON.stringify(r.data)}`);
      assert.equal(r.data['code'], `INVALID_FIELD.${field}`, query);
      assert.match(String(r.data['message']), /[\u4e00-\u9fff].* \/ [A-Za-z]/, query);
    }
    const unknown = await list(`${day}&app=NO-SUCH-APP`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.data['code'], 'APP_NOT_FOUND');
    // The admin token is required, as everywhere under /admin.
    for (const [method, path] of [
      ['GET', `${BASE}?${day}&${app}`],
      ['GET', `${BASE}/1`],
      ['POST', `${BASE}/1/resolve`],
    ] as const) {
      const res = await fetch(`${t.url}${path}`, {
        method,
        headers: { authorization: 'Bearer not-the-token', 'content-type': 'application/json' },
        ...(method === 'POST' ? { body: JSON.stringify({ note: 'x', by: 'x' }) } : {}),
      });
      assert.equal(res.status, 401, path);
      assert.equal(((await res.json()) as { code: string }).code, 'ADMIN_AUTH');
    }
  });

  it('one difference: its fields, app and day, audit trail (empty yet), run and evidence; unknown id 404', async () => {
    const [row] = (await list(`${day}&app=${t.appId}&pay_type=weixin`)).rows;
    assert.ok(row);
    const r = await t.admin('GET', `${BASE}/${row.id}`);
    assert.equal(r.status, 200, JSON.stringify(r.data));
    assert.equal(r.data['id'], row.id);
    assert.equal(r.data['app_id'], t.appId);
    assert.equal(r.data['date'], DATE);
    assert.equal(r.data['code'], 'HIS_MISSING');
    assert.deepEqual(r.data['audit'], []);
    const detail = r.data['detail'] as { hisCheck?: { found: boolean } };
    assert.equal(detail.hisCheck?.found, false, 'the HIS re-check is part of the detail');
    const run = r.data['run'] as { status: string; differences: number; error: string | null };
    assert.equal(run.status, 'DONE');
    assert.equal(run.differences, 1);
    assert.equal(run.error, null);
    const evidence = r.data['evidence'] as Array<{ source: string; request: unknown; records: number }>;
    assert.ok(evidence.some((e) => e.source === 'CHANNEL_BILL' && e.records === 1));
    assert.ok(evidence.some((e) => e.source === 'HIS_TRADE_LIST'));
    assert.equal(typeof evidence[0]?.request, 'object', 'the request is JSON, not text');
    assert.ok(!JSON.stringify(evidence).includes('<GetHospitalTradeList>'), 'no raw answers');

    for (const id of ['999999', '000999999']) {
      const missing = await t.admin('GET', `${BASE}/${id}`);
      assert.equal(missing.status, 404, id);
      assert.equal(missing.data['code'], 'DIFFERENCE_NOT_FOUND');
    }
    for (const id of ['abc', '0', '-1', '1.5', '1e3', '9'.repeat(16)]) {
      const bad = await t.admin('GET', `${BASE}/${id}`);
      assert.equal(bad.status, 400, id);
      assert.equal(bad.data['code'], 'INVALID_FIELD.id');
    }
  });

  it('resolve: note and by are checked; then RESOLVED with the audit showing admin:<by>; again 409', async () => {
    const [row] = (await list(`${day}&app=${t.appId}&pay_type=weixin`)).rows;
    assert.ok(row);
    const resolve = (body: unknown, id: number | string = row.id) =>
      t.admin('POST', `${BASE}/${id}/resolve`, body);
    const refusals: Array<[unknown, string]> = [
      [{ by: '张工' }, 'INVALID_FIELD.note'],
      [{ note: '', by: '张工' }, 'INVALID_FIELD.note'],
      [{ note: '   \r\n ', by: '张工' }, 'INVALID_FIELD.note'],
      [{ note: 42, by: '张工' }, 'INVALID_FIELD.note'],
      [{ note: '账'.repeat(501), by: '张工' }, 'INVALID_FIELD.note'],
      [{ note: 'bell \u0007', by: '张工' }, 'INVALID_FIELD.note'],
      [{ note: '已核实' }, 'INVALID_FIELD.by'],
      [{ note: '已核实', by: '  ' }, 'INVALID_FIELD.by'],
      [{ note: '已核实', by: 'x'.repeat(65) }, 'INVALID_FIELD.by'],
      [{ note: '已核实', by: 'two\nlines' }, 'INVALID_FIELD.by'],
      [{ note: '已核实', by: ['张工'] }, 'INVALID_FIELD.by'],
      [{ note: '已核实', by: '张工', actor: 'finance-01' }, 'INVALID_FIELD.actor'],
      [['已核实'], 'INVALID_BODY'],
    ];
    for (const [body, code] of refusals) {
      const r = await resolve(body);
      assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(r.data)}`);
      assert.equal(r.data['code'], code, JSON.stringify(body).slice(0, 80));
      assert.match(String(r.data['message']), / \/ /);
    }
    assert.equal((await resolve({ note: '已核实', by: '张工' }, 'abc')).data['code'], 'INVALID_FIELD.id');
    const unknown = await resolve({ note: '已核实', by: '张工' }, 999999);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.data['code'], 'DIFFERENCE_NOT_FOUND');
    const untouched = await t.admin('GET', `${BASE}/${row.id}`);
    assert.equal(untouched.data['state'], 'OPEN', 'nothing was resolved by the refused requests');

    t.clock.advance(3_600_000);
    const ok = await resolve({ note: '  HIS 已补录缴费记录\r\n流水号 H123  ', by: ' 张工 ' });
    assert.equal(ok.status, 200, JSON.stringify(ok.data));
    assert.equal(ok.data['state'], 'RESOLVED');
    assert.equal(ok.data['resolved_by'], 'admin:张工');
    assert.equal(ok.data['resolved_note'], 'HIS 已补录缴费记录\n流水号 H123', 'CRLF made LF, trimmed');
    assert.equal(ok.data['resolved_at'], '2026-11-25T03:00:00.000Z');
    assert.deepEqual(ok.data['audit'], [
      {
        at: '2026-11-25T03:00:00.000Z',
        actor: 'admin:张工',
        action: 'RESOLVE',
        note: 'HIS 已补录缴费记录\n流水号 H123',
      },
    ]);
    const shown = await t.admin('GET', `${BASE}/${row.id}`);
    assert.deepEqual(shown.data['audit'], ok.data['audit']);

    const again = await resolve({ note: '再次处理', by: '李工' });
    assert.equal(again.status, 409);
    assert.equal(again.data['code'], 'ALREADY_RESOLVED');
    assert.match(String(again.data['message']), /已被处理.* \/ this difference was already resolved/);
    const after = await t.admin('GET', `${BASE}/${row.id}`);
    assert.equal(after.data['resolved_by'], 'admin:张工', 'the first resolution stands');
    assert.equal((after.data['audit'] as unknown[]).length, 1);

    const resolved = await list(`${day}&app=${t.appId}&state=RESOLVED`);
    assert.deepEqual(
      resolved.rows.map((d) => [d.id, d.resolved_by]),
      [[row.id, 'admin:张工']],
    );
    assert.equal((await list(`${day}&app=${t.appId}&state=OPEN`)).rows.length, 2);

    // A note of exactly 500 characters is taken (the finance page's rule).
    const [other] = (await list(`${day}&app=${t.appId}&present=true&state=OPEN`)).rows;
    assert.ok(other);
    const exact = await resolve({ note: '账'.repeat(500), by: 'ops-bot' }, other.id);
    assert.equal(exact.status, 200, JSON.stringify(exact.data));
    assert.equal(exact.data['resolved_by'], 'admin:ops-bot');

    // A re-run keeps the resolutions made through the API.
    const rerun = await t.admin('POST', '/admin/reconcile', { date: DATE, app_id: t.appId });
    assert.equal(rerun.data['open'], 0, JSON.stringify(rerun.data));
    assert.equal((await t.admin('GET', `${BASE}/${row.id}`)).data['resolved_by'], 'admin:张工');
  });
});
