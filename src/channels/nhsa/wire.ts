/**
 * The national medical-insurance mobile-payment centre on the wire, inside the envelope (envelope.ts): how an
 * opened answer is classified, the order states of the national dictionary (订单状态) as the platform needs them,
 * the business fields read from 6201/6202/6301 answers, and what of a call may be kept in a record.
 */
import type { NhsaConfig, NhsaOp } from './config.js';
import { scalarText, yuanTextToFen, type OpenedAnswer, type SealedRequest } from './envelope.js';
import { excerpt, scrubDigits } from '../../formats/redact.js';
import type { Fen } from '../../domain/money.js';

/** One exchange with the centre, classified. */
export type CallResult =
  /** Signed by the platform and code 0. */
  | { kind: 'ok'; data: Record<string, unknown> }
  /** Signed by the platform, refused (code ≠ 0). */
  | { kind: 'refused'; code: string; message: string }
  /** Timeout, network, HTTP ≠ 200, unsigned, wrongly signed, undecryptable or unparseable. */
  | { kind: 'unknown'; reason: string };

/** A business field's text, or undefined when absent or empty. */
export const str = (v: unknown): string | undefined => {
  const t = scalarText(v);
  return t === undefined || t === '' ? undefined : t;
};

// ---- order states (订单状态) -----------------------------------------------------------------------------------

/** Reversed or refunded in full: nothing to undo. */
export const REVERSED_STATES: ReadonlySet<string> = new Set(['7', '8', '11', '12', '13']);
/** Only the cash part was refunded: the insurance part is still there. */
export const CASH_ONLY_REFUNDED: ReadonlySet<string> = new Set(['9', '10']);
export const IN_PROGRESS: ReadonlySet<string> = new Set(['2']);
export const ABNORMAL: ReadonlySet<string> = new Set(['14']);
export const NEVER_SETTLED: ReadonlySet<string> = new Set(['0', '1', '3', '15', '16']);
/** Uploaded (0) or pre-settled (1) and never paid: the upload is revoked with 6401. */
export const REVOCABLE_STATES: ReadonlySet<string> = new Set(['0', '1']);
/** A settlement that failed for good (abnormal, failed, cancelled). */
export const FAILED_STATES: ReadonlySet<string> = new Set(['14', '15', '16']);

/**
 * What undoing a settlement in state `st` takes, in this order: reversed (nothing), in progress (later), abnormal
 * (an operator), settled (the app's settled states: refund `refundType`; only the cash part refunded: refund
 * the insurance part, HI), never settled (nothing), anything else not understood (later).
 */
export type ReversalStep =
  | 'already_reversed'
  | 'in_progress'
  | 'abnormal'
  | 'refund'
  | 'refund_insurance'
  | 'never_settled'
  | 'not_understood';

export function reversalStep(st: string, settledStates: ReadonlySet<string>): ReversalStep {
  if (REVERSED_STATES.has(st)) return 'already_reversed';
  if (IN_PROGRESS.has(st)) return 'in_progress';
  if (ABNORMAL.has(st)) return 'abnormal';
  if (CASH_ONLY_REFUNDED.has(st)) return 'refund_insurance';
  if (settledStates.has(st)) return 'refund';
  if (NEVER_SETTLED.has(st)) return 'never_settled';
  return 'not_understood';
}

// ---- answers ---------------------------------------------------------------------------------------------------

/**
 * The outcome of a 6202/6301 answer: the centre's order state and, when it gives them, its total and cash part.
 */
export interface Settlement {
  payOrdId: string | undefined;
  ordStas: string | undefined;
  totalFen: Fen | null;
  cashFen: Fen | null;
  acctFen: Fen | null;
  fundFen: Fen | null;
}

export function settlementOf(data: Readonly<Record<string, unknown>>): Settlement {
  return {
    payOrdId: str(data['payOrdId']),
    ordStas: str(data['ordStas']),
    totalFen: yuanTextToFen(data['feeSumamt']),
    cashFen: yuanTextToFen(data['ownPayAmt']),
    acctFen: yuanTextToFen(data['psnAcctPay']),
    fundFen: yuanTextToFen(data['fundPay']),
  };
}

/**
 * A signed answer: code 0 (and no success=false) is ok, anything else the centre's refusal. Its message (shown to
 * the HIS in a refusal) is cut and never carries a personal number.
 */
export function classifyAnswer(opened: Extract<OpenedAnswer, { ok: true }>): {
  result: CallResult;
  code: string;
  message: string;
  successFlag: string | undefined;
} {
  const code = str(opened.fields['code']) ?? '';
  const message = scrubDigits(str(opened.fields['message']) ?? str(opened.fields['msg']) ?? '').slice(0, 120);
  const successFlag = str(opened.fields['success']);
  const result: CallResult =
    code === '0' && successFlag !== 'false'
      ? { kind: 'ok', data: opened.data }
      : { kind: 'refused', code: code || 'SUCCESS_FALSE', message };
  return { result, code, message, successFlag };
}

/** A refusal as the platform shows it: NHSA_<code>, with the centre's message. */
export function refusalOf(r: { code: string; message: string }): {
  kind: 'failed';
  code: string;
  zh: string;
  en: string;
} {
  return {
    kind: 'failed',
    code: `NHSA_${r.code.replace(/[^A-Za-z0-9_.-]/g, '').slice(0, 32) || 'REFUSED'}`,
    zh: `医保移动支付中心拒绝：${r.message || r.code}`,
    en: `refused by the medical-insurance centre: ${r.message || r.code}`,
  };
}

// ---- what a call record may keep -------------------------------------------------------------------------------

/** Fields of the centre's business data that may appear in a call record; everything else is left out. */
const RECORDABLE = new Set([
  'payOrdId',
  'ordStas',
  'feeSumamt',
  'ownPayAmt',
  'psnAcctPay',
  'fundPay',
  'deposit',
  'refStatus',
  'refdSn',
  'setlType',
  'medOrgOrd',
  'insuplcAdmdvs',
  'refdType',
  'totlRefdAmt',
  'cashRefdAmt',
  'psnAcctRefdAmt',
  'fundRefdAmt',
  'appRefdSn',
  'orgBizSer',
  'medfeeSumamt',
  'fulamtOwnpayAmt',
  'inscpScpAmt',
  'chrgBchno',
  'hiRefdSn',
]);

/** Envelope fields never kept from an answer that could not be opened. */
const SEALED = new Set(['encData', 'signData', 'data']);

/** A credential shown only by its ends: AUTH4401…5678. */
function mask(v: string | undefined): string | undefined {
  if (!v) return undefined;
  return v.length <= 8 ? '****' : `${v.slice(0, 4)}…${v.slice(-4)}`;
}

function recordable(data: Readonly<Record<string, unknown>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) {
    if (!RECORDABLE.has(k)) continue;
    // Order numbers, states and amounts only: nothing personal.
    const t = scalarText(v);
    if (t !== undefined) out[k] = t.slice(0, 64);
  }
  return out;
}

/** The request as kept in a call record: the envelope's head, the recordable fields, payAuthNo masked. */
export function requestRecord(
  cfg: NhsaConfig,
  op: NhsaOp,
  sealed: SealedRequest,
  data: Readonly<Record<string, unknown>>,
  timestamp: string,
): string {
  return JSON.stringify({
    path: cfg.paths[op],
    appId: cfg.keys.appId,
    timestamp,
    version: cfg.keys.version,
    encData: `<SM4 ${sealed.outer['encData']?.length ?? 0} hex>`,
    signData: '<SM2>',
    data: {
      ...recordable(data),
      ...(typeof data['payAuthNo'] === 'string' ? { payAuthNo: mask(data['payAuthNo']) } : {}),
    },
  });
}

/** An answer that could not be opened, as kept in a call record: its outer fields only, or the text's start. */
export function unopenedRecord(opened: Extract<OpenedAnswer, { ok: false }>, text: string): string {
  if (!opened.fields) return excerpt(text, 200);
  const outer: Record<string, string> = {};
  for (const [k, v] of Object.entries(opened.fields)) {
    if (SEALED.has(k)) continue;
    const t = scalarText(v);
    if (t !== undefined) outer[k] = t.slice(0, 100);
  }
  return JSON.stringify(outer);
}

/** A signed answer as kept in a call record: code, message and the recordable business fields. */
export function answerRecord(
  c: { code: string; message: string; successFlag: string | undefined },
  data: Readonly<Record<string, unknown>>,
): string {
  return JSON.stringify({ code: c.code, message: c.message, success: c.successFlag, data: recordable(data) });
}

/** A call record's outcome for a signed answer. */
export function answerOutcome(
  result: CallResult,
  data: Readonly<Record<string, unknown>>,
  code: string,
): string {
  return result.kind === 'ok'
    ? `ok${data['ordStas'] !== undefined ? ` ordStas=${str(data['ordStas'])}` : ''}`
    : `refused ${code}`;
}
