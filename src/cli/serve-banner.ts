import os from 'node:os';

/** Loopback host names as they appear in a URL's hostname. */
function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || /^127\./.test(h) || h === '::1';
}

/** This machine's non-loopback IPv4 addresses: where phones on the same network can reach it. */
export function networkAddresses(
  interfaces: ReturnType<typeof os.networkInterfaces> = os.networkInterfaces(),
): string[] {
  const out: string[] = [];
  for (const list of Object.values(interfaces))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) out.push(a.address);
  return out;
}

/**
 * The start-up lines about the address patients and the HIS get in answers (goto_url, QR codes): which one, where
 * it comes from, and when only this machine can open it, what to set. Bilingual, for the operator.
 */
export function publicAddressLines(
  opts: { publicBaseUrl: string; host: string; port: number; fromEnv: boolean },
  addresses: string[] = networkAddresses(),
): string[] {
  const source = opts.fromEnv
    ? 'PUBLIC_BASE_URL'
    : 'PUBLIC_BASE_URL 未设置，取自 HOST、PORT / unset: from HOST and PORT';
  const lines = [
    `  患者与 HIS 得到的地址 / patients and the HIS get URLs under: ${opts.publicBaseUrl} (${source})`,
  ];
  const base = new URL(opts.publicBaseUrl);
  const port = base.port || (base.protocol === 'https:' ? '443' : '80');
  if (isLoopbackHost(base.hostname)) {
    const example = addresses[0] ? `http://${addresses[0]}:${opts.port}` : 'https://pay.example-hospital.cn';
    lines.push(
      "  仅本机能打开，患者手机扫码打不开 / only this machine can open it, not the patients' phones:",
      `  set ${isLoopbackHost(opts.host) ? 'HOST=0.0.0.0 and ' : ''}PUBLIC_BASE_URL=${example}` +
        (addresses[0] ? ' (this machine on the network)' : '') +
        ', or the HTTPS address of a reverse proxy',
    );
  } else if (isLoopbackHost(opts.host)) {
    lines.push(
      `  HOST=${opts.host} 只接受本机连接：${opts.publicBaseUrl} 须由本机的反向代理转发 / HOST=${opts.host} accepts ` +
        `connections from this machine only: ${opts.publicBaseUrl} must lead to a reverse proxy here, or set HOST=0.0.0.0`,
    );
  } else if (base.protocol === 'http:' && port !== String(opts.port) && addresses.includes(base.hostname)) {
    lines.push(
      `  注意：hospay 监听端口 ${opts.port}，而 PUBLIC_BASE_URL 用端口 ${port} / note: hospay listens on port ` +
        `${opts.port} but PUBLIC_BASE_URL uses port ${port}`,
    );
  }
  return lines;
}
