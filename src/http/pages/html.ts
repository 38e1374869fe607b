/** Escapes text for HTML element and attribute content. */
export function esc(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** A plain, script-free page (Chinese UI, English where an operator benefits). */
export function page(title: string, bodyHtml: string): string {
  return `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
  body { font-family: -apple-system, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif; margin: 0; background: #f4f6f8; color: #1f2d3d; }
  main { max-width: 760px; margin: 0 auto; padding: 24px 16px; }
  .card { background: #fff; border-radius: 10px; padding: 20px; margin-bottom: 16px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
  h1 { font-size: 22px; margin: 0 0 12px; } h2 { font-size: 18px; margin: 0 0 10px; }
  .amount { font-size: 34px; font-weight: 600; margin: 8px 0; }
  .muted { color: #6b7b8c; font-size: 14px; }
  button { font-size: 17px; padding: 12px 18px; border: 0; border-radius: 8px; cursor: pointer; margin: 6px 6px 0 0; }
  .primary { background: #1677ff; color: #fff; } .secondary { background: #e8ecf1; color: #1f2d3d; }
  .ok { color: #0a8a3a; } .bad { color: #c0392b; }
  pre { background: #0f1720; color: #e6edf3; padding: 12px; border-radius: 8px; overflow-x: auto; font-size: 13px; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: 6px 14px; margin: 0; } dt { color: #6b7b8c; }
</style>
</head>
<body><main>
${bodyHtml}
</main></body>
</html>`;
}
