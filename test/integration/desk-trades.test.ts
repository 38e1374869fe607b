import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fen } from '../../src/domain/money.js';
import { authCode, qrFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import {
  deskRequest,
  makeApp,
  makeOperator,
  paidBarcode,
  refundTrade,
  sessionCookie,
  loginCookie,
} from '../support/desk.js';

/** The desk's trade search, export, trade page and audit trail over plain HTTP, scoped per hospital. */
describe('the desk: trade search, CSV export, trade page, audit (HTTP)', () => {
  let t: TestPlatform;
  let appB: { appId: string; token: string };
  let itA: string; // hospital IT of hospital A
  let csB: string; // cashier supervisor of hospital B
  let admin: string;
  let none: string; // a finance operator granted no hospital
  const no: Record<string, string> = {};
  const pages: string[] = [];

  const get = (path: string, cookie: string | null) => deskRequest(`${t.url}${path}`, cookie);
  const rowsOf = (html: string) => [...html.matchAll(/class="trade-link">([^<]+)</g)].map((m) => m[1] ?? '');

  before(async () => {
    t = await startTestPlatform();
    appB = await makeApp(t, '乙医院');
    // Yesterday (2026-11-24, Shanghai): one trade.
    t.clock.set('2026-11-24T03:00:00Z');
    no['old'] = (await paidBarcode(t, { TotalAmount: '7.00' })).outTradeNo;
    // Today (2026-11-25, 10:00 in Shanghai).
    t.clock.set('2026-11-25T02:00:00Z');
    const a1 = await paidBarcode(t, {
      TotalAmount: '88.88',
      PatientName: '张三',
      InhospitalNo: 'MZ0001',
      TerminalID: 'T01',
      OperatorID: 'op7',
    });
    no['a1'] = a1.outTradeNo;
    no['a1TradeNo'] = a1.tradeNo;
    t.clock.advance(60_000);
    no['a2'] = (
      await paidBarcode(t, {
        OutTradeNo: `ZY${Date.now()}`,
        AuthCode: authCode('00', 'weixin'),
        TotalAmount: '12.00',
        PatientName: '李小四',
        InhospitalNo: 'ZY0002',
        TerminalID: 'T02',
      })
    ).outTradeNo;
    t.clock.advance(60_000);
    // Spreadsheet formulas in what the HIS sent: exported as text.
    no['formula'] = (
      await paidBarcode(t, {
        TotalAmount: '3.00',
        PatientName: '=HYPERLINK',
        TerminalID: '-2+3',
        OperatorID: '@SUM(A1)',
      })
    ).outTradeNo;
    t.clock.advance(60_000);
    const qr = qrFields({ TotalAmount: '25.50', PatientName: '王五' });
    assert.equal((await t.offline('FWC_IF_Qrcode_Pay', qr)).rr.IsSuccess, '1');
    no['waiting'] = qr.OutTradeNo ?? '';
    t.clock.advance(60_000);
    await refundTrade(t, no['a1'], '5.00', 'RF-A1');
    // Hospital B: a patient with the same name.
    no['b1'] = (await paidBarcode(t, { TotalAmount: '66.00', PatientName: '张三' }, appB.token)).outTradeNo;
    // 55 trades of one terminal at the same instant: paging must rely on the id as well as the time.
    // (copies of a paid trade's row: the search is under test here, not the payment)
    const model = await t.trade(no['a1'] ?? '');
    const { id: _id, ...row } = model;
    for (let i = 0; i < 55; i++) {
      const n = `PG${String(i).padStart(4, '0')}${Date.now()}`;
      pages.push(n);
      await t.store.db
        .insertInto('trades')
        .values({
          ...row,
          out_trade_no: n,
          trade_no: `HP${n}`,
          cashier_token: null,
          channel_trade_no: null,
          terminal_id: 'PAGE',
          patient_name: '赵六',
          total_fen: fen(100),
          refund_reserved_fen: fen(0),
          refunded_fen: fen(0),
          inhospital_no: null,
          operator_id: null,
          created_at: t.clock.now(),
        })
        .execute();
    }

    await makeOperator(t, { username: 'it.a', role: 'hospital_it', apps: [t.appId] });
    await makeOperator(t, { username: 'cs.b', role: 'cashier_supervisor', apps: [appB.appId] });
    await makeOperator(t, { username: 'pa', role: 'platform_admin', apps: 'all' });
    await makeOperator(t, { username: 'fin.none', role: 'finance', apps: [] });
    itA = await loginCookie(t.url, 'it.a', 'desk-test-password-1');
    csB = (await sessionCookie(t, 'cs.b')).cookie;
    admin = (await sessionCookie(t, 'pa')).cookie;
    none = (await sessionCookie(t, 'fin.none')).cookie;
  });
  after(async () => {
    await t?.close();
  });

  it('without a session the desk sends to the login page, coming back to the search', async () => {
    const a = await get('/desk?patient=%E5%BC%A0%E4%B8%89', null);
    assert.equal(a.status, 303);
    assert.match(a.location ?? '', /^\/finance\/login\?next=%2Fdesk/);
    for (const p of ['/desk/trades.csv', `/desk/trades/${t.appId}/${no['a1']}`, '/desk/audit'])
      assert.equal((await get(p, null)).status, 303, p);
  });

  it("the default search is today's trades of the viewer's hospitals, newest first, names masked", async () => {
    const first = await get('/desk', itA);
    assert.equal(first.status, 200, first.text.slice(0, 500));
    const newest = rowsOf(first.text);
    assert.equal(newest.length, 50, 'a page holds 50');
    assert.ok(
      newest.every((n) => pages.includes(n)),
      'the newest first',
    );
    assert.match(first.text, /id="next-page"/);
    assert.match(first.text, /name="from"[^>]*value="2026-11-25"/);
    const a = await get('/desk?min=2', itA);
    const rows = rowsOf(a.text);
    assert.deepEqual(
      rows,
      [no['waiting'], no['formula'], no['a2'], no['a1']].map((x) => x ?? '-'),
      'newest first',
    );
    assert.ok(!rows.includes(no['old'] ?? '-'), 'yesterday is not today');
    assert.ok(!rows.includes(no['b1'] ?? '-'), "another hospital's trade");
    assert.ok(a.text.includes('张*'), 'masked name');
    for (const full of ['张三', '李小四'])
      assert.ok(
        !a.text.includes(full),
        `no full name on the page: ${a.text.slice(Math.max(0, a.text.indexOf(full) - 300), a.text.indexOf(full) + 50)}`,
      );
    assert.ok(a.text.includes('李*四'));
  });

  it('each filter narrows the search', async () => {
    const search = async (q: Record<string, string>, cookie = itA) => {
      const a = await get(`/desk?${new URLSearchParams(q).toString()}`, cookie);
      assert.equal(a.status, 200, `${JSON.stringify(q)}: ${a.text.slice(0, 300)}`);
      return rowsOf(a.text).sort();
    };
    const sorted = (...xs: Array<string | undefined>) => xs.map((x) => x ?? '-').sort();
    // Numbers find their trade on any day.
    assert.deepEqual(await search({ out_trade_no: no['old'] ?? '' }), sorted(no['old']));
    assert.deepEqual(await search({ number: no['a1TradeNo'] ?? '' }), sorted(no['a1']));
    assert.deepEqual(await search({ out_trade_no: 'ZY*' }), sorted(no['a2']));
    assert.deepEqual(await search({ out_trade_no: `${(no['a2'] ?? '').slice(0, 6)}*` }), sorted(no['a2']));
    assert.deepEqual(await search({ inhospital_no: 'ZY0002' }), sorted(no['a2']));
    assert.deepEqual(await search({ patient: '张三' }), sorted(no['a1']), "hospital B's 张三 stays out");
    assert.deepEqual(await search({ patient: '张' }), [], 'a part of a name finds nothing');
    assert.deepEqual(await search({ pay_type: 'weixin' }), sorted(no['a2']));
    assert.deepEqual(await search({ status: 'WAIT_BUYER_PAY' }), sorted(no['waiting']));
    assert.deepEqual(await search({ status: 'REFUNDED' }), sorted(no['a1']));
    assert.deepEqual(await search({ category: 'ZY' }), sorted(no['a2']));
    assert.deepEqual(await search({ category: 'ZJMZ' }), sorted(no['waiting']));
    assert.deepEqual(await search({ terminal: 'T01' }), sorted(no['a1']));
    assert.deepEqual(await search({ operator: 'op7' }), sorted(no['a1']));
    assert.deepEqual(await search({ min: '20', max: '100' }), sorted(no['a1'], no['waiting']));
    assert.deepEqual(await search({ min: '88.88', max: '88.88' }), sorted(no['a1']));
    assert.deepEqual(await search({ from: '2026-11-24', to: '2026-11-24' }), sorted(no['old']));
    assert.deepEqual(await search({ channel: 'simulator', terminal: 'T02' }), sorted(no['a2']));
    // A platform admin sees both hospitals and may choose one.
    assert.deepEqual(await search({ patient: '张三' }, admin), sorted(no['a1'], no['b1']));
    assert.deepEqual(await search({ patient: '张三', app: appB.appId }, admin), sorted(no['b1']));
    assert.deepEqual(await search({ patient: '张三' }, csB), sorted(no['b1']));
    assert.deepEqual(await search({}, none), [], 'no hospital granted: nothing');
  });

  it('pages of 50, newest first, without overlap or gaps (same instant: by id)', async () => {
    const first = await get('/desk?terminal=PAGE', itA);
    const one = rowsOf(first.text);
    assert.equal(one.length, 50);
    const next = /href="([^"]+)" id="next-page"/.exec(first.text)?.[1];
    assert.ok(next, 'a next page link');
    const second = await get(next.replace(/&amp;/g, '&'), itA);
    assert.equal(second.status, 200);
    const two = rowsOf(second.text);
    assert.equal(two.length, 5);
    assert.doesNotMatch(second.text, /id="next-page"/);
    assert.deepEqual([...one, ...two].sort(), [...pages].sort());
    assert.deepEqual([...one, ...two], [...pages].reverse(), 'newest first');
  });

  it('bad input gets a clear message and a 400 page, never a crash or a stack', async () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ min: 'abc' }, /最小金额无效.*not an amount in yuan/],
      [{ max: '1e3' }, /最大金额无效/],
      [{ min: '10', max: '5' }, /最小金额大于最大金额/],
      [{ from: '2026-13-01' }, /开始日期无效.*not a date/],
      [{ to: '2026-02-30' }, /结束日期无效/],
      [{ from: '2026-11-25', to: '2026-11-20' }, /结束日期早于开始日期/],
      [{ from: '2024-01-01', to: '2026-11-25' }, /至多 366 天/],
      [{ out_trade_no: 'x'.repeat(1000) }, /订单号过长/],
      [{ patient: '张'.repeat(1000) }, /患者姓名过长/],
      [{ out_trade_no: 'MZ*1*' }, /订单号无效/],
      [{ pay_type: 'bitcoin' }, /支付方式无效/],
      [{ status: 'PAID; DROP TABLE trades' }, /状态无效/],
      [{ app: appB.appId }, /没有该医院/],
      [{ app: 'nope' }, /没有该医院/],
      [{ terminal: 'a\u0000b' }, /终端含有无效字符/],
      [{ before: 'garbage' }, /分页参数无效/],
    ];
    for (const [q, message] of cases) {
      const a = await get(`/desk?${new URLSearchParams(q).toString()}`, itA);
      assert.equal(a.status, 400, JSON.stringify(q));
      assert.match(a.text, message, JSON.stringify(q));
      assert.doesNotMatch(a.text, /at [A-Za-z.]+ \(|node_modules|TypeError/, 'no stack');
      assert.doesNotMatch(a.text, /id="results"/, 'no results with a bad filter');
      if (q['before'] !== undefined) continue; // the export does not page
      const csv = await get(`/desk/trades.csv?${new URLSearchParams(q).toString()}`, itA);
      assert.equal(csv.status, 400, `csv ${JSON.stringify(q)}`);
    }
    // A hospital the viewer does not see is "no such hospital", exactly like one that does not exist.
    const foreign = await get(`/desk?app=${appB.appId}`, itA);
    const missing = await get('/desk?app=nope', itA);
    assert.equal(foreign.text.replace(appB.appId, 'X'), missing.text.replace('nope', 'X'));
    // A repeated parameter is ignored, not a crash.
    assert.equal((await get('/desk?status=TRADE_SUCCESS&status=WAIT_BUYER_PAY', itA)).status, 200);
    // A huge query string is refused by the server's limits, not by a crash.
    const huge = await get(`/desk?out_trade_no=${'9'.repeat(20_000)}`, itA);
    assert.ok(huge.status === 400 || huge.status === 414 || huge.status === 431, String(huge.status));
  });

  it('the CSV: same filters and scope, BOM, yuan, masked names, formulas defused, audited', async () => {
    const a = await get('/desk/trades.csv', itA);
    assert.equal(a.status, 200);
    assert.match(a.headers.get('content-type') ?? '', /^text\/csv; charset=utf-8/);
    assert.match(
      a.headers.get('content-disposition') ?? '',
      /attachment; filename="trades-2026-11-25-2026-11-25\.csv"/,
    );
    const raw = Buffer.from(
      await (await fetch(`${t.url}/desk/trades.csv`, { headers: { cookie: itA } })).arrayBuffer(),
    );
    assert.deepEqual([...raw.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'UTF-8 BOM');
    const lines = a.text
      .replace(/^\uFEFF/, '')
      .trim()
      .split('\r\n');
    assert.match(lines[0] ?? '', /^"创建时间 created","医院 app_id"/);
    assert.equal(lines.length, 1 + 4 + 55, "header + today's 59 trades of hospital A");
    const a1 = lines.find((l) => l.includes(no['a1'] ?? '-')) ?? '';
    assert.match(a1, /"88\.88","5\.00"/);
    assert.match(a1, /"张\*"/);
    assert.ok(!a.text.includes('张三'));
    assert.ok(!a.text.includes(no['b1'] ?? '-'), "another hospital's trade");
    assert.ok(!a.text.includes(no['old'] ?? '-'), 'yesterday');
    const formula = lines.find((l) => l.includes(no['formula'] ?? '-')) ?? '';
    assert.match(formula, /"'=\*K"/, 'the masked name starting with = is prefixed');
    assert.match(formula, /"'-2\+3"/);
    assert.match(formula, /"'@SUM\(A1\)"/);
    assert.doesNotMatch(a.text, /(^|,)"[=+@-]/m, 'no cell starts a formula');
    // The same filters as the search.
    const zy = (await get('/desk/trades.csv?category=ZY', itA)).text.trim().split('\r\n');
    assert.equal(zy.length, 2);
    assert.ok(zy[1]?.includes(no['a2'] ?? '-'));
    const adminCsv = await get('/desk/trades.csv?patient=%E5%BC%A0%E4%B8%89', admin);
    assert.ok(adminCsv.text.includes(no['b1'] ?? '-') && adminCsv.text.includes(no['a1'] ?? '-'));
    assert.equal(
      (await get('/desk/trades.csv', none)).text.trim().split('\r\n').length,
      1,
      'only the header',
    );
    // Audited, the patient's name masked.
    const audit = await t.platform.deps.audit.list({ apps: null, action: 'trades.export', limit: 10 });
    const mine = audit.filter((e) => e.actor === 'it.a');
    assert.ok(mine.length >= 3);
    assert.ok(mine.every((e) => e.app_id === t.appId && e.via === 'session' && e.outcome === 'ok'));
    const withName = audit.find((e) => e.actor === 'pa');
    assert.ok(
      withName && !withName.detail.includes('张三') && withName.detail.includes('***'),
      withName?.detail,
    );
  });

  it('the CSV is bounded and says so', async () => {
    const { EXPORT_MAX_ROWS } = await import('../../src/http/pages/desk-trades.js');
    assert.equal(EXPORT_MAX_ROWS, 50_000);
    // The repository's bound, exercised small: 7 of the 55 page trades, then the marker.
    const got: unknown[] = [];
    for await (const r of t.platform.deps.desk.exportRows(
      { apps: [t.appId], terminalId: 'PAGE', from: null, to: null },
      7,
      3,
    ))
      got.push(r);
    assert.equal(got.length, 8);
    assert.deepEqual(got[7], { truncated: true });
  });

  it("a trade's page: facts, masked patient, timeline with the channel call, payment and refund", async () => {
    const a = await get(`/desk/trades/${t.appId}/${no['a1']}`, itA);
    assert.equal(a.status, 200, a.text.slice(0, 400));
    assert.ok(a.text.includes('¥88.88') && a.text.includes('¥5.00'));
    assert.ok(a.text.includes('张*') && !a.text.includes('张三'));
    assert.ok(a.text.includes('T01') && a.text.includes('op7') && a.text.includes('MZ0001'));
    const timeline = /<ol class="timeline" id="timeline">([\s\S]*?)<\/ol>/.exec(a.text)?.[1] ?? '';
    const kinds = [...timeline.matchAll(/data-kind="([a-z-]+)"/g)].map((m) => m[1]);
    assert.equal(kinds[0], 'created', 'oldest first');
    assert.ok(kinds.includes('channel'), kinds.join());
    assert.ok(kinds.includes('paid'));
    assert.ok(kinds.includes('refund'));
    assert.match(timeline, /退款 \/ refund ¥5\.00：成功 \/ succeeded/);
    assert.match(timeline, /RF-A1/);
    assert.ok(kinds.indexOf('paid') < kinds.indexOf('refund'));
    assert.match(a.text, /id="actions"/);
  });

  it("another hospital's trade is 404, exactly like a missing one", async () => {
    const foreign = await get(`/desk/trades/${appB.appId}/${no['b1']}`, itA);
    const missing = await get(`/desk/trades/${t.appId}/NO-SUCH-TRADE`, itA);
    assert.equal(foreign.status, 404);
    assert.equal(missing.status, 404);
    assert.equal(foreign.text, missing.text);
    assert.equal((await get(`/desk/trades/${appB.appId}/${no['b1']}`, csB)).status, 200);
    assert.equal((await get(`/desk/trades/${t.appId}/${no['a1']}`, csB)).status, 404);
    assert.equal((await get(`/desk/trades/${t.appId}/${'x'.repeat(1000)}`, itA)).status, 404);
    assert.deepEqual(rowsOf((await get(`/desk?out_trade_no=${no['b1']}`, itA)).text), []);
  });

  it('the audit trail: scoped to the hospitals, filtered, paged', async () => {
    const deps = t.platform.deps;
    await deps.audit.record({
      at: t.clock.now(),
      actor: 'cs.b',
      role: 'cashier_supervisor',
      via: 'session',
      action: 'refund.request',
      appId: appB.appId,
      outTradeNo: no['b1'] ?? '',
      outcome: 'pending',
    });
    for (let i = 0; i < 52; i++)
      await deps.audit.record({
        at: t.clock.now(),
        actor: 'it.a',
        role: 'hospital_it',
        via: 'session',
        action: 'trade.query',
        appId: t.appId,
        outTradeNo: no['a1'] ?? '',
        outcome: 'ok',
      });
    const a = await get('/desk/audit', itA);
    assert.equal(a.status, 200);
    assert.ok(
      !a.text.includes('<code>refund.request</code>'),
      "hospital B's entry is not shown to hospital A",
    );
    assert.match(a.text, /id="next-page"/);
    const b = await get('/desk/audit?action=refund.request', csB);
    assert.ok(b.text.includes('<code>refund.request</code>') && b.text.includes(no['b1'] ?? '-'));
    assert.ok(!b.text.includes('<code>trade.query</code>'));
    const all = await get('/desk/audit?actor=cs.b', admin);
    assert.ok(all.text.includes('<code>refund.request</code>'));
    const byTrade = await get(`/desk/audit?trade=${no['a1']}&action=trade.query&before=999999999`, itA);
    assert.equal(byTrade.status, 200);
    assert.equal((await get('/desk/audit?from=2026-13-01', itA)).status, 400);
    assert.equal((await get(`/desk/audit?actor=${'a'.repeat(1000)}`, itA)).status, 400);
    assert.equal((await get(`/desk/audit?app=${appB.appId}`, itA)).status, 400);
    // The trade's page shows its desk entries in the timeline.
    const page = await get(`/desk/trades/${t.appId}/${no['a1']}`, itA);
    assert.match(page.text, /运维操作 \/ desk action: trade\.query → ok/);
  });
});
