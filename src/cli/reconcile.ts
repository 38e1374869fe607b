import { parseArgs } from 'node:util';
import type { Config } from '../config/config.js';
import { formatFen, ZERO_FEN } from '../domain/money.js';
import { formatShanghai, systemClock } from '../domain/clock.js';
import { adminFetch, cliPlatform, readStdin, runningServer } from './running-server.js';
import { createProgress } from './progress.js';
import {
  UnknownAppError,
  isBusinessDate,
  isIncomplete,
  reconcileApps,
  type AppDayOutcome,
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

/** The most days one `hospay reconcile --from … --to …` takes. */
export const MAX_RECONCILE_DAYS = 366;

export const RECONCILE_USAGE = `  hospay reconcile [--date YYYY-MM-DD | --from YYYY-MM-DD --to YYYY-MM-DD] [--app ID] [--json]
                                               reconcile a business day (default: yesterday, Asia/Shanghai),
                                               or every day from --from to --to (at most ${MAX_RECONCILE_DAYS}):
                                               platform ↔ channel bill ↔ HIS; progress on stderr (a bar on a
                                               terminal, plain lines otherwise, JSON lines with --json);
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

/** The business dates from `from` to `to`, both included (YYYY-MM-DD, calendar days). */
export function businessDates(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86_400_000) {
    out.push(new Date(t).toISOString().slice(0, 10));
    if (out.length > MAX_RECONCILE_DAYS) break;
  }
  return out;
}

/** The dates a `hospay reconcile` names: --date, or --from … --to …, or yesterday. */
function datesOf(values: { date?: string; from?: string; to?: string }): string[] {
  if (values.from !== undefined || values.to !== undefined) {
    if (values.date !== undefined) throw new ReconcileUsageError('use either --date or --from/--to');
    if (values.from === undefined || values.to === undefined)
      throw new ReconcileUsageError('--from and --to go together (YYYY-MM-DD, both included)');
    if (!isBusinessDate(values.from) || !isBusinessDate(values.to))
      throw new ReconcileUsageError('--from and --to must be real dates written YYYY-MM-DD');
    if (values.from > values.to) throw new ReconcileUsageError('--from must not be after --to');
    const dates = businessDates(values.from, values.to);
    if (dates.length > MAX_RECONCILE_DAYS)
      throw new ReconcileUsageError(`--from … --to takes at most ${MAX_RECONCILE_DAYS} days`);
    return dates;
  }
  const date = values.date ?? shanghaiDateBefore(systemClock.now(), 1);
  if (!isBusinessDate(date))
    throw new ReconcileUsageError('--date must be a real date written YYYY-MM-DD (default: yesterday)');
  return [date];
}

type RunResult = { outcomes: AppDayOutcome[]; open: number; errors: number; incomplete?: number };

/**
 * Reconciles one business day (default: yesterday in Asia/Shanghai, whatever the host's time zone), or each day
 * of --from … --to in order (a day's pending pool is carried to the next). Exit code 0: no open differences; 3:
 * open differences; 4 (EXIT_INCOMPLETE): a pay type could not be compared with the HIS, run the day again; 1:
 * an app failed. The worst wins: 1, then 4, then 3. Progress goes to stderr (src/cli/progress.ts); stdout
 * carries the outcome only. With the embedded database held by a running server, the server does the work
 * (admin API, one day per request).
 */
export async function reconcileCommand(args: string[], config: Config): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      date: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      app: { type: 'string' },
      json: { type: 'boolean' },
    },
    strict: true,
  });
  const dates = datesOf(values);
  const range = dates.length > 1 ? `${dates[0] ?? ''}…${dates.at(-1) ?? ''}` : (dates[0] ?? '');
  const label = `对账 reconcile ${range}`;
  const json = values.json === true;
  const runs: Array<{ date: string; run: RunResult }> = [];
  const server = runningServer(config);
  if (server) {
    // The running server reconciles one day per request: one step per day.
    const progress = createProgress({ label, total: dates.length, unit: 'days', json });
    try {
      for (const date of dates) {
        const r = await admin<RunResult>(server, 'POST', '/admin/reconcile', {
          date,
          ...(values.app ? { app_id: values.app } : {}),
        });
        if (r.status === 404) throw new UnknownAppError(values.app ?? '');
        if (r.status !== 200)
          throw new Error(`the running server refused: HTTP ${r.status} ${r.data.message ?? ''}`);
        runs.push({ date, run: r.data });
        progress.tick();
      }
    } finally {
      progress.done(summaryOf(runs));
    }
  } else {
    const platform = await cliPlatform(config);
    const deps = platform.recon;
    try {
      // One step per app and day: the apps reconcileApps would take (the one asked for, or the active ones).
      const apps = (await deps.apps.list()).filter((a) =>
        values.app ? a.id === values.app : a.status === 'active',
      );
      if (values.app && apps.length === 0) throw new UnknownAppError(values.app);
      const progress = createProgress({
        label,
        total: dates.length * apps.length,
        unit: 'app-days',
        json,
      });
      try {
        for (const date of dates) {
          const day: RunResult = { outcomes: [], open: 0, errors: 0 };
          for (const app of apps) {
            const r = await reconcileApps(deps, { date, appId: app.id });
            day.outcomes.push(...r.outcomes);
            day.open += r.open;
            day.errors += r.errors;
            progress.tick();
          }
          runs.push({ date, run: day });
        }
      } finally {
        progress.done(summaryOf(runs));
      }
    } finally {
      await platform.close();
    }
  }
  const outcomes = runs.flatMap((r) => r.run.outcomes);
  const open = runs.reduce((n, r) => n + r.run.open, 0);
  const errors = runs.reduce((n, r) => n + r.run.errors, 0);
  const incomplete = outcomes.filter(isIncomplete).length;
  if (json) console.log(JSON.stringify(outcomes));
  else {
    for (const r of runs) {
      console.log(`业务日期 / business date ${r.date} (Asia/Shanghai)`);
      printOutcomes(r.run.outcomes);
    }
    if (incomplete > 0)
      console.log(
        `对账未完成：${incomplete} 个支付方式未能与 HIS 核对，请 HIS 恢复后重新对账 / incomplete: ${incomplete} pay type(s) not compared with the HIS; run the day again when the HIS is back`,
      );
    console.log(
      open === 0
        ? incomplete > 0
          ? '已核对部分无未处理差异 / no open differences in what could be compared'
          : '无未处理差异 / no open differences'
        : `未处理差异 ${open} 条 / ${open} open differences`,
    );
  }
  if (errors > 0) return 1;
  if (incomplete > 0) return EXIT_INCOMPLETE;
  return open === 0 ? 0 : 3;
}

/** The final progress line's summary: days done, open differences, failures. */
function summaryOf(runs: ReadonlyArray<{ run: RunResult }>): string {
  const open = runs.reduce((n, r) => n + r.run.open, 0);
  const errors = runs.reduce((n, r) => n + r.run.errors, 0);
  return `${runs.length} 天 days, 未处理差异 open ${open}${errors ? `, 失败 failed ${errors}` : ''}`;
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
