/**
 * WeChat Pay service-provider mode (服务商, mode partner) through the real doors: the provider's credentials
 * (sp_mchid, sp_appid, keys) set once for the platform with the admin API, two hospitals (two apps) each with only
 * mode=partner and its own sub_mchid (one with its own sub_appid); barcode payments, a refund and a query through
 * the offline XML door reach WeChat Pay's partner APIs naming each hospital's sub-merchant; a notification for
 * hospital A posted to hospital B's address is rejected and changes nothing, posted to A's it is taken (and the
 * trade synced by a query).
 *
 * WeChat Pay is one service (one base URL) that knows both sub-merchants: here a small router in front of two fakes
 * (test/fakes/wechat-server.ts, one per sub-merchant, same provider keys) that sends each request to the fake of
 * the sub-merchant it names, and records which sub-merchant each request named.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import {
  authCode,
  barcodeFields,
  qrFields,
  startTestPlatform,
  type TestPlatform,
} from '../support/platform.js';
import { makeWechatMaterial, startWechatFake, type WechatFake } from '../fakes/wechat-server.js';

const SP_MCHID = '1900000109';
const SP_APPID = 'wx8888888888888888';
const SUB_A = '1900000211';
const SUB_B = '1900000222';
const SUB_APPID_B = 'wxd678efh567hg6999';
const SET = '已设置 set';

/** What the router saw: the path and the sub-merchant the request named (sub_mch_id, sub_mchid), if any. */
interface Routed {
  method: string;
  path: string;
  sub: string | undefined;
  subAppId: string | undefined;
  spMchId: string | undefined;
}

/** Which sub-merchant a WeChat Pay request names: v2 XML sub_mch_id, v3 JSON body or query sub_mchid. */
function namedSub(url: URL, body: string): Omit<Routed, 'method' | 'path'> {
  const xml = (k: string) =>
    new RegExp(`<${k}>(?:<!\\[CDATA\\[)?([^<\\]]*)(?:\\]\\]>)?</${k}>`).exec(body)?.[1] ?? undefined;
  if (body.trimStart().startsWith('<'))
    return { sub: xml('sub_mch_id'), subAppId: xml('sub_appid'), spMchId: xml('mch_id') };
  let j: Record<string, unknown> = {};
  try {
    if (body) j = JSON.parse(body) as Record<string, unknown>;
  } catch {
    /* not JSON: nothing named in the body */
  }
  const s = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    sub: s(j['sub_mchid']) ?? url.searchParams.get('sub_mchid') ?? undefined,
    subAppId: s(j['sub_appid']),
    spMchId: s(j['sp_mchid']) ?? url.searchParams.get('sp_mchid') ?? undefined,
  };
}

describe('WeChat Pay service-provider mode: platform credentials, one sub_mchid per hospital', () => {
  let t: TestPlatform;
  const fakes: Record<string, WechatFake> = {};
  let router: http.Server;
  let routerUrl = '';
  const routed: Routed[] = [];
  let second: { appId: string; accessToken: string };
  const apiV3Key = crypto.randomBytes(16).toString('hex');
  const apiV2Key = crypto.randomBytes(16).toString('hex');
  const material = makeWechatMaterial(SP_MCHID);

  before(async () => {
    t = await startTestPlatform();
    // The fake checks our signatures' timestamps against the real time.
    t.clock.set(new Date());
    second = await t.platform.deps.apps.create({ name: '第二医院', hospitalId: 'H002' });
    for (const [sub, subAppId] of [
      [SUB_A, undefined],
      [SUB_B, SUB_APPID_B],
    ] as const)
      fakes[sub] = await startWechatFake({
        mchId: SP_MCHID,
        appId: SP_APPID,
        apiV3Key,
        apiV2Key,
        signTypeV2: 'HMAC-SHA256',
        material,
        mode: 'public_key',
        tls: false,
        refundImmediate: false,
        partner: { subMchId: sub, ...(subAppId ? { subAppId } : {}) },
      });
    router = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const url = new URL(req.url ?? '/', 'http://wechat');
        const named = namedSub(url, body.toString('utf8'));
        routed.push({ method: req.method ?? '', path: url.pathname, ...named });
        // A request naming no known sub-merchant goes to A's fake, which refuses it as WeChat Pay would.
        const target = new URL((fakes[named.sub ?? ''] ?? fakes[SUB_A])?.url ?? '');
        const fwd = http.request(
          {
            host: target.hostname,
            port: target.port,
            method: req.method,
            path: req.url,
            headers: { ...req.headers, host: target.host },
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        fwd.on('error', () => res.writeHead(502).end());
        fwd.end(body);
      });
    });
    await new Promise<void>((r) => router.listen(0, '127.0.0.1', r));
    const addr = router.address();
    routerUrl = `http://127.0.0.1:${addr && typeof addr === 'object' ? addr.port : 0}`;
  });
  after(async () => {
    router?.closeAllConnections();
    await new Promise<void>((r) => (router ? router.close(() => r()) : r()));
    for (const f of Object.values(fakes)) await f.close();
    await t?.close();
  });

  const secretsAbsent = (text: string) => {
    const keyBody = material.merchantKey.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
    assert.ok(!text.replace(/\\n|\s/g, '').includes(keyBody.slice(40, 100)), 'the private key was shown');
    assert.ok(!text.includes(apiV3Key), 'the APIv3 key was shown');
    assert.ok(!text.includes(apiV2Key), 'the API v2 key was shown');
  };

  const hospitals = () =>
    [
      { name: 'A', appId: t.appId, token: t.token, sub: SUB_A, subAppId: undefined },
      { name: 'B', appId: second.appId, token: second.accessToken, sub: SUB_B, subAppId: SUB_APPID_B },
    ] as const;

  it('the provider credentials are set once for the platform, secrets shown only as set', async () => {
    const set = await t.admin('PUT', '/admin/platform/channels/wechat', {
      values: {
        mch_id: SP_MCHID,
        app_id: SP_APPID,
        api_v3_key: apiV3Key,
        api_v2_key: apiV2Key,
        sign_type_v2: 'HMAC-SHA256',
        merchant_private_key: material.merchantKey,
        merchant_serial_no: material.merchantSerial,
        wechatpay_public_key: material.wechatPublicKey,
        wechatpay_public_key_id: material.wechatPublicKeyId,
        api_base_url: routerUrl,
        timeout_ms: '3000',
      },
    });
    assert.equal(set.status, 200, JSON.stringify(set.data));
    assert.deepEqual(set.data['problems'], []);
    const values = set.data['values'] as Record<string, string>;
    assert.equal(values['mch_id'], SP_MCHID);
    assert.equal(values['app_id'], SP_APPID);
    for (const k of ['api_v3_key', 'api_v2_key', 'merchant_private_key']) assert.equal(values[k], SET, k);
    const shown = await t.admin('GET', '/admin/platform/channels/wechat');
    assert.equal(shown.status, 200);
    assert.equal((shown.data['values'] as Record<string, string>)['api_v3_key'], SET);
    secretsAbsent(JSON.stringify(shown.data));
    const row = await t.store.db
      .selectFrom('platform_channel_configs')
      .selectAll()
      .where('channel_id', '=', 'wechat')
      .executeTakeFirstOrThrow();
    secretsAbsent(JSON.stringify(row));
    // The sub-merchant is the hospital's, never the platform's.
    const wrong = await t.admin('PUT', '/admin/platform/channels/wechat', { values: { sub_mchid: SUB_A } });
    assert.equal(wrong.status, 400, JSON.stringify(wrong.data));
    assert.match(String(wrong.data['message']), /sub_mchid.*per app/);
  });

  it('each hospital is configured with only mode=partner and its sub_mchid (B also its sub_appid)', async () => {
    for (const h of hospitals()) {
      const values = { mode: 'partner', sub_mchid: h.sub, ...(h.subAppId ? { sub_appid: h.subAppId } : {}) };
      const set = await t.admin('PUT', `/admin/apps/${h.appId}/channels/wechat`, { values });
      assert.equal(set.status, 200, JSON.stringify(set.data));
      assert.deepEqual(set.data['problems'], []);
      assert.deepEqual(set.data['values'], values);
      const inherited = set.data['from_platform'] as Record<string, string>;
      assert.equal(inherited['mch_id'], SP_MCHID);
      assert.equal(inherited['api_v3_key'], SET);
      secretsAbsent(JSON.stringify(set.data));
      const use = await t.admin('PUT', `/admin/apps/${h.appId}/channel-map`, {
        pay_type: 'weixin',
        channel: 'wechat',
      });
      assert.equal(use.status, 200, JSON.stringify(use.data));
    }
    // Partner mode without a sub-merchant would take payments as the provider itself: refused.
    const none = await t.admin('PUT', `/admin/apps/${second.appId}/channels/wechat`, {
      values: { sub_mchid: null, sub_appid: null },
    });
    assert.equal(none.status, 400, JSON.stringify(none.data));
    assert.match(String(none.data['message']), /sub_mchid/);
  });

  const paidTrades: Record<string, { outTradeNo: string; tradeNo: string }> = {};

  it("a barcode pay per hospital reaches the partner micropay with that hospital's sub_mch_id, paid", async () => {
    for (const h of hospitals()) {
      const f = barcodeFields({ AuthCode: authCode('00', 'weixin'), TotalAmount: '12.34' });
      const no = f.OutTradeNo ?? '';
      const from = routed.length;
      const r = await t.offline('FWC_IF_Barcode_Pay', f, { token: h.token });
      assert.equal(r.rr.IsSuccess, '1', r.text);
      assert.equal(r.result.TradeStatus ?? 'TRADE_SUCCESS', 'TRADE_SUCCESS', r.text);
      const pay = routed.slice(from).find((x) => x.path === '/pay/micropay');
      assert.ok(pay, `hospital ${h.name}: the pay reached WeChat Pay's micropay`);
      assert.equal(pay.spMchId, SP_MCHID);
      assert.equal(pay.sub, h.sub);
      assert.equal(pay.subAppId, h.subAppId);
      // Only this hospital's sub-merchant's books have the trade.
      assert.equal(fakes[h.sub]?.trade(no)?.state, 'paid');
      assert.equal(fakes[h.sub]?.trade(no)?.amountFen, 1234);
      const other = h.sub === SUB_A ? SUB_B : SUB_A;
      assert.equal(fakes[other]?.trade(no), undefined);
      const micropays = fakes[h.sub]?.requests().filter((x) => x.op === 'pay') ?? [];
      assert.ok(micropays.length > 0 && micropays.every((x) => x.signatureValid));
      const trade = await t.platform.deps.trades.byOutTradeNo(h.appId, no);
      assert.equal(trade?.status, 'TRADE_SUCCESS');
      assert.equal(trade?.channel, 'wechat');
      paidTrades[h.name] = { outTradeNo: no, tradeNo: r.result.TradeNo ?? '' };
    }
    // Nothing reached a direct (non-partner) endpoint, and every request named a sub-merchant of ours.
    assert.ok(
      routed.every((x) => !x.path.startsWith('/v3/pay/transactions/')),
      JSON.stringify(routed),
    );
    assert.ok(
      routed.every((x) => x.sub === SUB_A || x.sub === SUB_B),
      JSON.stringify(routed),
    );
  });

  it('a refund through the offline door names the sub-merchant at WeChat Pay; a query says paid', async () => {
    for (const h of hospitals()) {
      const p = paidTrades[h.name];
      assert.ok(p);
      const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: p.outTradeNo }, { token: h.token });
      assert.equal(q.rr.IsSuccess, '1', q.text);
      assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS', q.text);
      assert.equal(q.result.PayType, 'weixin');
      const from = routed.length;
      const r = await t.offline(
        'FWC_IF_Barcode_Pay_Refund',
        {
          OutTradeNo: p.outTradeNo,
          TradeNo: p.tradeNo,
          TotalAmount: '12.34',
          RefundAmount: '2.34',
          OutRequestNo: `R${h.name}1`,
        },
        { token: h.token },
      );
      assert.equal(r.rr.IsSuccess, '1', r.text);
      const refund = routed
        .slice(from)
        .find((x) => x.method === 'POST' && x.path === '/v3/refund/domestic/refunds');
      assert.ok(refund, `hospital ${h.name}: the refund reached WeChat Pay`);
      assert.equal(refund.sub, h.sub);
      // Every refund query that followed named the sub-merchant too.
      for (const x of routed.slice(from).filter((y) => y.path.startsWith('/v3/refund/domestic/refunds/')))
        assert.equal(x.sub, h.sub);
      assert.equal(fakes[h.sub]?.trade(p.outTradeNo)?.refundedFen, 234);
      const after = await t.offline(
        'FWC_IF_Barcode_Pay_Query',
        { OutTradeNo: p.outTradeNo },
        { token: h.token },
      );
      assert.equal(after.rr.IsSuccess, '1', after.text);
      assert.equal(after.result.TradeStatus, 'TRADE_SUCCESS', after.text);
    }
    const calls = await t.admin('GET', '/admin/channel-calls?limit=500');
    secretsAbsent(JSON.stringify(calls.data));
    secretsAbsent(t.logs());
  });

  it("A's notification posted to B's address is rejected and changes nothing; to A's it is taken", async () => {
    // The same order number waiting at both hospitals (numbers are per hospital; each is its sub-merchant's).
    const f = qrFields({ PayType: 'weixin', TotalAmount: '5.00' });
    const no = f.OutTradeNo ?? '';
    for (const h of hospitals()) {
      const r = await t.offline('FWC_IF_Qrcode_Pay', f, { token: h.token });
      assert.equal(r.rr.IsSuccess, '1', r.text);
      assert.match(r.result.TwoDimensionCode ?? '', /^weixin:\/\/wxpay\//);
      assert.equal(fakes[h.sub]?.trade(no)?.state, 'waiting');
    }
    // The payer pays hospital A's code in WeChat.
    fakes[SUB_A]?.setTrade(no, 'paid');
    const body = fakes[SUB_A]?.notification(no);
    assert.ok(body);
    const post = (appId: string) =>
      fetch(`${t.url}/channels/wechat/notify/${appId}`, {
        method: 'POST',
        headers: { ...body.headers, 'content-type': 'application/json' },
        body: body.body,
      });
    const status = async (appId: string) => (await t.platform.deps.trades.byOutTradeNo(appId, no))?.status;

    const from = routed.length;
    const atB = await post(second.appId);
    assert.notEqual(atB.status, 200, await atB.text());
    assert.ok(atB.status >= 400, `rejected: ${atB.status}`);
    // Nothing changed: no query was made, both trades still wait.
    assert.deepEqual(routed.slice(from), []);
    assert.equal(await status(t.appId), 'WAIT_BUYER_PAY');
    assert.equal(await status(second.appId), 'WAIT_BUYER_PAY');
    // Counted as a rejection of hospital B's address, with the reason.
    const rejections = await t.admin('GET', '/admin/channel-notify-rejections');
    assert.equal(rejections.status, 200, JSON.stringify(rejections.data));
    const rows = JSON.stringify(rejections.data);
    assert.match(rows, new RegExp(`"app_id":"${second.appId}","channel_id":"wechat"`), rows);
    assert.match(rows, /sub-merchant/, rows);

    const atA = await post(t.appId);
    assert.ok(atA.status === 200 || atA.status === 204, `taken: ${atA.status} ${await atA.text()}`);
    // The platform did not take the notification's word: it queried A's sub-merchant.
    const query = routed.slice(from).find((x) => x.path.endsWith(`/out-trade-no/${no}`));
    assert.ok(query, JSON.stringify(routed.slice(from)));
    assert.equal(query.path, `/v3/pay/partner/transactions/out-trade-no/${no}`);
    assert.equal(query.sub, SUB_A);
    assert.equal(query.spMchId, SP_MCHID);
    assert.equal(await status(t.appId), 'TRADE_SUCCESS');
    assert.equal(await status(second.appId), 'WAIT_BUYER_PAY');
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: no });
    assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS', q.text);
  });
});
