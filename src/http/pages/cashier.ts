import { randomBytes } from 'node:crypto';
import { sameText } from '../../crypto/tokens.js';
import { readCookie } from '../cookies.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { enabledPayTypes, type ServiceDeps } from '../../services/deps.js';
import {
  channelForm,
  chooseCashierPayType,
  payerIdFromOAuthCode,
  PAYER_ID,
  type InAppContext,
} from '../../services/qr-pay.js';
import { formatFen, subFen } from '../../domain/money.js';
import { parsePayType, type PayType } from '../../domain/trade.js';
import type { Trade } from '../../services/records.js';
import { esc, page, pageCspWith, setPageHeaders } from '../../formats/html.js';
import { CASHIER_SCRIPTS, FORM_SCRIPT, WECHAT_SCRIPT } from './cashier-scripts.js';
import { refreshTrade } from '../../services/sync.js';
import { signedReturnUrl } from '../gateway/return-url.js';

const NAMES: Record<PayType, string> = {
  alipay: '支付宝',
  weixin: '微信支付',
  unionpay: '云闪付',
  elecny: '数字人民币',
};

/** The app the payer scanned with, from its browser's User-Agent. */
export function payTypeFromUserAgent(ua: string): PayType | null {
  if (/AlipayClient/i.test(ua)) return 'alipay';
  if (/MicroMessenger/i.test(ua)) return 'weixin';
  if (/UnionPay|CloudPay/i.test(ua)) return 'unionpay';
  return null;
}

function statusPage(reply: FastifyReply, t: Trade, note?: string, extraHtml = '') {
  const text =
    t.status === 'TRADE_SUCCESS' || t.status === 'TRADE_FINISHED'
      ? '<span class="ok">已支付</span>'
      : t.status === 'TRADE_CLOSED'
        ? '<span class="bad">订单已关闭</span>'
        : '待支付';
  return reply.type('text/html; charset=utf-8').send(
    page(
      '医院收银台',
      `<div class="card"><h1>医院收银台</h1><div class="amount">¥ ${formatFen(t.total_fen)}</div>
<dl><dt>订单</dt><dd>${esc(t.subject)}</dd><dt>状态</dt><dd id="status">${text}</dd></dl>${note ? `<p id="note">${esc(note)}</p>` : ''}${extraHtml}</div>`,
    ),
  );
}

/** Aggregated QR codes open this page; it sends the payer on to the channel of the app they scanned with. */
export async function registerCashierPages(app: FastifyInstance, deps: ServiceDeps): Promise<void> {
  await app.register(async (scope) => {
    // Not framed, no Referer carrying the token (issue 11), and no script: except the in-app page and the form
    // page, which load one static script of hospay's own (script-src 'self'; the form page also names the one
    // origin its form may post to). The CSP is chosen per answer.
    const cspOf = new WeakMap<FastifyReply, string>();
    scope.addHook('onSend', async (_req, reply, payload) => {
      const csp = cspOf.get(reply);
      setPageHeaders(reply, { noStore: true, ...(csp ? { csp } : {}) });
      return payload;
    });

    // The static scripts (the only scripts hospay serves to payers), same origin.
    for (const [path, text] of Object.entries(CASHIER_SCRIPTS))
      scope.get(path, async (_req, reply) =>
        reply
          .type('text/javascript; charset=utf-8')
          .header('cache-control', 'public, max-age=300')
          .send(text),
      );

    const secure = () => deps.config.publicBaseUrl.startsWith('https:');
    const cookie = (name: string, value: string, path: string, maxAgeS: number) =>
      `${name}=${value}; Path=${path}; HttpOnly; SameSite=Lax${secure() ? '; Secure' : ''}; Max-Age=${maxAgeS}`;

    /** A sealed cookie's content if it opens, is for this token and has not expired. */
    const openCookie = (req: FastifyRequest, name: string, token: string): Record<string, unknown> | null => {
      const v = readCookie(req, name);
      if (!v) return null;
      try {
        const o = JSON.parse(deps.secrets.open(v, `cashier:${name}`)) as Record<string, unknown>;
        if (o['t'] !== token || typeof o['e'] !== 'number' || o['e'] <= deps.clock.now().getTime())
          return null;
        return o;
      } catch {
        return null;
      }
    };
    const sealCookie = (name: string, token: string, fields: Record<string, string>, ttlS: number) =>
      deps.secrets.seal(
        JSON.stringify({ ...fields, t: token, e: deps.clock.now().getTime() + ttlS * 1000 }),
        `cashier:${name}`,
      );

    /** The WeChat in-app page: amount, subject, a 支付 button; the bridge parameters in a data attribute. */
    const inAppPage = (
      reply: FastifyReply,
      t: Trade,
      bridge: Readonly<Record<string, string>>,
      returnPath: string,
    ) => {
      cspOf.set(reply, pageCspWith(["script-src 'self'"]));
      return reply.type('text/html; charset=utf-8').send(
        page(
          '微信支付',
          `<div class="card"><h1>医院收银台</h1><div class="amount">¥ ${formatFen(subFen(t.total_fen, t.insurance_fen))}</div>
<dl><dt>订单</dt><dd>${esc(t.subject)}</dd>${t.insurance_fen > 0 ? `<dt>医保支付</dt><dd>¥ ${formatFen(t.insurance_fen)}</dd>` : ''}</dl>
<div id="wxpay" data-bridge="${esc(JSON.stringify(bridge))}" data-return="${esc(returnPath)}">
<button class="primary" type="button" id="pay">支付</button>
<p class="muted" id="msg" role="status">点击“支付”，在微信中确认付款。</p>
</div>
<noscript><p class="bad">请在微信中打开并允许脚本运行。Open this page in WeChat.</p></noscript></div>`,
          { scripts: [WECHAT_SCRIPT] },
        ),
      );
    };
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: 16384 },
      (_req, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      },
    );

    const go = async (
      token: string,
      payType: PayType,
      reply: FastifyReply,
      prefix: '/cashier/qr' | '/goto',
      inAppUa = false,
    ) => {
      const req = reply.request;
      // Inside WeChat: the payer's openid from an OAuth done on this browser (sealed cookie), or the OAuth's
      // redirect back to hospay's own fixed path with a state bound to this browser and token.
      const state = randomBytes(18).toString('base64url');
      const inApp: InAppContext | undefined = inAppUa
        ? {
            payerId: payerFromCookie(req, token),
            authorize: { redirectUri: `${deps.config.publicBaseUrl}${prefix}/${token}/payer`, state },
          }
        : undefined;
      const r = await chooseCashierPayType(deps, token, payType, req.ip, inApp);
      if (!r) return notFound(reply);
      switch (r.kind) {
        case 'redirect':
          return reply.redirect(r.url, 302);
        case 'authorize':
          reply.header(
            'set-cookie',
            cookie(
              STATE_COOKIE,
              sealCookie(STATE_COOKIE, token, { s: state }, STATE_TTL_S),
              `${prefix}/${token}`,
              STATE_TTL_S,
            ),
          );
          return reply.redirect(r.url, 302);
        case 'in_app':
          return inAppPage(reply, r.trade, r.bridge, `${prefix}/${token}/return`);
        case 'open_in_browser':
          return statusPage(
            reply,
            r.trade,
            '微信内不支持此支付方式，请点击右上角“…”，选择“在浏览器中打开”后支付。Open this page in your browser to pay.',
          );
        case 'in_app_only':
          return statusPage(
            reply,
            r.trade,
            '此订单已在微信中下单，请在微信中打开此链接支付。This payment was started in WeChat: open it in WeChat.',
          );
        case 'status':
          return statusPage(reply, r.trade);
        case 'other_pay_type':
          return statusPage(
            reply,
            r.trade,
            `此订单已选择${NAMES[r.trade.pay_type as PayType] ?? r.trade.pay_type}，请使用该应用扫码支付。`,
          );
        case 'error':
          return statusPage(reply, r.trade, `${r.error.zh}（${r.error.en}）`);
      }
    };
    const payerFromCookie = (req: FastifyRequest, token: string): string | undefined => {
      const p = openCookie(req, PAYER_COOKIE, token)?.['p'];
      return typeof p === 'string' && PAYER_ID.test(p) ? p : undefined;
    };

    // The same page serves aggregated QR codes (/cashier/qr/…) and H5 payments (/goto/…, the spec's goto_url).
    for (const { prefix, kind } of [
      { prefix: '/cashier/qr', kind: 'qrcode' },
      { prefix: '/goto', kind: 'h5' },
    ] as const) {
      const find = async (token: string) => {
        if (!/^[A-Za-z0-9_-]{10,64}$/.test(token)) return undefined;
        const t = await deps.trades.byCashierToken(token);
        return t && t.kind === kind ? t : undefined;
      };

      scope.get(`${prefix}/:token`, async (req, reply) => {
        const { token } = req.params as { token: string };
        const trade = await find(token);
        if (!trade) return notFound(reply);
        if (trade.status !== 'WAIT_BUYER_PAY') return statusPage(reply, trade);
        const detected = payTypeFromUserAgent(req.headers['user-agent'] ?? '');
        if (detected) return go(token, detected, reply, prefix, detected === 'weixin');
        if (trade.pay_type) return go(token, trade.pay_type as PayType, reply, prefix);
        // Only the pay types enabled for the app: never a simulated one beside a real channel.
        const app = await deps.apps.get(trade.app_id);
        const offered = app ? enabledPayTypes(deps, app) : [];
        if (offered.length === 0)
          return statusPage(
            reply,
            trade,
            '该应用未开通任何支付方式，请联系医院。No pay type is enabled for this payment.',
          );
        const buttons = offered
          .map(
            (p) =>
              `<button class="primary" type="submit" name="pay_type" value="${p}" id="choose-${p}">${NAMES[p]}</button>`,
          )
          .join('');
        return reply.type('text/html; charset=utf-8').send(
          page(
            '医院收银台',
            `<div class="card"><h1>医院收银台</h1><div class="amount">¥ ${formatFen(subFen(trade.total_fen, trade.insurance_fen))}</div>
<dl><dt>订单</dt><dd>${esc(trade.subject)}</dd>${trade.insurance_fen > 0 ? `<dt>医保支付</dt><dd>¥ ${formatFen(trade.insurance_fen)}</dd>` : ''}</dl>
<p class="muted">请用${offered.map((p) => NAMES[p]).join('、')}打开；在电脑上也可直接选择支付方式。Choose how to pay.</p>
<form method="post" action="${prefix}/${esc(token)}">${buttons}</form></div>`,
          ),
        );
      });

      scope.post(`${prefix}/:token`, async (req, reply) => {
        const { token } = req.params as { token: string };
        const payType = parsePayType((req.body as Record<string, string> | undefined)?.['pay_type'] ?? '');
        if (!(await find(token))) return notFound(reply);
        if (!payType)
          return reply
            .code(400)
            .type('text/html; charset=utf-8')
            .send(page('无效的支付方式', '<div class="card"><h1>无效的支付方式</h1></div>'));
        return go(token, payType, reply, prefix);
      });

      // The OAuth (WeChat snsapi_base) sends the payer back here with code and state. The state must be the one
      // sealed in this browser's cookie for this token; the code is good once; the trade must be open. The
      // payer's openid is kept only in a sealed HttpOnly cookie scoped to this token's path (never logged, not
      // stored), and the payer goes back to the cashier page, which orders in WeChat with it.
      scope.get(`${prefix}/:token/payer`, async (req, reply) => {
        const { token } = req.params as { token: string };
        const q = req.query as Record<string, unknown>;
        const trade = await find(token);
        if (!trade) return notFound(reply);
        const clear = cookie(STATE_COOKIE, '', `${prefix}/${token}`, 0);
        const refuse = (zh: string, en: string) =>
          reply
            .code(400)
            .header('set-cookie', clear)
            .type('text/html; charset=utf-8')
            .send(
              page(
                '授权失败',
                `<div class="card"><h1>授权失败</h1><p id="why">${esc(zh)}</p><p class="muted">${esc(en)}</p>
<p><a href="${esc(`${prefix}/${token}`)}">重新打开支付页面 Start again</a></p></div>`,
              ),
            );
        if (trade.status !== 'WAIT_BUYER_PAY') {
          reply.header('set-cookie', clear);
          return statusPage(reply, trade);
        }
        const state = typeof q['state'] === 'string' ? q['state'] : '';
        const code = typeof q['code'] === 'string' ? q['code'] : '';
        const sealed = openCookie(req, STATE_COOKIE, token);
        if (!state || !sealed || typeof sealed['s'] !== 'string' || !sameText(sealed['s'], state))
          return refuse(
            '授权状态无效或已过期，请重新打开支付链接。',
            'The authorisation state is missing, expired or does not match this browser.',
          );
        if (!/^[A-Za-z0-9_-]{1,128}$/.test(code))
          return refuse('未取得授权码，请重新打开支付链接。', 'No authorisation code came back.');
        const r = await payerIdFromOAuthCode(deps, trade, code);
        if (r.kind === 'replayed')
          return refuse('授权码已使用，请重新打开支付链接。', 'The authorisation code was already used.');
        if (r.kind === 'failed')
          return refuse(`获取用户标识失败：${r.zh}`, `Could not learn the payer: ${r.en}`);
        const ttl = Math.max(
          60,
          Math.min(PAYER_TTL_S, Math.floor((trade.expires_at.getTime() - deps.clock.now().getTime()) / 1000)),
        );
        reply.header('set-cookie', [
          clear,
          cookie(
            PAYER_COOKIE,
            sealCookie(PAYER_COOKIE, token, { p: r.payerId }, ttl),
            `${prefix}/${token}`,
            ttl,
          ),
        ]);
        return reply.redirect(`${prefix}/${token}`, 302);
      });
    }

    // UnionPay WAP: the channel's cashier takes a form POSTed by the payer's browser. hospay asks the channel for
    // the form again (signed locally, no call to the provider) and posts it: by a static script at once, or by
    // the visible button without script. The CSP lets the form go to the action's origin only.
    scope.get('/goto/:token/form', async (req, reply) => {
      const { token } = req.params as { token: string };
      if (!/^[A-Za-z0-9_-]{10,64}$/.test(token)) return notFound(reply);
      const trade = await deps.trades.byCashierToken(token);
      if (!trade || trade.kind !== 'h5') return notFound(reply);
      if (trade.status !== 'WAIT_BUYER_PAY') return statusPage(reply, trade);
      const f = await channelForm(deps, trade, req.ip);
      if (!f)
        return statusPage(reply, trade, '此订单无需跳转支付。There is no form to post for this payment.');
      if ('error' in f) return statusPage(reply, trade, `${f.error.zh}（${f.error.en}）`);
      const origin = new URL(f.action).origin;
      cspOf.set(reply, pageCspWith(["script-src 'self'", `form-action ${origin}`]));
      const inputs = Object.entries(f.fields)
        .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
        .join('\n');
      return reply.type('text/html; charset=utf-8').send(
        page(
          '云闪付支付',
          `<div class="card"><h1>医院收银台</h1><div class="amount">¥ ${formatFen(subFen(trade.total_fen, trade.insurance_fen))}</div>
<dl><dt>订单</dt><dd>${esc(trade.subject)}</dd></dl>
<form id="upform" method="post" action="${esc(f.action)}" accept-charset="UTF-8">
${inputs}
<button class="primary" type="submit" id="go">前往云闪付支付</button>
</form>
<p class="muted">正在前往银联收银台；如未自动跳转，请点击上方按钮。Redirecting to UnionPay.</p></div>`,
          { scripts: [FORM_SCRIPT] },
        ),
      );
    });

    // An aggregated QR trade paid in WeChat's in-app page: the page comes back here; the trade is refreshed from
    // the channel and its status shown (there is no return_url).
    scope.get('/cashier/qr/:token/return', async (req, reply) => {
      const { token } = req.params as { token: string };
      if (!/^[A-Za-z0-9_-]{10,64}$/.test(token)) return notFound(reply);
      const found = await deps.trades.byCashierToken(token);
      if (!found || found.kind !== 'qrcode') return notFound(reply);
      return statusPage(reply, await refreshTrade(deps, found));
    });

    // H5: the channel's cashier sends the payer back here; we learn the outcome and go on to the HIS's
    // return_url with signed parameters (spec 6.1), or show the result.
    // GET from Alipay / WeChat / the simulator; POST from UnionPay (its front notice is an auto-posted form,
    // whose fields are not trusted: the trade is refreshed from the channel, as for a GET).
    scope.route({
      method: ['GET', 'POST'],
      url: '/goto/:token/return',
      handler: async (req, reply) => {
        const { token } = req.params as { token: string };
        if (!/^[A-Za-z0-9_-]{10,64}$/.test(token)) return notFound(reply);
        const found = await deps.trades.byCashierToken(token);
        if (!found || found.kind !== 'h5') return notFound(reply);
        const trade = await refreshTrade(deps, found);
        if (!trade.return_url) return statusPage(reply, trade);
        // 303: a POST comes back as a GET to the HIS.
        return reply.redirect(await signedReturnUrl(deps, trade), req.method === 'POST' ? 303 : 302);
      },
    });
  });
}

const STATE_COOKIE = 'hp_oauth';
const PAYER_COOKIE = 'hp_payer';
/** The OAuth round trip must come back within this time. */
const STATE_TTL_S = 600;
/** The payer's openid cookie lives at most this long (and never past the trade's deadline). */
const PAYER_TTL_S = 2 * 3600;

function notFound(reply: FastifyReply) {
  return reply
    .code(404)
    .type('text/html; charset=utf-8')
    .send(
      page(
        '订单不存在',
        '<div class="card"><h1>订单不存在或已失效</h1><p class="muted">Unknown payment code.</p></div>',
      ),
    );
}
