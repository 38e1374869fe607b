import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import { sql } from 'kysely';
import { formatShanghai } from '../../../src/domain/clock.js';
import {
  barcodeFields,
  orderNo,
  parseAnswer,
  startTestPlatform,
  xmlDoc,
  type TestPlatform,
} from '../../support/platform.js';
import { TEST_APP_KEY, signedForm, verifyAnswer } from '../../support/gateway.js';
import {
  GATEWAY_CORPUS,
  OFFLINE_CORPUS,
  type GatewayCase,
  type GatewayContext,
  type OfflineCase,
  type OfflineContext,
} from './corpus.js';
import { assertNoSecrets } from './log-check.js';

/**
 * Item 8 of the reliability battery: a hostile input corpus on both doors. Each case gets its one clear error
 * code, never a 5xx nor a stack trace; nothing stored changes; the server answers a valid request right after;
 * and repeating the whole corpus leaves the heap where it was.
 */

/** A stack frame or a file path of the server in an answer. */
const TRACE =
  /\n\s+at \S|\bat \S+ \([^)]*:\d+:\d+\)|(?:\/work|\/home|\/usr|\/tmp|\/app|node_modules)\/|\.(?:ts|js|mjs|cjs):\d+/;

/** A real GC even without --expose-gc on the command line (scripts/test.mjs does not pass it). */
function takeGc(): (() => void) | null {
  const g = (globalThis as { gc?: unknown }).gc;
  if (typeof g === 'function') return g as () => void;
  try {
    v8.setFlagsFromString('--expose-gc');
    const f = vm.runInNewContext('gc') as unknown;
    return typeof f === 'function' ? (f as () => void) : null;
  } catch {
    return null;
  }
}

const MB = (n: number) => +(n / 1048576).toFixed(1);

describe('reliability 8: hostile input on both doors', () => {
  let t: TestPlatform;
  let offlineCtx: OfflineContext;
  let gatewayCtx: GatewayContext;
  let knownTrade = '';
  const authCodes: string[] = [];
  const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort().join();
  const timings: Array<[string, number]> = [];
  /** Off during the memory rounds: the test's own bookkeeping must not grow the heap it measures. */
  let recording = true;

  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    offlineCtx = {
      token: t.token,
      validFields: () => {
        const f = barcodeFields({ Cnt: '0' }) as Record<string, string>;
        if (recording) authCodes.push(f['AuthCode'] ?? '');
        return { AccessToken: t.token, ...f };
      },
      doc: (fields) => xmlDoc(fields),
    };
    gatewayCtx = {
      appId: t.appId,
      form: (biz, over = {}, method = 'lc.trade.h5.pay') => {
        const p: Record<string, string> = {
          app_id: t.appId,
          method,
          timestamp: formatShanghai(t.clock.now()),
          nonce_str: randomUUID(),
          biz_content: biz,
          sign_type: 'RSA2',
          ...over,
        };
        return new URLSearchParams(signedForm(p, TEST_APP_KEY.privateKey)).toString();
      },
      h5: (over = {}) =>
        JSON.stringify({
          out_trade_no: orderNo('MZ'),
          total_amount: '1.00',
          subject: '门诊缴费',
          return_url: 'https://his.example.cn/pay/return',
          order_type: 'TREATMENT',
          ...over,
        }),
    };
    const f = offlineCtx.validFields();
    const paid = await t.offline('FWC_IF_Barcode_Pay', f, { token: null });
    assert.equal(paid.rr.IsSuccess, '1', paid.text);
    knownTrade = f['OutTradeNo'] ?? '';
  });
  after(async () => {
    await t?.close();
  });

  const snapshot = async () => {
    // Channel call records are buffered: write what earlier requests left before counting.
    await t.platform.deps.channelCalls.flush();
    const r = await sql<Record<string, string>>`
      SELECT (SELECT count(*) FROM trades)::text AS trades,
             (SELECT coalesce(sum(total_fen), 0) FROM trades)::text AS trade_fen,
             (SELECT count(*) FROM refunds)::text AS refunds,
             (SELECT count(*) FROM notifications)::text AS notifications,
             (SELECT count(*) FROM sim_trades)::text AS sim_trades,
             (SELECT count(*) FROM channel_calls)::text AS channel_calls,
             (SELECT count(*) FROM apps)::text AS apps,
             (SELECT count(*) FROM gateway_nonces)::text AS nonces`.execute(t.store.db);
    return r.rows[0] ?? {};
  };

  async function sendOffline(c: OfflineCase) {
    const body = typeof c.body === 'function' ? c.body(offlineCtx) : c.body;
    const type = c.contentType === undefined ? 'text/xml' : c.contentType;
    const started = performance.now();
    const res = await fetch(`${t.url}/offline/${c.iface ?? 'FWC_IF_Barcode_Pay'}`, {
      method: 'POST',
      headers: type === null ? {} : { 'content-type': type },
      body: typeof body === 'string' ? Buffer.from(body) : body,
    });
    const text = await res.text();
    if (recording) timings.push([`offline: ${c.label}`, performance.now() - started]);
    return { status: res.status, type: res.headers.get('content-type') ?? '', text };
  }

  async function sendGateway(c: GatewayCase) {
    const body = c.body(gatewayCtx);
    const type = c.contentType === undefined ? 'application/x-www-form-urlencoded' : c.contentType;
    const started = performance.now();
    const res = await fetch(`${t.url}/gateway`, {
      method: 'POST',
      headers: type === null ? {} : { 'content-type': type },
      body: typeof body === 'string' ? Buffer.from(body) : body,
    });
    const raw = await res.text();
    if (recording) timings.push([`gateway: ${c.label}`, performance.now() - started]);
    return { status: res.status, type: res.headers.get('content-type') ?? '', raw };
  }

  function checkOffline(c: OfflineCase, a: { status: number; type: string; text: string }) {
    assert.ok(a.status < 500, `HTTP ${a.status}`);
    assert.equal(a.status, 200, 'the offline door answers HTTP 200 with its envelope');
    assert.match(a.type, /^text\/xml/);
    assert.doesNotMatch(a.text, TRACE, 'no stack trace or file path in the answer');
    const x = parseAnswer(a.status, a.text);
    assert.equal(x.rr.SubCode, c.expect, a.text.slice(0, 600));
    assert.ok(x.rr.IsSuccess === '0' || x.rr.IsSuccess === '3', `IsSuccess ${x.rr.IsSuccess}`);
    assert.match(x.rr.SubMessage, / \/ /, 'a bilingual SubMessage');
  }

  async function checkGateway(c: GatewayCase, a: { status: number; type: string; raw: string }) {
    assert.ok(a.status < 500, `HTTP ${a.status}`);
    assert.equal(a.status, 200, 'the gateway answers HTTP 200 with its envelope');
    assert.match(a.type, /^application\/json/);
    assert.doesNotMatch(a.raw, TRACE, 'no stack trace or file path in the answer');
    const json = JSON.parse(a.raw) as { code: string; biz_content: Record<string, unknown> };
    assert.equal(json.code, c.expect.code, a.raw.slice(0, 600));
    assert.equal(json.biz_content['sub_code'], c.expect.sub, a.raw.slice(0, 600));
    assert.match(String(json.biz_content['sub_msg']), / \/ /, 'a bilingual sub_msg');
    // Refused before the signature verified: unsigned (issue 11 §1). After it: signed, and the signed content
    // cannot be read as other parameters (no raw & in any value).
    const signed = (JSON.parse(a.raw) as { sign?: string }).sign !== undefined;
    const preAuth =
      /^isv\.(missing-|invalid-app-id|invalid-signature|invalid-content-type|repeated-parameter|request-too-large|invalid-encoding|weak-app-public-key)/.test(
        c.expect.sub,
      );
    assert.equal(signed, !preAuth, preAuth ? 'refused before authentication: unsigned' : 'signed');
    if (signed) {
      assert.ok(
        verifyAnswer(a.raw, (await t.platform.deps.keys.active()).publicKey),
        'the refusal is signed',
      );
      const start = a.raw.indexOf('"biz_content":') + '"biz_content":'.length;
      const bizText = a.raw.slice(start, a.raw.lastIndexOf(',"sign_type":'));
      assert.ok(!bizText.includes('&'), 'signed JSON holds no raw &');
      for (const k of ['app_id', 'method', 'nonce_str', 'timestamp'])
        assert.ok(
          !String((JSON.parse(a.raw) as Record<string, unknown>)[k]).includes('&'),
          `${k} holds no &`,
        );
    }
  }

  /** The server still does its job: an offline query and a signed gateway query of a known trade. */
  async function probe() {
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: knownTrade });
    assert.equal(q.rr.SubCode, 'SUCCESS', q.text);
    const g = await fetch(`${t.url}/gateway`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: gatewayCtx.form(JSON.stringify({ out_trade_no: knownTrade }), {}, 'lc.trade.query'),
    });
    const json = JSON.parse(await g.text()) as { code: string; biz_content: Record<string, unknown> };
    assert.equal(json.code, '10000');
    assert.equal(json.biz_content['trade_status'], 'TRADE_SUCCESS');
  }

  const assertUnpolluted = () => {
    assert.equal(Object.getOwnPropertyNames(Object.prototype).sort().join(), protoBefore);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    assert.equal(({} as Record<string, unknown>)['subject'], undefined);
  };

  it(`the corpus has at least 30 cases per door (${OFFLINE_CORPUS.length} offline, ${GATEWAY_CORPUS.length} gateway)`, (tc: TestContext) => {
    assert.ok(OFFLINE_CORPUS.length >= 30);
    assert.ok(GATEWAY_CORPUS.length >= 30);
    const families = (cases: Array<{ family: string }>) =>
      Object.entries(
        cases.reduce<Record<string, number>>((m, c) => ({ ...m, [c.family]: (m[c.family] ?? 0) + 1 }), {}),
      )
        .map(([f, n]) => `${f} ${n}`)
        .join(', ');
    tc.diagnostic(`offline corpus: ${OFFLINE_CORPUS.length} cases (${families(OFFLINE_CORPUS)})`);
    tc.diagnostic(`gateway corpus: ${GATEWAY_CORPUS.length} cases (${families(GATEWAY_CORPUS)})`);
  });

  describe('offline door: POST /offline/<Name>', () => {
    for (const c of OFFLINE_CORPUS) {
      it(`${c.label} → ${c.expect}`, async () => {
        const before = await snapshot();
        checkOffline(c, await sendOffline(c));
        assert.deepEqual(await snapshot(), before, 'nothing stored changed');
        assertUnpolluted();
        await probe();
      });
    }

    it('an interface name over the router limit (100 characters) gets a 4xx, not a 5xx', async (tc) => {
      const res = await fetch(`${t.url}/offline/${'A'.repeat(5_000)}`, {
        method: 'POST',
        headers: { 'content-type': 'text/xml' },
        body: xmlDoc({ AccessToken: t.token }),
      });
      const text = await res.text();
      assert.ok(res.status >= 400 && res.status < 500, `HTTP ${res.status}`);
      assert.doesNotMatch(text, TRACE);
      tc.diagnostic(`5,000-character interface name: HTTP ${res.status} ${text.slice(0, 60)}…`);
      await probe();
    });

    it('numeric character references are decoded as documented (&#20013; → 中, &#0; refused)', async () => {
      const f = offlineCtx.validFields();
      const doc = xmlDoc(f).replace(/<Caption>[^<]*<\/Caption>/, '<Caption>&#20013;&#25991;</Caption>');
      const a = parseAnswer(
        200,
        await (
          await fetch(`${t.url}/offline/FWC_IF_Barcode_Pay`, {
            method: 'POST',
            headers: { 'content-type': 'text/xml' },
            body: doc,
          })
        ).text(),
      );
      assert.equal(a.rr.IsSuccess, '1');
      const row = await t.trade(f['OutTradeNo'] ?? '');
      assert.equal(row.subject, '中文');
      // &amp;#20013; is the literal text "&#20013;" (decoded once, not twice); &#0; is refused.
      const g = offlineCtx.validFields();
      const lit = xmlDoc(g).replace(/<Caption>[^<]*<\/Caption>/, '<Caption>&amp;#20013;</Caption>');
      const b = parseAnswer(
        200,
        await (
          await fetch(`${t.url}/offline/FWC_IF_Barcode_Pay`, {
            method: 'POST',
            headers: { 'content-type': 'text/xml' },
            body: lit,
          })
        ).text(),
      );
      assert.equal(b.rr.IsSuccess, '1', b.text);
      const litRow = await t.trade(g['OutTradeNo'] ?? '');
      assert.equal(litRow.subject, '&#20013;');
      const h = offlineCtx.validFields();
      const nul = xmlDoc(h).replace(/<Caption>[^<]*<\/Caption>/, '<Caption>a&#0;b</Caption>');
      const c = parseAnswer(
        200,
        await (
          await fetch(`${t.url}/offline/FWC_IF_Barcode_Pay`, {
            method: 'POST',
            headers: { 'content-type': 'text/xml' },
            body: nul,
          })
        ).text(),
      );
      assert.equal(c.rr.IsSuccess, '0', c.text);
    });
  });

  describe('gateway: POST /gateway', () => {
    for (const c of GATEWAY_CORPUS) {
      it(`${c.label} → ${c.expect.code} ${c.expect.sub}`, async () => {
        const before = await snapshot();
        await checkGateway(c, await sendGateway(c));
        const now = await snapshot();
        // Refused before authentication: nothing at all. After it (method, biz_content): the nonce is spent.
        const spends = !(c.expect.sub.startsWith('isv.') && c.expect.sub !== 'isv.invalid-method');
        assert.deepEqual(
          now,
          { ...before, nonces: String(Number(before['nonces']) + (spends ? 1 : 0)) },
          'nothing stored changed (but the spent nonce of an authenticated request)',
        );
        assertUnpolluted();
        await probe();
      });
    }
  });

  describe('provider notifications: POST /channels/<channel>/notify/<app>', () => {
    const bodies: Array<[string, string | Buffer]> = [
      ['junk text', 'x'.repeat(3000)],
      ['a NUL character', 'sign=a\u0000b&app_id=\u0000&orderId=1&reqReserved=\u0000'],
      [
        'a JSON event with NUL',
        '{"id":"\u0000","event_type":"TRANSACTION.SUCCESS","resource":{"ciphertext":"\u0000"}}',
      ],
      ['invalid UTF-8', Buffer.from([0x61, 0xff, 0xfe, 0xed, 0xa0, 0x80, 0x00, 0x62])],
      ['a lone surrogate escape', '{"id":"\\ud800"}'],
      ['an empty body', ''],
    ];
    it('junk, NUL and invalid UTF-8 to every channel: no 5xx, only a bounded sample stored', async () => {
      const before = await snapshot();
      const channels = ['alipay', 'wechat', 'unionpay'];
      for (let i = 0; i < 40; i++)
        for (const channel of channels)
          for (const [label, body] of bodies) {
            const res = await fetch(`${t.url}/channels/${channel}/notify/${t.appId}`, {
              method: 'POST',
              headers: { 'content-type': 'application/x-www-form-urlencoded' },
              body,
            });
            const text = await res.text();
            // WeChat Pay is told to send again with a 500 and its FAIL body; the others get a 200 with theirs.
            assert.ok(
              res.status < 500 || (channel === 'wechat' && res.status === 500 && /"FAIL"/.test(text)),
              `${channel} ${label}: HTTP ${res.status}`,
            );
            assert.doesNotMatch(text, TRACE, `${channel} ${label}`);
          }
      const now = await snapshot();
      const added = Number(now['channel_calls']) - Number(before['channel_calls']);
      // 720 notifications: only the sample (20 an hour per app and channel) is recorded, and all of it is.
      assert.ok(added >= channels.length && added <= channels.length * 20, `${added} records`);
      assert.deepEqual(
        { ...now, channel_calls: '' },
        { ...before, channel_calls: '' },
        'nothing else changed',
      );
      assert.equal(t.platform.deps.channelCalls.dropped, 0, 'no record was dropped');
      await probe();
    });
  });

  it('memory stays flat: the whole corpus of both doors, 6 more times', async (tc) => {
    const gc = takeGc();
    const rounds = 6;
    const round = async () => {
      for (const c of OFFLINE_CORPUS) {
        const a = await sendOffline(c);
        assert.equal(parseAnswer(a.status, a.text).rr.SubCode, c.expect, c.label);
      }
      for (const c of GATEWAY_CORPUS) {
        const a = await sendGateway(c);
        const json = JSON.parse(a.raw) as { biz_content: Record<string, unknown> };
        assert.equal(json.biz_content['sub_code'], c.expect.sub, c.label);
      }
      await probe();
    };
    const measure = () => {
      gc?.();
      gc?.();
      return process.memoryUsage();
    };
    await round(); // warm-up: caches, JIT, connection pools
    recording = false;
    const logsBefore = t.logs().length;
    const start = measure();
    const heap: number[] = [];
    const startedAt = performance.now();
    for (let i = 0; i < rounds; i++) {
      await round();
      heap.push(MB(measure().heapUsed));
    }
    const ms = performance.now() - startedAt;
    const end = measure();
    recording = true;
    // The test platform keeps every log line in a string in this same heap (in production they go to stdout).
    const logGrowth = t.logs().length - logsBefore;
    const requests = rounds * (OFFLINE_CORPUS.length + GATEWAY_CORPUS.length + 2);
    tc.diagnostic(
      `${rounds} rounds, ${requests} requests in ${(ms / 1000).toFixed(1)} s; GC ${gc ? 'forced' : 'NOT available'}`,
    );
    tc.diagnostic(
      `heapUsed ${MB(start.heapUsed)} MB → ${MB(end.heapUsed)} MB (${(MB(end.heapUsed) - MB(start.heapUsed)).toFixed(1)} MB); after each round: ${heap.join(', ')}`,
    );
    tc.diagnostic(
      `of which log text kept in memory by the test harness: at most ${MB(logGrowth * 2)} MB (${logGrowth} characters)`,
    );
    tc.diagnostic(
      `rss ${MB(start.rss)} MB → ${MB(end.rss)} MB; external ${MB(start.external)} → ${MB(end.external)} MB`,
    );
    const slowest = [...timings].sort((a, b) => b[1] - a[1]).slice(0, 3);
    tc.diagnostic(`slowest answers: ${slowest.map(([l, m]) => `${l} ${m.toFixed(0)} ms`).join('; ')}`);
    // With a forced GC the heap must come back within 8 MB; without one, allow for uncollected garbage.
    const bound = gc ? 8 : 64;
    assert.ok(
      MB(end.heapUsed) - MB(start.heapUsed) < bound,
      `heap grew ${MB(end.heapUsed - start.heapUsed)} MB over ${rounds} rounds`,
    );
    assertUnpolluted();
  });

  it('logs: no private keys, payment codes, ID or phone numbers', async (tc) => {
    const scan = assertNoSecrets(t.logs(), {
      authCodes,
      values: [t.token],
      privateKeys: [(await t.platform.deps.keys.active()).privateKey],
    });
    tc.diagnostic(
      `logs: ${scan.lines} lines, ${scan.bytes} bytes, ${scan.searched} secrets/patterns searched, none found`,
    );
  });
});
