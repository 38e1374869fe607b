import type { FastifyInstance, FastifyReply } from 'fastify';
import { medicareFor, type ServiceDeps } from '../../services/deps.js';
import { decideAuthorisation, pendingAuthorisation, startAuthorisation } from '../../services/medicare.js';
import { HospayError } from '../../domain/errors.js';
import { esc, page, usePageHeaders } from '../../formats/html.js';
import { SIMULATOR } from '../../channels/choice.js';

function errorPage(reply: FastifyReply, status: number, zh: string, en: string) {
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .send(
      page(
        '医保授权',
        `<div class="card"><h1>医保授权失败</h1><p>${esc(zh)}</p><p class="muted">${esc(en)}</p></div>`,
      ),
    );
}

/**
 * Medical-insurance authorisation (spec 6.4): GET /oauth2/medicareAuth?app_id&open_id&state&redirect_uri sends the
 * patient to consent (the medical-insurance side's page); the decision comes back here and goes on to
 * redirect_uri?auth_code=…&state=… (or error=access_denied&state=…).
 */
export async function registerMedicarePages(app: FastifyInstance, deps: ServiceDeps): Promise<void> {
  /** The app's medical-insurance side is the simulator (so its consent form may decide here). */
  const simulated = (a: { channel_map: string }) => {
    try {
      return medicareFor(deps, a).id === SIMULATOR;
    } catch {
      return false;
    }
  };
  await app.register(async (scope) => {
    // Not framed (a consent click must be the patient's own), no script, no Referer carrying the ids.
    usePageHeaders(scope, { noStore: true });
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: 4096 },
      (_req, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      },
    );

    scope.get('/oauth2/medicareAuth', async (req, reply) => {
      const q = req.query as Record<string, unknown>;
      const str = (k: string) => (typeof q[k] === 'string' ? (q[k] as string) : '');
      for (const k of ['app_id', 'open_id', 'redirect_uri']) {
        if (!str(k)) return errorPage(reply, 400, `缺少参数 ${k}`, `the parameter ${k} is missing`);
      }
      try {
        const r = await startAuthorisation(deps, {
          appId: str('app_id'),
          openId: str('open_id'),
          state: str('state'),
          redirectUri: str('redirect_uri'),
        });
        return reply.redirect(r.consentUrl, 302);
      } catch (e) {
        if (e instanceof HospayError) return errorPage(reply, 400, e.zh, `${e.code}: ${e.en}`);
        throw e;
      }
    });

    // A real region's consent page comes back with a GET: authCode (or auth_code / code) on a grant, nothing or
    // an error on a refusal; state must be the authorisation's id.
    scope.get('/oauth2/medicareAuth/:id/decision', async (req, reply) => {
      const { id } = req.params as { id: string };
      const q = req.query as Record<string, unknown>;
      const str = (k: string) => (typeof q[k] === 'string' ? (q[k] as string) : '');
      if (!/^[A-Za-z0-9_-]{10,64}$/.test(id) || str('state') !== id)
        return errorPage(reply, 404, '授权请求不存在', 'unknown authorisation request');
      const code = str('authCode') || str('auth_code') || str('code');
      if (code !== '' && !/^[A-Za-z0-9._~-]{4,128}$/.test(code))
        return errorPage(reply, 400, '授权码无效', 'invalid authorisation code');
      const url = await decideAuthorisation(deps, id, code !== '', code || undefined);
      if (!url)
        return errorPage(
          reply,
          410,
          '授权请求不存在、已处理或已过期',
          'the authorisation request is unknown, already decided or expired',
        );
      return reply.redirect(url, 302);
    });

    scope.post('/oauth2/medicareAuth/:id/decision', async (req, reply) => {
      const { id } = req.params as { id: string };
      const decision = (req.body as Record<string, string> | undefined)?.['decision'];
      if (decision !== 'grant' && decision !== 'decline')
        return errorPage(reply, 400, '无效的操作', 'decision must be grant or decline');
      if (!/^[A-Za-z0-9_-]{10,64}$/.test(id))
        return errorPage(reply, 404, '授权请求不存在', 'unknown authorisation request');
      // This form is the simulated consent page's: a real medical-insurance side decides through its GET.
      const pending = await pendingAuthorisation(deps, id);
      if (!pending || !simulated(pending))
        return errorPage(reply, 404, '授权请求不存在', 'unknown authorisation request');
      const url = await decideAuthorisation(deps, id, decision === 'grant');
      if (!url)
        return errorPage(
          reply,
          410,
          '授权请求不存在、已处理或已过期',
          'the authorisation request is unknown, already decided or expired',
        );
      return reply.redirect(url, 302);
    });

    // The simulated medical-insurance pages only while the simulator is on (HOSPAY_SIMULATOR).
    if (!deps.config.simulator.enabled) return;

    // The simulated e-voucher code (qr_code of lc.ssc.user.token).
    scope.get('/simulator/medicare/qr/:no', async (req, reply) => {
      const { no } = req.params as { no: string };
      if (!/^AUTH[0-9]{10,40}$/.test(no)) return errorPage(reply, 404, '凭证不存在', 'unknown e-voucher');
      return reply
        .type('text/html; charset=utf-8')
        .send(
          page(
            '医保电子凭证',
            `<div class="card"><h1>医保电子凭证（模拟）</h1><p class="amount">${esc(no.slice(0, 10))}…${esc(no.slice(-4))}</p><p class="muted">Simulated medical-insurance e-voucher.</p></div>`,
          ),
        );
    });

    // The simulated national medical-insurance consent page (a real deployment sends the patient to the
    // national platform's page instead).
    scope.get('/simulator/medicare/consent/:id', async (req, reply) => {
      const { id } = req.params as { id: string };
      const p = /^[A-Za-z0-9_-]{10,64}$/.test(id) ? await pendingAuthorisation(deps, id) : undefined;
      if (!p || p.status !== 'PENDING' || p.expires_at <= deps.clock.now() || !simulated(p)) {
        return errorPage(reply, 404, '授权请求不存在或已过期', 'unknown or expired authorisation request');
      }
      return reply.type('text/html; charset=utf-8').send(
        page(
          '医保电子凭证授权',
          `<div class="card"><h1>医保电子凭证授权（模拟）</h1>
<p><b>${esc(p.app_name)}</b> 申请使用您的医保电子凭证完成医保支付。</p>
<p class="muted">Simulated national medical-insurance consent page.</p>
<form method="post" action="/oauth2/medicareAuth/${esc(id)}/decision">
<button class="primary" type="submit" name="decision" value="grant" id="grant">同意授权</button>
<button class="secondary" type="submit" name="decision" value="decline" id="decline">拒绝</button>
</form></div>`,
        ),
      );
    });
  });
}
