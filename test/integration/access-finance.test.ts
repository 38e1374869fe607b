import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import ExcelJS from 'exceljs';
import { startTestPlatform, type TestPlatform } from '../support/platform.js';
import {
  PASSWORD,
  cookieValue,
  csrfOf,
  hospitalWithData,
  insertDifference,
  loginAs,
  operatorWithToken,
  request,
} from '../support/access.js';

/**
 * The finance page with roles and hospital scope: one login for /finance and /desk (the session cookie on both
 * paths), a finance operator of hospital A never sees hospital B (choices, day view, differences, exports,
 * re-run, resolve), a cashier supervisor is sent to the desk, a role without recon.write cannot re-run or
 * resolve.
 */
describe('finance page: roles and hospital scope', () => {
  let t: TestPlatform;
  let b: Awaited<ReturnType<typeof hospitalWithData>>;
  let diffA: number;
  let diffB: number;
  const B_NAME = '乙医院机密';

  before(async () => {
    t = await startTestPlatform();
    b = await hospitalWithData(t, B_NAME);
    diffA = await insertDifference(t, t.appId, 'MZ-A-ORDER-0001');
    diffB = await insertDifference(t, b.appId, b.outTradeNo);
    await operatorWithToken(t, 'fin.a', 'finance', [t.appId]);
    await operatorWithToken(t, 'cs.a', 'cashier_supervisor', [t.appId]);
    await operatorWithToken(t, 'it.a', 'hospital_it', [t.appId]);
  });
  after(async () => {
    await t?.close();
  });

  it('login sets the session cookie for /finance and for /desk; logout clears both', async () => {
    const a = await loginAs(t.url, 'fin.a', PASSWORD);
    assert.equal(a.status, 303, a.text);
    assert.equal(a.location, '/finance', 'finance lands on the finance page');
    const atFinance = cookieValue(a.setCookies, 'hospay_finance', '/finance');
    const atDesk = cookieValue(a.setCookies, 'hospay_finance', '/desk');
    assert.ok(atFinance && atDesk, a.setCookies.join('\n'));
    assert.equal(atFinance, atDesk, 'one session for both');
    for (const c of a.setCookies.filter((x) => x.startsWith('hospay_finance=')))
      assert.match(c, /HttpOnly; SameSite=Strict/);

    const page = await request(`${t.url}/finance`, { cookie: a.session ?? '' });
    assert.equal(page.status, 200);
    assert.match(page.text, /href="\/desk"/, 'a link to the desk');
    const out = await request(`${t.url}/finance/logout`, {
      cookie: a.session ?? '',
      form: { csrf: csrfOf(page.text) },
    });
    assert.equal(out.status, 303);
    const cleared = out.setCookies.filter((c) => c.startsWith('hospay_finance=;'));
    assert.equal(cleared.length, 2, out.setCookies.join('\n'));
    assert.ok(
      cleared.some((c) => c.includes('Path=/desk')) && cleared.some((c) => c.includes('Path=/finance')),
    );
    assert.equal(
      (await request(`${t.url}/finance`, { cookie: a.session ?? '' })).status,
      303,
      'session ended',
    );
  });

  it('a cashier supervisor (no recon.read) lands on the desk and is sent there from /finance', async () => {
    const a = await loginAs(t.url, 'cs.a', PASSWORD);
    assert.equal(a.status, 303, a.text);
    assert.equal(a.location, '/desk');
    for (const p of [
      '/finance',
      `/finance/differences/${diffA}`,
      `/finance/export?date=2026-11-24&app=${t.appId}&format=csv`,
    ]) {
      const r = await request(`${t.url}${p}`, { cookie: a.session ?? '' });
      assert.equal(r.status, 303, p);
      assert.equal(r.location, '/desk', p);
    }
    // `next` may lead back into the desk; never to another site.
    const next = await loginAs(t.url, 'fin.a', PASSWORD, '/desk/trades?x=1');
    assert.equal(next.location, '/desk/trades?x=1');
    const evil = await loginAs(t.url, 'fin.a', PASSWORD, '//evil.example/desk');
    assert.equal(evil.location, '/finance');
  });

  it('a finance operator of hospital A never sees hospital B: choices, day view, differences', async () => {
    const a = await loginAs(t.url, 'fin.a', PASSWORD);
    const cookie = a.session ?? '';
    const day = await request(`${t.url}/finance?date=2026-11-24`, { cookie });
    assert.equal(day.status, 200);
    assert.ok(!day.text.includes(B_NAME), 'hospital B is not offered');
    assert.ok(!day.text.includes(b.appId));
    assert.match(day.text, new RegExp(`/finance/differences/${diffA}`));
    // Asking for B by its id shows A (as for an unknown app), never B.
    const asked = await request(`${t.url}/finance?date=2026-11-24&app=${b.appId}`, { cookie });
    assert.equal(asked.status, 200);
    assert.ok(!asked.text.includes(B_NAME) && !asked.text.includes(b.outTradeNo));
    assert.ok(!asked.text.includes(`/finance/differences/${diffB}`));

    const other = await request(`${t.url}/finance/differences/${diffB}`, { cookie });
    const missing = await request(`${t.url}/finance/differences/99999999`, { cookie });
    assert.equal(other.status, 404);
    assert.equal(missing.status, 404);
    assert.ok(!other.text.includes(b.outTradeNo));
    const strip = (html: string) => html.replace(/name="csrf" value="[^"]+"/g, '');
    assert.equal(strip(other.text), strip(missing.text), 'exactly like a missing difference');
    assert.equal((await request(`${t.url}/finance/differences/${diffA}`, { cookie })).status, 200);
  });

  it('exports (CSV, XLSX) of hospital B are refused like a missing app; A’s never mention B', async () => {
    const a = await loginAs(t.url, 'fin.a', PASSWORD);
    const cookie = a.session ?? '';
    for (const format of ['csv', 'xlsx']) {
      const theirs = await request(
        `${t.url}/finance/export?date=2026-11-24&app=${b.appId}&format=${format}`,
        {
          cookie,
        },
      );
      assert.equal(theirs.status, 400, format);
      assert.match(theirs.text, /没有这个应用 \/ no such app/);
      assert.ok(!theirs.text.includes(B_NAME));
    }
    const csv = await request(`${t.url}/finance/export?date=2026-11-24&app=${t.appId}&format=csv`, {
      cookie,
    });
    assert.equal(csv.status, 200);
    assert.match(csv.headers.get('content-type') ?? '', /text\/csv/);
    assert.ok(!csv.text.includes(B_NAME) && !csv.text.includes(b.appId));

    const res = await fetch(`${t.url}/finance/export?date=2026-11-24&app=${t.appId}&format=xlsx`, {
      headers: { cookie },
    });
    assert.equal(res.status, 200);
    const book = new ExcelJS.Workbook();
    await book.xlsx.load(Buffer.from(await res.arrayBuffer()) as unknown as ArrayBuffer);
    let cells = '';
    book.eachSheet((sheet) =>
      sheet.eachRow((row) => {
        cells += `${JSON.stringify(row.values)}\n`;
      }),
    );
    assert.ok(cells.length > 0);
    assert.ok(!cells.includes(B_NAME) && !cells.includes(b.appId), 'hospital B is not in the workbook');
  });

  it('re-run and resolve: only the granted hospital, only with recon.write; both audited', async () => {
    const a = await loginAs(t.url, 'fin.a', PASSWORD);
    const cookie = a.session ?? '';
    const page = await request(`${t.url}/finance?date=2026-11-24`, { cookie });
    const csrf = csrfOf(page.text);

    const rerunB = await request(`${t.url}/finance/rerun`, {
      cookie,
      form: { csrf, app: b.appId, date: '2026-11-24' },
    });
    assert.equal(rerunB.status, 400, 'hospital B: like an unknown app');
    const runsB = await t.platform.recon.reconciliation.runs('2026-11-24', b.appId);
    assert.equal(runsB.length, 0, 'no run for hospital B');

    const resolveB = await request(`${t.url}/finance/differences/${diffB}/resolve`, {
      cookie,
      form: { csrf, note: '越权' },
    });
    assert.equal(resolveB.status, 404);
    assert.equal((await t.platform.recon.reconciliation.difference(diffB))?.state, 'OPEN');

    const rerunA = await request(`${t.url}/finance/rerun`, {
      cookie,
      form: { csrf, app: t.appId, date: '2026-11-24' },
    });
    assert.equal(rerunA.status, 303, rerunA.text);
    const resolveA = await request(`${t.url}/finance/differences/${diffA}/resolve`, {
      cookie,
      form: { csrf, note: '已核实' },
    });
    assert.equal(resolveA.status, 303, resolveA.text);
    const audit = await t.platform.deps.audit.list({ apps: [t.appId], actor: 'fin.a', limit: 50 });
    const actions = audit.map((e) => `${e.action}:${e.via}:${e.app_id}`);
    assert.ok(actions.includes(`recon.run:session:${t.appId}`), actions.join(','));
    assert.ok(actions.includes(`difference.resolve:session:${t.appId}`), actions.join(','));

    // hospital_it has no recon.write: even with its session's own CSRF token a re-run or resolve is refused.
    const it = await loginAs(t.url, 'it.a', PASSWORD);
    assert.equal(it.location, '/desk');
    // SQL on purpose: the desk would render this token in its forms.
    const itCsrf = (
      await t.store.db
        .selectFrom('finance_sessions')
        .select('csrf_token')
        .where('username', '=', 'it.a')
        .executeTakeFirstOrThrow()
    ).csrf_token;
    const before = (await t.platform.recon.reconciliation.runs('2026-11-24', t.appId)).map((r) =>
      r.finished_at?.toISOString(),
    );
    t.clock.advance(60_000);
    const post = await request(`${t.url}/finance/rerun`, {
      cookie: it.session ?? '',
      form: { csrf: itCsrf, app: t.appId, date: '2026-11-24' },
    });
    assert.equal(post.status, 403, post.text);
    const later = (await t.platform.recon.reconciliation.runs('2026-11-24', t.appId)).map((r) =>
      r.finished_at?.toISOString(),
    );
    assert.deepEqual(later, before, 'no re-run happened');
    const diffA2 = await insertDifference(t, t.appId, 'MZ-A-ORDER-0002');
    const res = await request(`${t.url}/finance/differences/${diffA2}/resolve`, {
      cookie: it.session ?? '',
      form: { csrf: itCsrf, note: '无权' },
    });
    assert.equal(res.status, 403);
    assert.equal((await t.platform.recon.reconciliation.difference(diffA2))?.state, 'OPEN');
  });
});
