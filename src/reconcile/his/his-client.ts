import { formatShanghai } from '../../domain/clock.js';
import { buildOfflineXml } from '../../formats/xml.js';
import { deadline } from '../../channels/http.js';
import { HisError, HisErrors } from './his-error.js';
import {
  HIS_PAY_TYPES,
  MAX_HIS_ANSWER_BYTES,
  decodeHisBytes,
  parseQueryAnswer,
  parseTradeListAnswer,
  type HisDecodeOptions,
  type HisPayType,
  type HisQueryResult,
  type HisTradeRecord,
} from './his-xml.js';
import {
  DEFAULT_SOAP_NAMESPACE,
  SoapEnvelopeError,
  charsetParam,
  readSoapAnswer,
  soapRequest,
  type SoapVersion,
} from './soap.js';

export { HisError } from './his-error.js';
export type { HisFlow, HisPayType, HisQueryResult, HisTradeRecord } from './his-xml.js';

/**
 * How the HIS serves chapter 7: `xml` posts the XML document to baseUrl + "/" + interface name; `soap11` and
 * `soap12` call the interfaces as SOAP operations of the service at baseUrl (see soap.ts).
 */
export type HisProtocol = 'xml' | 'soap11' | 'soap12';
export const HIS_PROTOCOLS: readonly HisProtocol[] = ['xml', 'soap11', 'soap12'];

export interface HisClientOptions {
  /**
   * xml: e.g. "http://his.example:8080/api"; the interface name is appended ("/IF_Get_Hospital_Trade_List").
   * soap11 / soap12: the service's endpoint, e.g. "http://his.example/HisService.asmx".
   */
  baseUrl: string;
  /** Default xml. */
  protocol?: HisProtocol;
  /** The SOAP service's namespace (operation elements, SOAPAction). Default http://tempuri.org/. */
  soapNamespace?: string;
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
  /** Interface paths, if the hospital mounts them elsewhere (xml only). */
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

/** What one HTTP exchange brought back. */
interface Exchange {
  status: number;
  contentType: string | null;
  bytes: Uint8Array;
}

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
  private readonly soap: { version: SoapVersion; namespace: string } | null;

  constructor(private readonly options: HisClientOptions) {
    const protocol = options.protocol ?? 'xml';
    this.soap =
      protocol === 'xml'
        ? null
        : {
            version: protocol === 'soap11' ? '1.1' : '1.2',
            namespace: options.soapNamespace || DEFAULT_SOAP_NAMESPACE,
          };
    // A SOAP endpoint is used as given (an .asmx path may matter to the server); XML interfaces are appended.
    this.baseUrl = this.soap ? options.baseUrl : options.baseUrl.replace(/\/+$/, '');
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
    const answer = await this.post(
      'IF_Get_Hospital_Trade_List',
      this.options.paths?.tradeList ?? '/IF_Get_Hospital_Trade_List',
      request,
    );
    const { text, records } = parseTradeListAnswer(answer.input, this.maxAnswerBytes, answer.options);
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
    const answer = await this.post('HIS_IF_Query', this.options.paths?.query ?? '/HIS_IF_Query', {
      AccessToken: this.options.accessToken ?? '',
      OutTradeNo: outTradeNo,
    });
    const { text, query } = parseQueryAnswer(answer.input, this.maxAnswerBytes, answer.options);
    if (query.found && query.outTradeNo !== '' && query.outTradeNo !== outTradeNo) {
      throw HisErrors.malformed(
        `应答的 OutTradeNo ${query.outTradeNo} 不是所查询的 ${outTradeNo}`,
        `the answer is about OutTradeNo ${query.outTradeNo}, not the one asked (${outTradeNo})`,
        text,
      );
    }
    return { ...query, raw: text };
  }

  /**
   * Sends the request document (posted as XML, or as the `xml` parameter of SOAP operation `op`) and returns
   * the answer document to parse; retries timeouts, connection failures, HTTP 5xx and SOAP Server faults with
   * exponential backoff.
   */
  private async post(
    op: string,
    path: string,
    head: Record<string, string>,
  ): Promise<{ input: Uint8Array | string; options: HisDecodeOptions }> {
    const document = buildOfflineXml(head, {});
    const request = this.soap
      ? { url: this.baseUrl, ...soapRequest(this.soap.version, this.soap.namespace, op, document) }
      : {
          url: `${this.baseUrl}${path}`,
          body: document,
          headers: { 'content-type': 'text/xml; charset=utf-8', accept: 'text/xml, application/xml' },
        };
    const attempts = this.retries + 1;
    let last: HisError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) await this.sleep(this.backoffMs * 2 ** (attempt - 2));
      try {
        const answer = await this.once(request, attempt);
        return this.soap ? this.unwrap(op, answer, attempt) : this.plain(answer, attempt);
      } catch (e) {
        if (!(e instanceof HisError) || !e.extra.retryable) throw e;
        last = e;
      }
    }
    throw last ?? HisErrors.unreachable('no attempt made', 0);
  }

  /** A plain XML interface's answer: any 2xx carries the document. */
  private plain(answer: Exchange, attempt: number): { input: Uint8Array; options: HisDecodeOptions } {
    if (answer.status < 200 || answer.status > 299) {
      throw HisErrors.http(answer.status, Buffer.from(answer.bytes).toString('utf8'), attempt);
    }
    const httpCharset = charsetParam(answer.contentType);
    return { input: answer.bytes, options: httpCharset ? { httpCharset } : {} };
  }

  /**
   * A SOAP operation's answer: the `<Op>Result` string, or a Fault (HIS_SOAP_FAULT, whatever the HTTP status:
   * ASP.NET sends it with 500). A non-2xx answer that is no Fault is HIS_HTTP_<status>.
   */
  private unwrap(
    op: string,
    answer: Exchange,
    attempt: number,
  ): { input: string; options: HisDecodeOptions } {
    const ok = answer.status >= 200 && answer.status <= 299;
    let text: string;
    try {
      text = decodeHisBytes(answer.bytes, charsetParam(answer.contentType));
    } catch (e) {
      if (!ok) throw HisErrors.http(answer.status, Buffer.from(answer.bytes).toString('latin1'), attempt);
      throw e;
    }
    const soap = this.soap ?? { version: '1.1', namespace: DEFAULT_SOAP_NAMESPACE };
    let read;
    try {
      read = readSoapAnswer(text, soap.namespace, op);
    } catch (e) {
      if (!ok) throw HisErrors.http(answer.status, this.scrub(text), attempt);
      const why = e instanceof SoapEnvelopeError ? e : null;
      throw HisErrors.malformed(
        `SOAP 应答：${why?.zh ?? String(e)}`,
        `SOAP answer: ${why?.message ?? String(e)}`,
        this.scrub(text),
      );
    }
    if (read.kind === 'fault') {
      const { code, server } = read.fault;
      throw HisErrors.soapFault(
        { code, reason: this.scrub(read.fault.reason), server },
        answer.status,
        this.scrub(text),
        attempt,
      );
    }
    if (!ok) throw HisErrors.http(answer.status, this.scrub(text), attempt);
    return { input: read.value, options: { fromEnvelope: true } };
  }

  /** The AccessToken never travels on into errors, reports or logs, even when a HIS echoes it in a fault. */
  private scrub(text: string): string {
    const token = this.options.accessToken;
    if (!token || token.length < 4) return text;
    return text.split(token).join('***');
  }

  private async once(
    request: { url: string; body: string; headers: Record<string, string> },
    attempt: number,
  ): Promise<Exchange> {
    const limit = deadline(this.timeoutMs);
    try {
      const res = await this.doFetch(request.url, {
        method: 'POST',
        headers: request.headers,
        body: request.body,
        signal: limit.signal,
      });
      const bytes = await this.readLimited(res);
      return { status: res.status, contentType: res.headers.get('content-type'), bytes };
    } catch (e) {
      if (e instanceof HisError) throw e;
      if (limit.expired) throw HisErrors.timeout(this.timeoutMs, attempt);
      const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : '';
      throw HisErrors.unreachable(cause || (e instanceof Error ? e.message : String(e)), attempt);
    } finally {
      limit.clear();
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
