import { parseArgs } from 'node:util';
import type { Config } from '../config/config.js';
import { fen, formatFen } from '../domain/money.js';
import { displayWidth } from '../reconcile/export.js';
import { UnknownAppError, isBusinessDate } from '../reconcile/run.js';
import {
  BY_MAX,
  DifferenceAppNotFoundError,
  NOTE_MAX,
  isDifferenceState,
  isReconPayType,
  listDifferences,
  readDifferenceId,
  readResolveNote,
  readResolver,
  resolveDifferenceAsAdmin,
  type DifferenceDetail,
  type DifferenceFilter,
  type DifferenceList,
  type DifferenceView,
} from '../reconcile/differences.js';
import { adminFetch, cliPlatform, runningServer } from './running-server.js';
import { ReconcileUsageError } from './reconcile.js';
import { ConflictError, NotFoundError } from '../domain/errors.js';

export class DifferenceNotFoundError extends NotFoundError {
  constructor(readonly id: number) {
    super(`没有这个差异 / no such difference: ${id}`);
    this.name = 'DifferenceNotFoundError';
  }
}

export class DifferenceAlreadyResolvedError extends ConflictError {
  constructor(readonly id: number) {
    super(`差异 ${id} 此前已被处理，本次未作更改 / difference ${id} was already resolved: nothing changed`);
    this.name = 'DifferenceAlreadyResolvedError';
  }
}

interface DifferencesAdmin {
  list(filter: DifferenceFilter): Promise<DifferenceList>;
  resolve(id: number, by: string, note: string): Promise<DifferenceDetail>;
  close(): Promise<void>;
}

async function local(config: Config): Promise<DifferencesAdmin> {
  const platform = await cliPlatform(config);
  const deps = platform.recon;
  return {
    async list(filter) {
      try {
        return await listDifferences(deps, filter);
      } catch (e) {
        if (e instanceof DifferenceAppNotFoundError) throw new UnknownAppError(e.appId);
        throw e;
      }
    },
    async resolve(id, by, note) {
      const r = await resolveDifferenceAsAdmin(deps, id, by, note);
      if (r.outcome === 'NOT_FOUND') throw new DifferenceNotFoundError(id);
      if (r.outcome === 'ALREADY_RESOLVED') throw new DifferenceAlreadyResolvedError(id);
      return r.difference;
    },
    close: () => platform.close(),
  };
}

/** With the embedded database held by the running server: its admin API. */
function remote(server: { base: string; token: string }): DifferencesAdmin {
  const refused = (r: { status: number; data: unknown }) => {
    const d = (r.data ?? {}) as { code?: string; message?: string };
    if (r.status === 404 && !d.code)
      return new Error('the running server has no differences API (is it an older version?)');
    return new Error(`the running server refused: HTTP ${r.status} ${d.code ?? ''} ${d.message ?? ''}`);
  };
  const code = (data: unknown) => ((data ?? {}) as { code?: string }).code;
  return {
    async list(filter) {
      const q = new URLSearchParams({ date: filter.date, app: filter.appId });
      if (filter.state !== undefined) q.set('state', filter.state);
      if (filter.payType !== undefined) q.set('pay_type', filter.payType);
      if (filter.present !== undefined) q.set('present', String(filter.present));
      const r = await adminFetch(server, 'GET', `/admin/reconciliation/differences?${q.toString()}`);
      if (r.status === 404 && code(r.data) === 'APP_NOT_FOUND') throw new UnknownAppError(filter.appId);
      if (r.status !== 200) throw refused(r);
      return r.data as DifferenceList;
    },
    async resolve(id, by, note) {
      const r = await adminFetch(server, 'POST', `/admin/reconciliation/differences/${id}/resolve`, {
        note,
        by,
      });
      if (r.status === 404 && code(r.data) === 'DIFFERENCE_NOT_FOUND') throw new DifferenceNotFoundError(id);
      if (r.status === 409 && code(r.data) === 'ALREADY_RESOLVED')
        throw new DifferenceAlreadyResolvedError(id);
      if (r.status !== 200) throw refused(r);
      return r.data as DifferenceDetail;
    },
    close: async () => {},
  };
}

/** Still standing: found by the latest run and not resolved (what `hospay reconcile` counts as open). */
export function isOpen(d: Pick<DifferenceView, 'present' | 'state'>): boolean {
  return d.present && d.state === 'OPEN';
}

function amountsOf(detail: unknown): string {
  const a =
    typeof detail === 'object' && detail !== null && !Array.isArray(detail)
      ? (detail as Record<string, unknown>)['amounts']
      : undefined;
  if (typeof a !== 'object' || a === null) return '-';
  const parts: string[] = [];
  for (const [side, short] of [
    ['platform', 'P'],
    ['channel', 'C'],
    ['his', 'H'],
  ] as const) {
    const amount = (a as Record<string, unknown>)[side];
    if (typeof amount === 'number' && Number.isSafeInteger(amount))
      parts.push(`${short} ${formatFen(fen(amount))}`);
  }
  return parts.join(' / ') || '-';
}

function labelOf(detail: unknown): string {
  const label =
    typeof detail === 'object' && detail !== null && !Array.isArray(detail)
      ? (detail as Record<string, unknown>)['label']
      : undefined;
  const zh =
    typeof label === 'object' && label !== null ? (label as Record<string, unknown>)['zh'] : undefined;
  return typeof zh === 'string' ? zh : '';
}

function pad(text: string, width: number): string {
  return text + ' '.repeat(Math.max(0, width - displayWidth(text)));
}

/** The differences as a table: one line each, columns aligned (Chinese counts double). */
export function differencesTable(list: DifferenceList): string[] {
  const header = [
    'ID',
    'PAY TYPE',
    'CODE',
    'KIND',
    'OUT_TRADE_NO',
    'OUT_REQUEST_NO',
    'AMOUNTS (P/C/H)',
    'STATE',
    'RESOLVED BY',
    'LABEL',
  ];
  const rows = list.differences.map((d) => [
    String(d.id),
    d.pay_type,
    d.code,
    d.kind,
    d.out_trade_no,
    d.out_request_no ?? '-',
    amountsOf(d.detail),
    d.present ? d.state : `${d.state} (gone)`,
    d.resolved_by ?? '-',
    labelOf(d.detail),
  ]);
  const widths = header.map((h, i) =>
    Math.max(displayWidth(h), ...rows.map((r) => displayWidth(r[i] ?? ''))),
  );
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : pad(c, widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/**
 * `hospay reconcile differences` and `hospay reconcile resolve` (args start with the subcommand). On the
 * database itself, or through the running server's admin API when it holds the embedded database.
 */
export async function differencesCommand(args: string[], config: Config): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'differences') {
    const { values } = parseArgs({
      args: rest,
      options: {
        date: { type: 'string' },
        app: { type: 'string' },
        state: { type: 'string' },
        'pay-type': { type: 'string' },
        json: { type: 'boolean' },
      },
      strict: true,
    });
    const date = values.date ?? '';
    if (!isBusinessDate(date)) throw new ReconcileUsageError('--date YYYY-MM-DD is required (a real date)');
    if (!values.app || values.app.length > 64) throw new ReconcileUsageError('--app ID is required');
    const filter: DifferenceFilter = { date, appId: values.app };
    if (values.state !== undefined) {
      const state = values.state.toUpperCase();
      if (!isDifferenceState(state)) throw new ReconcileUsageError('--state must be OPEN or RESOLVED');
      filter.state = state;
    }
    if (values['pay-type'] !== undefined) {
      const payType = values['pay-type'].toLowerCase();
      if (!isReconPayType(payType))
        throw new ReconcileUsageError('--pay-type must be alipay, weixin, unionpay or elecny');
      filter.payType = payType;
    }
    const server = runningServer(config);
    const admin = server ? remote(server) : await local(config);
    let list: DifferenceList;
    try {
      list = await admin.list(filter);
    } finally {
      await admin.close();
    }
    const open = list.differences.filter(isOpen).length;
    if (values.json) console.log(JSON.stringify(list));
    else {
      if (list.differences.length) for (const l of differencesTable(list)) console.log(l);
      console.log(
        `${list.app_id} ${list.date}: 差异 ${list.differences.length} 条，未处理 ${open} 条 / ${list.differences.length} differences, ${open} open`,
      );
    }
    return open === 0 ? 0 : 3;
  }
  if (sub === 'resolve') {
    const { values } = parseArgs({
      args: rest,
      options: {
        id: { type: 'string' },
        note: { type: 'string' },
        by: { type: 'string' },
        json: { type: 'boolean' },
      },
      strict: true,
    });
    const id = readDifferenceId(values.id ?? '');
    if (id === null) throw new ReconcileUsageError('--id N is required (a difference id, a positive number)');
    const note = readResolveNote(values.note ?? '');
    if ('error' in note)
      throw new ReconcileUsageError(
        note.error === 'empty'
          ? `--note TEXT is required (1 to ${NOTE_MAX} characters)`
          : `--note is at most ${NOTE_MAX} characters, without control characters (line breaks and tabs allowed)`,
      );
    const by = readResolver(values.by ?? '');
    if (by === null)
      throw new ReconcileUsageError(
        `--by NAME is required (who resolves: 1 to ${BY_MAX} characters, one line)`,
      );
    const server = runningServer(config);
    const admin = server ? remote(server) : await local(config);
    let d: DifferenceDetail;
    try {
      d = await admin.resolve(id, by, note.note);
    } finally {
      await admin.close();
    }
    if (values.json) console.log(JSON.stringify(d));
    else
      console.log(
        `差异 ${d.id}（${d.app_id} ${d.date} ${d.pay_type} ${d.code} ${d.out_trade_no}）已标记为已处理 / resolved by ${d.resolved_by ?? ''}`,
      );
    return 0;
  }
  throw new ReconcileUsageError(`unknown reconcile command "${sub ?? ''}" (differences, resolve)`);
}
