import { randomInt } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { XMLBuilder } from 'fast-xml-parser';
import { compactShanghai, formatShanghai } from '../../domain/clock.js';
import { HospayError } from '../../domain/errors.js';
import { formatFen, type Fen } from '../../domain/money.js';
import { decodeUtf8, MAX_XML_BYTES, parseOfflineXml } from '../../http/offline/xml.js';
import { parseShanghai, understandPayType, type HisPayType } from './his-xml.js';

/**
 * A simulated hospital HIS serving the two reconciliation interfaces of spec chapter 7 from in-memory books,
 * with fault injection. Its model (one row per money movement, like HIS_IF_Query's TradeList):
 * - a payment is a flow with OutTradeStatus 2 at its payment time, amount positive;
 * - a refund is a further flow of the same OutTradeNo with OutTradeStatus 3 at its refund time; its Amount is
 *   the refunded amount, written positive in the trade list and negative in HIS_IF_Query;
 * - IF_Get_Hospital_Trade_List selects flows of the PayType with BeginDate <= time <= EndDate (inclusive both
 *   ends, as a SQL BETWEEN would): the client must cope with the record at exactly EndDate.
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
  /** Every answer is broken this way while set. */
  broken: null | 'malformed' | 'http500' | 'doctype' | 'refused';
}

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
  total_fen: number;
  insurance_fen?: number;
  paid_at: Date | null;
  category?: string;
  patient_name?: string | null;
  inhospital_no?: string | null;
}
export interface HospayRefundRow {
  trade_id: number;
  kind: string;
  amount_fen: number;
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
}

export interface HisSimulator {
  app: FastifyInstance;
  faults: HisSimFaults;
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

function answer(head: Record<string, string>, body: Record<string, unknown>): string {
  return `<?xml version="1.0" encoding="utf-8"?>\n${builder.build({ xml: { head, body, sign: '' } }) as string}`;
}

const ok = { IsSuccess: '1', Message: '成功', SubCode: 'SUCCESS', SubMessage: '成功' };
const refused = (subCode: string, message: string) => ({
  IsSuccess: '0',
  Message: message,
  SubCode: subCode,
  SubMessage: message,
});

export function createHisSimulator(options: HisSimulatorOptions = {}): HisSimulator {
  let flows: HisSimFlow[] = [...(options.flows ?? [])];
  /** The payment flow of each order, for refunds and faults by order number. */
  const payByOrder = new Map<string, HisSimFlow>();
  for (const f of flows)
    if (f.kind === 'PAY' && !payByOrder.has(f.outTradeNo)) payByOrder.set(f.outTradeNo, f);
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
    for (const t of trades) {
      if (t.paid_at === null) continue; // never paid: nothing in the HIS's books
      const cash = t.total_fen - (t.insurance_fen ?? 0);
      if (cash <= 0) continue; // fully paid by medical insurance: no third-party payment
      const pay = addPayment({
        outTradeNo: t.out_trade_no,
        tradeNo: t.channel_trade_no ?? t.trade_no,
        amountFen: cash,
        time: t.paid_at,
        payType: understandPayType(t.pay_type ?? '') ?? 'alipay',
        cardNo: t.inhospital_no ?? '',
        patientName: t.patient_name ?? '',
        costType: t.category ?? '',
      });
      byId.set(t.id, pay);
      added.push(pay);
    }
    for (const r of refunds) {
      // Money returned through the channel: refunds and cancels that succeeded; the insurance part is not ours.
      if (r.status !== 'SUCCESS' || r.kind === 'insurance' || r.finished_at === null || r.amount_fen <= 0)
        continue;
      const pay = byId.get(r.trade_id);
      if (!pay) continue;
      added.push(addRefund({ outTradeNo: pay.outTradeNo, amountFen: r.amount_fen, time: r.finished_at }));
    }
    return added;
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

  /** Reads the request head with the platform's hardened door parser; a bad request gets IsSuccess 0. */
  const readHead = (body: unknown): Map<string, string> | string => {
    try {
      const bytes = body instanceof Uint8Array ? body : new Uint8Array();
      return parseOfflineXml(decodeUtf8(bytes));
    } catch (e) {
      return e instanceof HospayError ? e.bilingual : 'bad request';
    }
  };

  /** Applies delay and "broken" faults; returns true when the answer was already sent. */
  const misbehave = async (reply: FastifyReply): Promise<boolean> => {
    if (faults.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, faults.delayMs));
    switch (faults.broken) {
      case 'http500':
        await reply.code(500).type('text/plain; charset=utf-8').send('HIS internal error (simulated)');
        return true;
      case 'malformed':
        await reply
          .type('text/xml; charset=utf-8')
          .send(
            '<?xml version="1.0" encoding="utf-8"?>\n<xml><head></head><body><ResponseResult><IsSuccess>1</IsSucc',
          );
        return true;
      case 'doctype':
        await reply
          .type('text/xml; charset=utf-8')
          .send(
            '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE xml [<!ENTITY x "boom">]>\n' +
              '<xml><head></head><body><ResponseResult><IsSuccess>1</IsSuccess><Message>&x;</Message></ResponseResult></body><sign></sign></xml>',
          );
        return true;
      case 'refused':
        await reply
          .type('text/xml; charset=utf-8')
          .send(answer({}, { ResponseResult: refused('SYSTEM_BUSY', '系统繁忙（模拟）') }));
        return true;
      default:
        return false;
    }
  };

  app.post('/IF_Get_Hospital_Trade_List', async (req, reply) => {
    requests.tradeList++;
    if (await misbehave(reply)) return reply;
    const head = readHead(req.body);
    const send = (body: Record<string, unknown>, echo: Record<string, string> = {}) =>
      reply.type('text/xml; charset=utf-8').send(answer(echo, body));
    if (typeof head === 'string') return send({ ResponseResult: refused('INVALID_REQUEST', head) });
    const begin = parseShanghai(head.get('BeginDate') ?? '');
    const end = parseShanghai(head.get('EndDate') ?? '');
    const payType = understandPayType(head.get('PayType') ?? '');
    if (!begin || !end || !payType) {
      return send({ ResponseResult: refused('INVALID_PARAMETER', 'BeginDate/EndDate/PayType 无效') });
    }
    const rows: Array<Record<string, string>> = [];
    for (const f of flows) {
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
    return send({ ResponseResult: ok, GetHospitalTradeList: rows });
  });

  app.post('/HIS_IF_Query', async (req, reply) => {
    requests.query++;
    if (await misbehave(reply)) return reply;
    const head = readHead(req.body);
    const send = (body: Record<string, unknown>, echo: Record<string, string> = {}) =>
      reply.type('text/xml; charset=utf-8').send(answer(echo, body));
    if (typeof head === 'string') return send({ ResponseResult: refused('INVALID_REQUEST', head) });
    const echo = { AccessToken: head.get('AccessToken') ?? '', OutTradeNo: head.get('OutTradeNo') ?? '' };
    if (options.accessToken !== undefined && echo.AccessToken !== options.accessToken) {
      return send({ ResponseResult: refused('ACCESS_TOKEN_INVALID', 'AccessToken 无效') }, echo);
    }
    if (echo.OutTradeNo === '')
      return send({ ResponseResult: refused('MISSING_PARAMETER', '缺少 OutTradeNo') }, echo);
    const mine = flows
      .filter((f) => f.outTradeNo === echo.OutTradeNo && !faults.drop.has(f.hisFlowId))
      .sort((a, b) => a.time.getTime() - b.time.getTime());
    const first = mine[0];
    if (!first) return send({ ResponseResult: ok }, echo); // unknown order: success, no HisTradeStatus
    return send(
      {
        ResponseResult: ok,
        HisTradeStatus: {
          TradeNo: first.tradeNo,
          OutTradeNo: first.outTradeNo,
          MedicalCard: first.cardNo,
          TradeList: mine.map((f) => {
            const fen = faults.amountFen.get(f.hisFlowId) ?? f.amountFen;
            return {
              HisFlowID: f.hisFlowId,
              TotalAmount: formatFen(f.kind === 'PAY' ? fen : -fen),
              DateTime: formatShanghai(f.time),
              PayType: PAY_CODES[f.payType],
            };
          }),
        },
      },
      echo,
    );
  });

  return {
    app,
    faults,
    requests,
    flows: () => flows,
    paymentOf: (outTradeNo) => payByOrder.get(outTradeNo),
    addPayment,
    addRefund,
    addExtra,
    loadFromTrades,
    reset() {
      flows = [];
      payByOrder.clear();
      Object.assign(faults, emptyFaults());
      requests.tradeList = 0;
      requests.query = 0;
    },
  };
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
