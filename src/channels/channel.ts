import type { Fen } from '../domain/money.js';
import type { PayType } from '../domain/trade.js';
import type { Bill } from '../domain/bill.js';
import type { ChannelCall, PaidInfo } from '../domain/payment.js';

export type { ChannelCall, PaidInfo } from '../domain/payment.js';

/**
 * The channel port. A channel is stateless: input, its merchant configuration and injected transport in,
 * a result out. It never touches the store; the services persist what it returns.
 *
 * Outcomes are values. Every answer that is not clearly final maps to "unknown" / "waiting": the services
 * then query, never assume. A thrown exception is treated as an unknown outcome too.
 */
export interface ChannelContext {
  /** The platform app the call is made for. */
  appId: string;
  /**
   * The app's configuration for this channel (ids, keys, certificates as PEM/base64 text), already decrypted,
   * by the field names of the channel's definition (see definition.ts). Never log it.
   */
  merchant: Readonly<Record<string, string>>;
  /** Where the provider should POST asynchronous notifications for this app and channel (absolute URL). */
  notifyUrl: string;
  /**
   * Records one exchange with the provider for operators (`hospay channel calls`). The channel redacts what it
   * passes: no keys, no auth codes, no buyer accounts, no ID or phone numbers.
   */
  record: (call: ChannelCall) => void;
}

/** What the platform answers the provider's notification with (each provider wants its own body). */
export interface NotifyAck {
  status: number;
  contentType: string;
  body: string;
}

export type NotifyParse =
  /** A genuine notification about one of our trades: the platform queries the trade and answers `ack`. */
  | { kind: 'trade'; outTradeNo: string; ack: NotifyAck }
  /** Genuine but of no interest (e.g. an event type we do not act on): answer `ack`. */
  | { kind: 'ignored'; ack: NotifyAck }
  /** Wrong signature, undecryptable, malformed: nothing is done; the provider is told to retry (`ack`). */
  | { kind: 'rejected'; reason: string; ack: NotifyAck };

export interface BarcodePayInput {
  outTradeNo: string;
  payType: PayType;
  amountFen: Fen;
  authCode: string;
  subject: string;
  operatorId?: string | undefined;
  terminalId?: string | undefined;
  /**
   * When the trade was created (its stored created_at; the row exists before the channel is called). A channel
   * that finds a trade again by a time of its own (UnionPay's txnTime) sends this one. Absent for other callers.
   */
  createdAt?: Date | undefined;
}

export type PayOutcome =
  | ({ kind: 'paid' } & PaidInfo)
  /** The payer must confirm on the phone (Alipay 10003, WeChat USERPAYING): query again. */
  | { kind: 'paying'; channelTradeNo?: string | undefined }
  /** A final refusal; the trade was not paid and never will be. */
  | { kind: 'declined'; code: string; zh: string; en: string }
  /** System error, timeout, unparseable answer: query before deciding. */
  | { kind: 'unknown'; reason: string };

export interface PrecreateInput {
  outTradeNo: string;
  payType: PayType;
  amountFen: Fen;
  subject: string;
  expiresAt: Date;
  /**
   * The trade's stored created_at. A channel that names an order by a time of its own (UnionPay's txnTime)
   * sends this one, so asking again (the cashier reopened) and querying later find the same order.
   */
  createdAt?: Date | undefined;
}

export interface WapPayInput extends PrecreateInput {
  /** Where the channel sends the payer after paying or giving up. */
  returnUrl: string;
  /** The payer's IP address as hospay saw it (WeChat Pay H5 compares it with the IP that opens the page). */
  payerClientIp?: string | undefined;
}

export type PrecreateOutcome =
  | { kind: 'created'; codeUrl: string; channelTradeNo?: string | undefined }
  | { kind: 'failed'; code: string; zh: string; en: string; retryable: boolean };

/**
 * What a mobile-web payment opens: a page URL (`created`), or a form the payer's browser must POST to the
 * channel's cashier (`form`: UnionPay's front-channel frontTransReq). A form is signed locally, without a call
 * to the provider, so the hosted cashier may ask for it again each time the payer opens the page.
 */
export type WapOutcome =
  | PrecreateOutcome
  | {
      kind: 'form';
      /** The provider's cashier (absolute https URL). */
      action: string;
      /** The signed fields, posted as application/x-www-form-urlencoded, as they are. */
      fields: Readonly<Record<string, string>>;
      channelTradeNo?: string | undefined;
    };

/** In-app payment: the cashier page is open inside the provider's own app (WeChat JSAPI in an official account). */
export interface InAppPayInput extends PrecreateInput {
  /**
   * The payer's id in that app: WeChat's openid for the AppID the payment is made under (in service-provider
   * mode the openid under sub_appid, or under sp_appid when no sub_appid is configured).
   */
  payerId: string;
  /** The payer's IP address as hospay saw it. */
  payerClientIp?: string | undefined;
}

export type InAppPayOutcome =
  | {
      kind: 'created';
      /**
       * What the page passes, as it is, to the app's JS bridge. WeChat: the getBrandWCPayRequest parameters
       * appId, timeStamp, nonceStr, package (prepay_id=…), signType, paySign.
       */
      bridge: Readonly<Record<string, string>>;
      channelTradeNo?: string | undefined;
    }
  | { kind: 'failed'; code: string; zh: string; en: string; retryable: boolean };

export type PayerIdOutcome =
  { kind: 'ok'; payerId: string } | { kind: 'failed'; code: string; zh: string; en: string };

/**
 * A trade as the services know it. Besides outTradeNo, the services pass what they stored, so that a channel
 * needs no state of its own to find the trade again; both are optional (other callers, tests, old rows).
 */
export interface TradeRef {
  outTradeNo: string;
  payType: PayType;
  /** The trade's created_at: when it was created, just before the pay call was sent. */
  createdAt?: Date | undefined;
  /** The stored channel_trade_no: the channel's own number for the trade (UnionPay: the payment's queryId). */
  channelTradeNo?: string | null | undefined;
}

export type QueryOutcome =
  | ({ kind: 'paid' } & PaidInfo)
  | { kind: 'waiting'; channelTradeNo?: string | undefined }
  /** Closed or revoked without payment at the channel. */
  | { kind: 'closed' }
  /** Paid, then fully refunded or revoked with a refund at the channel. */
  | ({ kind: 'refunded' } & PaidInfo)
  | { kind: 'not_found' }
  | { kind: 'unknown'; reason: string };

export type CancelOutcome =
  /** Unpaid: the trade is closed at the channel. */
  | { kind: 'closed' }
  /** Paid: the trade was refunded in full by the cancel. */
  | ({ kind: 'refunded' } & PaidInfo)
  /** Transient failure: the cancel may be retried (retry_flag=Y). */
  | { kind: 'retry'; reason: string }
  /** Will never succeed (retry_flag=N). */
  | { kind: 'failed'; code: string; zh: string; en: string };

export type CloseOutcome =
  | { kind: 'closed' }
  /** It was paid meanwhile: nothing was closed. */
  | ({ kind: 'paid' } & PaidInfo)
  | { kind: 'retry'; reason: string };

export interface RefundInput extends TradeRef {
  outRequestNo: string;
  amountFen: Fen;
  totalFen: Fen;
  reason?: string | undefined;
  /**
   * The refund record's created_at: when this outRequestNo was first asked for. The same on every repeat, so a
   * channel can send the refund with it and find that order again however much later the repeat comes.
   */
  requestedAt?: Date | undefined;
}

export type RefundOutcome =
  | { kind: 'success'; channelRefundNo: string; refundedAt: Date }
  | { kind: 'failed'; code: string; zh: string; en: string }
  | { kind: 'unknown'; reason: string };

export interface Channel {
  /** Registry id, e.g. 'simulator', 'alipay'. */
  readonly id: string;
  /** The pay types this channel can take. */
  readonly payTypes: readonly PayType[];
  barcodePay(ctx: ChannelContext, input: BarcodePayInput): Promise<PayOutcome>;
  /** A QR code the payer scans with their app (QR pay, aggregated cashier). Optional capability. */
  precreate?(ctx: ChannelContext, input: PrecreateInput): Promise<PrecreateOutcome>;
  /**
   * The day's trade bill (Asia/Shanghai business day 'yyyy-MM-dd'), fetched in the channel's own file format and
   * read by the real parser, as normalised lines in fen. Optional capability.
   */
  downloadBill?(ctx: ChannelContext, input: { date: string; payType: PayType }): Promise<Bill>;
  /** Mobile-web (H5) payment: a page URL or a form that opens the channel's cashier. Optional capability. */
  wapPay?(ctx: ChannelContext, input: WapPayInput): Promise<WapOutcome>;
  /**
   * In-app payment (WeChat JSAPI): creates the order for a payer known by their id in the app and returns the
   * signed parameters for the app's JS bridge. Optional capability.
   */
  inAppPay?(ctx: ChannelContext, input: InAppPayInput): Promise<InAppPayOutcome>;
  /**
   * Where to send the payer so that the app tells us who they are without asking them (WeChat OAuth2
   * snsapi_base); the provider sends them back to `redirectUri` with `code` and the `state` given here. Null
   * when the app's configuration cannot (e.g. no official-account secret). Goes with `payerIdFromCode`.
   */
  payerIdAuthorizeUrl?(ctx: ChannelContext, input: { redirectUri: string; state: string }): string | null;
  /** Exchanges the code the provider's OAuth sent back for the payer's id (WeChat: openid). */
  payerIdFromCode?(ctx: ChannelContext, input: { code: string }): Promise<PayerIdOutcome>;
  query(ctx: ChannelContext, ref: TradeRef): Promise<QueryOutcome>;
  cancel(ctx: ChannelContext, ref: TradeRef): Promise<CancelOutcome>;
  close(ctx: ChannelContext, ref: TradeRef): Promise<CloseOutcome>;
  refund(ctx: ChannelContext, input: RefundInput): Promise<RefundOutcome>;
  /**
   * Verifies and reads an asynchronous notification the provider POSTed to ctx.notifyUrl. The platform never
   * takes a notification's word for the payment: on `trade` it queries the trade (an idempotent sync), so a
   * duplicate notification changes nothing. Optional capability.
   */
  parseNotify?(
    ctx: ChannelContext,
    input: { headers: Readonly<Record<string, string>>; body: Buffer },
  ): Promise<NotifyParse>;
}

/**
 * The medical-insurance side (national mobile payment): the patient's authorisation, the payment token
 * (pay_auth_no) and the settlement of the insurance part. The cash part is paid through a payment Channel.
 */
export interface MedicareChannel {
  readonly id: string;
  /** Where the patient is sent to consent; the page comes back to `/oauth2/medicareAuth/<authId>/decision`. */
  /**
   * The consent page for an authorisation. `ctx` carries the app's configuration of this side (the region's
   * page differs). A real region sends the patient back with a GET to
   * `/oauth2/medicareAuth/<authId>/decision?authCode=…&state=<authId>`; its code becomes the auth_code the
   * HIS later exchanges (issueToken's `authCode`).
   */
  authorisationUrl(authId: string, ctx?: ChannelContext): string;
  issueToken(
    ctx: ChannelContext,
    input: {
      userId: string;
      /** The auth_code the HIS received (a real region's own code, to be exchanged at the centre). */
      authCode?: string | undefined;
      paymentType: string;
      cityCode?: string | undefined;
      patientName?: string | undefined;
      patientCardNo?: string | undefined;
    },
  ): Promise<
    | { kind: 'issued'; payAuthNo: string; qrCode: string; cityCode: string; cardInfo: string }
    | { kind: 'failed'; code: string; zh: string; en: string }
  >;
  preSettle(
    ctx: ChannelContext,
    input: {
      payAuthNo: string;
      outTradeNo: string;
      totalFen: Fen;
      insuranceFen: Fen;
      cashFen: Fen;
      serialNo?: string | undefined;
      /** Item-level fee details (the HIS's `fee_details`, checked at the door): sent with the fee upload. */
      feeDetails?: readonly MedicareFeeDetail[] | undefined;
    },
  ): Promise<
    | { kind: 'settled'; settlementNo: string }
    | {
        kind: 'failed';
        code: string;
        zh: string;
        en: string;
        /**
         * The fee upload the centre holds for this order when it was not settled (or its settlement is
         * unknown): a reference for reverseSettlement, which revokes it (6401) or refunds it if it was settled.
         */
        uploaded?: string | undefined;
      }
  >;
  /**
   * Undoes the insurance side of a trade that ended unpaid or was cancelled: a settlement is refunded (the
   * national 6203, refdType ALL), an upload never settled is revoked (6401). `settlementNo` is preSettle's
   * settlement number or its `uploaded` reference. Asks the centre first (6301): never undoes twice.
   */
  reverseSettlement(
    ctx: ChannelContext,
    input: { settlementNo: string; outTradeNo: string; insuranceFen: Fen },
  ): Promise<
    | { kind: 'reversed' }
    | { kind: 'retry'; reason: string }
    | { kind: 'failed'; code: string; zh: string; en: string }
  >;
  /**
   * Refunds the insurance part of a paid trade through the centre (the national 6203 with refdType HI), for a
   * refund the HIS asks for (`lc.ssc.insurance.refund`). `outRequestNo` identifies the refund: asking again
   * with it is the same refund at the centre. `unknown` when the outcome is unclear (ask again later).
   */
  refundInsurance(
    ctx: ChannelContext,
    input: {
      settlementNo: string;
      outTradeNo: string;
      outRequestNo: string;
      amountFen: Fen;
      /** The trade's whole insurance part, and what of it is already refunded. */
      insuranceFen: Fen;
      refundedFen: Fen;
    },
  ): Promise<
    | { kind: 'refunded'; refundNo: string }
    | { kind: 'unknown'; reason: string }
    | { kind: 'failed'; code: string; zh: string; en: string }
  >;
  /**
   * The centre's asynchronous notification about a settlement, verified exactly like an answer. A genuine one
   * names the order (out_trade_no and the centre's order id); nothing in it is taken as the settlement's state.
   */
  parseSettlementNotify?(ctx: ChannelContext, body: Buffer): MedicareNotifyParse;
  /** The centre's view of a settlement (6301), for syncing after a notification. */
  querySettlement?(
    ctx: ChannelContext,
    input: { settlementNo: string; outTradeNo: string },
  ): Promise<
    | {
        kind: 'state';
        state: 'settled' | 'reversed' | 'never_settled' | 'in_progress' | 'other';
        code: string;
      }
    | { kind: 'unknown'; reason: string }
  >;
}

/**
 * A notification of the medical-insurance centre, verified: a genuine one names the order (answer `ack` once
 * it is synced, `retryAck` when it could not be, so the centre sends it again); anything else is `rejected`.
 */
export type MedicareNotifyParse =
  | { kind: 'settlement'; outTradeNo: string; orderId: string; ack: NotifyAck; retryAck: NotifyAck }
  | { kind: 'rejected'; reason: string; ack: NotifyAck };

/**
 * One item of the fee details uploaded with the insurance part (the national 费用明细 feedetail: the HIS's names
 * in snake_case, sent in the centre's camelCase). Amounts: `amountFen` in fen; `count` and `price` as the
 * decimal text the HIS wrote (up to 4 and 6 decimals: not money amounts of the platform).
 */
export interface MedicareFeeDetail {
  /** feedetl_sn: unique within the order. */
  serialNo: string;
  /** med_list_codg: the national catalogue code. */
  listCode: string;
  /** medins_list_codg: the institution's catalogue code. */
  institutionCode: string;
  institutionName?: string | undefined;
  /** det_item_fee_sumamt. */
  amountFen: Fen;
  /** cnt. */
  count: string;
  /** pric. */
  price: string;
  /** fee_ocur_time, yyyy-MM-dd HH:mm:ss (Shanghai). */
  occurredAt: string;
  /** Optional national fields, by their snake_case names (rxno, drord_no, bilg_dept_codg, …): text only. */
  extra: Readonly<Record<string, string>>;
}
