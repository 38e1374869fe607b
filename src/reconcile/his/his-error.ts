import { HospayError } from '../../domain/errors.js';

/**
 * Codes of a failed conversation with the hospital's HIS (chapter 7 of the interface spec):
 * - HIS_TIMEOUT: no answer within the timeout, after all retries;
 * - HIS_UNREACHABLE: the connection failed (refused, reset, DNS), after all retries;
 * - HIS_HTTP_<status>: the HIS answered with a non-2xx HTTP status (5xx after all retries);
 * - HIS_MALFORMED: the answer is not a document we can trust (bad XML, DOCTYPE, bad UTF-8, too large,
 *   missing or invalid field); nothing of it becomes a record;
 * - HIS_REFUSED: a well-formed answer with ResponseResult/IsSuccess other than 1;
 * - HIS_SOAP_FAULT: a HIS that serves SOAP answered with a SOAP Fault (its faultcode and faultstring are kept);
 *   a Server / Receiver fault is retried like HTTP 5xx, a Client / Sender fault is not.
 */
export type HisErrorCode =
  | 'HIS_TIMEOUT'
  | 'HIS_UNREACHABLE'
  | 'HIS_MALFORMED'
  | 'HIS_REFUSED'
  | 'HIS_SOAP_FAULT'
  | `HIS_HTTP_${number}`;

export interface HisErrorDetails {
  /** The raw answer text (or its first part) when there was one: evidence for a report. */
  raw?: string;
  /** How many HTTP attempts were made. */
  attempts?: number;
  /** For HIS_REFUSED: what the HIS said. */
  subCode?: string;
  hisMessage?: string;
  /** For HIS_SOAP_FAULT: the fault's code (e.g. soap:Server) as the HIS wrote it. */
  faultCode?: string;
  /** For HIS_SOAP_FAULT: whether the fault blames the HIS (Server / Receiver), so a retry may help. */
  serverFault?: boolean;
}

export class HisError extends HospayError {
  constructor(
    override readonly code: HisErrorCode,
    zh: string,
    en: string,
    readonly details: HisErrorDetails = {},
  ) {
    super(code, 'system', zh, en, {
      retryable:
        code === 'HIS_TIMEOUT' ||
        code === 'HIS_UNREACHABLE' ||
        code.startsWith('HIS_HTTP_5') ||
        (code === 'HIS_SOAP_FAULT' && details.serverFault === true),
    });
    this.name = 'HisError';
  }
}

/** Keeps evidence short enough for a log line or a report cell. */
export const RAW_EXCERPT_CHARS = 4096;
const excerpt = (raw: string | undefined) =>
  raw === undefined
    ? undefined
    : raw.length > RAW_EXCERPT_CHARS
      ? `${raw.slice(0, RAW_EXCERPT_CHARS)}…`
      : raw;

export const HisErrors = {
  timeout: (ms: number, attempts: number) =>
    new HisError('HIS_TIMEOUT', `HIS 在 ${ms} 毫秒内未应答`, `the HIS did not answer within ${ms} ms`, {
      attempts,
    }),
  unreachable: (why: string, attempts: number) =>
    new HisError('HIS_UNREACHABLE', `无法连接 HIS：${why}`, `cannot reach the HIS: ${why}`, { attempts }),
  http: (status: number, raw: string | undefined, attempts: number) =>
    new HisError(`HIS_HTTP_${status}`, `HIS 返回 HTTP ${status}`, `the HIS answered HTTP ${status}`, {
      raw: excerpt(raw),
      attempts,
    }),
  malformed: (zhWhy: string, enWhy: string, raw?: string) =>
    new HisError('HIS_MALFORMED', `HIS 应答格式错误：${zhWhy}`, `malformed HIS answer: ${enWhy}`, {
      raw: excerpt(raw),
    }),
  refused: (isSuccess: string, hisMessage: string, subCode: string, raw: string) =>
    new HisError(
      'HIS_REFUSED',
      `HIS 拒绝请求（IsSuccess=${isSuccess}）：${hisMessage}`,
      `the HIS refused the request (IsSuccess=${isSuccess}): ${hisMessage}`,
      { raw: excerpt(raw), subCode, hisMessage },
    ),
  soapFault: (
    fault: { code: string; reason: string; server: boolean },
    httpStatus: number,
    raw: string,
    attempts: number,
  ) =>
    new HisError(
      'HIS_SOAP_FAULT',
      `HIS 返回 SOAP Fault（${fault.code}，HTTP ${httpStatus}）：${fault.reason}`,
      `the HIS answered a SOAP Fault (${fault.code}, HTTP ${httpStatus}): ${fault.reason}`,
      {
        raw: excerpt(raw),
        attempts,
        faultCode: fault.code,
        hisMessage: fault.reason,
        serverFault: fault.server,
      },
    ),
};
