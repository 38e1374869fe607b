import { formatShanghai } from '../../domain/clock.js';
import { buildOfflineXml } from '../../http/offline/xml.js';
import { HisError, HisErrors } from './his-error.js';
import {
  HIS_PAY_TYPES,
  MAX_HIS_ANSWER_BYTES,
  parseQueryAnswer,
  parseTradeListAnswer,
  type HisPayType,
  type HisQueryResult,
  type HisTradeRecord,
} from './his-xml.js';

export { HisError } from './his-error.js';
export type { HisFlow, HisPayType, HisQueryResult, HisTradeRecord } from './his-xml.js';

export interface HisClientOptions {
  /** e.g. "http://his.example:8080/api"; the interface name is appended ("/IF_Get_Hospital_Trade_List"). */
  baseUrl: string;
  /** Sent as AccessToken to HIS_IF_Query. */
  accessToken?: string;
  /** Per attempt, covering connect + whole answer. Default 10 s. */
  timeoutMs?: number;
  /** Extra attempts after a timeout, connection failure or HTTP 5xx. Default 2. */
  retries?: number;
  /** First backoff; doubles each retry. Default 500 ms. */
  backoffMs?: number;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
  maxAnswerBytes?: number;
  /** Interface paths, if the hospital mounts them elsewhere. */
  paths?: { tradeList?: string; query?: string };
  fetch?: typeof fetch;
}

export interface TradeListResult {
  /** Records whose TradeOptDateTime is in [begin, end). */
  records: HisTradeRecord[];
  /**
   * Records the HIS sent that are outside [begin, end). A HIS that reads EndDate inclusively echoes the
   * record at exactly `end` here; it is counted in the next slice. Anything else here is a HIS fault.
   */
  outOfWindow: HisTradeRecord[];
  /** Evidence: what was asked and the answer text as received. */
  request: { BeginDate: string; EndDate: string; PayType: string };
  raw: string;
}

export interface DayResult {
  records: HisTradeRecord[];
  slices: Array<TradeListResult & { begin: Date; end: Date }>;
}

export interface QueryResult extends HisQueryResult {
  raw: string;
}

const DAY_MS = 24 * 3600 * 1000;
const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** hospay as a client of the hospital's HIS reconciliation interfaces (spec chapter 7). */
export class HisClient {
  private readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly maxAnswerBytes: number;
  private readonly doFetch: typeof fetch;

  constructor(private readonly options: HisClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retries = options.retries ?? 2;
    this.backoffMs = options.backoffMs ?? 500;
    this.sleep = options.sleep ?? defaultSleep;
    this.maxAnswerBytes = options.maxAnswerBytes ?? MAX_HIS_ANSWER_BYTES;
    this.doFetch = options.fetch ?? fetch;
  }

  /** IF_Get_Hospital_Trade_List for [begin, end) (whole seconds) and one pay type. */
  async getTradeList(input: { begin: Date; end: Date; payType: HisPayType }): Promise<TradeListResult> {
    const { begin, end, payType } = input;
    if (!(begin.getTime() < end.getTime())) throw new RangeError('begin must be before end');
    if (begin.getTime() % 1000 !== 0 || end.getTime() % 1000 !== 0) {
      throw new RangeError('begin and end must be whole seconds (the HIS reads yyyy-MM-dd HH:mm:ss)');
    }
    const request = {
      BeginDate: formatShanghai(begin),
      EndDate: formatShanghai(end),
      PayType: HIS_PAY_TYPES[payType],
    };
    const bytes = await this.post(this.options.paths?.tradeList ?? '/IF_Get_Hospital_Trade_List', request);
    const { text, records } = parseTradeListAnswer(bytes, this.maxAnswerBytes);
    const inside = (r: HisTradeRecord) =>
      r.time.getTime() >= begin.getTime() && r.time.getTime() < end.getTime();
    return {
      records: records.filter(inside),
      outOfWindow: records.filter((r) => !inside(r)),
      request,
      raw: text,
    };
  }

  /**
   * A business day [dayStart, dayStart + 24 h) of one pay type, pulled in slices of sliceMs (e.g. one hour), concatenated in
   * order. Nothing is de-duplicated: a record the HIS lists twice appears twice. Fails on the first failed slice.
   */
  async getDay(
    dayStart: Date,
    sliceMs: number,
    payType: HisPayType,
    onSlice?: (done: number) => void,
  ): Promise<DayResult> {
    if (!Number.isInteger(sliceMs) || sliceMs < 1000 || sliceMs % 1000 !== 0 || DAY_MS % sliceMs !== 0) {
      throw new RangeError('sliceMs must be whole seconds and divide 24 h');
    }
    const slices: DayResult['slices'] = [];
    for (let t = dayStart.getTime(); t < dayStart.getTime() + DAY_MS; t += sliceMs) {
      const begin = new Date(t);
      const end = new Date(t + sliceMs);
      slices.push({ begin, end, ...(await this.getTradeList({ begin, end, payType })) });
      onSlice?.(slices.length);
    }
    return { records: slices.flatMap((s) => s.records), slices };
  }

  /** HIS_IF_Query: the HIS's charge (+) and refund (−) flows of one order. */
  async queryTrade(outTradeNo: string): Promise<QueryResult> {
    const bytes = await this.post(this.options.paths?.query ?? '/HIS_IF_Query', {
      AccessToken: this.options.accessToken ?? '',
      OutTradeNo: outTradeNo,
    });
    const { text, query } = parseQueryAnswer(bytes, this.maxAnswerBytes);
    if (query.found && query.outTradeNo !== '' && query.outTradeNo !== outTradeNo) {
      throw HisErrors.malformed(
        `应答的 OutTradeNo ${query.outTradeNo} 不是所查询的 ${outTradeNo}`,
        `the answer is about OutTradeNo ${query.outTradeNo}, not the one asked (${outTradeNo})`,
        text,
      );
    }
    return { ...query, raw: text };
  }

  /** POSTs the request document; retries timeouts, connection failures and 5xx with exponential backoff. */
  private async post(path: string, head: Record<string, string>): Promise<Uint8Array> {
    const body = buildOfflineXml(head, {});
    const attempts = this.retries + 1;
    let last: HisError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) await this.sleep(this.backoffMs * 2 ** (attempt - 2));
      try {
        return await this.once(path, body, attempt);
      } catch (e) {
        if (!(e instanceof HisError) || !e.extra.retryable) throw e;
        last = e;
      }
    }
    throw last ?? HisErrors.unreachable('no attempt made', 0);
  }

  private async once(path: string, body: string, attempt: number): Promise<Uint8Array> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    try {
      const res = await this.doFetch(`${this.baseUrl}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'text/xml; charset=utf-8', accept: 'text/xml, application/xml' },
        body,
        signal: controller.signal,
      });
      const bytes = await this.readLimited(res);
      if (res.status < 200 || res.status > 299) {
        throw HisErrors.http(res.status, Buffer.from(bytes).toString('utf8'), attempt);
      }
      return bytes;
    } catch (e) {
      if (e instanceof HisError) throw e;
      if (timedOut) throw HisErrors.timeout(this.timeoutMs, attempt);
      const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : '';
      throw HisErrors.unreachable(cause || (e instanceof Error ? e.message : String(e)), attempt);
    } finally {
      clearTimeout(timer);
    }
  }

  private async readLimited(res: Response): Promise<Uint8Array> {
    const declared = Number(res.headers.get('content-length') ?? NaN);
    const tooLarge = () =>
      HisErrors.malformed(
        `应答超过 ${this.maxAnswerBytes} 字节`,
        `the answer is larger than ${this.maxAnswerBytes} bytes`,
      );
    if (declared > this.maxAnswerBytes) {
      await res.body?.cancel();
      throw tooLarge();
    }
    if (!res.body) return new Uint8Array();
    const chunks: Uint8Array[] = [];
    let size = 0;
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > this.maxAnswerBytes) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks);
  }
}
