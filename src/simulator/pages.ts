import type { FastifyInstance } from 'fastify';
import { formatFen } from '../domain/money.js';
import { esc, page, usePageHeaders } from '../formats/html.js';
import type { SimTrade, SimulatorProvider } from './provider.js';

const PAY_TYPE_NAMES: Record<SimTrade['payType'], string> = {
  alipay: '支付宝 (Alipay)',
  weixin: '微信支付 (WeChat Pay)',
  unionpay: '云闪付 (UnionPay)',
  elecny: '数字人民币 (e-CNY)',
};
const STATUS_TEXT: Record<SimTrade['status'], string> = {
  WAITING: '待支付',
  PAID: '支付成功',
  CLOSED: '已关闭 / 已放弃',
  REFUNDED: '已退款',
};

function payerPage(t: SimTrade, notice?: string): string {
  const open = t.status === 'WAITING';
  return page(
    '模拟支付 - hospay simulator',
    `<div class="card">
  <h1>${esc(PAY_TYPE_NAMES[t.payType] ?? t.payType)} · 模拟收银台</h1>
  <p class="muted">这是 hospay 内置的支付渠道模拟器，代替患者的手机完成支付。Simulated payer page: no real money moves.</p>
  <div class="amount">¥ ${formatFen(t.amountFen)}</div>
  <dl><dt>商品</dt><dd>${esc(t.subject)}</dd><dt>渠道订单号</dt><dd>${esc(t.channelTradeNo)}</dd>
  <dt>状态</dt><dd id="status" class="${t.status === 'PAID' ? 'ok' : open ? '' : 'bad'}">${STATUS_TEXT[t.status]}</dd></dl>
  ${notice ? `<p>${esc(notice)}</p>` : ''}
  ${
    open
      ? `<form method="post" action="/simulator/pay/${esc(t.channelTradeNo)}">
    <button class="primary" type="submit" name="action" value="pay" id="pay">确认支付</button>
    <button class="secondary" type="submit" name="action" value="abandon" id="abandon">放弃支付</button>
  </form>`
      : ''
  }
</div>`,
  );
}

/** The simulator's payer pages: plain HTML forms (no JavaScript), standing in for the patient's phone. */
export async function registerSimulatorPages(
  app: FastifyInstance,
  provider: SimulatorProvider,
): Promise<void> {
  await app.register(async (scope) => {
    // Nothing frames the payer page (a real channel's cashier is not framed either): DENY, like the others.
    usePageHeaders(scope, { noStore: true });
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: 4096 },
      (_req, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      },
    );

    scope.get('/simulator/pay/:no', async (req, reply) => {
      const { no } = req.params as { no: string };
      const t = /^[0-9]{10,40}$/.test(no) ? await provider.findByChannelTradeNo(no) : null;
      if (!t)
        return reply
          .code(404)
          .type('text/html; charset=utf-8')
          .send(
            page(
              '订单不存在',
              '<div class="card"><h1>订单不存在</h1><p class="muted">Unknown simulator trade.</p></div>',
            ),
          );
      return reply.type('text/html; charset=utf-8').send(payerPage(t));
    });

    scope.post('/simulator/pay/:no', async (req, reply) => {
      const { no } = req.params as { no: string };
      const action = (req.body as Record<string, string> | undefined)?.['action'];
      if (action !== 'pay' && action !== 'abandon') {
        return reply
          .code(400)
          .type('text/html; charset=utf-8')
          .send(
            page(
              '无效操作',
              '<div class="card"><h1>无效操作</h1><p class="muted">action must be pay or abandon.</p></div>',
            ),
          );
      }
      const t = /^[0-9]{10,40}$/.test(no) ? await provider.payerAction(no, action) : null;
      if (!t)
        return reply
          .code(404)
          .type('text/html; charset=utf-8')
          .send(page('订单不存在', '<div class="card"><h1>订单不存在</h1></div>'));
      // Wap (H5) pay: back to the merchant, as the real cashiers do.
      if (t.returnUrl) return reply.redirect(t.returnUrl, 303);
      const notice =
        t.status === 'PAID'
          ? '支付成功，请回到医院页面查看结果。'
          : t.status === 'CLOSED'
            ? '您已放弃本次支付。'
            : undefined;
      return reply.type('text/html; charset=utf-8').send(payerPage(t, notice));
    });
  });
}
