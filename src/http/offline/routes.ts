import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Errors, HospayError } from '../../domain/errors.js';
import { formatFen } from '../../domain/money.js';
import { formatShanghai } from '../../domain/clock.js';
import type { App, Trade } from '../../services/records.js';
import { TradeAlreadyPaid, type ServiceDeps } from '../../services/deps.js';
import { barcodePay } from '../../services/barcode-pay.js';
import { qrPay } from '../../services/qr-pay.js';
import { queryTrade } from '../../services/query.js';
import { cancelTrade } from '../../services/cancel.js';
import { refundTrade } from '../../services/refund.js';
import { FieldReader, validateTradeDetail } from './fields.js';
import { encodeOfflineAnswer, readOfflineBody } from './body.js';
import {
  MAX_XML_BYTES,
  XmlErrors,
  buildOfflineXml,
  parseOfflineXml,
  type XmlCharset,
  type XmlFields,
  type XmlObject,
} from '../../formats/xml.js';
import { countRequest } from '../../metrics.js';

/** What one interface answers: the result element (also on some errors), or an error. */
interface Answer {
  error?: HospayError;
  /** A success with a SubCode of its own (TRADE_HAS_SUCCESS: paid before, nothing charged now): IsSuccess 1. */
  notice?: HospayError;
  resultName: string;
  result?: XmlObject;
}

type Handler = (deps: ServiceDeps, app: App, f: FieldReader) => Promise<Answer>;

const time = (d: Date | null) => (d ? formatShanghai(d) : '');

function tradeResult(app: App, t: Trade): XmlObject {
  return {
    TradeNo: t.channel_trade_no ?? '',
    OutTradeNo: t.out_trade_no,
    OpenUserID: app.id,
    TotalAmount: formatFen(t.total_fen),
    PaymentDateTime: time(t.paid_at),
    PayType: t.pay_type ?? '',
    TradeStatus: t.status,
    PlatformTradeNo: t.trade_no,
  };
}

function statusResult(app: App, t: Trade): XmlObject {
  return {
    TradeNo: t.channel_trade_no ?? '',
    OutTradeNo: t.out_trade_no,
    OpenUserID: app.id,
    TradeStatus: t.status,
    HospitalID: t.hospital_id ?? '',
    TotalAmount: formatFen(t.total_fen),
    OperatorID: t.operator_id ?? '',
    TerminalID: t.terminal_id ?? '',
    BuyerLogonId: t.buyer_logon_id ?? '',
    PaymentDateTime: time(t.paid_at),
    Buyer_user_id: t.buyer_user_id ?? '',
    PayType: t.pay_type ?? '',
    RefundFee: formatFen(t.refunded_fen),
    PlatformTradeNo: t.trade_no,
    Category: t.category,
  };
}

/** The interfaces of the offline door (spec chapter 5), by name. */
export const OFFLINE_INTERFACES: Record<string, Handler> = {
  async FWC_IF_Barcode_Pay(deps, app, f) {
    const cmd = {
      app,
      outTradeNo: f.orderNo('OutTradeNo'),
      authCode: f.required(
        'AuthCode',
        32,
        /^[0-9]{10,32}$/,
        '付款码须为 10～32 位数字',
        'must be 10 to 32 digits',
      ),
      amountFen: f.amount('TotalAmount'),
      subject: f.required('Caption', 128),
      body: f.optional('Descriptive', 256),
      operatorId: f.optional('OperatorID', 32),
      patientName: f.required('PatientName', 64),
      inhospitalNo: f.required('InhospitalNo', 64),
      orderType: f.orderType('OrderType'),
      terminalId: f.optional('TerminalID', 32),
      payType: f.payType('PayType'),
      polls: f.count('Cnt', 99),
    };
    const r = await barcodePay(deps, cmd);
    return {
      resultName: 'BarcodeTradeResult',
      result: tradeResult(app, r.trade),
      ...(r.error ? { error: r.error } : {}),
      ...(r.notice ? { notice: r.notice } : {}),
    };
  },

  async FWC_IF_Qrcode_Pay(deps, app, f): Promise<Answer> {
    const tradeDetail = f.optional('TradeDetail', 8000);
    if (tradeDetail !== undefined) validateTradeDetail(tradeDetail);
    const cmd = {
      app,
      outTradeNo: f.orderNo('OutTradeNo'),
      amountFen: f.amount('TotalAmount'),
      subject: f.required('Caption', 128),
      body: f.optional('Descriptive', 256),
      tradeDetail,
      orderType: f.orderType('OrderType'),
      timeoutExpress: f.optional('TimeoutExpress', 6),
      payType: f.payType('PayType'),
      patientName: f.required('PatientName', 64),
      tel: f.optional('Tel', 20, /^\+?[0-9-]{5,20}$/, '须为电话号码', 'must be a phone number'),
      inhospitalNo: f.required('InhospitalNo', 64),
    };
    let r;
    try {
      r = await qrPay(deps, cmd);
    } catch (e) {
      // A paid order: no code to show; the answer says it is paid and how (the HIS must not charge again).
      if (!(e instanceof TradeAlreadyPaid)) throw e;
      return {
        error: e,
        resultName: 'QrcodeTradePayResult',
        result: {
          OutTradeNo: e.trade.out_trade_no,
          TwoDimensionCode: '',
          PlatformTradeNo: e.trade.trade_no,
          ...tradeResult(app, e.trade),
        },
      };
    }
    return {
      resultName: 'QrcodeTradePayResult',
      result: {
        OutTradeNo: r.trade.out_trade_no,
        TwoDimensionCode: r.codeUrl,
        PlatformTradeNo: r.trade.trade_no,
        ExpireTime: time(r.trade.expires_at),
      },
    };
  },

  async FWC_IF_Barcode_Pay_Query(deps, app, f) {
    const outTradeNo = f.orderNo('OutTradeNo');
    try {
      const t = await queryTrade(deps, app, outTradeNo);
      return { resultName: 'BarcodeTradeStatus', result: statusResult(app, t) };
    } catch (e) {
      if (e instanceof HospayError && e.code === 'TRADE_NOT_EXIST') {
        return {
          error: e,
          resultName: 'BarcodeTradeStatus',
          result: { TradeNo: '', OutTradeNo: outTradeNo, OpenUserID: app.id, TradeStatus: 'TRADE_NOT_EXIST' },
        };
      }
      throw e;
    }
  },

  async FWC_IF_Barcode_Pay_Cancel(deps, app, f) {
    const outTradeNo = f.orderNo('OutTradeNo');
    const r = await cancelTrade(deps, app, outTradeNo);
    const base = { TradeNo: r.trade?.channel_trade_no ?? '', OutTradeNo: outTradeNo };
    if (r.ok) {
      return {
        resultName: 'BarcodeTradeCancelResult',
        result: { ...base, RetryFlag: 'N', CancelAction: r.action, TradeStatus: r.trade.status },
      };
    }
    return {
      error: r.error,
      resultName: 'BarcodeTradeCancelResult',
      result: {
        ...base,
        RetryFlag: r.retry ? 'Y' : 'N',
        CancelAction: '',
        TradeStatus: r.trade?.status ?? '',
      },
    };
  },

  async FWC_IF_Barcode_Pay_Refund(deps, app, f) {
    const cmd = {
      app,
      tradeNo: f.required('TradeNo', 64, /^[A-Za-z0-9_-]+$/, '格式不正确', 'wrong format'),
      amountFen: f.amount('RefundAmount'),
      outRequestNo: f.required(
        'OutRequestNo',
        32,
        /^[A-Za-z0-9_-]+$/,
        '只能包含字母、数字、下划线和连字符',
        'only letters, digits, _ and - are allowed',
      ),
      reason: f.optional('RefundmentReason', 256),
      hospitalId: f.optional('HospitalID', 64),
      terminalId: f.optional('TerminalID', 32),
      outTradeNo: f.orderNo('OutTradeNo'),
      totalFen: f.amount('TotalAmount'),
      payType: f.payType('PayType'),
    };
    const r = await refundTrade(deps, cmd);
    return {
      resultName: 'BarcodeTradeRefundResult',
      result: {
        TradeNo: r.trade.channel_trade_no ?? '',
        OutTradeNo: r.trade.out_trade_no,
        OpenUserID: app.id,
        RefundFee: formatFen(r.trade.refunded_fen),
        RefundChange: r.fundChange ? 'Y' : 'N',
        OutRequestNo: r.refund.out_request_no,
        RefundAmount: formatFen(r.refund.amount_fen),
        TradeStatus: r.trade.status,
      },
    };
  },
};

/** The head fields each interface echoes back (the spec's output samples echo the request head). */
const ECHO_FIELDS: Record<string, readonly string[]> = {
  FWC_IF_Barcode_Pay: [
    'AccessToken',
    'OutTradeNo',
    'AuthCode',
    'TotalAmount',
    'Caption',
    'Descriptive',
    'OperatorID',
    'PatientName',
    'InhospitalNo',
    'OrderType',
    'TerminalID',
    'PayType',
    'Cnt',
  ],
  FWC_IF_Qrcode_Pay: [
    'AccessToken',
    'OutTradeNo',
    'TotalAmount',
    'Caption',
    'Descriptive',
    'TradeDetail',
    'OrderType',
    'TimeoutExpress',
    'PayType',
    'PatientName',
    'Tel',
    'InhospitalNo',
  ],
  FWC_IF_Barcode_Pay_Query: ['AccessToken', 'OutTradeNo'],
  FWC_IF_Barcode_Pay_Cancel: ['AccessToken', 'OutTradeNo'],
  FWC_IF_Barcode_Pay_Refund: [
    'AccessToken',
    'TradeNo',
    'RefundAmount',
    'OutRequestNo',
    'RefundmentReason',
    'HospitalID',
    'TerminalID',
    'OutTradeNo',
    'TotalAmount',
    'PayType',
  ],
};

const MESSAGES: Record<string, string> = {
  '1': '成功 / Success',
  '0': '业务失败 / Business failed',
  '2': '处理业务时发生错误 / Error while processing',
  '3': 'AccessToken 验证失败 / AccessToken verification failed',
};

export function isSuccessOf(error: HospayError | undefined): '0' | '1' | '2' | '3' {
  if (!error) return '1';
  if (error.kind === 'auth') return '3';
  if (error.kind === 'system') return '2';
  return '0';
}

function render(name: string, fields: XmlFields | null, answer: Answer): string {
  const head: XmlObject = {};
  if (fields) for (const k of ECHO_FIELDS[name] ?? []) if (fields.has(k)) head[k] = fields.get(k) ?? '';
  const isSuccess = isSuccessOf(answer.error);
  const body: XmlObject = {
    ResponseResult: {
      IsSuccess: isSuccess,
      Message: MESSAGES[isSuccess] ?? '',
      SubCode: answer.error?.code ?? answer.notice?.code ?? 'SUCCESS',
      SubMessage: answer.error?.bilingual ?? answer.notice?.bilingual ?? '成功 / Success',
    },
  };
  if (answer.result) body[answer.resultName] = answer.result;
  return buildOfflineXml(head, body);
}

/** Who asks: the request's logger (the SOAP door's carries `door: 'soap'`). */
export interface OfflineCaller {
  /** (pino's loggers say which levels are on: the call's line is not even built when info is off.) */
  log: FastifyBaseLogger & { isLevelEnabled?: (level: string) => boolean };
  /** The door for metrics (hospay_requests_total): offline unless said. */
  door?: 'offline' | 'soap';
}

/**
 * The one code path behind the XML door and the SOAP door: one interface by name, one request document (or a
 * function reading it, so that its decoding errors are answered like any other), the exact answer text.
 * Never throws: every error is answered in-band (IsSuccess 0, 2 or 3).
 */
export async function answerOfflineDocument(
  deps: ServiceDeps,
  caller: OfflineCaller,
  name: string,
  xmlText: string | (() => string),
): Promise<string> {
  const handler = Object.hasOwn(OFFLINE_INTERFACES, name) ? OFFLINE_INTERFACES[name] : undefined;
  let fields: XmlFields | null = null;
  let answer: Answer;
  let appId: string | undefined;
  try {
    if (!handler) {
      throw new HospayError(
        'UNKNOWN_INTERFACE',
        'invalid',
        `未知接口 ${name.slice(0, 64)}`,
        `unknown interface ${name.slice(0, 64)}`,
      );
    }
    fields = parseOfflineXml(typeof xmlText === 'string' ? xmlText : xmlText());
    const token = fields.get('AccessToken') ?? '';
    const app = token ? await deps.apps.authenticate(token) : null;
    if (!app) throw Errors.accessTokenInvalid();
    appId = app.id;
    answer = await handler(deps, app, new FieldReader(fields));
  } catch (e) {
    if (!(e instanceof HospayError)) {
      caller.log.error(
        { err: e instanceof Error ? e.message : String(e), iface: name },
        'offline interface failed',
      );
    }
    answer = { error: e instanceof HospayError ? e : Errors.systemError(), resultName: '' };
    if (name === 'FWC_IF_Barcode_Pay_Query' && fields) {
      // The spec's query lists ILLEGAL_ARGUMENT and SYSTEM_ERROR as trade statuses.
      const status =
        answer.error?.kind === 'invalid'
          ? 'ILLEGAL_ARGUMENT'
          : answer.error?.kind === 'system'
            ? 'SYSTEM_ERROR'
            : '';
      if (status)
        answer = {
          ...answer,
          resultName: 'BarcodeTradeStatus',
          result: { OutTradeNo: fields.get('OutTradeNo') ?? '', TradeStatus: status },
        };
    }
  }
  if (caller.log.isLevelEnabled?.('info') !== false)
    caller.log.info(
      { iface: name, app: appId, subCode: answer.error?.code ?? answer.notice?.code ?? 'SUCCESS' },
      'offline call',
    );
  countRequest(
    caller.door ?? 'offline',
    handler ? name : 'unknown',
    answer.error?.code ?? answer.notice?.code,
  );
  return render(name, fields, answer);
}

export async function registerOfflineRoutes(app: FastifyInstance, deps: ServiceDeps): Promise<void> {
  await app.register(async (scope) => {
    // Every body arrives as bytes: we decode (body.ts: strict, in the declared encoding) and parse (hardened).
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_XML_BYTES }, (_req, body, done) =>
      done(null, body),
    );

    scope.setErrorHandler((err: Error & { code?: string; statusCode?: number }, req, reply) => {
      const name = (req.params as { name?: string } | undefined)?.name ?? '';
      let error: HospayError;
      if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') error = XmlErrors.tooLarge();
      else if (
        err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ||
        err.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH'
      ) {
        error = XmlErrors.contentType();
      } else {
        req.log.error({ err: err.message, code: err.code }, 'offline door: unexpected error');
        error = Errors.systemError();
      }
      void reply
        .code(200)
        .type('text/xml; charset=utf-8')
        .send(render(name, null, { error, resultName: '' }));
    });

    scope.post(
      '/offline/:name',
      async (req: FastifyRequest<{ Params: { name: string } }>, reply: FastifyReply) => {
        // The shared code path works on text; this door turns bytes into text and the answer back into bytes,
        // in the request's encoding (UTF-8, GBK, GB2312 or GB18030), refusals included once it is known.
        const request: { charset: XmlCharset } = { charset: 'utf-8' };
        const text = await answerOfflineDocument(deps, { log: req.log }, req.params.name, () =>
          readOfflineBody(req.body, req.headers['content-type'], (charset) => (request.charset = charset)),
        );
        const answer = encodeOfflineAnswer(text, request.charset);
        return reply.code(200).type(answer.contentType).send(answer.body);
      },
    );
  });
}
