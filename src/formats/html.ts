import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** Escapes text for HTML element and attribute content. */
export function esc(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/**
 * The one style block of page(); the CSP allows exactly it (by its hash, computed from this text). Every page fits
 * a 360 px phone: long numbers (channel trade numbers, tokens) wrap anywhere (test/integration/pages-fit.test.ts).
 */
const PAGE_CSS = `
  body { font-family: -apple-system, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif; margin: 0; background: #f4f6f8; color: #1f2d3d; overflow-wrap: anywhere; }
  main { max-width: 760px; margin: 0 auto; padding: 24px 16px; }
  .card { background: #fff; border-radius: 10px; padding: 20px; margin-bottom: 16px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
  h1 { font-size: 22px; margin: 0 0 12px; } h2 { font-size: 18px; margin: 0 0 10px; }
  .amount { font-size: 34px; font-weight: 600; margin: 8px 0; }
  .muted { color: #6b7b8c; font-size: 14px; }
  button { font-size: 17px; padding: 12px 18px; border: 0; border-radius: 8px; cursor: pointer; margin: 6px 6px 0 0; }
  .primary { background: #1677ff; color: #fff; } .secondary { background: #e8ecf1; color: #1f2d3d; }
  .ok { color: #0a8a3a; } .bad { color: #c0392b; }
  pre { background: #0f1720; color: #e6edf3; padding: 12px; border-radius: 8px; overflow-x: auto; font-size: 13px; }
  dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 6px 14px; margin: 0; } dt { color: #6b7b8c; } dd { margin: 0; min-width: 0; }
`;

/**
 * The Content-Security-Policy of every page() page: no script, no external asset, only its own style block, never
 * framed. No form-action: the cashier's, the payer page's and the consent page's forms end in redirects to
 * other sites (the channel's cashier, the HIS's return_url or redirect_uri), which browsers check against it.
 */
export const PAGE_CSP = cspWithStyle(PAGE_CSS);

/** A CSP for a script-free page whose only style is `css` (one inline block, allowed by its SHA-256). */
export function cspWithStyle(css: string, extra: readonly string[] = []): string {
  return [
    "default-src 'none'",
    `style-src 'sha256-${createHash('sha256').update(css, 'utf8').digest('base64')}'`,
    "img-src 'self'",
    ...extra,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}

export interface PageHeaderOptions {
  /** Defaults to PAGE_CSP. */
  csp?: string;
  /**
   * Defaults to no-referrer: the patients' pages carry capabilities in their URLs (cashier and goto tokens,
   * authorisation ids, channel trade numbers), which must not reach another site as a Referer.
   */
  referrerPolicy?: 'no-referrer' | 'same-origin';
  /** Cache-Control: no-store (pages with personal or session data). */
  noStore?: boolean;
}

/** Sets the security headers of an HTML page (and of the redirects and errors of the same routes) on one reply. */
export function setPageHeaders(reply: FastifyReply, opts: PageHeaderOptions = {}): void {
  reply.header('content-security-policy', opts.csp ?? PAGE_CSP);
  reply.header('x-frame-options', 'DENY');
  reply.header('x-content-type-options', 'nosniff');
  reply.header('referrer-policy', opts.referrerPolicy ?? 'no-referrer');
  if (opts.noStore) reply.header('cache-control', 'no-store');
}

/** Every answer of an encapsulated scope (register()) gets the page security headers. */
export function usePageHeaders(scope: FastifyInstance, opts: PageHeaderOptions = {}): void {
  scope.addHook('onSend', async (_req, reply, payload) => {
    setPageHeaders(reply, opts);
    return payload;
  });
}

/**
 * The CSP of a page() page that loads hospay's own static script(s) (`script-src 'self'`, nothing inline) and
 * may add directives (e.g. `form-action https://cashier.example`). Only the few pages that need a script use it
 * (the WeChat in-app cashier, the auto-posting UnionPay form); every other page stays on PAGE_CSP.
 */
export function pageCspWith(extra: readonly string[]): string {
  return cspWithStyle(PAGE_CSS, extra);
}

/**
 * A plain page (Chinese UI, English where an operator benefits). Script-free unless `opts.scripts` names
 * same-origin static scripts (absolute paths), which only a page served under pageCspWith(["script-src 'self'"])
 * may do.
 */
export function page(title: string, bodyHtml: string, opts: { scripts?: readonly string[] } = {}): string {
  const scripts = (opts.scripts ?? []).map((src) => `<script src="${esc(src)}" defer></script>\n`).join('');
  return `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${PAGE_CSS}</style>
${scripts}</head>
<body><main>
${bodyHtml}
</main></body>
</html>`;
}
