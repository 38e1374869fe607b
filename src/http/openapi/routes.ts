import type { FastifyInstance } from 'fastify';
import { cspWithStyle, esc } from '../../formats/html.js';
import { ENVELOPE_PARAMS, GATEWAY_CONTRACT, type BizField } from '../gateway/contract.js';
import { ADMIN_SCHEMAS, type JsonSchema } from '../admin/schemas.js';
import { buildOpenApiDocument } from './document.js';
import { GATEWAY_CODES, gatewaySubCodes } from './codes.js';

export interface OpenApiRouteOptions {
  /** The platform's configuration: publicBaseUrl is read at each request (it names the gateway's server). */
  config: { publicBaseUrl: string };
  /** The instance serves the admin doors: the document and the page include the admin API. */
  admin: boolean;
}

const CSS = `
  body { font-family: -apple-system, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif; margin: 0; background: #f4f6f8; color: #1f2d3d; overflow-wrap: anywhere; }
  main { max-width: 1100px; margin: 0 auto; padding: 24px 16px; }
  section { background: #fff; border-radius: 10px; padding: 16px 20px; margin-bottom: 16px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
  h1 { font-size: 22px; } h2 { font-size: 18px; margin: 0 0 8px; } h3 { font-size: 15px; margin: 14px 0 6px; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; } th, td { border-bottom: 1px solid #e4e9ee; padding: 4px 6px; text-align: left; vertical-align: top; }
  th { background: #f0f3f6; } code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; }
  pre { background: #0f1720; color: #e6edf3; padding: 10px; border-radius: 8px; overflow-x: auto; font-size: 12.5px; }
  .muted { color: #6b7b8c; } .tag { font-size: 11px; background: #e8ecf1; border-radius: 4px; padding: 0 4px; }
  nav a { margin-right: 10px; }
`;
const CSP = cspWithStyle(CSS);

const KIND_TEXT: Record<BizField['kind'], string> = {
  text: 'text',
  orderNo: 'order number [A-Za-z0-9_-]',
  amount: 'yuan > 0',
  amountOrZero: 'yuan ≥ 0',
  url: 'http(s) URL',
  json: 'object / JSON text',
  orderType: 'order type',
};

function exampleBiz(fields: Readonly<Record<string, BizField>>): string {
  const o: Record<string, string | number> = {};
  for (const [name, f] of Object.entries(fields)) {
    if (!f.required) continue;
    o[name] = f.example ?? (f.enum?.[0] as string | undefined) ?? (f.kind === 'amount' ? 88.88 : `<${name}>`);
  }
  return JSON.stringify(o);
}

function gatewayHtml(base: string): string {
  const methods = Object.entries(GATEWAY_CONTRACT);
  const nav = methods.map(([m]) => `<a href="#${esc(m)}"><code>${esc(m)}</code></a>`).join(' ');
  const envelope = Object.entries(ENVELOPE_PARAMS)
    .map(
      ([n, p]) =>
        `<tr><td><code>${esc(n)}</code></td><td>${esc(p.zh)}<br><span class="muted">${esc(p.en)}</span></td><td><code>${esc(p.example)}</code></td></tr>`,
    )
    .join('');
  const sections = methods
    .map(([method, m]) => {
      const rows = Object.entries(m.fields)
        .map(
          ([n, f]) =>
            `<tr><td><code>${esc(n)}</code>${f.extension ? ' <span class="tag">扩展 extension</span>' : ''}</td>` +
            `<td>${f.required ? '是 yes' : f.requiredWhen ? esc(`${f.requiredWhen.zh} / ${f.requiredWhen.en}`) : '否 no'}</td>` +
            `<td>${esc(KIND_TEXT[f.kind])}${f.enum ? `: ${esc(f.enum.join(', '))}` : ''}${f.pattern ? ` <code>${esc(f.pattern.re.source)}</code>` : ''}</td>` +
            `<td>${f.max}</td><td>${esc(f.zh)}<br><span class="muted">${esc(f.en)}</span></td></tr>`,
        )
        .join('');
      const answer = Object.entries(m.answer)
        .map(
          ([n, a]) =>
            `<tr><td><code>${esc(n)}</code>${a.optional ? ' <span class="muted">(optional)</span>' : ''}</td><td>${esc(a.type)}${a.enum ? `: ${esc(a.enum.filter(Boolean).join(', '))}` : ''}</td><td>${esc(a.zh)}<br><span class="muted">${esc(a.en)}</span></td></tr>`,
        )
        .join('');
      return `<section id="${esc(method)}"><h2><code>${esc(method)}</code> — ${esc(m.zh)}</h2>
<p class="muted">${esc(m.en)}. 说明 Guide: <code>${esc(m.doc)}</code></p>
<h3>biz_content</h3><table><tr><th>字段 field</th><th>必填 required</th><th>类型 type</th><th>最长 max</th><th>说明 description</th></tr>${rows}</table>
<h3>示例 Example (biz_content)</h3><pre>${esc(exampleBiz(m.fields))}</pre>
<h3>应答 Answer (biz_content, after sub_code, sub_msg)</h3><table><tr><th>字段 field</th><th>类型 type</th><th>说明 description</th></tr>${answer}</table>
<h3>业务与系统错误码 Business and system sub_codes</h3><p>${m.codes.map((c) => `<code>${esc(c)}</code>`).join(', ')}</p></section>`;
    })
    .join('\n');
  const codeRows = GATEWAY_CODES.map(
    (c) =>
      `<tr><td><code>${c.code}</code></td><td>${esc(c.msg)}</td><td>${esc(c.zh)}<br><span class="muted">${esc(c.en)}</span></td></tr>`,
  ).join('');
  const subRows = gatewaySubCodes()
    .map(
      (c) =>
        `<tr><td><code>${esc(c.sub_code)}</code></td><td><code>${c.code}</code></td><td>${esc(c.zh)}<br><span class="muted">${esc(c.en)}</span></td></tr>`,
    )
    .join('');
  return `<section><h2>网关 Gateway: <code>POST ${esc(base)}/gateway</code></h2>
<p>表单 <code>application/x-www-form-urlencoded</code>，UTF-8，签名规则见 <code>docs/signing.md</code>。 A signed form; the signing rule is in docs/signing.md. 接口 Methods: ${nav}</p>
<h3>公共参数 Common parameters (all required)</h3><table><tr><th>参数 parameter</th><th>说明 description</th><th>示例 example</th></tr>${envelope}</table>
<h3>code / msg</h3><table><tr><th>code</th><th>msg</th><th>含义 meaning</th></tr>${codeRows}</table></section>
${sections}
<section id="sub-codes"><h2>全部错误码 Every sub_code</h2><p class="muted">渠道拒绝时，其错误码原样传递（docs/errors.md）。 A channel's own decline codes are passed through (docs/errors.md).</p>
<table><tr><th>sub_code</th><th>code</th><th>信息 message</th></tr>${subRows}</table></section>`;
}

function schemaText(s: unknown): string {
  const o = s as JsonSchema | undefined;
  const props = (o?.['properties'] ?? {}) as Record<string, JsonSchema>;
  const required = new Set((o?.['required'] ?? []) as string[]);
  return Object.entries(props)
    .map(([n, p]) => {
      const type = Array.isArray(p['type']) ? (p['type'] as string[]).join('|') : String(p['type'] ?? 'any');
      const en = Array.isArray(p['enum']) ? ` (${(p['enum'] as string[]).join(', ')})` : '';
      return `<code>${esc(n)}</code>${required.has(n) ? '*' : ''}: ${esc(type + en)}`;
    })
    .join('<br>');
}

function adminHtml(): string {
  const rows = Object.entries(ADMIN_SCHEMAS)
    .map(
      ([key, s]) =>
        `<tr><td><code>${esc(key)}</code></td><td>${esc(s.summary ?? '')}</td><td>${schemaText(s.params)}${s.querystring ? `<br>${schemaText(s.querystring)}` : ''}</td><td>${schemaText(s.body)}</td></tr>`,
    )
    .join('');
  return `<section id="admin"><h2>管理接口 Admin API</h2>
<p><code>Authorization: Bearer &lt;管理令牌 admin token | 操作员令牌 operator token hpo_…&gt;</code>。
无效输入返回 400 <code>{"code":"INVALID_FIELD.&lt;field&gt;","message":"中文 / English"}</code>。 Invalid input answers 400 with that shape.</p>
<table><tr><th>路由 route</th><th>说明 summary</th><th>路径与查询参数 params, query</th><th>请求体 body (* required)</th></tr>${rows}</table></section>`;
}

/**
 * GET /openapi.json (the document) and GET /docs/api (the same contract as a page: no script, no external
 * asset, its own style allowed by hash).
 */
export async function registerOpenApiRoutes(app: FastifyInstance, opts: OpenApiRouteOptions): Promise<void> {
  // Built once per public base URL (it does not change in production; tests set it after start).
  let cached: { base: string; doc: string; html: string } | undefined;
  const built = () => {
    const base = opts.config.publicBaseUrl;
    if (cached?.base !== base)
      cached = {
        base,
        doc: JSON.stringify(buildOpenApiDocument({ publicBaseUrl: base, admin: opts.admin })),
        html: pageHtml(base, opts.admin),
      };
    return cached;
  };
  app.get('/openapi.json', async (_req, reply) =>
    reply
      .header('cache-control', 'no-cache')
      .header('access-control-allow-origin', '*')
      .header('x-content-type-options', 'nosniff')
      .type('application/json; charset=utf-8')
      .send(built().doc),
  );
  app.get('/docs/api', async (_req, reply) =>
    reply
      .header('content-security-policy', CSP)
      .header('x-frame-options', 'DENY')
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .type('text/html; charset=utf-8')
      .send(built().html),
  );
}

function pageHtml(base: string, admin: boolean): string {
  return `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hospay 接口文档 API reference</title>
<style>${CSS}</style>
</head>
<body><main>
<h1>hospay 接口文档 · API reference</h1>
<p>机器可读 Machine-readable: <a href="/openapi.json"><code>/openapi.json</code></a> (OpenAPI 3.1)</p>
${gatewayHtml(base)}
${admin ? adminHtml() : ''}
</main></body>
</html>`;
}
