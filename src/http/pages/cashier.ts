import type { FastifyInstance, FastifyReply } from 'fastify';
import { enabledPayTypes, type ServiceDeps } from '../../services/deps.js';
import { chooseCashierPayType } from '../../services/qr-pay.js';
import { formatFen, subFen } from '../../domain/money.js';
import { parsePayType, type PayType } from '../../domain/trade.js';
import type { Trade } from '../../services/records.js';
import { esc, page, usePageHeaders } from '../../formats/html.js';
import { refreshTrade } from '../../services/sync.js';
import { signedReturnUrl } from '../gateway/return-url.js';

const NAMES: Record<PayType, string> = { alipay: '支付宝', weixin: '微信支付', unionpay: '云闪付' };

/** The app the payer scanned with, from its browser's User-Agent. */
export function payTypeFromUserAgent(ua: string): PayType | null {
  if (/AlipayClient/i.test(ua)) return 'alipay';
  if (/MicroMessenger/i.test(ua)) return 'weixin';
  if (/UnionPay|CloudPay/i.test(ua)) return 'unionpay';
  return null;
}

function statusPage(reply: FastifyReply, t: Trade, note?: string) {
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
<dl><dt>订单</dt><dd>${esc(t.subject)}</dd><dt>状态</dt><dd id="status">${text}</dd></dl>${note ? `<p>${esc(note)}</p>` : ''}</div>`,
    ),
  );
}

/** Aggregated QR codes open this page; it sends the payer on to the channel of the app they scanned with. */
export async function registerCashierPages(app: FastifyInstance, deps: ServiceDeps): Promise<void> {
  await app.register(async (scope) => {
    // Not framed, no script, no Referer carrying the token (issue 11).
    usePageHeaders(scope, { noStore: true });
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: 4096 },
      (_req, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      },
    );

    const go = async (token: string, payType: PayType, reply: FastifyReply) => {
      const r = await chooseCashierPayType(deps, token, payType, reply.request.ip);
      if (!r) return notFound(reply);
      switch (r.kind) {
        case 'redirect':
          return reply.redirect(r.url, 302);
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
        if (detected) return go(token, detected, reply);
        if (trade.pay_type) return go(token, trade.pay_type as PayType, reply);
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
        return go(token, payType, reply);
      });
    }

    // H5: the channel's cashier sends the payer back here; we learn the outcome and go on to the HIS's
    // return_url with signed parameters (spec 6.1), or show the result.
    scope.get('/goto/:token/return', async (req, reply) => {
      const { token } = req.params as { token: string };
      if (!/^[A-Za-z0-9_-]{10,64}$/.test(token)) return notFound(reply);
      const found = await deps.trades.byCashierToken(token);
      if (!found || found.kind !== 'h5') return notFound(reply);
      const trade = await refreshTrade(deps, found);
      if (!trade.return_url) return statusPage(reply, trade);
      return reply.redirect(await signedReturnUrl(deps, trade), 302);
    });
  });
}

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
