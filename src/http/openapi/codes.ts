import { Errors, HospayError } from '../../domain/errors.js';
import { codeOf, type GatewayCode } from '../gateway/envelope.js';
import { GatewayErrors } from '../gateway/routes.js';
import { ENVELOPE_PARAMS, GATEWAY_CONTRACT } from '../gateway/contract.js';

/** One sub_code the gateway can answer, with its gateway code and its message as the code writes it. */
export interface SubCodeEntry {
  sub_code: string;
  code: GatewayCode;
  zh: string;
  en: string;
  /** transport / authentication (steps 1–7 of docs/gateway.md §3), field, business or system. */
  stage: 'request' | 'field' | 'business' | 'system';
}

/**
 * Codes the services write as literals (services/medicare.ts, cancel.ts): mirrored here with their messages;
 * test/unit/openapi.test.ts scans the services so a new literal code cannot be left out.
 */
const SERVICE_CODES: readonly HospayError[] = [
  new HospayError(
    'AUTH_CODE_INVALID',
    'business',
    'auth_code 无效、已使用或已过期',
    'auth_code is invalid, used or expired',
  ),
  new HospayError(
    'AUTH_CODE_USER_MISMATCH',
    'business',
    'auth_code 不属于该用户',
    'auth_code belongs to another user',
  ),
  new HospayError(
    'PAY_AUTH_NO_INVALID',
    'business',
    'pay_auth_no 无效或已过期，请重新授权',
    'pay_auth_no is invalid or expired; authorise again',
  ),
  new HospayError(
    'PAY_AUTH_NO_USER_MISMATCH',
    'business',
    'pay_auth_no 不属于该用户',
    'pay_auth_no belongs to another user',
  ),
  new HospayError(
    'PAY_AUTH_NO_USED',
    'business',
    'pay_auth_no 已用于其他订单',
    'pay_auth_no was already used for another trade',
  ),
  new HospayError('NO_INSURANCE_PART', 'business', '该交易没有医保部分', 'the trade has no insurance part'),
  new HospayError(
    'INSURANCE_NOT_SETTLED',
    'business',
    '该交易的医保部分未结算或已冲正，不能经医保中心退费',
    'the insurance part of this trade is not settled (or was reversed): it cannot be refunded through the centre',
  ),
  new HospayError(
    'CANCEL_RETRY',
    'system',
    '撤销暂时失败，请重试',
    'the cancel failed for now; call it again',
  ),
  new HospayError(
    'CANCEL_IN_PROGRESS',
    'system',
    '撤销正在处理中，请稍后重试',
    'a cancel of this trade is in progress; call again shortly',
  ),
];

function entry(e: HospayError, stage: SubCodeEntry['stage']): SubCodeEntry {
  return { sub_code: e.code, code: codeOf(e), zh: e.zh, en: e.en, stage };
}

/** Every sub_code of the gateway, once each (the first message of a code that has several). */
export function gatewaySubCodes(): SubCodeEntry[] {
  const list: SubCodeEntry[] = [];
  const request: HospayError[] = [
    GatewayErrors.tooLarge(),
    GatewayErrors.contentType(),
    GatewayErrors.encoding(),
    GatewayErrors.repeated('<name>'),
    ...Object.keys(ENVELOPE_PARAMS).map((p) => GatewayErrors.missing(p)),
    GatewayErrors.appId(),
    GatewayErrors.noKey(),
    GatewayErrors.signType(),
    GatewayErrors.weakKey(),
    GatewayErrors.signature(),
    GatewayErrors.timestampFormat(),
    GatewayErrors.stale(5),
    GatewayErrors.nonceFormat(),
    GatewayErrors.replay(),
    GatewayErrors.method('<method>'),
  ];
  list.push(...request.map((e) => entry(e, 'request')));
  list.push(
    entry(Errors.invalidField('biz_content', '须为 JSON 对象', 'must be a JSON object'), 'field'),
    entry(Errors.missingField('<field>'), 'field'),
    entry(Errors.invalidField('<field>', '<原因>', '<why>'), 'field'),
  );
  const business: HospayError[] = [
    Errors.tradeNotExist(),
    Errors.outTradeNoConflict(),
    Errors.orderAlreadyPaid(),
    Errors.tradeHasClose(),
    Errors.tradeHasFinished(),
    Errors.tradeNotPaid(),
    Errors.tradeNoMismatch(),
    Errors.totalAmountMismatch(),
    Errors.payTypeMismatch(),
    Errors.refundAmountExceeded(),
    Errors.outRequestNoConflict(),
    Errors.cancelWindowExpired(24 * 3_600_000),
    Errors.tradeHasRefund(),
    Errors.payTypeNotEnabled('<pay_type>'),
    Errors.payTypeNotSupported({
      payType: 'eshimin',
      zh: '不支持该支付方式',
      en: 'this pay type is not supported',
    }),
    ...SERVICE_CODES.filter((e) => e.kind === 'business'),
  ];
  list.push(...business.map((e) => entry(e, 'business')));
  const system: HospayError[] = [
    Errors.refundProcessing(),
    Errors.systemError(),
    Errors.channelError(),
    ...SERVICE_CODES.filter((e) => e.kind === 'system'),
  ];
  list.push(...system.map((e) => entry(e, 'system')));
  const seen = new Set<string>();
  return list.filter((e) => (seen.has(e.sub_code) ? false : (seen.add(e.sub_code), true)));
}

/** The sub_codes a method's contract names must all be in the catalogue (checked by the unit test). */
export function contractCodes(): string[] {
  return [...new Set(Object.values(GATEWAY_CONTRACT).flatMap((m) => m.codes))];
}

/** The gateway codes (code / msg) of the envelope. */
export const GATEWAY_CODES: readonly { code: GatewayCode; msg: string; zh: string; en: string }[] = [
  { code: '10000', msg: 'Success', zh: '成功', en: 'done; the result is in biz_content' },
  {
    code: '40001',
    msg: 'Missing Required Arguments',
    zh: '缺少必填参数',
    en: 'a required parameter is missing',
  },
  {
    code: '40002',
    msg: 'Invalid Arguments',
    zh: '参数无效（含签名、时间戳、nonce）',
    en: 'a parameter, the signature, timestamp or nonce is wrong',
  },
  {
    code: '20001',
    msg: 'Insufficient Token Permissions',
    zh: '应用无效或未登记公钥',
    en: 'unknown or disabled app, or no public key',
  },
  {
    code: '40004',
    msg: 'Business Failed',
    zh: '业务规则拒绝，见 sub_code',
    en: 'refused by a business rule; see sub_code',
  },
  {
    code: '20000',
    msg: 'Service Currently Unavailable',
    zh: '系统或渠道故障，结果未知：请查询或用相同单号重试',
    en: 'system or channel fault, the outcome is unknown: query, or repeat with the same numbers',
  },
];
