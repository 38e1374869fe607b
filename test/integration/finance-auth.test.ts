import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_DB } from '../support/db.js';
import { HospayHome, randomPort, type HospayProcess } from '../support/spawn.js';
import { OperatorRepository, checkPassword, hashPassword } from '../../src/store/operators.js';

/** The finance page over plain HTTP: login, CSRF, back-off, session expiry, escaping; the operator CLI. */

interface Answer {
  status: number;
  text: string;
  location: string | null;
  setCookies: string[];
  headers: Headers;
}

async function request(
  url: string,
  opts: { method?: string; cookie?: string; form?: Record<string, string> } = {},
): Promise<Answer> {
  const res = await fetch(url, {
    method: opts.method ?? (opts.form ? 'POST' : 'GET'),
    redirect: 'manual',
    headers: {
      ...(opts.cookie ? { cookie: opts.cookie } : {}),
      ...(opts.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
    },
    ...(opts.form ? { body: new URLSearchParams(opts.form).toString() } : {}),
  });
  return {
    status: res.status,
    text: await res.text(),
    location: res.headers.get('location'),
    setCookies: res.headers.getSetCookie(),
    headers: res.headers,
  };
}

function cookieValue(setCookies: string[], name: string): string | null {
  for (const c of setCookies) {
    const [pair] = c.split(';');
    const i = pair?.indexOf('=') ?? -1;
    if (pair && i > 0 && pair.slice(0, i) === name) return pair.slice(i + 1);
  }
  return null;
}

function csrfOf(html: string): string {
  const m = /name="csrf" value="([^"]+)"/.exec(html);
  assert.ok(m, `no CSRF field in:\n${html.slice(0, 500)}`);
  return m[1] ?? '';
}

/** Opens the login page and posts the form; returns the answer and the session cookie ("name=value") if any. */
async function login(
  base: string,
  username: string,
  password: string,
): Promise<Answer & { session: string | null }> {
  const page = await request(`${base}/finance/login`);
  const pre = cookieValue(page.setCookies, 'hospay_finance_login');
  assert.ok(pre);
  const a = await request(`${base}/finance/login`, {
    cookie: `hospay_finance_login=${pre}`,
    form: { username, password, csrf: csrfOf(page.text) },
  });
  const token = cookieValue(a.setCookies, 'hospay_finance');
  return { ...a, session: token ? `hospay_finance=${token}` : null };
}

describe('finance page: authentication and safety over HTTP', () => {
  let t: TestPlatform;
  let ops: OperatorRepository;
  const password = 'correct horse battery';

  before(async () => {
    t = await startTestPlatform();
    ops = new OperatorRepository(t.store.db, t.clock);
    await ops.create({ username: 'fin.auth', displayName: '王会计', password });
    await ops.create({ username: 'fin.lock', displayName: '李出纳', password });
    await ops.create({ username: 'fin.time', displayName: '赵审计', password });
  });
  after(async () => {
    await t?.close();
  });

  it('passwords are stored as scrypt$N$r$p$salt$hash and checked exactly', async () => {
    const row = await t.store.db
      .selectFrom('finance_operators')
      .selectAll()
      .where('username', '=', 'fin.auth')
      .executeTakeFirstOrThrow();
    assert.match(row.password_hash, /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    assert.ok(!row.password_hash.includes(password));
    assert.equal(await checkPassword(password, row.password_hash), true);
    assert.equal(await checkPassword(`${password} `, row.password_hash), false);
    assert.notEqual(await hashPassword(password), await hashPassword(password), 'a random salt each time');
    await assert.rejects(ops.create({ username: 'fin.auth', displayName: 'x', password }), /taken/);
    await assert.rejects(ops.create({ username: 'a b', displayName: 'x', password }), /username/);
    await assert.rejects(ops.create({ username: 'short.pw', displayName: 'x', password: 'abc' }), /password/);
  });

  it('unauthenticated pages redirect to the login page; the login page has a strict CSP and no script', async () => {
    for (const p of ['/finance', '/finance/differences/1', '/finance/export?format=csv']) {
      const a = await request(`${t.url}${p}`);
      assert.equal(a.status, 303, p);
      assert.match(a.location ?? '', /^\/finance\/login/, p);
    }
    const page = await request(`${t.url}/finance/login`);
    assert.equal(page.status, 200);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /style-src 'sha256-/);
    assert.doesNotMatch(csp, /unsafe/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.doesNotMatch(page.text, /<script/i);
    const pre = page.setCookies.find((c) => c.startsWith('hospay_finance_login=')) ?? '';
    assert.match(pre, /HttpOnly/);
    assert.match(pre, /SameSite=Strict/);
    assert.match(pre, /Path=\/finance/);
  });

  it('login: the form token is required; a wrong password is refused in Chinese; then a session cookie', async () => {
    const noToken = await request(`${t.url}/finance/login`, { form: { username: 'fin.auth', password } });
    assert.equal(noToken.status, 403);
    const page = await request(`${t.url}/finance/login`);
    const pre = cookieValue(page.setCookies, 'hospay_finance_login');
    const secondTab = await request(`${t.url}/finance/login`, { cookie: `hospay_finance_login=${pre}` });
    assert.equal(csrfOf(secondTab.text), pre, 'a second login tab gets the same form token');
    const wrongToken = await request(`${t.url}/finance/login`, {
      cookie: `hospay_finance_login=${pre}`,
      form: { username: 'fin.auth', password, csrf: 'not-the-token' },
    });
    assert.equal(wrongToken.status, 403);
    assert.equal(cookieValue(wrongToken.setCookies, 'hospay_finance'), null);

    const wrong = await login(t.url, 'fin.auth', 'not the password');
    assert.equal(wrong.status, 401);
    assert.match(wrong.text, /用户名或密码错误/);
    assert.equal(wrong.session, null);
    const unknown = await login(t.url, 'nobody', 'not the password');
    assert.equal(unknown.status, 401);
    assert.match(unknown.text, /用户名或密码错误/, 'an unknown user gets the same answer');

    const ok = await login(t.url, 'fin.auth', password);
    assert.equal(ok.status, 303);
    assert.equal(ok.location, '/finance');
    const set = ok.setCookies.find((c) => c.startsWith('hospay_finance=')) ?? '';
    assert.match(set, /HttpOnly/);
    assert.match(set, /SameSite=Strict/);
    assert.match(set, /Path=\/finance/);
    assert.doesNotMatch(set, /Secure/, 'not Secure over plain http');
    const home = await request(`${t.url}/finance`, { cookie: ok.session ?? '' });
    assert.equal(home.status, 200);
    assert.match(home.text, /王会计/);
    // Only the token's hash is stored.
    const token = (ok.session ?? '').split('=')[1] ?? '';
    const rows = await t.store.db.selectFrom('finance_sessions').selectAll().execute();
    assert.ok(rows.length >= 1);
    assert.ok(rows.every((r) => r.token_hash !== token && /^[0-9a-f]{64}$/.test(r.token_hash)));
    // Secure when the public base URL is https.
    const base = t.platform.config.publicBaseUrl;
    t.platform.config.publicBaseUrl = 'https://pay.example-hospital.cn';
    try {
      const secure = await login(t.url, 'fin.auth', password);
      assert.match(secure.setCookies.find((c) => c.startsWith('hospay_finance=')) ?? '', /; Secure/);
    } finally {
      t.platform.config.publicBaseUrl = base;
    }
  });

  it('every POST needs the session and its CSRF token: missing or wrong → 403, no session → login', async () => {
    const { session } = await login(t.url, 'fin.auth', password);
    assert.ok(session);
    const home = await request(`${t.url}/finance`, { cookie: session });
    const csrf = csrfOf(home.text);
    const id = await insertDifference(t, 'MZCSRF0001');
    const posts: Array<[string, Record<string, string>]> = [
      [`/finance/differences/${id}/resolve`, { note: '已核实' }],
      ['/finance/rerun', { app: t.appId, date: '2026-11-24' }],
      ['/finance/logout', {}],
    ];
    for (const [p, form] of posts) {
      const missing = await request(`${t.url}${p}`, { cookie: session, form });
      assert.equal(missing.status, 403, `${p} without a token`);
      assert.match(missing.text, /CSRF/);
      const wrong = await request(`${t.url}${p}`, { cookie: session, form: { ...form, csrf: `${csrf}x` } });
      assert.equal(wrong.status, 403, `${p} with a wrong token`);
      const noSession = await request(`${t.url}${p}`, { form: { ...form, csrf } });
      assert.equal(noSession.status, 303, `${p} without a session`);
      assert.match(noSession.location ?? '', /^\/finance\/login/);
    }
    const row = await t.store.db
      .selectFrom('recon_differences')
      .select('state')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    assert.equal(row.state, 'OPEN', 'nothing was resolved by the refused requests');
    // Another session's token does not do either.
    const other = await login(t.url, 'fin.auth', password);
    const otherCsrf = csrfOf((await request(`${t.url}/finance`, { cookie: other.session ?? '' })).text);
    assert.notEqual(otherCsrf, csrf);
    const crossed = await request(`${t.url}/finance/differences/${id}/resolve`, {
      cookie: session,
      form: { note: 'x', csrf: otherCsrf },
    });
    assert.equal(crossed.status, 403);
    // With the right token it goes through; a second time it says so.
    const ok = await request(`${t.url}/finance/differences/${id}/resolve`, {
      cookie: session,
      form: { note: '已核实', csrf },
    });
    assert.equal(ok.status, 303);
    assert.equal(ok.location, `/finance/differences/${id}?flash=resolved`);
    const again = await request(`${t.url}/finance/differences/${id}/resolve`, {
      cookie: session,
      form: { note: '再次', csrf },
    });
    assert.equal(again.status, 303);
    assert.equal(again.location, `/finance/differences/${id}?flash=already`);
    const shown = await request(`${t.url}${again.location ?? ''}`, { cookie: session });
    assert.match(shown.text, /此前已被处理/);
    assert.match(shown.text, /已核实/);
    assert.doesNotMatch(shown.text, /再次/);
  });

  it('a note is required, at most 500 characters', async () => {
    const { session } = await login(t.url, 'fin.auth', password);
    const csrf = csrfOf((await request(`${t.url}/finance`, { cookie: session ?? '' })).text);
    const id = await insertDifference(t, 'MZNOTE0001');
    const empty = await request(`${t.url}/finance/differences/${id}/resolve`, {
      cookie: session ?? '',
      form: { note: '   ', csrf },
    });
    assert.equal(empty.status, 400);
    assert.match(empty.text, /请填写处理说明/);
    const long = await request(`${t.url}/finance/differences/${id}/resolve`, {
      cookie: session ?? '',
      form: { note: '账'.repeat(501), csrf },
    });
    assert.equal(long.status, 400);
    assert.match(long.text, /至多 500 字/);
    const exact = await request(`${t.url}/finance/differences/${id}/resolve`, {
      cookie: session ?? '',
      form: { note: '账'.repeat(500), csrf },
    });
    assert.equal(exact.status, 303);
  });

  it('five wrong passwords slow down this source (429, Retry-After), never lock the account; the answers say nothing of it', async () => {
    t.clock.advance(3_600_000); // the earlier tests' failures are forgotten
    for (let i = 0; i < 5; i++) {
      const wrong = await login(t.url, 'fin.lock', 'wrong password!');
      assert.equal(wrong.status, 401);
      assert.match(wrong.text, /用户名或密码错误/);
    }
    // This address waits: 1 s (its own count), then a minute (its count for this account).
    const right = await login(t.url, 'fin.lock', password);
    assert.equal(right.status, 429, 'slowed down: the right password waits too');
    assert.equal(right.headers.get('retry-after'), '1');
    assert.match(right.text, /请稍后再试/);
    assert.doesNotMatch(right.text, /锁定|locked/);
    assert.equal(right.session, null);
    t.clock.advance(1000);
    const still = await login(t.url, 'fin.lock', password);
    assert.equal(still.status, 429);
    assert.equal(still.headers.get('retry-after'), '59');
    t.clock.advance(59_000);
    const after = await login(t.url, 'fin.lock', password);
    assert.equal(after.status, 303, 'after the wait the right password passes');
    const rows = await t.store.db
      .selectFrom('finance_login_attempts')
      .selectAll()
      .where('username', '=', 'fin.lock')
      .execute();
    const pair = rows.find((r) => r.source === '127.0.0.1');
    assert.equal(pair?.failures, 0, 'the success cleared this source');
    assert.ok(pair?.last_success_at, 'and made it a known source');
    assert.equal(rows.find((r) => r.source === '*')?.failures, 5, 'the account-wide count stays');
    t.clock.advance(3_600_000); // this address's own count is forgotten for the next tests
  });

  it('sessions end after 8 hours idle and 12 hours after login, whatever happens in between', async () => {
    const a = await login(t.url, 'fin.time', password);
    assert.ok(a.session);
    t.clock.advance(8 * 3_600_000 - 60_000);
    assert.equal((await request(`${t.url}/finance`, { cookie: a.session })).status, 200, 'just under 8 h');
    t.clock.advance(8 * 3_600_000 + 1000);
    const idle = await request(`${t.url}/finance`, { cookie: a.session });
    assert.equal(idle.status, 303, 'idle for 8 h');
    assert.match(idle.location ?? '', /^\/finance\/login/);

    const b = await login(t.url, 'fin.time', password);
    assert.ok(b.session);
    for (let i = 0; i < 3; i++) {
      t.clock.advance(4 * 3_600_000 - 60_000);
      assert.equal((await request(`${t.url}/finance`, { cookie: b.session })).status, 200, `touch ${i}`);
    }
    t.clock.advance(4 * 3_600_000);
    assert.equal((await request(`${t.url}/finance`, { cookie: b.session })).status, 303, 'over 12 h in all');

    // Disabling the operator ends the session at once; so does a new password.
    const c = await login(t.url, 'fin.time', password);
    assert.equal((await request(`${t.url}/finance`, { cookie: c.session ?? '' })).status, 200);
    await ops.setStatus('fin.time', 'disabled');
    assert.equal((await request(`${t.url}/finance`, { cookie: c.session ?? '' })).status, 303);
    const disabled = await login(t.url, 'fin.time', password);
    assert.equal(disabled.status, 401, 'a disabled account is refused like a wrong password');
    assert.match(disabled.text, /用户名或密码错误/);
    await ops.setStatus('fin.time', 'active');
    const d = await login(t.url, 'fin.time', password);
    await ops.setPassword('fin.time', 'a brand new password');
    assert.equal((await request(`${t.url}/finance`, { cookie: d.session ?? '' })).status, 303);
  });

  it('untrusted text (order numbers, notes, HIS answers) is escaped everywhere', async () => {
    const { session } = await login(t.url, 'fin.auth', password);
    assert.ok(session);
    const evil = `<script>alert("x")</script>'"&`;
    const id = await insertDifference(t, evil, {
      hisCheck: {
        checkedWith: 'HIS_IF_Query',
        found: true,
        flows: [
          { hisFlowId: '<img src=x onerror=alert(2)>', amountFen: 100, time: '2026-11-24T02:00:00.000Z' },
        ],
        netFen: 100,
        error: '<b>boom</b>',
        suggestion: { zh: '<i>建议</i>', en: '<u>x</u>' },
      },
      extraField: '<svg onload=alert(3)>',
    });
    const list = await request(`${t.url}/finance?app=${t.appId}&date=2026-11-24&filter=all`, {
      cookie: session,
    });
    assert.equal(list.status, 200);
    assert.ok(!list.text.includes('<script>alert'), 'the order number is not markup in the list');
    assert.ok(list.text.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&quot;&amp;'));
    const csrf = csrfOf(list.text);
    const note = `<img src=x onerror=alert(1)> 已退款 & "done"`;
    const r = await request(`${t.url}/finance/differences/${id}/resolve`, {
      cookie: session,
      form: { note, csrf },
    });
    assert.equal(r.status, 303);
    const page = await request(`${t.url}/finance/differences/${id}`, { cookie: session });
    for (const raw of ['<script>alert', '<img src=x', '<b>boom', '<i>建议', '<u>x', '<svg onload'])
      assert.ok(!page.text.includes(raw), `${raw} is escaped`);
    assert.ok(page.text.includes('&lt;img src=x onerror=alert(1)&gt; 已退款 &amp; &quot;done&quot;'));
    assert.ok(page.text.includes('&lt;b&gt;boom&lt;/b&gt;'));
    assert.ok(page.text.includes('&lt;svg onload=alert(3)&gt;'));
    // A next= pointing elsewhere is ignored.
    const away = await request(`${t.url}/finance/login?next=${encodeURIComponent('//evil.example/')}`, {
      cookie: session,
    });
    assert.equal(away.location, '/finance');
  });
});

/** A difference row as a run would store it (for tests that need one without running a day). */
async function insertDifference(
  t: TestPlatform,
  outTradeNo: string,
  extra: Record<string, unknown> = {},
): Promise<number> {
  const now = t.clock.now();
  const row = await t.store.db
    .insertInto('recon_differences')
    .values({
      app_id: t.appId,
      business_date: '2026-11-24',
      pay_type: 'alipay',
      diff_key: `HIS_MISSING|payment|${outTradeNo}||platform|${Math.random()}`,
      code: 'HIS_MISSING',
      kind: 'payment',
      out_trade_no: outTradeNo,
      out_request_no: null,
      detail: JSON.stringify({
        code: 'HIS_MISSING',
        label: { zh: '长款（已收款，HIS无记录）', en: 'Overage: money taken, no HIS record' },
        action: { zh: '联系HIS补写缴费记录，或原路退款给患者', en: 'Ask the HIS to write the payment back' },
        kind: 'payment',
        outTradeNo,
        side: 'platform',
        amounts: { platform: 8888 },
        time: '2026-11-24T03:00:00.000Z',
        ...extra,
      }),
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

describe(`hospay operator (CLI, ${TEST_DB})`, () => {
  let home: HospayHome;
  let server: HospayProcess | null = null;
  const port = randomPort();
  const base = `http://127.0.0.1:${port}`;

  before(async () => {
    home = await HospayHome.create('hospay-operator', { env: { LOG_LEVEL: 'info', HOSPAY_JOBS: 'off' } });
  });
  after(async () => {
    await home.close();
  });

  const run = (args: string[], input?: string) => home.run(args, input === undefined ? {} : { input });

  async function startServer(): Promise<void> {
    server = await home.start(['serve', '--port', String(port)]);
  }

  it('create (a generated password shown once, or one from stdin), list, usage errors', () => {
    const created = run(['operator', 'create', '--username', 'cw01', '--name', '财务一']);
    assert.equal(created.status, 0, created.stderr);
    assert.match(created.stdout, /operator created: cw01 \(财务一\)/);
    const generated = /password: (\S+)/.exec(created.stdout)?.[1] ?? '';
    assert.match(generated, /^[A-Za-z0-9_-]{24}$/);
    fs.writeFileSync(path.join(home.dataDir, 'cw01.pw'), generated);

    const piped = run(
      ['operator', 'create', '--username', 'cw02', '--name', '财务二', '--password-stdin', '--json'],
      'piped password 2\n',
    );
    assert.equal(piped.status, 0, piped.stderr);
    const view = JSON.parse(piped.stdout) as Record<string, unknown>;
    assert.equal(view['username'], 'cw02');
    assert.equal(view['password'], undefined, 'a password from stdin is not printed');
    assert.ok(!piped.stdout.includes('piped password 2'));

    const list = run(['operator', 'list']);
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /cw01 {2}active {2}财务一/);
    assert.match(list.stdout, /cw02 {2}active {2}财务二/);
    assert.ok(!list.stdout.includes(generated));

    const dup = run(['operator', 'create', '--username', 'cw01', '--name', 'x']);
    assert.equal(dup.status, 1);
    assert.match(dup.stderr, /taken/);
    assert.equal(run(['operator', 'create', '--username', 'bad name', '--name', 'x']).status, 2);
    assert.equal(run(['operator', 'create', '--username', 'cw03']).status, 2);
    const short = run(
      ['operator', 'create', '--username', 'cw03', '--name', 'x', '--password-stdin'],
      'short\n',
    );
    assert.equal(short.status, 2);
    assert.match(short.stderr, /at least 10/);
    assert.equal(run(['operator', 'frobnicate']).status, 2);
    const missing = run(['operator', 'disable', '--username', 'nobody']);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /no such operator/);
  });

  it('through the running server: log in with the printed password; disable refuses logins and ends sessions', async () => {
    const generated = fs.readFileSync(path.join(home.dataDir, 'cw01.pw'), 'utf8');
    await startServer();
    const a = await login(base, 'cw01', generated);
    assert.equal(a.status, 303, a.text);
    assert.ok(a.session);
    assert.equal((await request(`${base}/finance`, { cookie: a.session })).status, 200);

    const created = run(['operator', 'create', '--username', 'cw04', '--name', '财务四', '--json']);
    assert.equal(created.status, 0, created.stderr);
    const pw = (JSON.parse(created.stdout) as { password: string }).password;
    assert.equal((await login(base, 'cw04', pw)).status, 303);

    const off = run(['operator', 'disable', '--username', 'cw01']);
    assert.equal(off.status, 0, off.stderr);
    assert.match(off.stdout, /disabled/);
    assert.equal((await request(`${base}/finance`, { cookie: a.session })).status, 303, 'the session ended');
    const refused = await login(base, 'cw01', generated);
    assert.equal(refused.status, 401, 'disabled: refused like a wrong password');
    assert.match(refused.text, /用户名或密码错误/);
    assert.match(run(['operator', 'list']).stdout, /cw01 {2}disabled/);
    assert.equal(run(['operator', 'enable', '--username', 'cw01']).status, 0);

    const passwd = run(
      ['operator', 'passwd', '--username', 'cw01', '--password-stdin'],
      'the new password 1\n',
    );
    assert.equal(passwd.status, 0, passwd.stderr);
    assert.equal((await login(base, 'cw01', generated)).status, 401);
    assert.equal((await login(base, 'cw01', 'the new password 1')).status, 303);

    // No password reached the log.
    for (const secret of [generated, pw, 'the new password 1', 'piped password 2'])
      assert.ok(!(server?.out() ?? '').includes(secret), 'a password in the server output');
    await server?.stop('SIGTERM');
    server = null;
  });
});
