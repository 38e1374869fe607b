import type { FastifyInstance } from 'fastify';
import type { Config } from '../../config/config.js';
import { esc, page, setPageHeaders } from '../../formats/html.js';

/** The landing page: what this server is and how to make a first call. */
export async function registerLandingPage(
  app: FastifyInstance,
  config: Config,
  demoAppId: () => string | null,
): Promise<void> {
  app.get('/', async (_req, reply) => {
    setPageHeaders(reply);
    const base = config.publicBaseUrl;
    const demo = demoAppId();
    const curl = `curl -s ${base}/offline/FWC_IF_Barcode_Pay -H 'Content-Type: text/xml' --data-binary '<xml><head>
  <AccessToken>你的 AccessToken / your AccessToken</AccessToken>
  <OutTradeNo>MZ20261125000001</OutTradeNo>
  <AuthCode>280000000000000000</AuthCode>
  <TotalAmount>88.88</TotalAmount>
  <Caption>门诊缴费</Caption>
  <PatientName>张三</PatientName>
  <InhospitalNo>0001</InhospitalNo>
  <OrderType>TREATMENT</OrderType>
</head><body></body><sign></sign></xml>'`;
    return reply.type('text/html; charset=utf-8').send(
      page(
        'hospay 医院支付平台',
        `<div class="card"><h1>hospay 医院支付平台</h1>
${
  config.simulator.enabled
    ? '<p>平台已运行；未接入真实渠道的应用使用内置模拟器（simulator）。The platform is running; apps without a real channel use the built-in simulator.</p>'
    : '<p>平台已运行，内置模拟器已关闭（HOSPAY_SIMULATOR=off）。The platform is running with the simulator off.</p>'
}
${demo ? `<p>演示应用 Demo app: <code>${esc(demo)}</code>，其 AccessToken 在首次启动时打印于控制台（printed once on first start）。</p>` : ''}
<p class="muted">新建应用 / new app: <code>npx hospay app create --name "某医院"</code></p></div>
<div class="card"><h2>第一笔条码支付 · First barcode payment</h2><pre>${esc(curl)}</pre>
${
  config.simulator.enabled
    ? `<p class="muted">付款码末两位决定模拟结果（01 需输密码、03 余额不足……），见 docs/simulator.md。
The last two digits of AuthCode pick the simulated outcome; see docs/simulator.md.</p>`
    : ''
}</div>
<div class="card"><h2>接口 · Interfaces</h2><ul>
<li>POST /offline/FWC_IF_Barcode_Pay — 条码付</li><li>POST /offline/FWC_IF_Qrcode_Pay — 扫码付</li>
<li>POST /offline/FWC_IF_Barcode_Pay_Query — 查询</li><li>POST /offline/FWC_IF_Barcode_Pay_Cancel — 撤销</li>
<li>POST /offline/FWC_IF_Barcode_Pay_Refund — 退款</li></ul></div>`,
      ),
    );
  });
}
