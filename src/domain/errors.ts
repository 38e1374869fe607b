/**
 * One error vocabulary for the whole platform. Each door (offline XML, gateway JSON, pages) translates a
 * HospayError into its own envelope in one place. Codes are stable: integrators program against them.
 *
 * kind:
 *  - invalid: the request itself is wrong (missing / malformed field). Nothing was changed.
 *  - business: the request is well formed but refused by a business rule (trade closed, amount exceeded...).
 *  - auth: the caller is not who it claims to be.
 *  - system: an internal or channel fault; the outcome may be unknown, retry or query.
 */
export type ErrorKind = 'invalid' | 'business' | 'auth' | 'system';

export class HospayError extends Error {
  constructor(
    readonly code: string,
    readonly kind: ErrorKind,
    readonly zh: string,
    readonly en: string,
    readonly extra: { retryable?: boolean; field?: string } = {},
  ) {
    super(`${code}: ${en}`);
    this.name = 'HospayError';
  }

  /** The bilingual message shown to integrators: "中文 / English". */
  get bilingual(): string {
    return `${this.zh} / ${this.en}`;
  }
}

export const Errors = {
  missingField: (field: string) =>
    new HospayError(
      `MISSING_FIELD.${field}`,
      'invalid',
      `缺少必填字段 ${field}`,
      `required field ${field} is missing`,
      {
        field,
      },
    ),
  invalidField: (field: string, zhWhy: string, enWhy: string) =>
    new HospayError(
      `INVALID_FIELD.${field}`,
      'invalid',
      `字段 ${field} 无效：${zhWhy}`,
      `field ${field} is invalid: ${enWhy}`,
      {
        field,
      },
    ),
  tooLong: (field: string, max: number) =>
    new HospayError(
      `INVALID_FIELD.${field}`,
      'invalid',
      `字段 ${field} 超长（最多 ${max} 个字符）`,
      `field ${field} is too long (at most ${max} characters)`,
      { field },
    ),
  repeatedField: (field: string) =>
    new HospayError(
      `REPEATED_FIELD.${field}`,
      'invalid',
      `字段 ${field} 重复出现`,
      `field ${field} appears more than once`,
      {
        field,
      },
    ),
  accessTokenInvalid: () =>
    new HospayError(
      'ACCESS_TOKEN_INVALID',
      'auth',
      'AccessToken 无效或应用已停用',
      'AccessToken is unknown or the app is disabled',
    ),
  tradeNotExist: () => new HospayError('TRADE_NOT_EXIST', 'business', '交易不存在', 'trade does not exist'),
  outTradeNoConflict: () =>
    new HospayError(
      'OUT_TRADE_NO_CONFLICT',
      'business',
      '该外部订单号已被使用且内容不同，请使用新的订单号',
      'this OutTradeNo was already used with different content; use a new order number',
    ),
  tradeHasSuccess: () =>
    new HospayError('TRADE_HAS_SUCCESS', 'business', '交易已被支付', 'the trade has already been paid'),
  /** A pay request naming an order already paid, for the same amount and patient: nothing more is charged. */
  orderAlreadyPaid: () =>
    new HospayError(
      'TRADE_HAS_SUCCESS',
      'business',
      '订单已支付，请勿重复收费',
      'the order is already paid; do not charge again',
    ),
  /** A pay request naming an order already paid, but with another amount or patient: nothing is charged. */
  orderAlreadyPaidOtherwise: () =>
    new HospayError(
      'TRADE_HAS_SUCCESS',
      'business',
      '该订单号已支付，但金额或患者与本次请求不同，请核对，勿重复收费',
      'this order number is already paid, with another amount or patient than this request; check it, do not charge again',
    ),
  tradeHasClose: () => new HospayError('TRADE_HAS_CLOSE', 'business', '交易已关闭', 'the trade is closed'),
  tradeHasFinished: () =>
    new HospayError(
      'TRADE_HAS_FINISHED',
      'business',
      '交易已结束，超过可退款期限',
      'the trade is finished; the refund window is over',
    ),
  tradeNotPaid: () =>
    new HospayError(
      'TRADE_NOT_PAID',
      'business',
      '交易未支付，不能退款',
      'the trade is not paid; nothing to refund',
    ),
  tradeNoMismatch: () =>
    new HospayError(
      'TRADE_NO_MISMATCH',
      'business',
      'TradeNo 与该订单不符',
      'TradeNo does not belong to this OutTradeNo',
    ),
  totalAmountMismatch: () =>
    new HospayError(
      'TOTAL_AMOUNT_MISMATCH',
      'business',
      'TotalAmount 与原交易金额不符',
      'TotalAmount does not match the trade',
    ),
  payTypeMismatch: () =>
    new HospayError(
      'PAY_TYPE_MISMATCH',
      'business',
      'PayType 与原交易不符',
      'PayType does not match the trade',
    ),
  kindMismatch: () =>
    new HospayError(
      'OUT_TRADE_NO_CONFLICT',
      'business',
      '该外部订单号已用于其他类型的交易',
      'this OutTradeNo is already used by another kind of trade',
    ),
  refundAmountExceeded: () =>
    new HospayError(
      'REFUND_AMOUNT_EXCEEDED',
      'business',
      '退款金额超过可退金额',
      'the refund amount exceeds what is left to refund',
    ),
  outRequestNoConflict: () =>
    new HospayError(
      'OUT_REQUEST_NO_CONFLICT',
      'business',
      '该退款请求号已用于不同金额的退款',
      'this OutRequestNo was already used with a different amount',
    ),
  refundProcessing: () =>
    new HospayError(
      'REFUND_PROCESSING',
      'system',
      '退款结果未知，请稍后用相同的退款请求号重试',
      'refund outcome unknown; retry later with the same OutRequestNo',
      { retryable: true },
    ),
  cancelWindowExpired: (windowMs: number) => {
    const hours = windowMs / 3_600_000;
    const zh = hours >= 1 ? `${+hours.toFixed(1)} 小时` : `${Math.round(windowMs / 60_000)} 分钟`;
    const en = hours >= 1 ? `${+hours.toFixed(1)} hours` : `${Math.round(windowMs / 60_000)} minutes`;
    return new HospayError(
      'CANCEL_WINDOW_EXPIRED',
      'business',
      `交易创建已超过 ${zh}，不能撤销，请使用退款`,
      `the trade is older than ${en} and can no longer be cancelled; use refund`,
    );
  },
  tradeHasRefund: () =>
    new HospayError(
      'TRADE_HAS_REFUND',
      'business',
      '交易已有退款，不能撤销，请使用退款接口',
      'the trade already has refunds and cannot be cancelled; use refund',
    ),
  payTypeUnknown: () =>
    new HospayError(
      'INVALID_FIELD.AuthCode',
      'invalid',
      '无法从付款码识别支付方式，请传入 PayType',
      'cannot tell the payment channel from AuthCode; send PayType',
      { field: 'AuthCode' },
    ),
  /** The app has no channel for the pay type (without one: for any pay type). Not retryable: an operator's fix. */
  payTypeNotEnabled: (payType?: string) =>
    payType === undefined
      ? new HospayError(
          'PAY_TYPE_NOT_ENABLED',
          'business',
          '该应用未开通任何支付方式（未配置支付渠道），请联系平台管理员',
          'no pay type is enabled for this app (no payment channel is configured); ask the platform operator',
        )
      : new HospayError(
          'PAY_TYPE_NOT_ENABLED',
          'business',
          `该应用未开通支付方式 ${payType}（未配置该支付渠道），请换用其他支付方式或联系平台管理员`,
          `pay type ${payType} is not enabled for this app (no payment channel is configured for it); use another pay type or ask the platform operator`,
        ),
  /** A pay type the spec names that hospay cannot take at all (eshimin): the reason, not a configuration gap. */
  payTypeNotSupported: (r: { payType: string; zh: string; en: string }) =>
    new HospayError('PAY_TYPE_NOT_SUPPORTED', 'business', r.zh, r.en),
  systemError: () =>
    new HospayError(
      'SYSTEM_ERROR',
      'system',
      '系统繁忙，请稍后重试或查询',
      'internal error; retry or query later',
      {
        retryable: true,
      },
    ),
  channelError: () =>
    new HospayError(
      'CHANNEL_ERROR',
      'system',
      '支付渠道暂时不可用，结果未知，请查询',
      'the payment channel is unavailable; the outcome is unknown, please query',
      { retryable: true },
    ),
} as const;

/** A decline from the channel: a value with the channel's code, mapped to our stable code. */
export function declined(code: string, zh: string, en: string): HospayError {
  return new HospayError(code, 'business', zh, en);
}

/**
 * What an operator reads at the console or from the admin API (the CLI, configuration, start-up, channel and
 * reconciliation settings, administration): a message shown as it is, bilingual where it is written for people.
 * Every such error is an OperatorError (typed subclasses where a caller tells them apart); its kind chooses, in
 * one place, what the door does with it — the CLI exits 2 for `usage` (and points to the help), 1 for the
 * others. It is deliberately not a HospayError: a HIS never receives an operator's message (a door that meets
 * one while serving a HIS answers SYSTEM_ERROR and logs it).
 */
export type OperatorErrorKind = 'usage' | 'not_found' | 'conflict' | 'invalid' | 'unavailable';

export class OperatorError extends Error {
  /** A stable code, e.g. OPERATOR.NOT_FOUND. */
  readonly code: string;

  constructor(
    readonly operatorKind: OperatorErrorKind,
    message: string,
  ) {
    super(message);
    this.code = `OPERATOR.${operatorKind.toUpperCase()}`;
    this.name = new.target.name;
  }
}

/** A command line that cannot be run as written (unknown command or option, missing or malformed value). */
export class UsageError extends OperatorError {
  constructor(message: string) {
    super('usage', message);
  }
}

/** The thing named (an app, a notification, a difference, a channel) does not exist. */
export class NotFoundError extends OperatorError {
  constructor(message: string) {
    super('not_found', message);
  }
}

/** The request conflicts with what is stored (an operator that exists, a difference already resolved). */
export class ConflictError extends OperatorError {
  constructor(message: string) {
    super('conflict', message);
  }
}

/** A value that is not valid: in the environment, a channel configuration, a setting, an operator's input. */
export class InvalidInputError extends OperatorError {
  constructor(message: string) {
    super('invalid', message);
  }
}

/** Something the platform needs is not there or busy (a data directory in use, a channel that cannot start). */
export class UnavailableError extends OperatorError {
  constructor(message: string) {
    super('unavailable', message);
  }
}
