import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';
import type { Fen } from '../domain/money.js';
import type { Role } from '../domain/access.js';

/** bigint columns are parsed to JS numbers by both drivers (amounts stay far below 2^53). */
type Int8 = ColumnType<number, number | undefined, number>;
/** An amount column (`*_fen`, bigint or integer): read as Fen, and only Fen may be written to it. */
type FenColumn = ColumnType<Fen, Fen | undefined, Fen>;
type Timestamp = ColumnType<Date, Date, Date>;
type NullableTimestamp = ColumnType<Date | null, Date | null | undefined, Date | null>;

export interface AppsTable {
  id: string;
  name: string;
  hospital_id: string | null;
  token_hash: string;
  status: 'active' | 'disabled';
  /** JSON text of Category[]; null = platform defaults. */
  categories: string | null;
  /** JSON text: pay type -> channel id; a missing pay type: see channels/choice.ts (simulator only for the demo). */
  channel_map: string;
  created_at: Timestamp;
  /** The app's RSA public key (PEM) for the gateway; null = gateway not enabled. */
  public_key: string | null;
  /** Legacy signing chosen for this app: sign_type RSA (SHA-1) and keys under 2048 bits (migration 014). */
  legacy_sign: ColumnType<boolean, boolean | undefined, boolean>;
  /** JSON text: the redirect_uri prefixes allowed for medical-insurance authorisation. */
  redirect_uris: ColumnType<string, string | undefined, string>;
  /** The HIS's base URL for reconciliation (spec chapter 7); null = no HIS comparison. */
  his_base_url: ColumnType<string | null, string | null | undefined, string | null>;
  /** JSON text of ReconSettings (src/reconcile/settings.ts); '{}' = the defaults. */
  recon_settings: ColumnType<string, string | undefined, string>;
  /** The HIS's AccessToken for HIS_IF_Query, sealed with the master key (SecretBox); null = none. */
  his_token_sealed: ColumnType<string | null, string | null | undefined, string | null>;
  /**
   * JSON text: the private CIDR ranges this app's notify_url may reach (services/notify-target.ts); '[]' = none.
   * Loopback, link-local and metadata addresses are never allowed, whatever this says.
   */
  notify_private_cidrs: ColumnType<string, string | undefined, string>;
  /** Money actions at the desk (refund, cancel) need a second person's approval (021); default on. */
  desk_approval: ColumnType<boolean, boolean | undefined, boolean>;
}

export interface TradesTable {
  id: Generated<number>;
  trade_no: string;
  app_id: string;
  out_trade_no: string;
  /** 'void': an order number cancelled before hospay ever saw a payment for it (burnt, never payable). */
  kind: 'barcode' | 'qrcode' | 'h5' | 'void';
  status: 'WAIT_BUYER_PAY' | 'TRADE_SUCCESS' | 'TRADE_CLOSED' | 'TRADE_FINISHED';
  pay_type: string | null;
  channel: string | null;
  category: string;
  order_type: string;
  total_fen: FenColumn;
  refund_reserved_fen: FenColumn;
  refunded_fen: FenColumn;
  subject: string;
  body: string | null;
  operator_id: string | null;
  terminal_id: string | null;
  hospital_id: string | null;
  patient_name: string | null;
  inhospital_no: string | null;
  tel: string | null;
  trade_detail: string | null;
  timeout_express: string | null;
  fingerprint: string;
  channel_trade_no: string | null;
  /** What the HIS was given as TwoDimensionCode: the channel's code, or our cashier page (aggregated). */
  code_url: string | null;
  /** The channel's own code URL once a channel trade exists. */
  channel_code_url: string | null;
  cashier_token: string | null;
  buyer_logon_id: string | null;
  buyer_user_id: string | null;
  cancel_action: 'close' | 'refund' | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  expires_at: Timestamp;
  paid_at: NullableTimestamp;
  closed_at: NullableTimestamp;
  lease_until: NullableTimestamp;
  lease_owner: string | null;
  job_attempts: ColumnType<number, number | undefined, number>;
  notify_url: ColumnType<string | null, string | null | undefined, string | null>;
  return_url: ColumnType<string | null, string | null | undefined, string | null>;
  /** JSON text of what the HIS sent beyond the core fields (disable_pay_channels, business_params, medical data). */
  extra: ColumnType<string | null, string | null | undefined, string | null>;
  /** Mixed payment: the medical-insurance part, settled by the national system, not refundable here. */
  insurance_fen: FenColumn;
  /** The insurance part the hospital reports as refunded through the national process. */
  insurance_refunded_fen: FenColumn;
  reduced_fen: FenColumn;
  /** NONE: no insurance part; SETTLED at the medical-insurance side; REVERSED when the trade ended unpaid or cancelled. */
  insurance_state: ColumnType<
    'NONE' | 'SETTLED' | 'REVERSED',
    'NONE' | 'SETTLED' | 'REVERSED' | undefined,
    'NONE' | 'SETTLED' | 'REVERSED'
  >;
  settlement_no: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface RefundsTable {
  id: Generated<number>;
  trade_id: number;
  app_id: string;
  out_request_no: string;
  /** 'insurance': the insurance part, refunded by the hospital through the national process (recorded only). */
  kind: 'refund' | 'cancel' | 'insurance';
  amount_fen: FenColumn;
  status: 'PROCESSING' | 'SUCCESS' | 'FAILED';
  reason: string | null;
  hospital_id: string | null;
  terminal_id: string | null;
  channel_refund_no: string | null;
  fail_code: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  finished_at: NullableTimestamp;
  /** While set and in the future, one request is talking to the channel about this refund. */
  lease_until: NullableTimestamp;
}

/** The simulator's own state: it plays a remote provider and keeps its own books. */
export interface SimTradesTable {
  merchant: string;
  out_trade_no: string;
  pay_type: string;
  channel_trade_no: string;
  amount_fen: FenColumn;
  subject: string;
  status: 'WAITING' | 'PAID' | 'CLOSED' | 'REFUNDED';
  rule: string;
  query_count: ColumnType<number, number | undefined, number>;
  refunded_fen: FenColumn;
  buyer_logon_id: string | null;
  buyer_user_id: string | null;
  created_at: Timestamp;
  paid_at: NullableTimestamp;
  return_url: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface SimRefundsTable {
  merchant: string;
  out_trade_no: string;
  out_request_no: string;
  amount_fen: FenColumn;
  refund_no: string;
  created_at: Timestamp;
}

/** Every charge the simulator made: one row per money movement, so tests can count them. */
export interface SimLedgerTable {
  id: Generated<number>;
  merchant: string;
  out_trade_no: string;
  entry: 'charge' | 'refund' | 'reverse';
  amount_fen: FenColumn;
  created_at: Timestamp;
}

export interface PlatformKeysTable {
  id: Generated<number>;
  /** Plain PEM written by versions before migration 011; NULL once sealed, and the database refuses new ones. */
  private_pem: string | null;
  /** The private key sealed with the master key (SecretBox, bound to the public key). */
  private_sealed: string | null;
  public_pem: string;
  active: boolean;
  created_at: Timestamp;
  /** When it stopped being the active key; deleted HOSPAY_KEY_GRACE later. */
  retired_at: NullableTimestamp;
}

export interface GatewayNoncesTable {
  app_id: string;
  nonce: string;
  expires_at: Timestamp;
}

export interface NotificationsTable {
  id: Generated<number>;
  notify_id: string;
  app_id: string;
  trade_id: number;
  url: string;
  trade_status: string;
  status: 'PENDING' | 'DELIVERED' | 'FAILED';
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: Timestamp;
  lease_until: NullableTimestamp;
  lease_owner: string | null;
  created_at: Timestamp;
  delivered_at: NullableTimestamp;
  last_error: string | null;
}

export interface NotifyAttemptsTable {
  id: Generated<number>;
  notification_id: number;
  attempt: number;
  started_at: Timestamp;
  http_status: number | null;
  latency_ms: number;
  body_excerpt: string | null;
  error: string | null;
}

export interface MedicareAuthsTable {
  id: string;
  app_id: string;
  open_id: string;
  state: string;
  redirect_uri: string;
  status: 'PENDING' | 'GRANTED' | 'DECLINED';
  auth_code: string | null;
  created_at: Timestamp;
  expires_at: Timestamp;
  used_at: NullableTimestamp;
}

export interface MedicareTokensTable {
  pay_auth_no: string;
  app_id: string;
  user_id: string;
  payment_type: string;
  city_code: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  used_by_trade: number | null;
}

export interface ReconRunsTable {
  id: Generated<number>;
  app_id: string;
  business_date: string;
  pay_type: string;
  /** INCOMPLETE: a side (the HIS) could not be read; `error` says why (migration 017). */
  status: 'DONE' | 'INCOMPLETE' | 'FAILED';
  matched: number;
  differences: number;
  totals: string;
  pending: string;
  error: string | null;
  started_at: Timestamp;
  finished_at: Timestamp;
}

export interface ReconDifferencesTable {
  id: Generated<number>;
  app_id: string;
  business_date: string;
  pay_type: string;
  diff_key: string;
  code: string;
  kind: string;
  out_trade_no: string;
  out_request_no: string | null;
  detail: string;
  present: ColumnType<boolean, boolean | undefined, boolean>;
  state: ColumnType<'OPEN' | 'RESOLVED', 'OPEN' | 'RESOLVED' | undefined, 'OPEN' | 'RESOLVED'>;
  resolved_by: string | null;
  resolved_note: string | null;
  resolved_at: NullableTimestamp;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ReconAuditTable {
  id: Generated<number>;
  difference_id: number;
  at: Timestamp;
  actor: string;
  action: string;
  note: string | null;
}

/** What a reconciliation run asked of the HIS / channel and what came back, kept as evidence. */
export interface ReconEvidenceTable {
  id: Generated<number>;
  app_id: string;
  business_date: string;
  pay_type: string;
  source: 'HIS_TRADE_LIST' | 'CHANNEL_BILL';
  seq: number;
  /** JSON text of what was asked. */
  request: string;
  records: number;
  /** The answer as received (text), when kept. */
  raw: string | null;
  fetched_at: Timestamp;
}

/** An app's configuration of one channel: plain fields as JSON, secret ones sealed (SecretBox) as JSON. */
export interface ChannelConfigsTable {
  app_id: string;
  channel_id: string;
  settings: ColumnType<string, string | undefined, string>;
  secrets_sealed: string | null;
  updated_at: Timestamp;
}

/**
 * A channel's platform-level configuration (018): values set once for the whole platform (a service provider's
 * credentials), merged under each app's own; plain fields as JSON, secret ones sealed (SecretBox) as JSON.
 */
export interface PlatformChannelConfigsTable {
  channel_id: string;
  settings: ColumnType<string, string | undefined, string>;
  secrets_sealed: string | null;
  updated_at: Timestamp;
}

/** One exchange with a provider (redacted), for operators. */
export interface ChannelCallsTable {
  id: Generated<number>;
  app_id: string;
  channel_id: string;
  operation: string;
  out_trade_no: string | null;
  started_at: Timestamp;
  latency_ms: number;
  http_status: number | null;
  outcome: string;
  request: string | null;
  response: string | null;
  error: string | null;
}

/** Unverified provider notifications, counted per app, channel and Asia/Shanghai day (only a sample is kept). */
export interface NotifyRejectionsTable {
  app_id: string;
  channel_id: string;
  /** 'yyyy-MM-dd', Asia/Shanghai. */
  day: string;
  rejected: Int8;
  first_at: Timestamp;
  last_at: Timestamp;
  /** The last one's reason (cut to 200 characters). */
  last_reason: string;
}

export interface JobClaimsTable {
  job: string;
  key: string;
  owner: string;
  claimed_at: Timestamp;
  finished_at: NullableTimestamp;
  result: string | null;
}

export interface FinanceOperatorsTable {
  username: string;
  display_name: string;
  /** scrypt$N$r$p$salt$hash (base64url salt and hash). */
  password_hash: string;
  status: ColumnType<'active' | 'disabled', 'active' | 'disabled' | undefined, 'active' | 'disabled'>;
  created_at: Timestamp;
  /** What the operator may do (domain/access.ts) (021). */
  role: ColumnType<Role, Role | undefined, Role>;
  /** Every hospital (app), present and future; otherwise only those in operator_apps (021). */
  all_apps: ColumnType<boolean, boolean | undefined, boolean>;
}

/** The hospitals (apps) granted to an operator without all_apps (021). */
export interface OperatorAppsTable {
  username: string;
  app_id: string;
  granted_at: Timestamp;
}

/** An operator's personal API token for the admin API (021): only its sha256 is stored. */
export interface OperatorTokensTable {
  /** The public part of the token (hpo_<id>_<secret>), shown in lists. */
  id: string;
  token_hash: string;
  username: string;
  label: string;
  created_at: Timestamp;
  expires_at: NullableTimestamp;
  last_used_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
}

/** Every action taken at the desk or through the admin API on a trade, app, channel or operator (021). */
export interface DeskAuditTable {
  id: Generated<number>;
  at: Timestamp;
  /** The operator's username, or "admin" for the platform admin token, "cli" for the command line. */
  actor: string;
  role: string;
  via: 'session' | 'token' | 'admin-token' | 'cli';
  /** e.g. trade.query, notify.resend, trade.close, refund.request, refund.approve, refund.reject, app.create. */
  action: string;
  app_id: string | null;
  out_trade_no: string | null;
  /** The desk request (maker–checker) the action belongs to. */
  request_id: number | null;
  /** ok, refused, failed, pending … (short, stable words). */
  outcome: string;
  /** JSON, masked like the logs: never a secret or personal data. */
  detail: ColumnType<string, string | undefined, string>;
}

/** A money action asked at the desk (021): a refund or cancel, approved by a second person when required. */
export interface DeskRequestsTable {
  id: Generated<number>;
  app_id: string;
  trade_id: number;
  out_trade_no: string;
  kind: 'refund' | 'cancel';
  /** The refund's amount; null for a cancel (the whole trade). */
  amount_fen: number | null;
  reason: string;
  /** The refund's OutRequestNo (a cancel's too): the same idempotency as a HIS request. */
  out_request_no: string;
  status: 'PENDING' | 'APPROVED' | 'REJECTED' | 'DONE' | 'FAILED';
  requested_by: string;
  requested_at: Timestamp;
  decided_by: string | null;
  decided_at: NullableTimestamp;
  /** JSON: the service's answer (status, code, message), set when executed. */
  result: string | null;
}

/** The finance login's back-off (012): per username (source '*') and per username and source address. */
export interface FinanceLoginAttemptsTable {
  username: string;
  source: string;
  /** Failures since the count was last forgotten (an hour without a failure) or cleared by a success. */
  failures: ColumnType<number, number | undefined, number>;
  last_failure_at: NullableTimestamp;
  /** The last failure, or the last attempt let through while backing off: the next waits from here. */
  last_attempt_at: NullableTimestamp;
  /** The last successful login from this source (pair rows): a known source. */
  last_success_at: NullableTimestamp;
}

export interface FinanceSessionsTable {
  /** sha256 (hex) of the session cookie's token; the token itself is never stored. */
  token_hash: string;
  username: string;
  csrf_token: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  last_seen_at: Timestamp;
}

/**
 * A fee upload left at the medical-insurance centre by a mixed payment that was not settled (020): revoked
 * (6401) or, if it was settled after all, refunded (6203) by the expiry job; FAILED waits for an operator.
 */
export interface MedicareRevocationsTable {
  id: Generated<number>;
  app_id: string;
  trade_id: number;
  out_trade_no: string;
  /** The adapter's reference (order id, token sealed under the app's key). */
  ref: string;
  /** Why the upload was left (the settlement's failure code). */
  reason: string;
  status: 'PENDING' | 'DONE' | 'FAILED';
  attempts: ColumnType<number, number | undefined, number>;
  last_error: string | null;
  next_at: Timestamp;
  lease_until: NullableTimestamp;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface Database {
  apps: AppsTable;
  trades: TradesTable;
  refunds: RefundsTable;
  sim_trades: SimTradesTable;
  sim_refunds: SimRefundsTable;
  sim_ledger: SimLedgerTable;
  platform_keys: PlatformKeysTable;
  gateway_nonces: GatewayNoncesTable;
  notifications: NotificationsTable;
  notify_attempts: NotifyAttemptsTable;
  medicare_auths: MedicareAuthsTable;
  medicare_tokens: MedicareTokensTable;
  medicare_revocations: MedicareRevocationsTable;
  recon_runs: ReconRunsTable;
  recon_differences: ReconDifferencesTable;
  recon_audit: ReconAuditTable;
  recon_evidence: ReconEvidenceTable;
  channel_configs: ChannelConfigsTable;
  platform_channel_configs: PlatformChannelConfigsTable;
  channel_calls: ChannelCallsTable;
  notify_rejections: NotifyRejectionsTable;
  job_claims: JobClaimsTable;
  finance_operators: FinanceOperatorsTable;
  finance_sessions: FinanceSessionsTable;
  finance_login_attempts: FinanceLoginAttemptsTable;
  operator_apps: OperatorAppsTable;
  operator_tokens: OperatorTokensTable;
  desk_audit: DeskAuditTable;
  desk_requests: DeskRequestsTable;
}

export type Notification = Selectable<NotificationsTable>;

export type App = Selectable<AppsTable>;
export type Trade = Selectable<TradesTable>;
export type NewTrade = Insertable<TradesTable>;
export type Refund = Selectable<RefundsTable>;
