import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { startTestPlatform, type TestPlatform } from '../support/platform.js';
import { OperatorRepository } from '../../src/store/operators.js';
import type { Platform } from '../../src/main.js';

/**
 * The finance login under attack, through the real page over HTTP (issue 11, A): the answers do not tell an
 * unknown user, a wrong password, a disabled account or a slowed-down source apart; one address's back-off
 * answers 429 with Retry-After; an attacker elsewhere cannot keep the clerk out; password hashing runs one at a
 * time, and never for a refused attempt. The source address comes from X-Forwarded-For (HOSPAY_TRUST_PROXY).
 */

// Every scrypt call in this process, counted where it enters Node (independent of hospay's own bookkeeping).
const require = createRequire(import.meta.url);
const cryptoCjs = require('node:crypto') as { scrypt: (...args: unknown[]) => void };
const originalScrypt = cryptoCjs.scrypt;
const hashes = { calls: 0, active: 0, peak: 0, delayMs: 0 };
cryptoCjs.scrypt = function countedScrypt(...args: unknown[]): void {
  const cb = args[args.length - 1] as (err: Error | null, key: Buffer) => void;
  hashes.calls++;
  hashes.active++;
  hashes.peak = Math.max(hashes.peak, hashes.active);
  originalScrypt(...args.slice(0, -1), (err: Error | null, key: Buffer) => {
    // A slower hash (when a test asks) keeps the first ones running while the rest arrive.
    setTimeout(() => {
      hashes.active--;
      cb(err, key);
    }, hashes.delayMs);
  });
};
syncBuiltinESMExports();

interface Answer {
  status: number;
  text: string;
  location: string | null;
  retryAfter: string | null;
  session: string | null;
}

const PASSWORD = 'the clerk password 1';

function cookieValue(setCookies: string[], name: string): string | null {
  for (const c of setCookies) {
    const [pair] = c.split(';');
    const i = pair?.indexOf('=') ?? -1;
    if (pair && i > 0 && pair.slice(0, i) === name) return pair.slice(i + 1);
  }
  return null;
}

/** Opens the login page and posts the form from the given address (X-Forwarded-For). */
async function login(base: string, from: string, username: string, password: string): Promise<Answer> {
  const page = await fetch(`${base}/finance/login`, { headers: { 'x-forwarded-for': from } });
  const html = await page.text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
  const pre = cookieValue(page.headers.getSetCookie(), 'hospay_finance_login') ?? '';
  const res = await fetch(`${base}/finance/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      'x-forwarded-for': from,
      cookie: `hospay_finance_login=${pre}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ username, password, csrf }).toString(),
  });
  const session = cookieValue(res.headers.getSetCookie(), 'hospay_finance');
  return {
    status: res.status,
    text: await res.text(),
    location: res.headers.get('location'),
    retryAfter: res.headers.get('retry-after'),
    session,
  };
}

/** The same through another instance's Fastify (no listening socket), from the given address. */
async function loginVia(p: Platform, from: string, username: string, password: string): Promise<Answer> {
  const page = await p.server.inject({ method: 'GET', url: '/finance/login', remoteAddress: from });
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
  const res = await p.server.inject({
    method: 'POST',
    url: '/finance/login',
    remoteAddress: from,
    headers: { cookie: `hospay_finance_login=${csrf}`, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ username, password, csrf }).toString(),
  });
  const header = res.headers['retry-after'];
  return {
    status: res.statusCode,
    text: res.body,
    location: typeof res.headers['location'] === 'string' ? res.headers['location'] : null,
    retryAfter: header === undefined ? null : String(header),
    session: null,
  };
}

/** An answer without what legitimately differs between two attempts (the form token, the echoed username). */
function shape(a: Answer, username: string): string {
  return `${a.status} retry-after=${a.retryAfter ?? '-'}\n${a.text
    .replace(/name="csrf" value="[^"]*"/g, 'name="csrf" value="…"')
    .split(`value="${username}"`)
    .join('value="…"')}`;
}

let addressSeq = 0;
/** A fresh source address (from the documentation range 198.51.100.0/24, then 203.0.113.0/24). */
function freshAddress(): string {
  addressSeq++;
  return addressSeq < 250 ? `198.51.100.${addressSeq}` : `203.0.113.${addressSeq - 249}`;
}

describe('finance login: throttling, uniform answers, capped hashing (real HTTP)', () => {
  let t: TestPlatform;
  let ops: OperatorRepository;

  before(async () => {
    t = await startTestPlatform({ env: { HOSPAY_TRUST_PROXY: 'true' } });
    ops = new OperatorRepository(t.store.db, t.clock);
    for (const username of ['fin.same', 'fin.off', 'fin.clerk', 'fin.cap', 'fin.multi', 'fin.admin'])
      await ops.create({ username, displayName: '测试会计', password: PASSWORD });
    await ops.setStatus('fin.off', 'disabled');
  });
  after(async () => {
    await t?.close();
  });
  beforeEach(() => {
    // Each test starts with every earlier back-off long forgotten.
    t.clock.advance(24 * 3_600_000);
  });

  it('unknown user, wrong password, disabled account and a slowed-down source: the same answers, the same hashing', async () => {
    const runs: Array<{ username: string; password: (i: number) => string }> = [
      { username: 'fin.same', password: () => 'a wrong password' },
      { username: 'nobody.here', password: () => 'a wrong password' },
      // The disabled account with its right password is refused exactly like a wrong one.
      { username: 'fin.off', password: () => PASSWORD },
      { username: 'not a username!', password: () => 'a wrong password' },
      // Slowed down: after the wrong ones, the right password gets the same 429 (no hint that it was right).
      { username: 'fin.same', password: (i) => (i < 5 ? 'a wrong password' : PASSWORD) },
    ];
    const shapes: string[][] = [];
    const hashed: number[][] = [];
    for (const run of runs) {
      const from = freshAddress();
      const seen: string[] = [];
      const counts: number[] = [];
      for (let i = 0; i < 7; i++) {
        const before = hashes.calls;
        const a = await login(t.url, from, run.username, run.password(i));
        seen.push(shape(a, run.username));
        counts.push(hashes.calls - before);
        assert.equal(a.session, null);
      }
      shapes.push(seen);
      hashed.push(counts);
      // The account state of fin.same is not what refuses: a new address still gets its five tries.
      t.clock.advance(3_600_000 + 1000);
    }
    const [first] = shapes;
    assert.ok(first);
    assert.deepEqual(
      first.map((s) => s.split('\n')[0]),
      [
        '401 retry-after=-',
        '401 retry-after=-',
        '401 retry-after=-',
        '401 retry-after=-',
        '401 retry-after=-',
        '429 retry-after=1',
        '429 retry-after=1',
      ],
    );
    assert.match(first[0] ?? '', /用户名或密码错误/);
    assert.match(first[5] ?? '', /请稍后再试/);
    for (const [i, s] of shapes.entries()) assert.deepEqual(s, first, `run ${i} answers like run 0`);
    // Every refused credential ran exactly one hash (a dummy one for an unknown user); no refused attempt ran any.
    for (const [i, c] of hashed.entries()) assert.deepEqual(c, [1, 1, 1, 1, 1, 0, 0], `hashes of run ${i}`);
  });

  it('an attacker hammering from one address, then from many, does not keep the clerk out', async () => {
    const office = freshAddress();
    const first = await login(t.url, office, 'fin.clerk', PASSWORD);
    assert.equal(first.status, 303, 'the clerk logs in from the office once');

    // From one address: a handful of tries, then 429s.
    const attacker = freshAddress();
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++)
      statuses.push((await login(t.url, attacker, 'fin.clerk', `guess ${i}`)).status);
    assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401]);
    assert.ok(
      statuses.slice(5).every((s) => s === 429),
      `after five tries only 429: ${statuses.join(',')}`,
    );
    const atOffice = await login(t.url, office, 'fin.clerk', PASSWORD);
    assert.equal(atOffice.status, 303, 'the clerk still logs in from the office');
    assert.ok(atOffice.session);

    // From many addresses (one try each): after ten failures in all, the account is slowed down for addresses
    // it never logged in from...
    const sprayed: number[] = [];
    for (let i = 0; i < 12; i++)
      sprayed.push((await login(t.url, freshAddress(), 'fin.clerk', `spray ${i}`)).status);
    assert.deepEqual(sprayed, [401, 401, 401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    const elsewhere = freshAddress();
    const slowed = await login(t.url, elsewhere, 'fin.clerk', PASSWORD);
    assert.equal(slowed.status, 429);
    assert.match(slowed.text, /请稍后再试/);
    const wait = Number(slowed.retryAfter);
    assert.ok(wait >= 1 && wait <= 15 * 60, `Retry-After ${slowed.retryAfter}`);
    // ...but not from the office, where the clerk logged in before.
    assert.equal((await login(t.url, office, 'fin.clerk', PASSWORD)).status, 303);
    // After the wait, the right password passes from the new address too.
    t.clock.advance(wait * 1000);
    const later = await login(t.url, elsewhere, 'fin.clerk', PASSWORD);
    assert.equal(later.status, 303, later.text.slice(0, 300));
  });

  it('one address: 429 with Retry-After, doubling; other addresses unaffected; forgotten after an hour', async () => {
    const from = freshAddress();
    // Five different (unknown) usernames: only the address's own count can refuse.
    for (let i = 0; i < 5; i++)
      assert.equal((await login(t.url, from, `who.${i}`, 'wrong password')).status, 401);
    for (const expected of ['1', '2', '4', '8']) {
      const before = hashes.calls;
      const refused = await login(t.url, from, `who.x${expected}`, 'wrong password');
      assert.equal(refused.status, 429);
      assert.equal(refused.retryAfter, expected);
      assert.match(refused.text, /请稍后再试/);
      assert.match(refused.text, /name="csrf"/, 'the login form again');
      assert.equal(hashes.calls, before, 'no hash for a refused attempt');
      t.clock.advance(Number(expected) * 1000);
      assert.equal((await login(t.url, from, `who.y${expected}`, 'wrong password')).status, 401);
    }
    assert.equal(
      (await login(t.url, freshAddress(), 'who.z', 'wrong password')).status,
      401,
      'another address',
    );
    assert.equal(
      (await login(t.url, from, 'fin.clerk', PASSWORD)).status,
      429,
      'even the right password waits',
    );
    t.clock.advance(3_600_000 + 1000);
    assert.equal((await login(t.url, from, 'fin.clerk', PASSWORD)).status, 303, 'forgotten after an hour');
  });

  it('password hashing is capped: 20 concurrent wrong logins never run two hashes at once; the excess is refused at once', async () => {
    // Warm up (the dummy hash for unknown users is made once).
    await login(t.url, freshAddress(), 'nobody.warm', 'wrong password');
    hashes.peak = hashes.active;
    const callsBefore = hashes.calls;
    hashes.delayMs = 400;
    let answers: Answer[];
    try {
      answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          login(t.url, freshAddress(), i % 2 === 0 ? 'fin.cap' : `nobody.${i}`, `wrong ${i}`),
        ),
      );
    } finally {
      hashes.delayMs = 0;
    }
    const statuses = answers.map((a) => a.status);
    assert.ok(
      statuses.every((s) => s === 401 || s === 429),
      statuses.join(','),
    );
    assert.ok(hashes.peak <= 1, `at most one scrypt at a time, saw ${hashes.peak}`);
    const refused = answers.filter((a) => a.status === 429);
    assert.ok(refused.length >= 10, `the excess is refused: ${statuses.join(',')}`);
    for (const a of refused) {
      assert.equal(a.retryAfter, '1');
      assert.match(a.text, /请稍后再试/);
    }
    assert.equal(hashes.calls - callsBefore, statuses.filter((s) => s === 401).length, 'one hash per 401');
    // The refused clerk is not harmed: the next try goes through.
    assert.equal((await login(t.url, freshAddress(), 'fin.cap', PASSWORD)).status, 303);
  });

  it('the per-account back-off is in the database: another instance refuses the same source too', async () => {
    const from = freshAddress();
    for (let i = 0; i < 5; i++)
      assert.equal((await login(t.url, from, 'fin.multi', 'wrong password')).status, 401);
    const second = await t.second();
    const there = await loginVia(second, from, 'fin.multi', PASSWORD);
    assert.equal(there.status, 429, 'the second instance knows the source is slowed down for this account');
    assert.equal(there.retryAfter, '60');
    const otherSource = await loginVia(second, freshAddress(), 'fin.multi', PASSWORD);
    assert.equal(otherSource.status, 303, 'another source is not');
  });

  it('operator enable or passwd clears an account back-off (the admin API), and list shows it', async () => {
    for (let i = 0; i < 10; i++)
      assert.equal((await login(t.url, freshAddress(), 'fin.admin', 'wrong password')).status, 401);
    const listed = await t.admin('GET', '/admin/operators');
    const view = (listed.data as unknown as Array<Record<string, unknown>>).find(
      (o) => o['username'] === 'fin.admin',
    );
    assert.equal(view?.['failed_logins'], 10);
    assert.ok(view?.['locked_until'], 'slowed down until');
    assert.equal((await login(t.url, freshAddress(), 'fin.admin', PASSWORD)).status, 429);
    const enabled = await t.admin('PUT', '/admin/operators/fin.admin/status', { status: 'active' });
    assert.equal(enabled.status, 200, JSON.stringify(enabled.data));
    assert.equal((await login(t.url, freshAddress(), 'fin.admin', PASSWORD)).status, 303);
  });
});
