import { parseArgs } from 'node:util';
import type { Config } from '../config/config.js';
import { formatFen, ZERO_FEN } from '../domain/money.js';
import { formatShanghai, systemClock } from '../domain/clock.js';
import { adminFetch, cliPlatform, readStdin, runningServer } from './running-server.js';
import {
  UnknownAppError,
  isBusinessDate,
  isIncomplete,
  reconcileApps,
  type AppDayOutcome,
  type ReconProgress,
} from '../reconcile/run.js';
import { parseFeeRates, ReconSettingsError } from '../reconcile/settings.js';
import { ADMIN_ACTOR_PREFIX, NOTE_MAX } from '../reconcile/differences.js';
import {
  reconSettingsView,
  updateReconSettings,
  type ReconSettingsPatch,
  type ReconSettingsView,
} from '../reconcile/his-settings.js';
import { UsageError } from '../domain/errors.js';

/** `hospay reconcile`'s exit code when a side (the HIS) could not be compared: the day must be run again. */
export const EXIT_INCOMPLETE = 4;

export const RECONCILE_USAGE = `  hospay reconcile [--date YYYY-MM-DD] [--app ID] [--json]
                                               reconcile a business day (default: yesterday, Asia/Shanghai):
                                               platform ↔ channel bill ↔ HIS; a progress bar on a terminal;
                                               exit 0 = no open differences, 3 = open differences,
                                               ${EXIT_INCOMPLETE} = incomplete (the HIS could not be read: run again),
                                               1 = an app could not be reconciled
  hospay reconcile differences --date YYYY-MM-DD --app ID [--state OPEN|RESOLVED]
                               [--pay-type alipay|weixin|unionpay|elecny] [--json]
                                               the day's differences (every run of the day; a table, or JSON);
                                               exit 0 = none open among those listed, 3 = some still open
                                               (present and not resolved), 1 = unknown app
  hospay reconcile resolve --id N --note TEXT --by NAME [--json]
                                               resolve a difference (note 1–${NOTE_MAX} characters); the audit
                                               trail records "${ADMIN_ACTOR_PREFIX}NAME"; exit 1 = no such difference or
                                               already resolved
  hospay app his --app ID [--url URL | --no-his] [--token-stdin | --no-token]
                 [--protocol xml|soap11|soap12] [--soap-namespace URI] [--slice-minutes N] [--cutoff-hour H] [--pending-days N] [--his-timeout S] [--his-retries N]
                 [--fee-rate alipay=0.6%,weixin=0.6%,unionpay=-] [--fee-tolerance-fen N] [--json]
                                               show or set the app's HIS (spec chapter 7) and reconciliation
                                               settings; the HIS AccessToken is read from stdin and stored
                                               sealed (HOSPAY_MASTER_KEY with PostgreSQL); --protocol soap11|
                                               soap12: the HIS serves SOAP at URL (namespace default
                                               http://tempuri.org/)`;

/** The business date `days` days before `now`, in Asia/Shanghai (the CLI's and the daily job's "yesterday"). */
export function shanghaiDateBefore(now: Date, days: number): string {
  return formatShanghai(new Date(now.getTime() - days * 86_400_000)).slice(0, 10);
}

export class ReconcileUsageError extends UsageError {
  constructor(message: string) {
    super(message);
    this.name = 'ReconcileUsageError';
  }
}

/** The admin API's answer with the fields every refusal carries. */
async function admin<T>(
  server: { base: string; token: string },
  method: string,
  path: string,
  body?: unknown,
) {
  const r = await adminFetch(server, method, path, body);
  return { status: r.status, data: (r.data ?? {}) as T & { code?: string; message?: string } };
}

const STAGES: Record<ReconProgress['stage'], string> = {
  bill: '下载账单 bill',
  platform: '平台流水 platform',
  his: 'HIS 交易列表 HIS list',
  match: '比对 matching',
  recheck: 'HIS 复核 re-check',
  save: '保存 saving',
};

/** A one-line progress bar on stderr, redrawn in place (only on a terminal). */
export function progressBar(
  write: (s: string) => void,
  width = 24,
): (p: ReconProgress & { appId: string }) => void {
  return (p) => {
    const ratio = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
    const full = Math.round(ratio * width);
    const bar = `${'█'.repeat(full)}${'░'.repeat(width - full)}`;
    write(
      `\r\x1b[2K${p.appId} ${p.payType.padEnd(8)} [${bar}] ${String(p.done).padStart(3)}/${p.total} ${STAGES[p.stage]}`,
    );
  };
}

function printOutcomes(outcomes: readonly AppDayOutcome[]): void {
  for (const o of outcomes) {
    if (o.error) {
      console.log(`${o.appId}  failed: ${o.error}`);
      continue;
    }
    if (o.skipped) {
      console.log(`${o.appId}  ${o.payType.padEnd(8)}  skipped: ${o.skipped}`);
      continue;
    }
    const pay = o.totals?.channel.payment;
    const refund = o.totals?.channel.refund;
    console.log(
      `${o.appId}  ${o.payType.padEnd(8)}  matched ${o.matched}  differences ${o.differences} (open ${o.open})  pending ${o.pending}` +
        `  channel: ${pay?.count ?? 0} payments ¥${formatFen(pay?.fen ?? ZERO_FEN)}, ${refund?.count ?? 0} refunds ¥${formatFen(refund?.fen ?? ZERO_FEN)}` +
        (isIncomplete(o) ? `  未完成 INCOMPLETE, HIS: ${o.hisError ?? ''}` : ''),
    );
  }
}

/**
 * Reconciles one business day (default: yesterday in Asia/Shanghai, whatever the host's time zone). Exit code
 * 0: no open differences; 3: open differences; 4 (EXIT_INCOMPLETE): a pay type could not be compared with the
 * HIS, run the day again; 1: an app failed. The worst wins: 1, then 4, then 3.
 * With the embedded database held by a running server, the server does the work (admin API).
 */
export async function reconcileCommand(args: string[], config: Config): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { date: { type: 'string' }, app: { type: 'string' }, json: { type: 'boolean' } },
    strict: true,
  });
  const date = values.date ?? shanghaiDateBefore(systemClock.now(), 1);
  if (!isBusinessDate(date))
    throw new ReconcileUsageError('--date must be a real date written YYYY-MM-DD (default: yesterday)');
  const tty = process.stderr.isTTY && !values.json;
  let run: { outcomes: AppDayOutcome[]; open: number; errors: number; incomplete?: number };
  const server = runningServer(config);
  if (server) {
    if (tty) process.stderr.write('对账中（由运行中的服务执行）/ reconciling on the running server …');
    const r = await admin<typeof run>(server, 'POST', '/admin/reconcile', {
      date,
      ...(values.app ? { app_id: values.app } : {}),
    });
    if (tty) process.stderr.write('\r\x1b[2K');
    if (r.status === 404) throw new UnknownAppError(values.app ?? '');
    if (r.status !== 200)
      throw new Error(`the running server refused: HTTP ${r.status} ${r.data.message ?? ''}`);
    run = r.data;
  } else {
    const platform = await cliPlatform(config);
    try {
      run = await reconcileApps(platform.recon, {
        date,
        ...(values.app ? { appId: values.app } : {}),
        ...(tty ? { onProgress: progressBar((s) => process.stderr.write(s)) } : {}),
      });
    } finally {
      if (tty) process.stderr.write('\r\x1b[2K');
      await platform.close();
    }
  }
  const incomplete = run.outcomes.filter(isIncomplete).length;
  if (values.json) console.log(JSON.stringify(run.outcomes));
  else {
    console.log(`业务日期 / business date ${date} (Asia/Shanghai)`);
    printOutcomes(run.outcomes);
    if (incomplete > 0)
      console.log(
        `对账未完成：${incomplete} 个支付方式未能与 HIS 核对，请 HIS 恢复后重新对账 / incomplete: ${incomplete} pay type(s) not compared with the HIS; run the day again when the HIS is back`,
      );
    console.log(
      run.open === 0
        ? incomplete > 0
          ? '已核对部分无未处理差异 / no open differences in what could be compared'
          : '无未处理差异 / no open differences'
        : `未处理差异 ${run.open} 条 / ${run.open} open differences`,
    );
  }
  if (run.errors > 0) return 1;
  if (incomplete > 0) return EXIT_INCOMPLETE;
  return run.open === 0 ? 0 : 3;
}

function wholeNumber(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]{1,6}$/.test(text)) throw new ReconcileUsageError(`${flag} takes a whole number`);
  return Number(text);
}

function printView(v: ReconSettingsView): void {
  const s = v.settings;
  const fees = Object.entries(s.feeRateBps)
    .map(([pt, bps]) => `${pt}=${(bps / 100).toFixed(2)}%`)
    .join(', ');
  console.log(
    [
      `app ${v.app_id}`,
      `  HIS 地址 / base URL      ${v.his_base_url ?? '(未配置 none: no HIS comparison)'}`,
      `  HIS AccessToken          ${v.his_access_token === 'set' ? '已设置 set (sealed)' : '未设置 none'}`,
      `  HIS 接口协议 / protocol   ${hisProtocolLabel(s.hisProtocol, s.hisSoapNamespace)}`,
      `  分片 / slice              ${s.hisSliceMinutes} min, 超时 timeout ${s.hisTimeoutSeconds} s, 重试 retries ${s.hisRetries}`,
      `  日切 / cut-off hour       ${s.cutoffHour}:00 Asia/Shanghai`,
      `  挂账 / pending days       ${s.pendingDays}`,
      `  费率 / fee rates          ${fees || '(不核对 not checked)'}, 容差 tolerance ${s.feeToleranceFen} fen`,
    ].join('\n'),
  );
}

/** The HIS protocol as the CLI prints it, e.g. "soap11 (SOAP 1.1, namespace http://tempuri.org/)". */
export function hisProtocolLabel(protocol: string, namespace: string): string {
  if (protocol === 'soap11') return `soap11 (SOAP 1.1, 命名空间 namespace ${namespace})`;
  if (protocol === 'soap12') return `soap12 (SOAP 1.2, 命名空间 namespace ${namespace})`;
  return 'xml (XML over HTTP POST, 接口名附在地址后 interface name appended to the URL)';
}

/** `hospay app his`: shows or changes an app's HIS connection and reconciliation settings. */
export async function appHisCommand(args: string[], config: Config): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      app: { type: 'string' },
      url: { type: 'string' },
      'no-his': { type: 'boolean' },
      'token-stdin': { type: 'boolean' },
      'no-token': { type: 'boolean' },
      protocol: { type: 'string' },
      'soap-namespace': { type: 'string' },
      'slice-minutes': { type: 'string' },
      'cutoff-hour': { type: 'string' },
      'pending-days': { type: 'string' },
      'his-timeout': { type: 'string' },
      'his-retries': { type: 'string' },
      'fee-rate': { type: 'string' },
      'fee-tolerance-fen': { type: 'string' },
      json: { type: 'boolean' },
    },
    strict: true,
  });
  if (!values.app) throw new ReconcileUsageError('--app ID is required');
  if (values.url !== undefined && values['no-his'])
    throw new ReconcileUsageError('use either --url or --no-his');
  if (values['token-stdin'] && values['no-token'])
    throw new ReconcileUsageError('use either --token-stdin or --no-token');
  const patch: ReconSettingsPatch = {};
  if (values.url !== undefined) patch.his_base_url = values.url;
  if (values['no-his']) patch.his_base_url = null;
  if (values['no-token']) patch.his_access_token = null;
  if (values['token-stdin']) {
    const token = (await readStdin()).trim();
    if (!token) throw new ReconcileUsageError('--token-stdin: nothing was read from stdin');
    patch.his_access_token = token;
  }
  const settings: Record<string, unknown> = {};
  const numbers: Array<[string, string]> = [
    ['slice-minutes', 'hisSliceMinutes'],
    ['cutoff-hour', 'cutoffHour'],
    ['pending-days', 'pendingDays'],
    ['his-timeout', 'hisTimeoutSeconds'],
    ['his-retries', 'hisRetries'],
    ['fee-tolerance-fen', 'feeToleranceFen'],
  ];
  for (const [flag, field] of numbers) {
    const n = wholeNumber(values[flag as keyof typeof values] as string | undefined, `--${flag}`);
    if (n !== undefined) settings[field] = n;
  }
  if (values['fee-rate'] !== undefined) settings['feeRateBps'] = parseFeeRates(values['fee-rate']);
  if (values.protocol !== undefined) settings['hisProtocol'] = values.protocol;
  if (values['soap-namespace'] !== undefined) settings['hisSoapNamespace'] = values['soap-namespace'];
  if (Object.keys(settings).length) patch.settings = settings;

  let view: ReconSettingsView | null;
  const server = runningServer(config);
  if (server) {
    const r =
      Object.keys(patch).length === 0
        ? await admin<ReconSettingsView>(
            server,
            'GET',
            `/admin/apps/${encodeURIComponent(values.app)}/reconciliation`,
          )
        : await admin<ReconSettingsView>(
            server,
            'PUT',
            `/admin/apps/${encodeURIComponent(values.app)}/reconciliation`,
            patch,
          );
    if (r.status === 400)
      throw new ReconSettingsError(
        (r.data.code ?? '').replace(/^INVALID_FIELD\./, ''),
        r.data.message ?? '',
        '',
      );
    if (r.status !== 200 && r.status !== 404)
      throw new Error(`the running server refused: HTTP ${r.status} ${r.data.message ?? ''}`);
    view = r.status === 404 ? null : r.data;
  } else {
    const platform = await cliPlatform(config);
    try {
      const deps = platform.recon;
      if (Object.keys(patch).length === 0) {
        const app = await deps.apps.get(values.app);
        view = app ? reconSettingsView(app) : null;
      } else view = await updateReconSettings(deps, values.app, patch);
    } finally {
      await platform.close();
    }
  }
  if (!view) throw new UnknownAppError(values.app);
  if (values.json) console.log(JSON.stringify(view));
  else printView(view);
  return 0;
}

export { ReconSettingsError };
