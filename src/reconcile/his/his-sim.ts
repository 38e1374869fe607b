import { randomInt } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { XMLBuilder } from 'fast-xml-parser';
import iconv from 'iconv-lite';
import { compactShanghai, formatShanghai } from '../../domain/clock.js';
import { HospayError } from '../../domain/errors.js';
import { formatFen, negFen, subFen, ZERO_FEN, type Fen } from '../../domain/money.js';
import { MAX_XML_BYTES, parseOfflineXml } from '../../formats/xml.js';
import { decodeHisBytes, parseShanghai, understandPayType, type HisPayType } from './his-xml.js';
import {
  DEFAULT_SOAP_NAMESPACE,
  HIS_SOAP_OPERATIONS,
  SoapEnvelopeError,
  readSoapRequest,
  soapContentType,
  soapFault,
  soapResponse,
  soapVersionOfContentType,
  type SoapVersion,
} from './soap.js';

/**
 * A simulated hospital HIS serving the two reconciliation interfaces of spec chapter 7 from in-memory books,
 * with fault injection. Its model (one row per money movement, like HIS_IF_Query's TradeList):
 * - a payment is a flow with OutTradeStatus 2 at its payment time, amount positive;
 * - a refund is a further flow of the same OutTradeNo with OutTradeStatus 3 at its refund time; its Amount is
 *   the refunded amount, written positive in the trade list and negative in HIS_IF_Query;
 * - IF_Get_Hospital_Trade_List selects flows of the PayType with BeginDate <= time <= EndDate (inclusive both
 *   ends, as a SQL BETWEEN would): the client must cope with the record at exactly EndDate.
 * The interfaces are served as plain XML (POST /IF_Get_Hospital_Trade_List, POST /HIS_IF_Query) and, with the
 * `soap` option, also as SOAP 1.1 / 1.2 operations of an .asmx-style service (POST /HisService.asmx, its WSDL at
 * /HisService.asmx?wsdl), the way many HIS vendors publish them.
 */
export interface HisSimFlow {
  hisFlowId: string;
  outTradeNo: string;
  tradeNo: string;
  kind: 'PAY' | 'REFUND';
  /** Positive fen. */
  amountFen: Fen;
  time: Date;
  payType: HisPayType;
  cardNo: string;
  patientName: string;
  costType: string;
}

export interface HisSimFaults {
  /** HisFlowIDs left out of both answers (a record the HIS lost). */
  drop: Set<string>;
  /** HisFlowID -> the (positive) amount shown instead, in both answers. */
  amountFen: Map<string, Fen>;
  /** HisFlowID -> the OutTradeStatus shown instead in the trade list ("2" <-> "3", or nonsense). */
  status: Map<string, string>;
  /** HisFlowIDs listed twice in the trade list. */
  duplicate: Set<string>;
  /** Every answer waits this long before it is sent. */
  delayMs: number;
  /**
   * Every answer is broken this way while set. `fault`: a SOAP Fault (soap:Server, HTTP 500) on the SOAP
   * service; plain HTTP 500 on the XML interfaces.
   */
  broken: null | 'malformed' | 'http500' | 'doctype' | 'refused' | 'fault';
}

export const HIS_SIM_BROKEN = ['malformed', 'http500', 'doctype', 'refused', 'fault'] as const;

export interface PaymentInput {
  outTradeNo: string;
  amountFen: Fen;
  time: Date;
  tradeNo?: string;
  payType?: HisPayType;
  cardNo?: string;
  patientName?: string;
  costType?: string;
  hisFlowId?: string;
}

export interface RefundInput {
  outTradeNo: string;
  amountFen: Fen;
  time: Date;
  hisFlowId?: string;
}

/** The hospay rows loadFromTrades reads (a subset of TradesTable / RefundsTable). */
export interface HospayTradeRow {
  id: number;
  out_trade_no: string;
  status: string;
  pay_type: string | null;
  channel_trade_no: string | null;
  trade_no: string;
  total_fen: Fen;
  insurance_fen?: Fen;
  paid_at: Date | null;
  category?: string;
  patient_name?: string | null;
  inhospital_no?: string | null;
}
export interface HospayRefundRow {
  /** When given, the HIS flow id derives from it (stable across re-reads). */
  id?: number;
  trade_id: number;
  kind: string;
  amount_fen: Fen;
  status: string;
  finished_at: Date | null;
  out_request_no?: string;
}

export interface HisSimulatorOptions {
  flows?: HisSimFlow[];
  faults?: Partial<HisSimFaults>;
  /** When set, HIS_IF_Query refuses another AccessToken (IsSuccess 0, ACCESS_TOKEN_INVALID). */
  accessToken?: string;
  /** Fastify logger; off by default. */
  logger?: boolean;
  /** Also serve the interfaces as SOAP operations (true: namespace http://tempuri.org/, path /HisService.asmx). */
  soap?: boolean | { namespace?: string; path?: string };
  /** The answers' encoding (declared in the XML and the HTTP charset). Default utf-8. */
  encoding?: 'utf-8' | 'gbk';
  /**
   * Called before each request is answered, e.g. to re-read the platform's trades (syncFromTrades). One call
   * at a time: requests that arrive meanwhile wait for it. A failure keeps the records as they were.
   */
  refresh?: () => Promise<void>;
}

/** Where the simulator serves SOAP unless told otherwise. */
export const HIS_SIM_SOAP_PATH = '/HisService.asmx';

export interface HisSimulator {
  app: FastifyInstance;
  faults: HisSimFaults;
  /** The SOAP service's path and namespace, when served. */
  soap: { path: string; namespace: string } | null;
  /** Requests received, per interface (to count retries). */
  requests: { tradeList: number; query: number };
  flows(): readonly HisSimFlow[];
  /** The payment flow recorded for an order, if any (to aim a fault at an order number). */
  paymentOf(outTradeNo: string): HisSimFlow | undefined;
  addPayment(input: PaymentInput): HisSimFlow;
  addRefund(input: RefundInput): HisSimFlow;
  /** Fault: a record with no payment behind it (hospay never saw this order). */
  addExtra(input: Omit<PaymentInput, 'outTradeNo'> & { outTradeNo?: string }): HisSimFlow;
  /** Records what a well-behaved HIS would have for these hospay trades and refunds. Returns the flows added. */
  loadFromTrades(trades: readonly HospayTradeRow[], refunds?: readonly HospayRefundRow[]): HisSimFlow[];
  /**
   * Like loadFromTrades, but replaces what the previous call recorded (flows added otherwise stay), with flow
   * ids derived from the rows' ids, so faults aimed at a flow survive a re-read. Returns how many it holds.
   */
  syncFromTrades(trades: readonly HospayTradeRow[], refunds?: readonly HospayRefundRow[]): number;
  reset(): void;
}

const builder = new XMLBuilder({
  format: true,
  indentBy: '  ',
  suppressEmptyNode: false,
  processEntities: true,
});
const PAY_CODES: Record<HisPayType, string> = {
  alipay: 'alipay',
  weixin: 'weixin',
  unionpay: 'unionpay',
  dc: 'dc',
};

function answerDoc(head: Record<string, string>, body: Record<string, unknown>, encoding = 'utf-8'): string {
  return `<?xml version="1.0" encoding="${encoding}"?>\n${builder.build({ xml: { head, body, sign: '' } }) as string}`;
}

/** What the rows of the platform say a well-behaved HIS would hold (the cash part, successful refunds). */
function movementsOf(
  trades: readonly HospayTradeRow[],
  refunds: readonly HospayRefundRow[],
): {
  pays: Array<{ trade: HospayTradeRow; input: PaymentInput }>;
  refunds: Array<{ refund: HospayRefundRow; tradeId: number; amountFen: Fen; time: Date }>;
} {
  const pays: Array<{ trade: HospayTradeRow; input: PaymentInput }> = [];
  const paid = new Set<number>();
  for (const t of trades) {
    if (t.paid_at === null) continue; // never paid: nothing in the HIS's books
    const cash = subFen(t.total_fen, t.insurance_fen ?? ZERO_FEN);
    if (cash <= 0) continue; // fully paid by medical insurance: no third-party payment
    paid.add(t.id);
    pays.push({
      trade: t,
      input: {
        outTradeNo: t.out_trade_no,
        tradeNo: t.channel_trade_no ?? t.trade_no,
        amountFen: cash,
        time: t.paid_at,
        payType: understandPayType(t.pay_type ?? '') ?? 'alipay',
        cardNo: t.inhospital_no ?? '',
        patientName: t.patient_name ?? '',
        costType: t.category ?? '',
      },
    });
  }
  const moves = [];
  for (const r of refunds) {
    // Money returned through the channel: refunds and cancels that succeeded; the insurance part is not ours.
    if (r.status !== 'SUCCESS' || r.kind === 'insurance' || r.finished_at === null || r.amount_fen <= 0)
      continue;
    if (!paid.has(r.trade_id)) continue;
    moves.push({ refund: r, tradeId: r.trade_id, amountFen: r.amount_fen, time: r.finished_at });
  }
  return { pays, refunds: moves };
}

const ok = { IsSuccess: '1', Message: '成功', SubCode: 'SUCCESS', SubMessage: '成功' };
const refused = (subCode: string, message: string) => ({
  IsSuccess: '0',
  Message: message,
  SubCode: subCode,
  SubMessage: message,
});

export function createHisSimulator(options: HisSimulatorOptions = {}): HisSimulator {
  /** Flows added one by one (addPayment, addRefund, addExtra, loadFromTrades). */
  let flows: HisSimFlow[] = [...(options.flows ?? [])];
  /** Flows recorded by the last syncFromTrades. */
  let synced: HisSimFlow[] = [];
  const all = () => (synced.length ? [...synced, ...flows] : flows);
  /** The payment flow of each order, for refunds and faults by order number. */
  const payByOrder = new Map<string, HisSimFlow>();
  const indexPayments = () => {
    payByOrder.clear();
    for (const f of all())
      if (f.kind === 'PAY' && !payByOrder.has(f.outTradeNo)) payByOrder.set(f.outTradeNo, f);
  };
  indexPayments();
  const encoding = options.encoding ?? 'utf-8';
  const soap =
    options.soap === undefined || options.soap === false
      ? null
      : {
          path: (options.soap === true ? undefined : options.soap.path) ?? HIS_SIM_SOAP_PATH,
          namespace: (options.soap === true ? undefined : options.soap.namespace) || DEFAULT_SOAP_NAMESPACE,
        };
  const emptyFaults = (): HisSimFaults => ({
    drop: new Set(),
    amountFen: new Map(),
    status: new Map(),
    duplicate: new Set(),
    delayMs: 0,
    broken: null,
  });
  const faults: HisSimFaults = { ...emptyFaults(), ...options.faults };
  const requests = { tradeList: 0, query: 0 };
  let seq = 0;
  const flowId = (prefix: string, time: Date) =>
    `${prefix}${compactShanghai(time)}${String(++seq).padStart(5, '0')}`;

  const addPayment = (input: PaymentInput): HisSimFlow => {
    if (!Number.isSafeInteger(input.amountFen) || input.amountFen <= 0)
      throw new RangeError('amountFen must be > 0');
    const flow: HisSimFlow = {
      hisFlowId: input.hisFlowId ?? flowId('', input.time),
      outTradeNo: input.outTradeNo,
      tradeNo: input.tradeNo ?? `SIM${compactShanghai(input.time)}${String(randomInt(1e8)).padStart(8, '0')}`,
      kind: 'PAY',
      amountFen: input.amountFen,
      time: input.time,
      payType: input.payType ?? 'alipay',
      cardNo: input.cardNo ?? '0000000001',
      patientName: input.patientName ?? '测试患者',
      costType: input.costType ?? '门诊',
    };
    flows.push(flow);
    if (!payByOrder.has(flow.outTradeNo)) payByOrder.set(flow.outTradeNo, flow);
    return flow;
  };

  const addRefund = (input: RefundInput): HisSimFlow => {
    const pay = payByOrder.get(input.outTradeNo);
    if (!pay) throw new Error(`no payment recorded for ${input.outTradeNo}`);
    if (!Number.isSafeInteger(input.amountFen) || input.amountFen <= 0)
      throw new RangeError('amountFen must be > 0');
    const flow: HisSimFlow = {
      ...pay,
      hisFlowId: input.hisFlowId ?? flowId('T', input.time),
      kind: 'REFUND',
      amountFen: input.amountFen,
      time: input.time,
    };
    flows.push(flow);
    return flow;
  };

  const addExtra: HisSimulator['addExtra'] = (input) =>
    addPayment({ ...input, outTradeNo: input.outTradeNo ?? `PHANTOM${compactShanghai(input.time)}${++seq}` });

  const loadFromTrades: HisSimulator['loadFromTrades'] = (trades, refunds = []) => {
    const added: HisSimFlow[] = [];
    const byId = new Map<number, HisSimFlow>();
    const m = movementsOf(trades, refunds);
    for (const { trade, input } of m.pays) {
      const pay = addPayment(input);
      byId.set(trade.id, pay);
      added.push(pay);
    }
    for (const r of m.refunds) {
      const pay = byId.get(r.tradeId);
      if (pay) added.push(addRefund({ outTradeNo: pay.outTradeNo, amountFen: r.amountFen, time: r.time }));
    }
    return added;
  };

  const syncFromTrades: HisSimulator['syncFromTrades'] = (trades, refunds = []) => {
    const m = movementsOf(trades, refunds);
    const next: HisSimFlow[] = [];
    const byId = new Map<number, HisSimFlow>();
    for (const { trade, input } of m.pays) {
      const pay: HisSimFlow = {
        hisFlowId: `${compactShanghai(input.time)}${String(trade.id).padStart(6, '0')}`,
        outTradeNo: input.outTradeNo,
        tradeNo: input.tradeNo ?? trade.trade_no,
        kind: 'PAY',
        amountFen: input.amountFen,
        time: input.time,
        payType: input.payType ?? 'alipay',
        cardNo: input.cardNo ?? '',
        patientName: input.patientName ?? '',
        costType: input.costType ?? '',
      };
      byId.set(trade.id, pay);
      next.push(pay);
    }
    m.refunds.forEach((r, i) => {
      const pay = byId.get(r.tradeId);
      if (!pay) return;
      const key = r.refund.id ?? `${r.tradeId}${String(i).padStart(4, '0')}`;
      next.push({
        ...pay,
        hisFlowId: `T${compactShanghai(r.time)}${String(key).padStart(6, '0')}`,
        kind: 'REFUND',
        amountFen: r.amountFen,
        time: r.time,
      });
    });
    synced = next;
    indexPayments();
    return next.length;
  };

  let refreshing: Promise<void> | null = null;
  /** Runs options.refresh once for the requests that arrive while it runs. */
  const refresh = async (): Promise<void> => {
    if (!options.refresh) return;
    if (!refreshing)
      refreshing = options
        .refresh()
        .catch(() => {
          /* the last records stay; the caller reports its own failures */
        })
        .finally(() => {
          refreshing = null;
        });
    await refreshing;
  };

  // forceCloseConnections: a test or CLI stop must not wait for clients' keep-alive sockets.
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: MAX_XML_BYTES,
    forceCloseConnections: true,
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_XML_BYTES }, (_req, body, done) =>
    done(null, body),
  );

  /**
   * Reads the request head with the platform's hardened door parser; a bad request gets IsSuccess 0. Bytes
   * are decoded as their declaration says (UTF-8 or GBK); a document taken out of a SOAP envelope is text
   * already, its own declaration moot.
   */
  const readHead = (input: unknown): Map<string, string> | string => {
    try {
      const text =
        typeof input === 'string'
          ? input
          : decodeHisBytes(input instanceof Uint8Array ? input : new Uint8Array());
      return parseOfflineXml(text.replace(/^\s*<\?xml[^>]*\?>/, ''));
    } catch (e) {
      return e instanceof HospayError ? e.bilingual : 'bad request';
    }
  };

  const doc = (head: Record<string, string>, body: Record<string, unknown>) =>
    answerDoc(head, body, encoding === 'gbk' ? 'GBK' : 'utf-8');

  /** What the delay and "broken" faults make of an answer: a document, or a failure of the transport. */
  type Broken = { doc: string } | { http500: true } | { fault: true };
  const misbehave = async (): Promise<Broken | null> => {
    if (faults.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, faults.delayMs));
    switch (faults.broken) {
      case 'http500':
        return { http500: true };
      case 'fault':
        return { fault: true };
      case 'malformed':
        return {
          doc: '<?xml version="1.0" encoding="utf-8"?>\n<xml><head></head><body><ResponseResult><IsSuccess>1</IsSucc',
        };
      case 'doctype':
        return {
          doc:
            '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE xml [<!ENTITY x "boom">]>\n' +
            '<xml><head></head><body><ResponseResult><IsSuccess>1</IsSuccess><Message>&x;</Message></ResponseResult></body><sign></sign></xml>',
        };
      case 'refused':
        return { doc: doc({}, { ResponseResult: refused('SYSTEM_BUSY', '系统繁忙（模拟）') }) };
      default:
        return null;
    }
  };

  /** IF_Get_Hospital_Trade_List: the answer document for a request document. */
  const tradeList = (input: unknown): string => {
    const head = readHead(input);
    if (typeof head === 'string') return doc({}, { ResponseResult: refused('INVALID_REQUEST', head) });
    const begin = parseShanghai(head.get('BeginDate') ?? '');
    const end = parseShanghai(head.get('EndDate') ?? '');
    const payType = understandPayType(head.get('PayType') ?? '');
    if (!begin || !end || !payType) {
      return doc({}, { ResponseResult: refused('INVALID_PARAMETER', 'BeginDate/EndDate/PayType 无效') });
    }
    const rows: Array<Record<string, string>> = [];
    for (const f of all()) {
      if (f.payType !== payType || faults.drop.has(f.hisFlowId)) continue;
      if (f.time.getTime() < begin.getTime() || f.time.getTime() > end.getTime()) continue;
      const row = {
        CardNo: f.cardNo,
        PatientName: f.patientName,
        CostType: f.costType,
        OutTradeStatus: faults.status.get(f.hisFlowId) ?? (f.kind === 'PAY' ? '2' : '3'),
        TradeNo: f.tradeNo,
        Amount: formatFen(faults.amountFen.get(f.hisFlowId) ?? f.amountFen),
        OutTradeNo: f.outTradeNo,
        TradeOptDateTime: formatShanghai(f.time),
      };
      rows.push(row);
      if (faults.duplicate.has(f.hisFlowId)) rows.push({ ...row });
    }
    return doc({}, { ResponseResult: ok, GetHospitalTradeList: rows });
  };

  /** HIS_IF_Query: the answer document for a request document. */
  const query = (input: unknown): string => {
    const head = readHead(input);
    if (typeof head === 'string') return doc({}, { ResponseResult: refused('INVALID_REQUEST', head) });
    const echo = { AccessToken: head.get('AccessToken') ?? '', OutTradeNo: head.get('OutTradeNo') ?? '' };
    if (options.accessToken !== undefined && echo.AccessToken !== options.accessToken) {
      return doc(echo, { ResponseResult: refused('ACCESS_TOKEN_INVALID', 'AccessToken 无效') });
    }
    if (echo.OutTradeNo === '')
      return doc(echo, { ResponseResult: refused('MISSING_PARAMETER', '缺少 OutTradeNo') });
    const mine = all()
      .filter((f) => f.outTradeNo === echo.OutTradeNo && !faults.drop.has(f.hisFlowId))
      .sort((a, b) => a.time.getTime() - b.time.getTime());
    const first = mine[0];
    if (!first) return doc(echo, { ResponseResult: ok }); // unknown order: success, no HisTradeStatus
    return doc(echo, {
      ResponseResult: ok,
      HisTradeStatus: {
        TradeNo: first.tradeNo,
        OutTradeNo: first.outTradeNo,
        MedicalCard: first.cardNo,
        TradeList: mine.map((f) => {
          const amount = faults.amountFen.get(f.hisFlowId) ?? f.amountFen;
          return {
            HisFlowID: f.hisFlowId,
            TotalAmount: formatFen(f.kind === 'PAY' ? amount : negFen(amount)),
            DateTime: formatShanghai(f.time),
            PayType: PAY_CODES[f.payType],
          };
        }),
      },
    });
  };

  const bytesOf = (text: string) => (encoding === 'gbk' ? iconv.encode(text, 'gbk') : Buffer.from(text));
  const charset = encoding === 'gbk' ? 'GBK' : 'utf-8';

  const plain =
    (count: 'tradeList' | 'query', answer: (input: unknown) => string) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      requests[count]++;
      await refresh();
      const broken = await misbehave();
      if (broken && !('doc' in broken))
        return reply.code(500).type('text/plain; charset=utf-8').send('HIS internal error (simulated)');
      return reply.type(`text/xml; charset=${charset}`).send(bytesOf(broken ? broken.doc : answer(req.body)));
    };
  app.post('/IF_Get_Hospital_Trade_List', plain('tradeList', tradeList));
  app.post('/HIS_IF_Query', plain('query', query));

  if (soap) {
    const encodingName = encoding === 'gbk' ? 'GBK' : 'utf-8';
    const sendFault = (reply: FastifyReply, version: SoapVersion, who: 'client' | 'server', reason: string) =>
      reply
        .code(500)
        .type(soapContentType(version, charset))
        .send(bytesOf(soapFault(version, who, reason, encodingName)));

    app.post(soap.path, async (req, reply) => {
      const version = soapVersionOfContentType(req.headers['content-type']) ?? '1.1';
      let request;
      try {
        const bytes = req.body instanceof Uint8Array ? req.body : new Uint8Array();
        request = readSoapRequest(decodeHisBytes(bytes), soap.namespace);
      } catch (e) {
        const why =
          e instanceof SoapEnvelopeError
            ? `${e.zh} / ${e.message}`
            : e instanceof HospayError
              ? e.bilingual
              : 'unreadable request';
        return sendFault(reply, version, 'client', why);
      }
      const op = request.op;
      if (!(HIS_SOAP_OPERATIONS as readonly string[]).includes(op))
        return sendFault(
          reply,
          request.version,
          'client',
          `未知操作 ${op} / unknown operation ${op} (served: ${HIS_SOAP_OPERATIONS.join(', ')})`,
        );
      const isList = op === 'IF_Get_Hospital_Trade_List';
      requests[isList ? 'tradeList' : 'query']++;
      await refresh();
      const broken = await misbehave();
      if (broken && 'http500' in broken)
        return reply.code(500).type('text/plain; charset=utf-8').send('HIS internal error (simulated)');
      if (broken && 'fault' in broken)
        return sendFault(
          reply,
          request.version,
          'server',
          'HIS 数据库不可用（模拟）/ HIS database unavailable (simulated)',
        );
      const answer = broken ? broken.doc : (isList ? tradeList : query)(request.xml);
      return reply
        .type(soapContentType(request.version, charset))
        .send(bytesOf(soapResponse(request.version, soap.namespace, op, answer, encodingName)));
    });

    app.get(soap.path, async (req, reply) => {
      const q = (req.query ?? {}) as Record<string, unknown>;
      if (Object.hasOwn(q, 'wsdl') || Object.hasOwn(q, 'WSDL')) {
        const host = (req.headers.host ?? '127.0.0.1').replace(/[^A-Za-z0-9.:[\]-]/g, '');
        return reply
          .type('text/xml; charset=utf-8')
          .send(hisSimWsdl(soap.namespace, `http://${host}${soap.path}`));
      }
      return reply
        .type('text/plain; charset=utf-8')
        .send(
          `HIS simulator SOAP service (spec chapter 7): ${HIS_SOAP_OPERATIONS.join(', ')}; WSDL at ${soap.path}?wsdl\n`,
        );
    });
  }

  return {
    app,
    faults,
    soap,
    requests,
    flows: () => all(),
    paymentOf: (outTradeNo) => payByOrder.get(outTradeNo),
    addPayment,
    addRefund,
    addExtra,
    loadFromTrades,
    syncFromTrades,
    reset() {
      flows = [];
      synced = [];
      payByOrder.clear();
      Object.assign(faults, emptyFaults());
      requests.tradeList = 0;
      requests.query = 0;
    },
  };
}

/** The WSDL of the simulator's SOAP service: the two operations, SOAP 1.1 and 1.2 ports, one `xml` string in. */
export function hisSimWsdl(namespace: string, address: string): string {
  const attr = (t: string) =>
    t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  const ns = attr(namespace);
  const action = (op: string) => attr(namespace.endsWith('/') ? `${namespace}${op}` : `${namespace}/${op}`);
  const ops = HIS_SOAP_OPERATIONS;
  const elements = ops
    .map(
      (op) => `      <s:element name="${op}">
        <s:complexType><s:sequence><s:element minOccurs="0" maxOccurs="1" name="xml" type="s:string" /></s:sequence></s:complexType>
      </s:element>
      <s:element name="${op}Response">
        <s:complexType><s:sequence><s:element minOccurs="0" maxOccurs="1" name="${op}Result" type="s:string" /></s:sequence></s:complexType>
      </s:element>`,
    )
    .join('\n');
  const messages = ops
    .map(
      (
        op,
      ) => `  <wsdl:message name="${op}SoapIn"><wsdl:part name="parameters" element="tns:${op}" /></wsdl:message>
  <wsdl:message name="${op}SoapOut"><wsdl:part name="parameters" element="tns:${op}Response" /></wsdl:message>`,
    )
    .join('\n');
  const portOps = ops
    .map(
      (op) => `    <wsdl:operation name="${op}">
      <wsdl:input message="tns:${op}SoapIn" />
      <wsdl:output message="tns:${op}SoapOut" />
    </wsdl:operation>`,
    )
    .join('\n');
  const bindingOps = (p: 'soap' | 'soap12') =>
    ops
      .map(
        (op) => `    <wsdl:operation name="${op}">
      <${p}:operation soapAction="${action(op)}" style="document" />
      <wsdl:input><${p}:body use="literal" /></wsdl:input>
      <wsdl:output><${p}:body use="literal" /></wsdl:output>
    </wsdl:operation>`,
      )
      .join('\n');
  return `<?xml version="1.0" encoding="utf-8"?>
<wsdl:definitions xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/" xmlns:s="http://www.w3.org/2001/XMLSchema" xmlns:tns="${ns}" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" targetNamespace="${ns}">
  <wsdl:documentation>HIS simulator (hospay his-sim): the reconciliation interfaces of spec chapter 7, each taking the spec's XML document as the string parameter xml and returning the answer document as a string.</wsdl:documentation>
  <wsdl:types>
    <s:schema elementFormDefault="qualified" targetNamespace="${ns}">
${elements}
    </s:schema>
  </wsdl:types>
${messages}
  <wsdl:portType name="HisServiceSoap">
${portOps}
  </wsdl:portType>
  <wsdl:binding name="HisServiceSoap" type="tns:HisServiceSoap">
    <soap:binding transport="http://schemas.xmlsoap.org/soap/http" />
${bindingOps('soap')}
  </wsdl:binding>
  <wsdl:binding name="HisServiceSoap12" type="tns:HisServiceSoap">
    <soap12:binding transport="http://schemas.xmlsoap.org/soap/http" />
${bindingOps('soap12')}
  </wsdl:binding>
  <wsdl:service name="HisService">
    <wsdl:port name="HisServiceSoap" binding="tns:HisServiceSoap"><soap:address location="${attr(address)}" /></wsdl:port>
    <wsdl:port name="HisServiceSoap12" binding="tns:HisServiceSoap12"><soap12:address location="${attr(address)}" /></wsdl:port>
  </wsdl:service>
</wsdl:definitions>
`;
}

/** For `hospay his-sim --port N`: starts an empty simulator; returns its URL and a close function. */
export async function startHisSimulator(
  port: number,
  host = '127.0.0.1',
  options: HisSimulatorOptions = {},
): Promise<{ url: string; sim: HisSimulator; close: () => Promise<void> }> {
  const sim = createHisSimulator(options);
  await sim.app.listen({ port, host });
  const address = sim.app.server.address();
  const actual = typeof address === 'object' && address !== null ? address.port : port;
  return { url: `http://${host}:${actual}`, sim, close: () => sim.app.close() };
}
