/**
 * The gateway's contract, one declarative description per method: the biz_content fields (kind, required, maximum
 * length, pattern, allowed values, description) and the answer's fields. The method handlers (routes.ts) read
 * their fields through BizReader, which takes every limit from here (a field not described here cannot be read),
 * and the OpenAPI document (http/openapi/) is generated from the same objects: one source.
 */

/** How a biz_content field is read (biz.ts BizReader, http/field-reader.ts). */
export type BizKind =
  /** Text, trimmed; at most `max` characters; optionally a pattern. */
  | 'text'
  /** An order or request number: letters, digits, `_` and `-`; always required. */
  | 'orderNo'
  /** A yuan amount above zero (JSON number or string), at most two decimals; always required. */
  | 'amount'
  /** A yuan amount that may be zero. */
  | 'amountOrZero'
  /** An absolute http(s) URL without userinfo, at most 512 characters. */
  | 'url'
  /** An object or array (or its JSON text), kept as JSON text of at most `max` characters. */
  | 'json'
  /** An order type: a name of ORDER_TYPES (any case) or its position 1–8. */
  | 'orderType';

export interface FieldPattern {
  readonly re: RegExp;
  readonly zh: string;
  readonly en: string;
}

export interface BizField {
  readonly kind: BizKind;
  readonly required: boolean;
  /** Required only under a condition (the handler decides): the condition, for the documentation. */
  readonly requiredWhen?: { readonly zh: string; readonly en: string };
  /** At most this many characters (amounts: 12, URLs: 512). */
  readonly max: number;
  readonly pattern?: FieldPattern;
  /** The allowed values, for the documentation (the pattern or the handler enforces them). */
  readonly enum?: readonly string[];
  readonly zh: string;
  readonly en: string;
  readonly example?: string | number;
  /** hospay's extension to the spec. */
  readonly extension?: boolean;
}

export type AnswerType = 'string' | 'amount' | 'json-text';

export interface AnswerField {
  readonly type: AnswerType;
  readonly zh: string;
  readonly en: string;
  /** Present only in some answers (the condition is in the description). */
  readonly optional?: boolean;
  readonly enum?: readonly string[];
}

export interface MethodContract {
  readonly zh: string;
  readonly en: string;
  /** The section of docs/gateway.md that explains the method. */
  readonly doc: string;
  readonly fields: Readonly<Record<string, BizField>>;
  /** The fields of biz_content in a successful answer (after sub_code and sub_msg). */
  readonly answer: Readonly<Record<string, AnswerField>>;
  /** The business and system sub_codes this method can answer (besides MISSING_FIELD / INVALID_FIELD). */
  readonly codes: readonly string[];
}

const ORDER_NO_RULE: FieldPattern = {
  re: /^[A-Za-z0-9_-]+$/,
  zh: '只能包含字母、数字、下划线和连字符',
  en: 'only letters, digits, _ and - are allowed',
};
export const ORDER_NO_PATTERN = ORDER_NO_RULE;

const ID_CARD: FieldPattern = {
  re: /^[0-9]{15}$|^[0-9]{17}[0-9Xx]$/,
  zh: '须为 15 或 18 位身份证号',
  en: 'must be a 15- or 18-character ID number',
};
const YB_RS: FieldPattern = { re: /^(YB|RS)$/, zh: '须为 YB 或 RS', en: 'must be YB or RS' };

export const MEDICARE_PAYMENT_TYPES = ['alipay', 'weixin', 'unionpay', 'eshimin', 'elecny'] as const;

const f = (
  kind: BizKind,
  required: boolean,
  max: number,
  zh: string,
  en: string,
  more: Partial<BizField> = {},
) => ({ kind, required, max, zh, en, ...more }) as BizField;

const outTradeNo = f(
  'orderNo',
  true,
  64,
  'HIS 的订单号（外部订单号），每个应用内唯一',
  "the HIS's order number, unique per app",
  {
    pattern: ORDER_NO_RULE,
    example: 'MZ20261125010101001',
  },
);
const openid = f(
  'text',
  false,
  128,
  '付款人在商户 AppID 下的微信 openid',
  "the payer's WeChat openid under the merchant's AppID",
  { pattern: ORDER_NO_RULE, extension: true },
);
const subOpenid = f(
  'text',
  false,
  128,
  '付款人在子商户 sub_appid 下的 openid',
  "the payer's openid under the sub-merchant's sub_appid",
  { pattern: ORDER_NO_RULE, extension: true },
);
const timeoutExpress = f(
  'text',
  false,
  6,
  '可支付时长：1m～15d，或 1c（当天午夜前），默认 20m',
  'how long the trade may be paid: 1m–15d, or 1c (until midnight Asia/Shanghai); default 20m',
  { example: '30m' },
);
const payerIdFields = { openid, sub_openid: subOpenid };

/** The answer fields of a trade (lc.trade.query, and the paid trade of TRADE_HAS_SUCCESS). */
const TRADE_ANSWER: Record<string, AnswerField> = {
  trade_no: {
    type: 'string',
    zh: '渠道交易号（未支付时为空）',
    en: "the channel's trade number ('' until paid)",
  },
  platform_trade_no: { type: 'string', zh: 'hospay 交易号', en: "hospay's trade number" },
  out_trade_no: { type: 'string', zh: 'HIS 订单号', en: "the HIS's order number" },
  trade_status: {
    type: 'string',
    zh: '交易状态',
    en: 'the trade status',
    enum: ['WAIT_BUYER_PAY', 'TRADE_SUCCESS', 'TRADE_CLOSED', 'TRADE_FINISHED'],
  },
  total_amount: { type: 'amount', zh: '订单金额（元）', en: 'the amount, yuan' },
  refund_fee: { type: 'amount', zh: '已退款金额（元）', en: 'refunded so far, yuan' },
  gmt_payment: {
    type: 'string',
    zh: '支付时间 yyyy-MM-dd HH:mm:ss（未支付时为空）',
    en: "paid at, yyyy-MM-dd HH:mm:ss ('' until paid)",
  },
  payment_type: { type: 'string', zh: '支付方式', en: 'the pay type' },
  buyer_user_id: { type: 'string', zh: '付款人在渠道的用户号', en: "the payer's user id at the channel" },
  insurance_fee: {
    type: 'amount',
    zh: '医保部分（仅医保混合支付）',
    en: 'the insurance part (mixed payments only)',
    optional: true,
  },
  cash_fee: {
    type: 'amount',
    zh: '自费部分（仅医保混合支付）',
    en: 'the cash part (mixed payments only)',
    optional: true,
  },
  insurance_refund_fee: {
    type: 'amount',
    zh: '已退医保金额（仅医保混合支付）',
    en: 'insurance refunded so far (mixed payments only)',
    optional: true,
  },
};

const SYSTEM_CODES = ['SYSTEM_ERROR', 'CHANNEL_ERROR'];

/** The gateway's methods. GATEWAY_METHODS (routes.ts) has exactly these keys (test/unit/openapi.test.ts). */
export const GATEWAY_CONTRACT: Readonly<Record<string, MethodContract>> = {
  'lc.trade.h5.pay': {
    zh: 'H5 支付：创建交易，返回收银台地址 goto_url',
    en: 'H5 payment: creates a trade and answers goto_url, the page to send the payer to',
    doc: 'docs/gateway.md#5-lctradeh5pay--h5支付',
    fields: {
      out_trade_no: outTradeNo,
      total_amount: f(
        'amount',
        true,
        12,
        '金额（元），大于 0，最多两位小数',
        'the amount in yuan, above 0, at most 2 decimals',
        {
          example: 88.88,
        },
      ),
      subject: f('text', true, 128, '订单标题', 'the order title shown to the payer', {
        example: '门诊缴费',
      }),
      body: f('text', false, 128, '订单描述', 'the order description'),
      timeout_express: timeoutExpress,
      return_url: f(
        'url',
        false,
        512,
        '支付后浏览器返回的地址',
        "where the payer's browser goes after paying",
        {
          example: 'https://his.example.cn/pay/return',
        },
      ),
      notify_url: f(
        'url',
        false,
        512,
        '支付结果通知地址（lc.trade.notify）',
        'where hospay POSTs lc.trade.notify',
        {
          example: 'https://his.example.cn/pay/notify',
        },
      ),
      order_type: f(
        'orderType',
        true,
        32,
        '订单类型（名称或 1～8）',
        'the kind of order (a name, or its position 1–8)',
        {
          example: 'TREATMENT',
        },
      ),
      disable_pay_channels: f(
        'text',
        false,
        128,
        '随交易保存，暂不生效',
        'kept with the trade; not acted on today',
      ),
      business_params: f(
        'json',
        false,
        512,
        '对象或其 JSON 文本，随交易保存',
        'an object (or its JSON text), kept with the trade',
      ),
      agreement_sign_params: f(
        'json',
        false,
        4096,
        '对象或其 JSON 文本，随交易保存',
        'an object (or its JSON text), kept with the trade',
      ),
      ...payerIdFields,
    },
    answer: {
      out_trade_no: TRADE_ANSWER['out_trade_no']!,
      platform_trade_no: TRADE_ANSWER['platform_trade_no']!,
      goto_url: {
        type: 'string',
        zh: '收银台地址，将付款人引导至此',
        en: 'the cashier page to send the payer to',
      },
    },
    codes: [
      'OUT_TRADE_NO_CONFLICT',
      'TRADE_HAS_SUCCESS',
      'TRADE_HAS_CLOSE',
      'PAY_TYPE_NOT_ENABLED',
      ...SYSTEM_CODES,
    ],
  },

  'lc.trade.query': {
    zh: '交易查询',
    en: 'trade query',
    doc: 'docs/gateway.md#7-lctradequery--交易查询-extension',
    fields: { out_trade_no: outTradeNo },
    answer: TRADE_ANSWER,
    codes: ['TRADE_NOT_EXIST', ...SYSTEM_CODES],
  },

  'lc.trade.cancel': {
    zh: '交易撤销：未支付则关闭，已支付则全额退款',
    en: 'trade cancel: closes an unpaid trade, refunds a paid one in full',
    doc: 'docs/gateway.md#8-lctradecancel--交易撤销',
    fields: {
      out_trade_no: outTradeNo,
      operator_id: f('text', false, 30, '操作员编号', 'the operator'),
      terminal_id: f('text', false, 32, '终端编号', 'the terminal'),
    },
    answer: {
      trade_no: TRADE_ANSWER['trade_no']!,
      platform_trade_no: TRADE_ANSWER['platform_trade_no']!,
      out_trade_no: TRADE_ANSWER['out_trade_no']!,
      retry_flag: {
        type: 'string',
        zh: '是否需要重试（Y/N），失败时也返回',
        en: 'whether to call again (Y/N); also in refusals',
        enum: ['Y', 'N'],
      },
      action: {
        type: 'string',
        zh: '所做的动作：close 或 refund',
        en: 'what was done: close or refund',
        enum: ['close', 'refund', ''],
      },
      trade_status: TRADE_ANSWER['trade_status']!,
    },
    codes: [
      'TRADE_NOT_EXIST',
      'CANCEL_WINDOW_EXPIRED',
      'TRADE_HAS_REFUND',
      'TRADE_HAS_FINISHED',
      'CANCEL_RETRY',
      'CANCEL_IN_PROGRESS',
      ...SYSTEM_CODES,
    ],
  },

  'lc.trade.refund': {
    zh: '交易退款（可部分、多次）',
    en: 'refund (partial and repeated refunds allowed)',
    doc: 'docs/gateway.md#9-lctraderefund--交易退款-extension',
    fields: {
      out_trade_no: outTradeNo,
      trade_no: f(
        'text',
        false,
        64,
        '渠道交易号（可选，须与订单相符）',
        "the channel's trade number (optional; must match)",
      ),
      refund_amount: f('amount', true, 12, '本次退款金额（元）', 'the amount refunded this time, yuan', {
        example: 10.0,
      }),
      out_request_no: f(
        'orderNo',
        true,
        32,
        '退款请求号，同一交易内唯一',
        'the refund request number, unique per trade',
        {
          pattern: ORDER_NO_RULE,
          example: 'RF20261125001',
        },
      ),
      refund_reason: f('text', false, 256, '退款原因', 'the reason'),
      terminal_id: f('text', false, 32, '终端编号', 'the terminal'),
    },
    answer: {
      trade_no: TRADE_ANSWER['trade_no']!,
      platform_trade_no: TRADE_ANSWER['platform_trade_no']!,
      out_trade_no: TRADE_ANSWER['out_trade_no']!,
      out_request_no: { type: 'string', zh: '退款请求号', en: 'the refund request number' },
      refund_amount: { type: 'amount', zh: '本次退款金额（元）', en: 'this refund, yuan' },
      refund_fee: TRADE_ANSWER['refund_fee']!,
      fund_change: {
        type: 'string',
        zh: '本次是否有资金变动（Y/N）',
        en: 'whether money moved this time (Y/N)',
        enum: ['Y', 'N'],
      },
      trade_status: TRADE_ANSWER['trade_status']!,
    },
    codes: [
      'TRADE_NOT_EXIST',
      'TRADE_NOT_PAID',
      'TRADE_HAS_CLOSE',
      'TRADE_HAS_FINISHED',
      'TRADE_NO_MISMATCH',
      'TOTAL_AMOUNT_MISMATCH',
      'PAY_TYPE_MISMATCH',
      'REFUND_AMOUNT_EXCEEDED',
      'OUT_REQUEST_NO_CONFLICT',
      'REFUND_PROCESSING',
      ...SYSTEM_CODES,
    ],
  },

  'lc.ssc.user.token': {
    zh: '医保电子凭证-用户二维码值：用授权码换取 pay_auth_no',
    en: 'medical insurance: exchanges the auth_code for pay_auth_no',
    doc: 'docs/gateway.md#112-lcsscusertoken--医保电子凭证-用户二维码值',
    fields: {
      payment_type: f('text', true, 36, '支付方式（不区分大小写）', 'the pay type, any case', {
        enum: MEDICARE_PAYMENT_TYPES,
        example: 'alipay',
      }),
      kinsfolk_card_no: f('text', false, 100, '接受，不使用', 'accepted, not used'),
      kinsfolk_name: f('text', false, 100, '接受，不使用', 'accepted, not used'),
      third_open_id: f('text', false, 36, '接受，不使用', 'accepted, not used'),
      user_id: f('text', true, 64, '授权的 open_id', 'the open_id of the authorisation'),
      auth_code: f('text', true, 64, '授权码（一次性）', 'the single-use authorisation code'),
      patient_name: f('text', false, 64, '患者姓名', "the patient's name", { requiredWhen: alipayOnly() }),
      patient_card_no: f('text', false, 18, '身份证号', 'the ID number', {
        pattern: ID_CARD,
        requiredWhen: alipayOnly(),
      }),
      biz_city_code: f('text', false, 6, '参保地 6 位城市编码', 'six digits: where the insurance is used', {
        pattern: { re: /^[0-9]{6}$/, zh: '须为 6 位数字', en: 'must be 6 digits' },
        requiredWhen: alipayOnly(),
      }),
      ssc_ins_type: f('text', false, 5, 'YB（医保）或 RS（人社）', 'YB (medical insurance) or RS', {
        pattern: YB_RS,
        enum: ['YB', 'RS'],
        requiredWhen: alipayOnly(),
      }),
    },
    answer: {
      qr_code: { type: 'string', zh: '医保电子凭证二维码值', en: 'the QR code value' },
      city_code: { type: 'string', zh: '城市编码', en: 'the city code' },
      card_info: { type: 'string', zh: '卡信息', en: 'card information' },
      pay_auth_no: {
        type: 'string',
        zh: '支付授权码（30 分钟内有效，仅可支付一笔）',
        en: 'the payment token (30 minutes, one trade)',
      },
    },
    codes: ['AUTH_CODE_INVALID', 'AUTH_CODE_USER_MISMATCH', 'PAY_TYPE_NOT_SUPPORTED', ...SYSTEM_CODES],
  },

  'lc.ssc.trade.pay': {
    zh: '电子社保卡发起支付：医保部分 + 自费部分',
    en: 'medical insurance mixed payment: the insurance part and the cash part',
    doc: 'docs/gateway.md#113-lcssctradepay--电子社保卡发起支付',
    fields: {
      payment_type: f('text', true, 36, '支付方式（不区分大小写）', 'the pay type, any case', {
        enum: MEDICARE_PAYMENT_TYPES,
        example: 'weixin',
      }),
      ssc_serial_no: f('text', false, 64, '人社系统业务流水号', 'the social-security serial number', {
        requiredWhen: {
          zh: 'payment_type 为 alipay 且无 request_content 时',
          en: 'for alipay, unless request_content',
        },
      }),
      request_content: f(
        'text',
        false,
        4000,
        '处方明细（检查，不保存）',
        'prescription details (checked, not kept)',
        {
          requiredWhen: {
            zh: 'payment_type 为 alipay 且无 ssc_serial_no 时',
            en: 'for alipay, unless ssc_serial_no',
          },
        },
      ),
      patient_card_no: f('text', true, 18, '身份证号（脱敏保存）', 'the ID number (kept masked)', {
        pattern: ID_CARD,
      }),
      return_url: f(
        'url',
        true,
        512,
        '支付后浏览器返回的地址',
        "where the payer's browser goes after paying",
      ),
      total_amount: f(
        'amount',
        true,
        12,
        '总金额（元）= 医保 + 自费',
        'the total, yuan = insurance_fee + cash_fee',
      ),
      fee_details: f(
        'json',
        false,
        64 * 1024,
        '费用明细（数组或其 JSON 文本）',
        'item-level fee details (an array or its JSON text)',
        {
          extension: true,
        },
      ),
      out_trade_no: outTradeNo,
      ssc_scene: f(
        'text',
        true,
        16,
        '场景：REGISTRATION（挂号）或 TREATMENT（诊间）',
        'REGISTRATION or TREATMENT',
        {
          pattern: {
            re: /^(REGISTRATION|TREATMENT)$/,
            zh: '须为 REGISTRATION 或 TREATMENT',
            en: 'must be REGISTRATION or TREATMENT',
          },
          enum: ['REGISTRATION', 'TREATMENT'],
        },
      ),
      subject: f('text', true, 128, '订单标题', 'the order title'),
      notify_url: f('url', true, 512, '支付结果通知地址', 'where hospay POSTs lc.trade.notify'),
      cash_fee: f('amountOrZero', true, 12, '自费部分（元），可为 0', 'the cash part, yuan; may be 0'),
      insurance_fee: f(
        'amountOrZero',
        true,
        12,
        '医保部分（元），可为 0',
        'the insurance part, yuan; may be 0',
      ),
      reduced_fee: f(
        'amountOrZero',
        false,
        12,
        '医院减免（元），保存',
        "the hospital's reduction, yuan; kept",
      ),
      user_id: f(
        'text',
        true,
        64,
        '患者 open_id，须为 pay_auth_no 的所有人',
        "the patient's open_id; owner of pay_auth_no",
      ),
      pay_auth_no: f('text', true, 64, '来自 lc.ssc.user.token', 'from lc.ssc.user.token'),
      patient_name: f('text', true, 64, '患者姓名', "the patient's name"),
      operator_id: f('text', false, 30, '操作员编号', 'the operator'),
      timeout_express: timeoutExpress,
      body: f('text', false, 128, '订单描述', 'the order description'),
      org_no: f('text', true, 64, '医疗机构编码', "the medical institution's code"),
      org_name: f('text', true, 128, '医疗机构名称', "the medical institution's name"),
      city_code: f('text', true, 12, '城市编码', 'the city code'),
      ssc_ins_type: f('text', true, 5, 'YB（医保）或 RS（人社）', 'YB or RS', {
        pattern: YB_RS,
        enum: ['YB', 'RS'],
      }),
      ssc_bill_no: f('text', false, 64, '保存', 'kept'),
      credit_org: f('text', false, 10, '保存', 'kept'),
      pay_scene: f('text', false, 50, '保存', 'kept'),
      ...payerIdFields,
    },
    answer: {
      out_trade_no: TRADE_ANSWER['out_trade_no']!,
      platform_trade_no: TRADE_ANSWER['platform_trade_no']!,
      trade_status: TRADE_ANSWER['trade_status']!,
      goto_url: { type: 'string', zh: '自费部分的收银台地址', en: 'the cashier page for the cash part' },
      paystr: {
        type: 'json-text',
        zh: 'JSSDK 支付参数（JSON 文本；含 pay_url）',
        en: 'the JSSDK pay parameters (JSON text, with pay_url)',
      },
    },
    codes: [
      'PAY_TYPE_NOT_SUPPORTED',
      'PAY_TYPE_NOT_ENABLED',
      'PAY_AUTH_NO_INVALID',
      'PAY_AUTH_NO_USER_MISMATCH',
      'PAY_AUTH_NO_USED',
      'OUT_TRADE_NO_CONFLICT',
      'TRADE_HAS_SUCCESS',
      'TRADE_HAS_CLOSE',
      ...SYSTEM_CODES,
    ],
  },

  'lc.ssc.insurance.refund': {
    zh: '医保部分退款（经医保中心，或仅记录）',
    en: 'refunds the insurance part (through the centre, or only recorded)',
    doc: 'docs/gateway.md#114-lcsscinsurancerefund--医保部分退款-extension',
    fields: {
      insurance_refund_mode: f(
        'text',
        false,
        6,
        'CENTRE（默认，经医保中心）或 RECORD（仅记录）',
        'CENTRE (default) or RECORD',
        {
          pattern: { re: /^(CENTRE|RECORD)$/, zh: '须为 CENTRE 或 RECORD', en: 'must be CENTRE or RECORD' },
          enum: ['CENTRE', 'RECORD'],
          extension: true,
        },
      ),
      out_trade_no: outTradeNo,
      out_request_no: f(
        'orderNo',
        true,
        32,
        '退款请求号，在该交易的全部退款中唯一',
        'unique among all refunds of the trade',
        {
          pattern: ORDER_NO_RULE,
        },
      ),
      insurance_refund_fee: f(
        'amount',
        true,
        12,
        '本次退还的医保金额（元）',
        'the insurance amount refunded this time, yuan',
      ),
    },
    answer: {
      out_trade_no: TRADE_ANSWER['out_trade_no']!,
      platform_trade_no: TRADE_ANSWER['platform_trade_no']!,
      insurance_fee: { type: 'amount', zh: '医保部分（元）', en: 'the insurance part, yuan' },
      insurance_refund_fee: {
        type: 'amount',
        zh: '已退医保金额（元）',
        en: 'insurance refunded so far, yuan',
      },
      recorded: {
        type: 'string',
        zh: '本次是否新记录（Y/N）',
        en: 'whether this call recorded it (Y/N)',
        enum: ['Y', 'N'],
      },
      insurance_refund_mode: {
        type: 'string',
        zh: '实际方式',
        en: 'how it was done',
        enum: ['CENTRE', 'RECORD'],
      },
      insurance_refund_no: {
        type: 'string',
        zh: '医保中心退款号（经中心时）',
        en: "the centre's refund number (through the centre)",
        optional: true,
      },
    },
    codes: [
      'TRADE_NOT_EXIST',
      'TRADE_NOT_PAID',
      'NO_INSURANCE_PART',
      'INSURANCE_NOT_SETTLED',
      'REFUND_AMOUNT_EXCEEDED',
      'OUT_REQUEST_NO_CONFLICT',
      'REFUND_PROCESSING',
      ...SYSTEM_CODES,
    ],
  },
};

function alipayOnly() {
  return { zh: 'payment_type 为 alipay 时必填', en: 'required when payment_type is alipay' };
}

/** The common (envelope) parameters of every request, in the order they are checked (docs/gateway.md §2). */
export const ENVELOPE_PARAMS: Readonly<
  Record<string, { zh: string; en: string; pattern?: string; example: string }>
> = {
  app_id: { zh: '应用编号', en: "the app's id", example: 'hp2d2a3c3043fd2fb1' },
  method: { zh: '接口名称', en: "the method's name", example: 'lc.trade.query' },
  timestamp: {
    zh: '请求时间 yyyy-MM-dd HH:mm:ss（北京时间），与服务器相差不超过允许的时钟偏差',
    en: 'the time of the request, yyyy-MM-dd HH:mm:ss in Asia/Shanghai, within the allowed clock skew',
    pattern: '^\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}$',
    example: '2026-11-25 10:07:50',
  },
  nonce_str: {
    zh: '1～64 位字母数字或 -_，每个应用只能使用一次',
    en: '1–64 letters, digits, - or _; used once per app',
    pattern: '^[A-Za-z0-9_-]{1,64}$',
    example: 'daaac020-0403-424e-847a-16c7671275de',
  },
  biz_content: {
    zh: '接口参数的 JSON 文本（见各接口的 contentSchema）',
    en: "the method's parameters as JSON text (see each method's contentSchema)",
    example: '{"out_trade_no":"MZ20261125010101001"}',
  },
  sign_type: {
    zh: 'RSA2（SHA256withRSA，推荐）或 RSA（SHA1withRSA，仅旧式签名应用）',
    en: 'RSA2 (SHA256withRSA, recommended) or RSA (SHA1withRSA, legacy apps only)',
    pattern: '^[Rr][Ss][Aa]2?$',
    example: 'RSA2',
  },
  sign: {
    zh: '对其余全部参数的 Base64 签名（docs/signing.md）',
    en: 'the Base64 signature over all other parameters (docs/signing.md)',
    example: 'ZfuSchm+gD4X…',
  },
};
