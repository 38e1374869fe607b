import type { ReconcileDeps } from './deps.js';
import type { DifferenceRecord } from '../store/reconciliation.js';
import { PAY_TYPES, type PayType } from '../domain/trade.js';
import { resolveDifference } from './run.js';
import { NotFoundError } from '../domain/errors.js';

/**
 * A business day's reconciliation differences, read and resolved outside the finance page: the admin API
 * (src/http/admin/differences.ts) and the CLI (`hospay reconcile differences|resolve`, src/cli/differences.ts).
 * The finance page checks its notes with the same rule (readResolveNote).
 */

/** A resolution note is at most this many characters (code points), after trimming. */
export const NOTE_MAX = 500;
/** Who resolves through the admin API or the CLI: at most this many characters. */
export const BY_MAX = 64;
/**
 * The audit actor of a resolution made through the admin API or the CLI is `admin:<by>`. Finance operators'
 * usernames (A–Z a–z 0–9 . _ -) cannot contain the colon, so the two never mix.
 */
export const ADMIN_ACTOR_PREFIX = 'admin:';

export type DifferenceState = 'OPEN' | 'RESOLVED';

/** One difference as the admin API and the CLI show it (timestamps as ISO 8601 text). */
export interface DifferenceView {
  id: number;
  pay_type: string;
  code: string;
  kind: string;
  out_trade_no: string;
  out_request_no: string | null;
  /** The stored detail (label, action, amounts in fen, hisCheck, …) parsed, or its text if it is not JSON. */
  detail: unknown;
  /** Still found by the latest run of the day. */
  present: boolean;
  state: DifferenceState;
  resolved_by: string | null;
  resolved_note: string | null;
  resolved_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface DifferenceList {
  date: string;
  app_id: string;
  differences: DifferenceView[];
}

/** One difference with its app and day, its audit trail, and its run with the evidence kept for it. */
export interface DifferenceDetail extends DifferenceView {
  app_id: string;
  date: string;
  audit: Array<{ at: string; actor: string; action: string; note: string | null }>;
  /** The latest run of the difference's app, day and pay type (null if it is gone). */
  run: {
    status: string;
    matched: number;
    differences: number;
    error: string | null;
    finished_at: string;
  } | null;
  /** What that run asked of the channel and the HIS (the answers themselves stay in recon_evidence.raw). */
  evidence: Array<{ source: string; seq: number; request: unknown; records: number; fetched_at: string }>;
}

export interface DifferenceFilter {
  date: string;
  appId: string;
  state?: DifferenceState;
  payType?: PayType;
  present?: boolean;
}

export class DifferenceAppNotFoundError extends NotFoundError {
  constructor(readonly appId: string) {
    super(`没有这个应用 / no such app: ${appId}`);
    this.name = 'DifferenceAppNotFoundError';
  }
}

/** Control characters other than those allowed (a note may have line breaks and tabs). */
export function hasControl(text: string, allowed = ''): boolean {
  for (const ch of text) {
    const c = ch.codePointAt(0) ?? 0;
    if ((c < 0x20 || c === 0x7f) && !allowed.includes(ch)) return true;
  }
  return false;
}

/**
 * A resolution note as the finance page takes it: CRLF made LF, trimmed, 1 to 500 characters, no control
 * characters but line breaks and tabs.
 */
export function readResolveNote(raw: string): { note: string } | { error: 'empty' | 'invalid' } {
  const note = raw.replace(/\r\n/g, '\n').trim();
  const length = [...note].length;
  if (length < 1) return { error: 'empty' };
  if (length > NOTE_MAX || hasControl(note, '\n\t')) return { error: 'invalid' };
  return { note };
}

/** Who resolves (an operator's name): trimmed, 1 to 64 characters, one line without control characters. */
export function readResolver(raw: string): string | null {
  const by = raw.trim();
  const length = [...by].length;
  return length < 1 || length > BY_MAX || hasControl(by) ? null : by;
}

export function isDifferenceState(text: string): text is DifferenceState {
  return text === 'OPEN' || text === 'RESOLVED';
}

export function isReconPayType(text: string): text is PayType {
  return (PAY_TYPES as readonly string[]).includes(text);
}

/** A difference id as written in a path or on the command line: a positive whole number. */
export function readDifferenceId(text: string): number | null {
  return /^[0-9]{1,15}$/.test(text) && Number(text) > 0 ? Number(text) : null;
}

/** Stored JSON text parsed; the text itself if it is not JSON (nothing is hidden). */
function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function iso(d: Date | string): string {
  return d instanceof Date ? d.toISOString() : new Date(d).toISOString();
}

function view(r: DifferenceRecord): DifferenceView {
  return {
    id: r.id,
    pay_type: r.pay_type,
    code: r.code,
    kind: r.kind,
    out_trade_no: r.out_trade_no,
    out_request_no: r.out_request_no,
    detail: jsonOrText(r.detail),
    present: r.present,
    state: r.state,
    resolved_by: r.resolved_by,
    resolved_note: r.resolved_note,
    resolved_at: r.resolved_at ? iso(r.resolved_at) : null,
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
  };
}

const PAY_TYPE_ORDER: readonly string[] = PAY_TYPES;
const payTypeRank = (p: string) => {
  const i = PAY_TYPE_ORDER.indexOf(p);
  return i < 0 ? PAY_TYPE_ORDER.length : i;
};

/**
 * The differences of one app's business day (every run of the day, present or not), filtered; in the finance
 * page's order: by pay type (alipay, weixin, unionpay), then as found.
 */
export async function listDifferences(
  deps: Pick<ReconcileDeps, 'apps' | 'reconciliation'>,
  filter: DifferenceFilter,
): Promise<DifferenceList> {
  if (!(await deps.apps.get(filter.appId))) throw new DifferenceAppNotFoundError(filter.appId);
  const rows = await deps.reconciliation.differences(filter);
  rows.sort((a, b) => payTypeRank(a.pay_type) - payTypeRank(b.pay_type) || a.id - b.id);
  return { date: filter.date, app_id: filter.appId, differences: rows.map(view) };
}

/** One difference with its audit trail and its run's evidence references, or null if there is no such id. */
export async function getDifference(
  deps: Pick<ReconcileDeps, 'reconciliation'>,
  id: number,
): Promise<DifferenceDetail | null> {
  const d = await deps.reconciliation.difference(id);
  if (!d) return null;
  const audit = await deps.reconciliation.audit(id);
  const run = await deps.reconciliation.run(d.app_id, d.business_date, d.pay_type);
  const evidence = await deps.reconciliation.evidence(d.app_id, d.business_date, d.pay_type);
  return {
    ...view(d),
    app_id: d.app_id,
    date: d.business_date,
    audit: audit.map((a) => ({ at: iso(a.at), actor: a.actor, action: a.action, note: a.note })),
    run: run
      ? {
          status: run.status,
          matched: run.matched,
          differences: run.differences,
          error: run.error,
          finished_at: iso(run.finished_at),
        }
      : null,
    evidence: evidence.map((e) => ({
      source: e.source,
      seq: e.seq,
      request: jsonOrText(e.request),
      records: e.records,
      fetched_at: iso(e.fetched_at),
    })),
  };
}

/**
 * Resolves a difference for `by` (checked with readResolver, the note with readResolveNote), recorded as
 * `admin:<by>`. NOT_FOUND: no such id; ALREADY_RESOLVED: resolved before (nothing changed).
 */
export async function resolveDifferenceAsAdmin(
  deps: Pick<ReconcileDeps, 'reconciliation' | 'clock'>,
  id: number,
  by: string,
  note: string,
): Promise<
  | { outcome: 'RESOLVED'; difference: DifferenceDetail }
  | { outcome: 'NOT_FOUND' }
  | { outcome: 'ALREADY_RESOLVED' }
> {
  const actor = `${ADMIN_ACTOR_PREFIX}${by}`;
  if (await resolveDifference(deps, id, actor, note)) {
    const difference = await getDifference(deps, id);
    if (difference) return { outcome: 'RESOLVED', difference };
  }
  const state = await deps.reconciliation.differenceState(id);
  return state ? { outcome: 'ALREADY_RESOLVED' } : { outcome: 'NOT_FOUND' };
}
