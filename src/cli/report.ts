import fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { Config } from '../config/config.js';
import { migrate, openReadStore, openStore } from '../store/db.js';
import { ReconciliationRepository } from '../store/reconciliation.js';
import { ReportRepository } from '../store/reports.js';
import { systemClock } from '../domain/clock.js';
import { formatFen } from '../domain/money.js';
import { buildDayReport, isReportDate, ReportAppNotFoundError, type DayReport } from '../reconcile/report.js';
import {
  displayWidth,
  reportSubtitle,
  reportTitle,
  reportToCsv,
  reportToXlsx,
  sectionTable,
  type Cell,
  type ReportSection,
} from '../reconcile/export.js';
import { AppNotFoundError } from './app-admin.js';
import { runningServer } from './running-server.js';
import { shanghaiDateBefore } from './reconcile.js';
import { helpPointer } from './usage.js';

export const REPORT_USAGE = `  hospay report [--date YYYY-MM-DD] [--app ID] [--format text|json|csv|xlsx] [--out FILE]
                                               a business day's finance report (default: yesterday,
                                               Asia/Shanghai): by channel, business category,
                                               terminal and operator (日结), cash and insurance apart;
                                               csv/json/text go to standard output without --out, xlsx needs --out`;

const FORMATS = ['text', 'json', 'csv', 'xlsx'] as const;
type Format = (typeof FORMATS)[number];

function usage(message: string): number {
  console.error(`hospay: ${message}\n${helpPointer('report')}`);
  return 2;
}

/**
 * `hospay report`: a business day's report, built straight on the database, or fetched from the running server's
 * admin API when it holds the embedded database. Exit 0; 2 = wrong usage; 1 = failure (unknown app, …).
 */
export async function reportCommand(args: string[], config: Config): Promise<number> {
  let values: { date?: string; app?: string; format?: string; out?: string };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        date: { type: 'string' },
        app: { type: 'string' },
        format: { type: 'string' },
        out: { type: 'string' },
      },
      strict: true,
    }));
  } catch (e) {
    return usage(e instanceof Error ? e.message : String(e));
  }
  const date = values.date ?? shanghaiDateBefore(systemClock.now(), 1);
  if (!isReportDate(date)) return usage('--date must be a real date written YYYY-MM-DD (default: yesterday)');
  if (values.app !== undefined && values.app === '') return usage('--app needs an app id');
  const format = (values.format ?? 'text') as Format;
  if (!FORMATS.includes(format)) return usage('--format must be text, json, csv or xlsx');
  if (values.out !== undefined && values.out === '') return usage('--out needs a file name');
  if (format === 'xlsx' && values.out === undefined)
    return usage('--format xlsx needs --out FILE (a spreadsheet is not written to a terminal)');

  const report = await fetchReport(config, date, values.app);
  let output: string | Buffer;
  if (format === 'xlsx') output = await reportToXlsx(report);
  else if (format === 'csv') output = reportToCsv(report);
  else if (format === 'json') output = `${JSON.stringify(report, null, 2)}\n`;
  else output = renderText(report);

  if (values.out !== undefined) {
    fs.writeFileSync(values.out, output);
    console.error(`已写入 / written: ${values.out}`);
  } else {
    process.stdout.write(output);
  }
  return 0;
}

async function fetchReport(config: Config, date: string, appId: string | undefined): Promise<DayReport> {
  const server = runningServer(config);
  if (server) {
    const q = new URLSearchParams({ date, format: 'json' });
    if (appId !== undefined) q.set('app', appId);
    const res = await fetch(`${server.base}/admin/reports/day?${q.toString()}`, {
      headers: { authorization: `Bearer ${server.token}` },
    });
    const text = await res.text();
    if (res.status === 404 && text.includes('APP_NOT_FOUND')) throw new AppNotFoundError(appId ?? '');
    if (res.status === 404) throw new Error('the running server has no report API (is it an older version?)');
    if (res.status !== 200) throw new Error(`the running server refused: HTTP ${res.status} ${text}`);
    return JSON.parse(text) as DayReport;
  }
  const store = await openStore(config.store);
  // The day's totals from the read replica when one is set (HOSPAY_READ_DATABASE_URL), as the server does.
  const read = await openReadStore(config.store, {
    onFallback: (err) =>
      console.error(
        `hospay: 只读副本不可用，改读主库 / read replica unreachable (${err.message}): reading the primary`,
      ),
  });
  try {
    await migrate(store.db);
    const repositories = {
      reports: new ReportRepository(store.db, read?.db ?? store.db),
      reconciliation: new ReconciliationRepository(store.db),
    };
    return await buildDayReport(repositories, {
      date,
      ...(appId !== undefined ? { appId } : {}),
      now: systemClock.now(),
    });
  } catch (e) {
    if (e instanceof ReportAppNotFoundError) throw new AppNotFoundError(e.appId);
    throw e;
  } finally {
    await read?.close();
    await store.close();
  }
}

// --- text ---------------------------------------------------------------------------------------------------

/** Short headers for the terminal (the exports carry the long bilingual ones). */
const SHORT_AMOUNT_HEADERS = [
  '收款笔数',
  '收款金额',
  '收款现金',
  '收款医保',
  '退款笔数',
  '退款金额',
  '退款现金',
  '退款医保',
  '净额',
  '现金净额',
  '医保净额',
  '减免',
];

const TEXT_SECTIONS: readonly ReportSection[] = ['summary', 'channel', 'category', 'cashier'];

function text(c: Cell): string {
  if (c === null) return '';
  if (typeof c === 'object') return formatFen(c.fen);
  return String(c);
}

function pad(s: string, width: number, right: boolean): string {
  const fill = ' '.repeat(Math.max(0, width - displayWidth(s)));
  return right ? fill + s : s + fill;
}

function table(headers: string[], rows: Cell[][]): string[] {
  const numeric = headers.map((_, col) =>
    rows.some((r) => typeof r[col] === 'number' || typeof r[col] === 'object'),
  );
  const widths = headers.map((h, col) =>
    Math.max(displayWidth(h), ...rows.map((r) => displayWidth(text(r[col] ?? null)))),
  );
  const line = (cells: string[]) =>
    cells
      .map((c, col) => pad(c, widths[col] ?? 0, numeric[col] ?? false))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(r.map(text)))];
}

/** The report as a readable text table (amounts in yuan). */
export function renderText(report: DayReport): string {
  const out: string[] = [reportTitle(report), reportSubtitle(report), ''];
  out.push(
    '金额单位：元 / amounts in yuan. 现金 = cash part (through the channel), 医保 = medical-insurance part; 净额 = 收款 − 退款.',
  );
  for (const s of TEXT_SECTIONS) {
    const t = sectionTable(report, s);
    const keys = t.headers.length - SHORT_AMOUNT_HEADERS.length;
    const headers = [
      ...t.headers.slice(0, keys).map((h) => h.replace(/\(.*\)$/, '')),
      ...SHORT_AMOUNT_HEADERS,
    ];
    out.push('', t.title, ...table(headers, t.total ? [...t.rows, t.total] : t.rows));
  }
  out.push('', sectionTable(report, 'reconciliation').title);
  if (report.reconciliation.length === 0) out.push('未对账 / not reconciled yet');
  for (const r of report.reconciliation) {
    out.push(
      `${r.appId}  ${r.payType.padEnd(8)}  ${r.status}  matched ${r.matched}  differences ${r.differences}  open ${r.open}` +
        (r.hisError ? `  HIS: ${r.hisError}` : ''),
    );
  }
  out.push('', sectionTable(report, 'differences').title);
  if (report.differences.length === 0) out.push('无差异 / no differences');
  for (const d of report.differences) {
    const amounts = (['platform', 'channel', 'his'] as const)
      .map((side) => {
        const fen = d.amounts[`${side}Fen`];
        return fen === undefined ? '' : `${side} ${formatFen(fen)}`;
      })
      .filter(Boolean)
      .join(', ');
    out.push(
      `#${d.id}  ${d.payType}  ${d.code}  ${d.label.zh}  ${d.kind}  ${d.outTradeNo}${d.outRequestNo ? ` / ${d.outRequestNo}` : ''}` +
        `  ${amounts}  ${d.state}${d.resolvedBy ? ` (${d.resolvedBy}: ${d.resolvedNote ?? ''})` : ''}`,
    );
  }
  return `${out.join('\n')}\n`;
}
