import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { sql } from 'kysely';
import { formatShanghai } from '../../../src/domain/clock.js';
import { publicKeyBase64, signContent, signingContent, type SignType } from '../../../src/crypto/signing.js';
import { orderNo, startTestPlatform, type TestPlatform } from '../../support/platform.js';
import { LEGACY_APP_KEY, TEST_APP_KEY, verifyAnswer } from '../../support/gateway.js';
import { assertNoSecrets } from './log-check.js';

/**
 * Item 9 of the reliability battery: every parameter of a valid signed request tampered with one at a time,
 * wrong keys, RSA/RSA2 mix-ups and broken signatures are all refused with the right sub_code, and spend nothing;
 * every valid way of signing and sending is accepted.
 */

type Params = Record<string, string>;
interface Answer {
  status: number;
  raw: string;
  code: string;
  sub: string;
}

const COMMON = ['app_id', 'method', 'timestamp', 'nonce_str', 'biz_content', 'sign_type', 'sign'];

describe('reliability 9: signatures', () => {
  let t: TestPlatform;
  let legacy = '';
  let bare = '';
  let twin = '';
  const known: Record<string, string> = {};
  const randomKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const signatures: string[] = [];
  const figures = { tampered: 0, wrongKey: 0, mixUp: 0, broken: 0, valid: 0, equivalent: 0 };

  before(async () => {
    t = await startTestPlatform();
    // Both apps chose legacy signing (sign_type RSA, 1024-bit keys): this battery proves every signature check
    // for both algorithms. That legacy signing is refused to apps that did not choose it is proven below.
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem, true);
    legacy = (await t.platform.deps.apps.create({ name: '老系统医院' })).appId;
    await t.platform.deps.apps.setPublicKey(legacy, LEGACY_APP_KEY.publicPem, true);
    // The same 2048-bit key, registered as the bare Base64 of its DER (Alipay's key tool format).
    bare = (await t.platform.deps.apps.create({ name: '裸公钥医院' })).appId;
    await t.platform.deps.apps.setPublicKey(bare, publicKeyBase64(createPublicKey(TEST_APP_KEY.publicPem)));
    // Another app that registered the very same public key: a request for one must not pass for the other.
    twin = (await t.platform.deps.apps.create({ name: '同钥医院' })).appId;
    await t.platform.deps.apps.setPublicKey(twin, TEST_APP_KEY.publicPem);
    for (const [app, key, type] of [
      [t.appId, TEST_APP_KEY.privateKey, 'RSA2'],
      [legacy, LEGACY_APP_KEY.privateKey, 'RSA'],
      [bare, TEST_APP_KEY.privateKey, 'RSA2'],
      [twin, TEST_APP_KEY.privateKey, 'RSA2'],
    ] as const) {
      const no = orderNo('MZ');
      const biz = JSON.stringify({
        out_trade_no: no,
        total_amount: '12.34',
        subject: '门诊缴费',
        order_type: 'TREATMENT',
      });
      const a = await send(signed(params(app, 'lc.trade.h5.pay', biz, { sign_type: type }), key, type));
      assert.equal(a.code, '10000', a.raw);
      known[app] = no;
    }
  });
  after(async () => {
    await t?.close();
  });

  const keyOf = (app: string) => (app === legacy ? LEGACY_APP_KEY.privateKey : TEST_APP_KEY.privateKey);

  function params(app: string, method = 'lc.trade.query', biz?: string, extra: Params = {}): Params {
    return {
      app_id: app,
      method,
      timestamp: formatShanghai(t.clock.now()),
      nonce_str: randomUUID(),
      biz_content: biz ?? JSON.stringify({ out_trade_no: known[app] ?? 'MZNONE' }),
      sign_type: 'RSA2',
      ...extra,
    };
  }

  /** Signs the parameters as they are (sign_type included as written) with the given algorithm. */
  function signed(p: Params, key: KeyObject, algorithm: SignType = 'RSA2'): Params {
    const sign = signContent(signingContent(p), key, algorithm);
    signatures.push(sign);
    return { ...p, sign };
  }

  async function send(
    form: Params | Array<[string, string]> | string,
    contentType = 'application/x-www-form-urlencoded',
  ): Promise<Answer> {
    const body =
      typeof form === 'string'
        ? form
        : new URLSearchParams(Array.isArray(form) ? form : Object.entries(form)).toString();
    const res = await fetch(`${t.url}/gateway`, {
      method: 'POST',
      headers: { 'content-type': contentType },
      body: Buffer.from(body),
    });
    const raw = await res.text();
    const json = JSON.parse(raw) as { code: string; biz_content: Record<string, unknown> };
    return { status: res.status, raw, code: json.code, sub: String(json.biz_content['sub_code'] ?? '') };
  }

  const counts = async () => {
    const r = await sql<{ trades: string; nonces: string }>`
      SELECT (SELECT count(*) FROM trades)::text AS trades,
             (SELECT count(*) FROM gateway_nonces)::text AS nonces`.execute(t.store.db);
    return r.rows[0];
  };

  async function refused(a: Answer, sub: string, label: string) {
    assert.ok(a.status < 500, `${label}: HTTP ${a.status}`);
    assert.equal(a.sub, sub, `${label}: ${a.raw.slice(0, 400)}`);
    assert.equal(
      a.code,
      sub.startsWith('isv.missing')
        ? '40001'
        : sub === 'isv.invalid-app-id' || sub === 'isv.weak-app-public-key'
          ? '20001'
          : '40002',
    );
    // Refused before the signature verified: unsigned (issue 11: nothing is signed for an unknown caller);
    // after it (timestamp, nonce, replay, method): signed.
    const preAuth =
      /^isv\.(missing-|invalid-app-id|invalid-signature|invalid-content-type|repeated-parameter|request-too-large|invalid-encoding|weak-app-public-key)/.test(
        sub,
      );
    if (preAuth) assert.equal((JSON.parse(a.raw) as { sign?: string }).sign, undefined, `${label}: unsigned`);
    else
      assert.ok(
        verifyAnswer(a.raw, (await t.platform.deps.keys.active()).publicKey),
        `${label}: signed refusal`,
      );
  }

  /** A different character of the same kind at index i (so the text stays plausible). */
  function otherChar(s: string, i: number): string {
    const c = s[i] ?? '';
    const pool = /[0-9]/.test(c)
      ? '0123456789'
      : /[a-z]/.test(c)
        ? 'abcdefghijklmnopqrstuvwxyz'
        : /[A-Z]/.test(c)
          ? 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'
          : 'x_';
    const next = pool[(pool.indexOf(c) + 1) % pool.length] ?? 'x';
    return s.slice(0, i) + next + s.slice(i + 1);
  }

  it('every parameter tampered with after signing is refused, and nothing is spent', async (tc) => {
    const base = signed(
      params(t.appId, 'lc.trade.query', undefined, { charset: 'utf-8', format: 'JSON', version: '1.0' }),
      TEST_APP_KEY.privateKey,
    );
    const before = await counts();
    const variants: Array<[string, Params, string]> = [];
    const expectFor = (name: string, value: string | undefined): string => {
      if ((value === undefined || value === '') && COMMON.includes(name))
        return `isv.missing-${name.replace(/_/g, '-')}`;
      if (name === 'app_id')
        return value === twin || value === legacy || value === bare
          ? 'isv.invalid-signature'
          : 'isv.invalid-app-id';
      if (name === 'sign_type')
        return /^rsa2?$/i.test(value ?? '') ? 'isv.invalid-signature' : 'isv.invalid-signature-type';
      return 'isv.invalid-signature';
    };
    const add = (label: string, name: string, value: string | undefined) => {
      const f = { ...base };
      if (value === undefined) delete f[name];
      else f[name] = value;
      variants.push([`${name}: ${label}`, f, expectFor(name, value)]);
    };
    for (const name of [
      'app_id',
      'method',
      'timestamp',
      'nonce_str',
      'biz_content',
      'sign_type',
      'charset',
      'format',
      'version',
    ]) {
      const v = base[name] ?? '';
      add('one character changed', name, otherChar(v, Math.floor(v.length / 2)));
      add('a character appended', name, `${v}x`);
      add('a leading space', name, ` ${v}`);
      add('a trailing space', name, `${v} `);
      if (v.toUpperCase() !== v) add('upper case', name, v.toUpperCase());
      if (v.toLowerCase() !== v) add('lower case', name, v.toLowerCase());
      add('emptied', name, '');
      add('left out', name, undefined);
    }
    add('another app with the same key', 'app_id', twin);
    add('the legacy app', 'app_id', legacy);
    add('another real method', 'method', 'lc.trade.refund');
    add('one second later', 'timestamp', formatShanghai(new Date(t.clock.now().getTime() + 1000)));
    add('RSA instead of RSA2', 'sign_type', 'RSA');
    add('MD5', 'sign_type', 'MD5');
    add('gbk', 'charset', 'gbk');
    add('an unsigned parameter', 'extra', '1');
    add('an unsigned notify_url', 'notify_url', 'https://evil.example/notify');
    // biz_content byte by byte: each character changed, removed, and a space inserted before it.
    const biz = base['biz_content'] ?? '';
    for (let i = 0; i < biz.length; i++) {
      add(`character ${i} changed`, 'biz_content', otherChar(biz, i));
      add(`character ${i} removed`, 'biz_content', biz.slice(0, i) + biz.slice(i + 1));
      add(`space before character ${i}`, 'biz_content', `${biz.slice(0, i)} ${biz.slice(i)}`);
    }
    const obj = JSON.parse(biz) as Record<string, unknown>;
    add('same JSON, pretty-printed', 'biz_content', JSON.stringify(obj, null, 2));
    add('same JSON, another key', 'biz_content', JSON.stringify({ ...obj, extra: 1 }));
    add('same JSON with \\u escapes', 'biz_content', biz.replace(/M/g, '\\u004d'));
    add('another trade', 'biz_content', JSON.stringify({ out_trade_no: known[twin] }));
    for (const [label, form, sub] of variants) await refused(await send(form), sub, label);
    assert.deepEqual(await counts(), before, 'no refusal spent a nonce or made a trade');
    // The untampered request was valid all along, and its nonce unspent; once accepted it cannot be replayed.
    const ok = await send(base);
    assert.equal(ok.code, '10000', ok.raw);
    await refused(await send(base), 'isv.repeated-nonce', 'the original, a second time');
    figures.tampered = variants.length;
    tc.diagnostic(
      `${variants.length} tampered variants of one signed request refused (${biz.length * 3} of them in biz_content); the original accepted once`,
    );
  });

  it('every signature character changed, truncated, garbled or not Base64: refused', async (tc) => {
    const base = signed(params(t.appId), TEST_APP_KEY.privateKey);
    const sig = base['sign'] ?? '';
    const before = await counts();
    const orig = Buffer.from(sig, 'base64');
    const cases: Array<[string, string, string]> = [];
    const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    for (let i = 0; i < sig.length; i++) {
      if (sig[i] === '=') continue;
      // A different Base64 character that changes the decoded bytes (the last one before '==' carries spare bits).
      for (let k = 1; k < 64; k++) {
        const c = B64[(B64.indexOf(sig[i] ?? 'A') + k) % 64] ?? 'A';
        const s = sig.slice(0, i) + c + sig.slice(i + 1);
        if (!Buffer.from(s, 'base64').equals(orig)) {
          cases.push([`character ${i} changed`, s, 'isv.invalid-signature']);
          break;
        }
      }
    }
    const other = signed(params(t.appId), TEST_APP_KEY.privateKey)['sign'] ?? '';
    const flipped = Buffer.from(orig);
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    const extra: Array<[string, string, string]> = [
      ['empty', '', 'isv.missing-sign'],
      ['last 4 characters cut', sig.slice(0, -4), 'isv.invalid-signature'],
      ['first 4 characters cut', sig.slice(4), 'isv.invalid-signature'],
      ['half', sig.slice(0, sig.length / 2), 'isv.invalid-signature'],
      ['one character', sig.slice(0, 1), 'isv.invalid-signature'],
      ['padding only', '====', 'isv.invalid-signature'],
      ['all A', 'A'.repeat(sig.length), 'isv.invalid-signature'],
      ['2,049 characters', 'A'.repeat(2049), 'isv.invalid-signature'],
      ['twice', sig + sig, 'isv.invalid-signature'],
      ['4 characters appended', `${sig}AAAA`, 'isv.invalid-signature'],
      ['reversed', [...sig].reverse().join(''), 'isv.invalid-signature'],
      [
        'URL-safe alphabet',
        `${sig.replace(/\+/g, '-').replace(/\//g, '_')}${/[+/]/.test(sig) ? '' : '-'}`,
        'isv.invalid-signature',
      ],
      ['MIME line breaks', sig.replace(/(.{76})/g, '$1\r\n'), 'isv.invalid-signature'],
      ['a leading space', ` ${sig}`, 'isv.invalid-signature'],
      ['a trailing newline', `${sig}\n`, 'isv.invalid-signature'],
      ['hex instead of Base64', orig.toString('hex'), 'isv.invalid-signature'],
      ['first bit flipped', flipped.toString('base64'), 'isv.invalid-signature'],
      ['the signature of another request', other, 'isv.invalid-signature'],
      ['not Base64 at all', '!!!not*base64???', 'isv.invalid-signature'],
      ['"null"', 'null', 'isv.invalid-signature'],
      ['NUL-free binary junk', '\u00ff\u00fe\u00fd', 'isv.invalid-signature'],
    ];
    cases.push(...extra);
    for (const [label, s, sub] of cases) await refused(await send({ ...base, sign: s }), sub, label);
    // A raw '+' in the body (the form not URL-encoded) arrives as a space.
    const raw = Object.entries(base)
      .map(([k, v]) => `${k}=${k === 'sign' ? v : encodeURIComponent(v)}`)
      .join('&');
    if (sig.includes('+')) await refused(await send(raw), 'isv.invalid-signature', 'raw + in the body');
    assert.deepEqual(await counts(), before, 'no refusal spent a nonce');
    assert.equal((await send(base)).code, '10000', 'the real signature was valid all along');
    figures.broken = cases.length + (sig.includes('+') ? 1 : 0);
    tc.diagnostic(
      `${figures.broken} broken signatures refused (${sig.length - (sig.match(/=/g)?.length ?? 0)} single-character changes)`,
    );
  });

  it('legacy signing is only for apps that chose it: RSA (SHA-1) and 1024-bit keys are refused otherwise', async () => {
    const modern = (await t.platform.deps.apps.create({ name: '新系统医院' })).appId;
    await t.platform.deps.apps.setPublicKey(modern, TEST_APP_KEY.publicPem);
    const short = (await t.platform.deps.apps.create({ name: '短密钥医院' })).appId;
    await t.platform.deps.apps.setPublicKey(short, LEGACY_APP_KEY.publicPem);
    const before = await counts();
    const k = TEST_APP_KEY.privateKey;
    await refused(
      await send(signed(params(modern, undefined, undefined, { sign_type: 'RSA' }), k, 'RSA')),
      'isv.invalid-signature-type',
      'RSA from an app without legacy signing',
    );
    await refused(
      await send(signed(params(short), LEGACY_APP_KEY.privateKey)),
      'isv.weak-app-public-key',
      'a 1024-bit key without legacy signing',
    );
    assert.deepEqual(await counts(), before, 'nothing was stored');
    // The same app, RSA2: accepted and answered RSA2 (the platform signs SHA-1 only for legacy apps).
    const a = await send(signed(params(modern), k));
    assert.equal(a.sub, 'TRADE_NOT_EXIST', a.raw);
    assert.equal((JSON.parse(a.raw) as { sign_type: string }).sign_type, 'RSA2');
  });

  it('wrong keys and RSA/RSA2 mix-ups are refused', async (tc) => {
    const other1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    const platformKey = (await t.platform.deps.keys.active()).privateKey;
    const before = await counts();
    const wrong: Array<[string, string, KeyObject, SignType]> = [
      ['a random 2048-bit key, RSA2', t.appId, randomKey, 'RSA2'],
      ['a random 2048-bit key, RSA', t.appId, randomKey, 'RSA'],
      ['a random 1024-bit key, RSA', legacy, other1024, 'RSA'],
      ['the legacy key for the 2048-bit app, RSA2', t.appId, LEGACY_APP_KEY.privateKey, 'RSA2'],
      ['the legacy key for the 2048-bit app, RSA', t.appId, LEGACY_APP_KEY.privateKey, 'RSA'],
      ['the 2048-bit key for the legacy app, RSA', legacy, TEST_APP_KEY.privateKey, 'RSA'],
      ['the 2048-bit key for the legacy app, RSA2', legacy, TEST_APP_KEY.privateKey, 'RSA2'],
      ['the platform key', t.appId, platformKey, 'RSA2'],
      ['the random key for the bare-key app', bare, randomKey, 'RSA2'],
    ];
    for (const [label, app, key, type] of wrong) {
      await refused(
        await send(signed(params(app, undefined, undefined, { sign_type: type }), key, type)),
        'isv.invalid-signature',
        label,
      );
    }
    // The algorithm must match sign_type: the content says one, the signature was made with the other.
    const mixUps: Array<[string, string, SignType, SignType]> = [
      ['SHA1 signature sent as RSA2 (2048-bit)', t.appId, 'RSA2', 'RSA'],
      ['SHA256 signature sent as RSA (2048-bit)', t.appId, 'RSA', 'RSA2'],
      ['SHA1 signature sent as RSA2 (1024-bit)', legacy, 'RSA2', 'RSA'],
      ['SHA256 signature sent as RSA (1024-bit)', legacy, 'RSA', 'RSA2'],
      ['SHA1 signature sent as rsa2', t.appId, 'rsa2' as SignType, 'RSA'],
      ['SHA256 signature sent as rsa', t.appId, 'rsa' as SignType, 'RSA2'],
    ];
    for (const [label, app, declared, used] of mixUps) {
      await refused(
        await send(signed(params(app, undefined, undefined, { sign_type: declared }), keyOf(app), used)),
        'isv.invalid-signature',
        label,
      );
    }
    // Signed as RSA2, then sign_type switched (the content no longer matches either way).
    for (const [from, to] of [
      ['RSA2', 'RSA'],
      ['RSA', 'RSA2'],
    ] as const) {
      const f = signed(
        params(t.appId, undefined, undefined, { sign_type: from }),
        TEST_APP_KEY.privateKey,
        from,
      );
      await refused(
        await send({ ...f, sign_type: to }),
        'isv.invalid-signature',
        `signed ${from}, sent as ${to}`,
      );
    }
    // Common signing mistakes of integrators (signing.md §6).
    const p = params(t.appId);
    const mistakes: Array<[string, string]> = [
      ['sign_type left out of the content', signingContent({ ...p, sign_type: undefined })],
      [
        'URL-encoded values signed',
        signingContent(Object.fromEntries(Object.entries(p).map(([k, v]) => [k, encodeURIComponent(v)]))),
      ],
      ['an empty parameter included', `${signingContent(p)}&charset=`],
      [
        'parameters in the order added',
        Object.entries(p)
          .map(([k, v]) => `${k}=${v}`)
          .join('&'),
      ],
      ['a trailing newline', `${signingContent(p)}\n`],
    ];
    for (const [label, content] of mistakes) {
      await refused(
        await send({ ...p, sign: signContent(content, TEST_APP_KEY.privateKey, 'RSA2') }),
        'isv.invalid-signature',
        label,
      );
    }
    assert.deepEqual(await counts(), before, 'no refusal spent a nonce');
    figures.wrongKey = wrong.length;
    figures.mixUp = mixUps.length + 2 + mistakes.length;
    tc.diagnostic(
      `${wrong.length} wrong keys, ${mixUps.length + 2} RSA/RSA2 mix-ups, ${mistakes.length} signing mistakes: all refused`,
    );
  });

  it('every valid way of signing and sending is accepted', async (tc) => {
    const platformPublic = (await t.platform.deps.keys.active()).publicKey;
    const ok = async (
      label: string,
      form: Params | Array<[string, string]> | string,
      contentType?: string,
      answerType = 'RSA2',
    ) => {
      const a = await send(form, contentType);
      assert.equal(a.code, '10000', `${label}: ${a.raw.slice(0, 300)}`);
      assert.ok(verifyAnswer(a.raw, platformPublic), `${label}: the answer verifies`);
      assert.equal((JSON.parse(a.raw) as { sign_type: string }).sign_type, answerType, label);
      figures.valid++;
    };
    const k = TEST_APP_KEY.privateKey;
    await ok('RSA2, 2048-bit key', signed(params(t.appId), k));
    await ok(
      'RSA (SHA1), 2048-bit key',
      signed(params(t.appId, undefined, undefined, { sign_type: 'RSA' }), k, 'RSA'),
      undefined,
      'RSA',
    );
    await ok(
      'RSA, legacy 1024-bit key',
      signed(params(legacy, undefined, undefined, { sign_type: 'RSA' }), LEGACY_APP_KEY.privateKey, 'RSA'),
      undefined,
      'RSA',
    );
    await ok('RSA2, legacy 1024-bit key', signed(params(legacy), LEGACY_APP_KEY.privateKey));
    await ok('key registered as bare Base64 DER', signed(params(bare), k));
    await ok('two apps with one key, each its own app_id', signed(params(twin), k));
    await ok('sign_type rsa2', signed(params(t.appId, undefined, undefined, { sign_type: 'rsa2' }), k));
    await ok(
      'sign_type Rsa',
      signed(params(t.appId, undefined, undefined, { sign_type: 'Rsa' }), k, 'RSA'),
      undefined,
      'RSA',
    );
    await ok(
      'signed extras charset, format, version',
      signed(params(t.appId, undefined, undefined, { charset: 'utf-8', format: 'JSON', version: '1.0' }), k),
    );
    await ok('an empty extra parameter, not signed', { ...signed(params(t.appId), k), charset: '' });
    await ok('fields in reverse order', Object.entries(signed(params(t.appId), k)).reverse());
    const every = Object.entries(signed(params(t.appId), k))
      .map(
        ([n, v]) =>
          `${n}=${[...Buffer.from(v)].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('')}`,
      )
      .join('&');
    await ok('every byte percent-encoded', every);
    await ok(
      'the space of the timestamp as %20',
      new URLSearchParams(signed(params(t.appId), k))
        .toString()
        .replace(/timestamp=([^&]*)\+/, 'timestamp=$1%20'),
    );
    const pretty = JSON.stringify({ out_trade_no: known[t.appId] }, null, 2);
    await ok('pretty-printed biz_content', signed(params(t.appId, undefined, pretty), k));
    await ok(
      'biz_content with \\u escapes',
      signed(
        params(t.appId, undefined, JSON.stringify({ out_trade_no: known[t.appId] }).replace(/M/g, '\\u004d')),
        k,
      ),
    );
    await ok(
      'Content-Type charset=gbk (ignored)',
      signed(params(t.appId), k),
      'application/x-www-form-urlencoded; charset=gbk',
    );
    await ok('Content-Type in upper case', signed(params(t.appId), k), 'APPLICATION/X-WWW-FORM-URLENCODED');
    await ok(
      'a UTF-8 BOM before the body',
      `\ufeff${new URLSearchParams(signed(params(t.appId), k)).toString()}`,
    );
    const h5 = JSON.stringify({
      out_trade_no: orderNo('MZ'),
      total_amount: 88.88,
      subject: '门诊缴费',
      order_type: '2',
    });
    await ok('lc.trade.h5.pay, amount as a JSON number', signed(params(t.appId, 'lc.trade.h5.pay', h5), k));
    tc.diagnostic(`${figures.valid} valid variants accepted, each answer verified with the platform key`);
  });

  it('signature spellings that decode to the same bytes (no padding, spare bits) are only re-encodings', async (tc) => {
    // Not tampering: the verified bytes and the signed content are unchanged, and each such request still needs
    // a fresh nonce. Reported, not required either way.
    const results: string[] = [];
    const variants: Array<[string, (s: string) => string]> = [
      ['without its = padding', (s) => s.replace(/=+$/, '')],
      [
        'spare bits of the last character set',
        (s) => {
          // Before '=' or '==' the last character carries 2 or 4 bits that decode to nothing: flip the lowest.
          const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
          const m = /([A-Za-z0-9+/])(=+)$/.exec(s);
          if (!m) return s;
          const c = B64[B64.indexOf(m[1] ?? 'A') ^ 1] ?? 'A';
          return `${s.slice(0, -m[0].length)}${c}${m[2]}`;
        },
      ],
    ];
    for (const [label, change] of variants) {
      const base = signed(params(t.appId), TEST_APP_KEY.privateKey);
      const s = change(base['sign'] ?? '');
      if (s === base['sign']) continue;
      assert.ok(
        Buffer.from(s, 'base64').equals(Buffer.from(base['sign'] ?? '', 'base64')),
        `${label}: same bytes`,
      );
      const a = await send({ ...base, sign: s });
      assert.ok(a.code === '10000' || a.sub === 'isv.invalid-signature', a.raw);
      results.push(`${label}: ${a.code === '10000' ? 'accepted' : 'refused'}`);
      figures.equivalent++;
    }
    tc.diagnostic(`re-encoded signatures: ${results.join('; ')}`);
  });

  it('logs: no private keys, signatures, payment codes, ID or phone numbers', async (tc) => {
    tc.diagnostic(
      `figures: tampered ${figures.tampered}, broken signatures ${figures.broken}, wrong keys ${figures.wrongKey}, mix-ups and mistakes ${figures.mixUp}: all refused; valid ${figures.valid}: all accepted`,
    );
    const scan = assertNoSecrets(t.logs(), {
      values: [t.token, ...signatures],
      privateKeys: [(await t.platform.deps.keys.active()).privateKey, randomKey],
    });
    tc.diagnostic(`logs: ${scan.lines} lines, ${scan.searched} secrets/patterns searched, none found`);
  });
});
