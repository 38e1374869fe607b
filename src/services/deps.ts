import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Clock } from '../domain/clock.js';
import { compactShanghai } from '../domain/clock.js';
import type { AppRepository } from '../store/apps.js';
import { appChannelMap } from '../store/apps.js';
import type { TradeRepository } from '../store/trades.js';
import type { RefundRepository } from '../store/refunds.js';
import type { PlatformKeyRepository } from '../store/keys.js';
import type { ChannelCallLog } from '../store/channel-calls.js';
import type { NotificationRepository } from '../store/notifications.js';
import type { NonceRepository } from '../store/nonces.js';
import type { MedicareRepository } from '../store/medicare.js';
import type { OperatorRepository } from '../store/operators.js';
import type { LoginAttemptRepository } from '../store/login-attempts.js';
import type { RetentionRepository } from '../store/retention.js';
import type { EmbeddedBackup } from '../store/backup.js';
import type { AuditRepository } from '../store/audit.js';
import type { HealthRepository } from '../store/health.js';
import { observeChannelCall } from '../metrics.js';
import type { DeskRepository } from '../store/desk.js';
import type { OperatorTokenRepository } from '../store/operator-tokens.js';
import type { DeskRequestRepository } from '../store/desk-requests.js';
import type { ChannelConfigs } from './channel-config.js';
import type { App, Trade } from '../store/schema.js';
import type { ChannelRegistry } from '../channels/registry.js';
import { chosenChannel } from '../channels/choice.js';
import type { Channel, ChannelContext, MedicareChannel } from '../channels/channel.js';
import { PAY_TYPES, type PayType } from '../domain/trade.js';
import { Errors, HospayError } from '../domain/errors.js';
import { randomDigits } from '../crypto/tokens.js';
import type { NotifyResolver } from './notify-http.js';

/** Everything a use case needs, wired once in main.ts. */
export interface ServiceDeps {
  apps: AppRepository;
  trades: TradeRepository;
  /** Refunds and cancels' reversals, step by step (reserve, then complete, fail or release). */
  refunds: RefundRepository;
  /** The platform's signing key pair (gateway answers, notifications, return_url redirects). */
  keys: PlatformKeyRepository;
  channels: ChannelRegistry;
  /** Per-app channel configuration (secrets sealed), read by channelContext. */
  channelConfigs: ChannelConfigs;
  /** The record of exchanges with the providers. */
  channelCalls: ChannelCallLog;
  /** The notification outbox (claims, attempts, the operators' list and resend). */
  notifications: NotificationRepository;
  /** The gateway's spent nonces (the gateway door decides when a request's nonce is stored). */
  nonces: NonceRepository;
  /** The medical-insurance authorisations (auth_code) and pay_auth_no tokens. */
  medicare: MedicareRepository;
  /** Finance operators and their sessions. */
  operators: OperatorRepository;
  /** The finance login's failure counts (back-off). */
  loginAttempts: LoginAttemptRepository;
  /** Channel calls and notification attempts past their retention. */
  retention: RetentionRepository;
  /** A consistent backup of the embedded database taken in this process (null: PostgreSQL, or in memory). */
  backup?: EmbeddedBackup | null;
  /** The desk's audit trail: every operator action (desk pages, admin API, CLI). */
  audit: AuditRepository;
  /** The trade desk's searches, export and audit list (from the read database) and a trade's records. */
  desk: DeskRepository;
  /** Operators' personal API tokens (services/access.ts authenticateBearer). */
  operatorTokens: OperatorTokenRepository;
  /** The desk's money requests (refund, cancel) and their maker–checker approvals. */
  deskRequests: DeskRequestRepository;
  /** The reads behind /readyz and the scrape-time gauges of /metrics (store/health.ts). */
  health: HealthRepository;
  clock: Clock;
  config: Config;
  /** Seals and opens secrets stored in the database (the HIS AccessToken, channel keys). */
  secrets: SecretBox;
  log: Logger;
  sleep: (ms: number) => Promise<void>;
  /** How the notifier resolves a notify_url's host name (notify-http.ts); dns.lookup unless set (tests). */
  notifyResolver?: NotifyResolver;
}

export const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Our own trade number: HP + yyyyMMddHHmmss (Asia/Shanghai) + 10 random digits. */
export function newTradeNo(now: Date): string {
  return `HP${compactShanghai(now)}${randomDigits(10)}`;
}

/**
 * The channel serving the app's pay type, or null when the pay type is not enabled for the app: unmapped in an
 * app that takes real money, mapped to the simulator where it may not be (see channels/choice.ts), or mapped to
 * a channel that is not registered or does not take the pay type.
 */
export function channelOrNull(
  deps: Pick<ServiceDeps, 'channels' | 'config'>,
  app: Pick<App, 'channel_map'>,
  payType: PayType,
): { id: string; channel: Channel } | null {
  const id = chosenChannel(appChannelMap(app), payType, deps.config.simulator);
  const channel = id === null ? undefined : deps.channels.get(id);
  if (id === null || !channel || !channel.payTypes.includes(payType)) return null;
  return { id, channel };
}

/** The channel serving the app's pay type; PAY_TYPE_NOT_ENABLED when there is none (see channelOrNull). */
export function channelFor(deps: ServiceDeps, app: App, payType: PayType): { id: string; channel: Channel } {
  const ch = channelOrNull(deps, app, payType);
  if (!ch) throw Errors.payTypeNotEnabled(payType);
  return ch;
}

/** The pay types enabled for the app, in the spec's order (the hosted cashier offers only these). */
export function enabledPayTypes(
  deps: Pick<ServiceDeps, 'channels' | 'config'>,
  app: Pick<App, 'channel_map'>,
): PayType[] {
  return PAY_TYPES.filter((p) => channelOrNull(deps, app, p) !== null);
}

/** The channel a stored trade was made on. */
export function channelOfTrade(deps: ServiceDeps, trade: Trade): Channel | undefined {
  return trade.channel ? deps.channels.get(trade.channel) : undefined;
}

/**
 * The context of a channel call for an app: its configuration of that channel (decrypted), the URL the
 * provider notifies, and the recorder of the exchange. `channelId` is a payment channel's id, or
 * "medicare:<id>" for the medical-insurance side.
 */
export async function channelContext(
  deps: ServiceDeps,
  appId: string,
  channelId: string,
): Promise<ChannelContext> {
  const merchant = await deps.channelConfigs.load(appId, channelId);
  return {
    appId,
    merchant,
    notifyUrl: `${deps.config.publicBaseUrl}/channels/${encodeURIComponent(channelId)}/notify/${encodeURIComponent(appId)}`,
    record: (call) => {
      observeChannelCall(channelId, call);
      deps.channelCalls.record(appId, channelId, call, deps.clock.now());
    },
  };
}

/**
 * The app's medical-insurance side (pay type "medicare" in its channel map; the simulator only as
 * channels/choice.ts allows); PAY_TYPE_NOT_ENABLED when there is none.
 */
export function medicareFor(
  deps: Pick<ServiceDeps, 'channels' | 'config'>,
  app: Pick<App, 'channel_map'>,
): { id: string; channel: MedicareChannel; ctxId: string } {
  const id = chosenChannel(appChannelMap(app), 'medicare', deps.config.simulator);
  const channel = id === null ? undefined : deps.channels.medicare(id);
  if (id === null || !channel) throw Errors.payTypeNotEnabled('medicare');
  return { id, channel, ctxId: `medicare:${id}` };
}

/** Runs a channel call; a thrown error becomes `fallback` (an unknown outcome), logged without the payload. */
export async function guarded<T>(
  deps: ServiceDeps,
  what: string,
  fallback: T,
  call: () => Promise<T>,
): Promise<T> {
  try {
    return await call();
  } catch (err) {
    deps.log.warn(
      { err: err instanceof Error ? err.message : String(err), call: what },
      'channel call failed',
    );
    return fallback;
  }
}

/** A paid trade (TRADE_SUCCESS, or TRADE_FINISHED once its refund window is over). */
export function isPaid(trade: Pick<Trade, 'status'>): boolean {
  return trade.status === 'TRADE_SUCCESS' || trade.status === 'TRADE_FINISHED';
}

/**
 * A pay request naming an order that is already paid (a repeat after a time-out, a new payment code, another
 * kind of pay): nothing is charged, and the answer shows the paid trade (its status, numbers and amount) so that
 * the HIS never charges the patient again under a new number. SubCode TRADE_HAS_SUCCESS.
 */
export class TradeAlreadyPaid extends HospayError {
  constructor(
    readonly trade: Trade,
    /** The request is for the order that was paid (same amount and patient); only the way to pay differs. */
    readonly sameOrder: boolean,
  ) {
    const e = sameOrder ? Errors.orderAlreadyPaid() : Errors.orderAlreadyPaidOtherwise();
    super(e.code, e.kind, e.zh, e.en);
  }
}

/**
 * A repeated order number: the same kind and content may go on (idempotent repeat); another kind, other
 * content or a burnt ('void') number is refused. A paid order is answered as paid (TradeAlreadyPaid) whenever
 * the request differs, and also for an identical repeat with openOnly (QR, H5: nothing left to pay); with
 * openOnly a closed trade is refused too. `sameOrder` tells whether a paid trade is the order this request asks
 * for (amount, patient), which decides the message.
 */
export function checkRepeat(
  trade: Trade,
  kind: Trade['kind'],
  fingerprint: string,
  opts: { openOnly?: boolean; sameOrder: (paid: Trade) => boolean },
): void {
  if (trade.kind === 'void') throw Errors.tradeHasClose();
  const identical = trade.kind === kind && trade.fingerprint === fingerprint;
  if (isPaid(trade) && (!identical || opts.openOnly))
    throw new TradeAlreadyPaid(trade, identical || opts.sameOrder(trade));
  if (trade.kind !== kind) throw Errors.kindMismatch();
  if (trade.fingerprint !== fingerprint) throw Errors.outTradeNoConflict();
  if (opts.openOnly && trade.status === 'TRADE_CLOSED') throw Errors.tradeHasClose();
}
