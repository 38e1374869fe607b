import type { FastifySchema, RouteOptions } from 'fastify';
import { MAX_LIST_LIMIT } from '../../services/notify.js';

/**
 * The admin API's request and answer schemas, keyed by "METHOD /path" as registered (e.g. "POST /admin/apps").
 * The same objects validate the requests (attached to each route by applyAdminSchema) and make the OpenAPI
 * document (/openapi.json): one source.
 *
 * Validation keeps the answers the handlers always gave: a property whose schema carries `x-message` is
 * ENFORCED before the handler runs, and a violation is answered 400 `{code: 'INVALID_FIELD.<field>' (or
 * `x-code`), message: x-message}` — the handler's own code and bilingual message for that failure. A property
 * without `x-message` is documentation: its handler checks it (its checks are semantic: keys, URLs, CIDR ranges,
 * calendar dates), with its own messages. Only what a handler checks first, and checks exactly so, is enforced,
 * so a request with several faults is answered as before; a route that first answers another hospital's app as
 * missing (404, access.ts seesAppOr404) keeps its body checks in its handler, so the 404 still comes first. Nothing is coerced, nothing removed; extra properties
 * are allowed where the handlers ignore them.
 */
export type AdminSchema = FastifySchema & {
  summary?: string;
  description?: string;
  tags?: string[];
};

/** A JSON schema (the subset the admin validator knows, plus annotations). */
export type JsonSchema = Record<string, unknown>;

const APP_ID = { type: 'string', description: 'app id (hospital), e.g. hp2d2a3c3043fd2fb1' };
const ERROR = {
  type: 'object',
  properties: { code: { type: 'string' }, message: { type: 'string', description: '中文 / English' } },
  required: ['code', 'message'],
};
const obj = (properties: Record<string, JsonSchema>, more: JsonSchema = {}): JsonSchema => ({
  type: 'object',
  properties,
  ...more,
});
const idParams = obj({ id: APP_ID }, { required: ['id'] });
const usernameParams = obj(
  { username: { type: 'string', description: 'operator username (A–Z a–z 0–9 . _ -)' } },
  { required: ['username'] },
);
const channelParam = { type: 'string', description: 'channel id (GET /admin/channels), e.g. alipay, wechat' };
const any = (description: string): JsonSchema => ({ description });
const ok = (schema: JsonSchema, code = 200) => ({ [code]: schema });

/** A case-insensitive pattern for one of the words ('' allowed): PENDING → [Pp][Ee]… */
function anyCase(words: readonly string[]): string {
  const ci = (w: string) => [...w].map((c) => `[${c.toUpperCase()}${c.toLowerCase()}]`).join('');
  return `^(|${words.map(ci).join('|')})$`;
}

const APP_VIEW = obj({
  app_id: APP_ID,
  name: { type: 'string' },
  hospital_id: { type: ['string', 'null'] },
  status: { type: 'string', enum: ['active', 'disabled'] },
  categories: { type: 'array', items: obj({ prefix: { type: 'string' }, name: { type: 'string' } }) },
  notify_private_cidrs: { type: 'array', items: { type: 'string' } },
  created_at: { type: 'string' },
});
const ROLE = { type: 'string', enum: ['platform_admin', 'hospital_it', 'finance', 'cashier_supervisor'] };
const OPERATOR_VIEW = obj({
  username: { type: 'string' },
  display_name: { type: 'string' },
  status: { type: 'string', enum: ['active', 'disabled'] },
  failed_logins: { type: 'integer' },
  locked_until: { type: ['string', 'null'] },
  created_at: { type: 'string' },
  role: ROLE,
  apps: {
    description: "'all' or the app ids granted",
    oneOf: [{ const: 'all' }, { type: 'array', items: APP_ID }],
  },
});
const VALUES_BODY = obj(
  {
    values: {
      type: 'object',
      additionalProperties: { type: ['string', 'null'] },
      description: '{field: value, or null to remove}; the fields of GET /admin/channels',
      'x-message': 'values 须为 {字段: 字符串或 null} / values must be {field: string or null}',
    },
  },
  { required: ['values'] },
);
const STATUS_BODY = obj(
  {
    status: {
      type: 'string',
      enum: ['active', 'disabled'],
      'x-message': 'status 须为 active 或 disabled / status must be active or disabled',
    },
  },
  { required: ['status'] },
);
const REJECTION = obj({
  app_id: APP_ID,
  channel_id: { type: 'string' },
  day: { type: 'string' },
  rejected: { type: 'integer' },
  first_at: { type: 'string' },
  last_at: { type: 'string' },
  last_reason: { type: ['string', 'null'] },
});
const DATE = '^[0-9]{4}-[0-9]{2}-[0-9]{2}$';

export const ADMIN_SCHEMAS: Readonly<Record<string, AdminSchema>> = {
  // ---- apps
  'POST /admin/apps': {
    tags: ['apps'],
    summary: '创建应用（医院） / create an app (hospital)',
    body: obj(
      {
        name: {
          type: 'string',
          maxLength: 64,
          pattern: '\\S',
          'x-message': '名称必填，最多 64 字 / name is required, at most 64 characters',
        },
        hospital_id: {
          type: ['string', 'null'],
          maxLength: 64,
          'x-message': 'hospital_id 至多 64 字 / hospital_id is at most 64 characters',
        },
      },
      { required: ['name'] },
    ),
    response: ok(
      obj({
        app_id: APP_ID,
        name: { type: 'string' },
        hospital_id: { type: ['string', 'null'] },
        access_token: { type: 'string', description: 'shown once: the offline door AccessToken' },
      }),
      201,
    ),
  },
  'GET /admin/apps': {
    tags: ['apps'],
    summary: '应用列表 / list the apps',
    response: ok({ type: 'array', items: APP_VIEW }),
  },
  'PUT /admin/apps/:id/status': {
    tags: ['apps'],
    summary: '启用或停用应用 / enable or disable an app',
    params: idParams,
    body: obj({ status: { type: 'string', enum: ['active', 'disabled'] } }, { required: ['status'] }),
    response: ok(obj({ app_id: APP_ID, status: { type: 'string' } })),
  },
  'PUT /admin/apps/:id/public-key': {
    tags: ['apps'],
    summary: '登记应用公钥（网关验签） / register the app public key (gateway signatures)',
    params: idParams,
    body: obj({
      public_key: {
        type: 'string',
        description: 'RSA public key, PEM or Base64, 2048 bits (never a private key)',
      },
      legacy_sign: { type: 'boolean', description: 'allow RSA (SHA-1) and keys under 2048 bits' },
    }),
    response: ok(obj({ app_id: APP_ID, legacy_sign: { type: 'boolean' } })),
  },
  'PUT /admin/apps/:id/redirect-uris': {
    tags: ['apps'],
    summary: '医保授权回调地址 / medical-insurance authorisation redirect URIs',
    params: idParams,
    body: obj(
      {
        redirect_uris: {
          type: 'array',
          items: { type: 'string', description: 'absolute http(s) URL, no userinfo, query or fragment' },
        },
      },
      { required: ['redirect_uris'] },
    ),
    response: ok(obj({ app_id: APP_ID, redirect_uris: { type: 'array', items: { type: 'string' } } })),
  },
  'GET /admin/apps/:id/notify-allowlist': {
    tags: ['apps'],
    summary: 'notify_url 可访问的内网地址段 / private ranges notify_url may reach',
    params: idParams,
    response: ok(obj({ app_id: APP_ID, notify_private_cidrs: { type: 'array', items: { type: 'string' } } })),
  },
  'PUT /admin/apps/:id/notify-allowlist': {
    tags: ['apps'],
    summary: '设置 notify_url 可访问的内网地址段 / set the private ranges notify_url may reach',
    params: idParams,
    body: obj({
      notify_private_cidrs: {
        type: 'array',
        items: { type: 'string', description: 'a private CIDR range, e.g. 10.1.0.0/16' },
      },
    }),
    response: ok(obj({ app_id: APP_ID, notify_private_cidrs: { type: 'array', items: { type: 'string' } } })),
  },
  'GET /admin/apps/:id/categories': {
    tags: ['apps'],
    summary: '订单号前缀分类 / order-number categories',
    params: idParams,
    response: ok(obj({ app_id: APP_ID, categories: { type: 'array' } })),
  },
  'PUT /admin/apps/:id/categories': {
    tags: ['apps'],
    summary: '设置订单号前缀分类（null 恢复默认） / set the categories (null: the default)',
    params: idParams,
    body: obj(
      {
        categories: {
          type: ['array', 'null'],
          items: obj({ prefix: { type: 'string' }, name: { type: 'string' } }),
          description: 'prefixes of 1–16 letters or digits, each once',
        },
      },
      { required: ['categories'] },
    ),
    response: ok(obj({ app_id: APP_ID, categories: { type: 'array' } })),
  },

  // ---- keys
  'GET /admin/keys/platform': {
    tags: ['keys'],
    summary: '平台公钥（验证网关应答） / the platform public key (verifies gateway answers)',
    response: ok(obj({ public_key: { type: 'string' } })),
  },
  'POST /admin/keys/rotate': {
    tags: ['keys'],
    summary: '轮换平台密钥 / rotate the platform key',
    response: ok(obj({ public_key: { type: 'string' } })),
  },

  // ---- notifications
  'GET /admin/notifications': {
    tags: ['notifications'],
    summary: '支付结果通知 / notifications (lc.trade.notify)',
    querystring: obj({
      status: {
        description: 'PENDING, DELIVERED or FAILED (any case)',
        pattern: anyCase(['PENDING', 'DELIVERED', 'FAILED']),
        'x-message': 'status 须为 PENDING、DELIVERED 或 FAILED / status must be PENDING, DELIVERED or FAILED',
      },
      limit: {
        description: `1 to ${MAX_LIST_LIMIT}, default 50`,
        pattern: '^(|0{0,3}[1-9]|0{0,2}[1-9][0-9]|0?[1-4][0-9]{2}|0?500)$',
        'x-message': `limit 须为 1～${MAX_LIST_LIMIT} / limit must be 1 to ${MAX_LIST_LIMIT}`,
      },
      app_id: {
        type: 'string',
        maxLength: 64,
        'x-message': 'app_id 至多 64 字 / app_id is one value of at most 64 characters',
      },
      out_trade_no: {
        type: 'string',
        maxLength: 64,
        'x-message': 'out_trade_no 至多 64 字 / out_trade_no is one value of at most 64 characters',
      },
    }),
    response: ok({ type: 'array', items: obj({ notify_id: { type: 'string' } }) }),
  },
  'POST /admin/notifications/:notifyId/resend': {
    tags: ['notifications'],
    summary: '立即重发通知 / resend a notification now',
    params: obj({ notifyId: { type: 'string' } }, { required: ['notifyId'] }),
    response: ok(
      obj({
        notify_id: { type: 'string' },
        status: { type: 'string', const: 'PENDING' },
        next_attempt_at: { type: 'string' },
      }),
    ),
  },

  // ---- reports and reconciliation
  'GET /admin/reports/day': {
    tags: ['reconciliation'],
    summary: '日报（json、csv、xlsx） / the day report (json, csv or xlsx)',
    querystring: obj(
      {
        date: {
          type: 'string',
          pattern: DATE,
          description: 'yyyy-MM-dd (a calendar date)',
          'x-message': 'date 须为 yyyy-MM-dd 格式的日期 / date must be a date written yyyy-MM-dd',
        },
        format: { type: 'string', enum: ['json', 'csv', 'xlsx'], default: 'json' },
        app: { ...APP_ID, description: 'one app; without: all apps' },
      },
      { required: ['date'] },
    ),
    response: ok(any('the DayReport (json), or a csv / xlsx download')),
  },
  'GET /admin/apps/:id/reconciliation': {
    tags: ['reconciliation'],
    summary: '对账设置（HIS 连接） / reconciliation settings (the HIS connection)',
    params: idParams,
    response: ok(any('the settings; the HIS access token is never shown')),
  },
  'PUT /admin/apps/:id/reconciliation': {
    tags: ['reconciliation'],
    summary: '修改对账设置 / change the reconciliation settings',
    params: idParams,
    body: obj(
      {
        his_base_url: { type: ['string', 'null'] },
        his_access_token: {
          type: ['string', 'null'],
          description: 'a secret: stored encrypted, never shown',
        },
        settings: { type: 'object' },
      },
      { additionalProperties: false, description: 'unknown fields are refused: INVALID_FIELD.<field>' },
    ),
    response: ok(any('the settings')),
  },
  'GET /admin/reconciliation/movements': {
    tags: ['reconciliation'],
    summary: '平台的已支付交易与退款（HIS 模拟器） / paid trades and refunds (for the HIS simulator)',
    querystring: obj({
      app_id: {
        type: 'string',
        minLength: 1,
        maxLength: 64,
        'x-message': 'app_id 须为一个应用编号 / must be one app id',
      },
    }),
    response: ok(any('the movements')),
  },
  'POST /admin/reconcile': {
    tags: ['reconciliation'],
    summary: '对一个营业日对账 / reconcile a business day',
    body: obj(
      {
        date: {
          type: 'string',
          pattern: DATE,
          description: 'yyyy-MM-dd (a calendar date)',
          'x-message': 'date 须为 yyyy-MM-dd / date must be yyyy-MM-dd',
        },
        app_id: { ...APP_ID, description: 'one app; without: every app' },
      },
      { required: ['date'] },
    ),
    response: ok(any('the runs, one per app')),
  },
  'GET /admin/reconciliation/differences': {
    tags: ['reconciliation'],
    summary: '对账差异 / reconciliation differences',
    querystring: obj(
      {
        date: { type: 'string', pattern: DATE },
        app: APP_ID,
        state: { type: 'string', enum: ['OPEN', 'RESOLVED'] },
        pay_type: { type: 'string', enum: ['alipay', 'weixin', 'unionpay', 'elecny'] },
        present: { type: 'string', enum: ['true', 'false'] },
      },
      {
        required: ['date', 'app'],
        additionalProperties: false,
        description: 'unknown parameters are refused: INVALID_FIELD.<name>',
      },
    ),
    response: ok(any('the differences')),
  },
  'GET /admin/reconciliation/differences/:id': {
    tags: ['reconciliation'],
    summary: '一条差异及其审计记录 / one difference with its audit trail',
    params: obj(
      {
        id: {
          type: 'string',
          pattern: '^(?=[0-9]{1,15}$)0*[1-9][0-9]*$',
          'x-message': 'id 须为正整数 / id must be a positive whole number',
        },
      },
      { required: ['id'] },
    ),
    response: ok(any('the difference')),
  },
  'POST /admin/reconciliation/differences/:id/resolve': {
    tags: ['reconciliation'],
    summary: '处理差异 / resolve a difference',
    params: obj(
      {
        id: {
          type: 'string',
          pattern: '^(?=[0-9]{1,15}$)0*[1-9][0-9]*$',
          'x-message': 'id 须为正整数 / id must be a positive whole number',
        },
      },
      { required: ['id'] },
    ),
    body: obj(
      {
        note: { type: 'string', minLength: 1, maxLength: 500, description: 'what was done' },
        by: {
          type: 'string',
          minLength: 1,
          maxLength: 64,
          description: 'who resolves (audit actor admin:<by>)',
        },
      },
      { required: ['note', 'by'], additionalProperties: false },
    ),
    response: ok(any('the resolved difference')),
  },

  // ---- channels
  'GET /admin/channels': {
    tags: ['channels'],
    summary: '渠道及其配置字段 / the channels and their configuration fields',
    response: ok(obj({ channels: { type: 'array' }, medicare: { type: 'array' } })),
  },
  'GET /admin/apps/:id/channels': {
    tags: ['channels'],
    summary: '应用的渠道配置（密钥不显示） / an app’s channel configuration (secrets never shown)',
    params: idParams,
    response: ok(
      obj({
        app_id: APP_ID,
        channel_map: { type: 'object' },
        configs: { type: 'array' },
        rejected_notifications: { type: 'array', items: REJECTION },
      }),
    ),
  },
  'PUT /admin/apps/:id/channels/:channel': {
    tags: ['channels'],
    summary: '设置应用的渠道配置 / set an app’s channel configuration',
    params: obj({ id: APP_ID, channel: channelParam }, { required: ['id', 'channel'] }),
    body: obj({ values: { type: 'object', additionalProperties: { type: ['string', 'null'] } } }),
    response: ok(any('the configuration view (secrets never shown)')),
  },
  'GET /admin/platform/channels': {
    tags: ['channels'],
    summary: '平台级渠道配置 / platform-level channel configuration',
    response: ok(obj({ configs: { type: 'array' } })),
  },
  'GET /admin/platform/channels/:channel': {
    tags: ['channels'],
    summary: '一个渠道的平台级配置 / one channel’s platform-level configuration',
    params: obj({ channel: channelParam }, { required: ['channel'] }),
    response: ok(any('the configuration view (secrets never shown)')),
  },
  'PUT /admin/platform/channels/:channel': {
    tags: ['channels'],
    summary: '设置平台级渠道配置 / set a channel’s platform-level configuration',
    params: obj({ channel: channelParam }, { required: ['channel'] }),
    body: VALUES_BODY,
    response: ok(any('the configuration view (secrets never shown)')),
  },
  'PUT /admin/apps/:id/channel-map': {
    tags: ['channels'],
    summary: '为支付方式选择渠道 / choose the channel of a pay type',
    params: idParams,
    body: obj(
      {
        pay_type: { type: 'string', enum: ['alipay', 'weixin', 'unionpay', 'elecny'] },
        channel: { type: 'string', description: 'a channel id of GET /admin/channels' },
      },
      { required: ['pay_type', 'channel'] },
    ),
    response: ok(obj({ app_id: APP_ID, channel_map: { type: 'object' } })),
  },
  'GET /admin/channel-notify-rejections': {
    tags: ['channels'],
    summary: '未通过验签的渠道通知（按天计数） / unverified provider notifications, per day',
    querystring: obj({
      days: { type: 'string', description: 'whole number 1–3660, default 7' },
      app: APP_ID,
      channel: { type: 'string' },
    }),
    response: ok(obj({ rejections: { type: 'array', items: REJECTION } })),
  },
  'GET /admin/channel-calls': {
    tags: ['channels'],
    summary: '渠道调用记录（已脱敏） / channel call records (redacted)',
    querystring: obj({
      limit: { type: 'string', description: '1–500, default 50' },
      app: APP_ID,
      out_trade_no: { type: 'string' },
    }),
    response: ok(any('the call records')),
  },

  // ---- operators
  'GET /admin/operators': {
    tags: ['operators'],
    summary: '财务操作员 / finance operators',
    response: ok({ type: 'array', items: OPERATOR_VIEW }),
  },
  'POST /admin/operators': {
    tags: ['operators'],
    summary: '创建操作员 / create an operator',
    body: obj(
      {
        username: { type: 'string', 'x-message': 'username 必填 / username is required' },
        display_name: { type: 'string', 'x-message': 'display_name 必填 / display_name is required' },
        password: {
          type: 'string',
          format: 'password',
          'x-message': 'password 必填 / password is required',
          description: 'never logged, never in an answer',
        },
        role: { ...ROLE, default: 'finance' },
        apps: {
          description: "'all' (default) or a list of app ids",
          oneOf: [{ const: 'all' }, { type: 'array', maxItems: 1000, items: APP_ID }],
        },
      },
      { required: ['username', 'display_name', 'password'] },
    ),
    response: ok(OPERATOR_VIEW, 201),
  },
  'PUT /admin/operators/:username/password': {
    tags: ['operators'],
    summary: '重设密码 / set the password',
    params: usernameParams,
    body: obj(
      {
        password: { type: 'string', format: 'password', 'x-message': 'password 必填 / password is required' },
      },
      { required: ['password'] },
    ),
    response: ok(obj({ username: { type: 'string' } })),
  },
  'PUT /admin/operators/:username/status': {
    tags: ['operators'],
    summary: '启用或停用操作员 / enable or disable an operator',
    params: usernameParams,
    body: STATUS_BODY,
    response: ok(obj({ username: { type: 'string' }, status: { type: 'string' } })),
  },
  // Roles, hospitals and tokens (issue 15).
  'GET /admin/whoami': {
    tags: ['operators'],
    summary: '当前调用者 / who is calling (admin token or operator token)',
    response: ok(
      obj({
        username: { type: 'string' },
        display_name: { type: 'string' },
        role: ROLE,
        apps: any("'all' or the app ids"),
        via: { type: 'string', description: 'admin-token or operator-token' },
      }),
    ),
  },
  'PUT /admin/operators/:username/role': {
    tags: ['operators'],
    summary: '设置操作员角色 / set an operator’s role',
    params: usernameParams,
    body: obj(
      {
        role: {
          ...ROLE,
          'x-message':
            'role 须为 platform_admin、hospital_it、finance 或 cashier_supervisor / role must be platform_admin, hospital_it, finance or cashier_supervisor',
        },
      },
      { required: ['role'] },
    ),
    response: ok(OPERATOR_VIEW),
  },
  'PUT /admin/operators/:username/apps': {
    tags: ['operators'],
    summary: '设置操作员可见的医院 / set the hospitals (apps) an operator sees',
    params: usernameParams,
    body: obj(
      {
        apps: {
          description: "'all' or a list of app ids",
          oneOf: [{ const: 'all' }, { type: 'array', maxItems: 1000, items: APP_ID }],
        },
      },
      { required: ['apps'] },
    ),
    response: ok(OPERATOR_VIEW),
  },
  'POST /admin/operators/:username/tokens': {
    tags: ['operators'],
    summary: '签发操作员 API 令牌（hpo_…，仅显示一次） / issue an operator API token (hpo_…, shown once)',
    params: usernameParams,
    body: obj(
      {
        label: {
          type: 'string',
          description: 'what the token is for',
          'x-message': 'label 必填 / label is required',
        },
        expires_in_days: {
          type: ['integer', 'null'],
          minimum: 1,
          maximum: 3660,
          description: 'without: the token does not expire',
          'x-message':
            'expires_in_days 须为 1～3660 的整数 / expires_in_days must be a whole number 1 to 3660',
        },
      },
      { required: ['label'] },
    ),
    response: ok(
      obj({
        id: { type: 'string' },
        username: { type: 'string' },
        label: { type: 'string' },
        expires_at: { type: ['string', 'null'] },
        token: { type: 'string', description: 'hpo_…: shown once, only its hash is kept' },
      }),
      201,
    ),
  },
  'GET /admin/operators/:username/tokens': {
    tags: ['operators'],
    summary: '操作员的 API 令牌（不含令牌本身） / an operator’s API tokens (never the token itself)',
    params: usernameParams,
    response: ok(
      obj({
        username: { type: 'string' },
        tokens: {
          type: 'array',
          items: any('id, label, created_at, expires_at, last_used_at, revoked_at (never the token)'),
        },
      }),
    ),
  },
  'DELETE /admin/operators/:username/tokens/:id': {
    tags: ['operators'],
    summary: '吊销操作员 API 令牌 / revoke an operator API token',
    params: obj(
      { username: { type: 'string', description: 'operator username' }, id: { type: 'string' } },
      { required: ['username', 'id'] },
    ),
    response: ok(
      obj({
        username: { type: 'string' },
        id: { type: 'string' },
        revoked_at: { type: ['string', 'null'] },
        revoked: { type: 'boolean' },
      }),
    ),
  },

  // ---- backup
  'POST /admin/backup': {
    tags: ['keys'],
    summary: '内嵌数据库备份（application/zip） / a backup of the embedded database (application/zip)',
    response: ok({
      type: 'string',
      contentMediaType: 'application/zip',
      description: 'the backup archive (hospay-backup.zip); X-Hospay-Backup-Sha256 names its digest',
      'x-content-type': 'application/zip',
    }),
  },
};

/** The answer of a refused admin request (4xx), for the OpenAPI document. */
export const ADMIN_ERROR_SCHEMA = ERROR;

// ---------------------------------------------------------------------------------------------------------------
// The validator: the subset of JSON Schema the schemas above use, enforcing only properties with x-message.

/** A validation refusal: the handler's own code and message. */
export class AdminFieldError extends Error {
  readonly statusCode = 400;
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AdminFieldError';
  }
}

const TYPE_OF = (v: unknown): string =>
  v === null
    ? 'null'
    : Array.isArray(v)
      ? 'array'
      : typeof v === 'number'
        ? Number.isInteger(v)
          ? 'integer'
          : 'number'
        : typeof v;

function typeOk(schema: JsonSchema, v: unknown): boolean {
  const t = schema['type'];
  if (t === undefined) return true;
  const types = Array.isArray(t) ? (t as string[]) : [t as string];
  const actual = TYPE_OF(v);
  return types.includes(actual) || (actual === 'integer' && types.includes('number'));
}

/** Whether a value satisfies a schema (type, enum, const, lengths, pattern, items, properties, required). */
export function satisfies(schema: JsonSchema, v: unknown): boolean {
  if (!typeOk(schema, v)) return false;
  const en = schema['enum'];
  if (Array.isArray(en) && !en.includes(v)) return false;
  if ('const' in schema && schema['const'] !== v) return false;
  if (typeof v === 'number') {
    const lo = schema['minimum'];
    const hi = schema['maximum'];
    if (typeof lo === 'number' && v < lo) return false;
    if (typeof hi === 'number' && v > hi) return false;
  }
  if (typeof v === 'string') {
    const min = schema['minLength'];
    const max = schema['maxLength'];
    if (typeof min === 'number' && v.length < min) return false;
    if (typeof max === 'number' && v.length > max) return false;
    const pattern = schema['pattern'];
    if (typeof pattern === 'string' && !new RegExp(pattern, 'u').test(v)) return false;
  }
  if (Array.isArray(v) && schema['items']) {
    const items = schema['items'] as JsonSchema;
    if (!v.every((x) => satisfies(items, x))) return false;
  }
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const props = (schema['properties'] ?? {}) as Record<string, JsonSchema>;
    for (const name of (schema['required'] ?? []) as string[]) if (!Object.hasOwn(o, name)) return false;
    for (const [name, p] of Object.entries(props))
      if (Object.hasOwn(o, name) && !satisfies(p, o[name])) return false;
    const extra = schema['additionalProperties'];
    if (typeof extra === 'object' && extra !== null) {
      for (const [name, x] of Object.entries(o))
        if (!Object.hasOwn(props, name) && !satisfies(extra as JsonSchema, x)) return false;
    }
  }
  return true;
}

/** The first enforced property (x-message) the value breaks, in the order of the schema's properties. */
export function firstViolation(schema: JsonSchema, data: unknown): AdminFieldError | null {
  // A body that is not an object is read by the handlers as {} ((req.body ?? {}) as Record…).
  const o = (typeof data === 'object' && data !== null && !Array.isArray(data) ? data : {}) as Record<
    string,
    unknown
  >;
  const props = (schema['properties'] ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema['required'] ?? []) as string[]);
  for (const [name, p] of Object.entries(props)) {
    const message = p['x-message'];
    if (typeof message !== 'string') continue;
    const code = typeof p['x-code'] === 'string' ? p['x-code'] : `INVALID_FIELD.${name}`;
    const present = Object.hasOwn(o, name) && o[name] !== undefined;
    if (!present) {
      if (required.has(name)) return new AdminFieldError(code, message);
      continue;
    }
    if (!satisfies(p, o[name])) return new AdminFieldError(code, message);
  }
  return null;
}

/** Fastify's validator compiler for the admin routes: returns {error} with the handler's code and message. */
function compileAdminValidator({ schema }: { schema: unknown }) {
  const s = schema as JsonSchema;
  return (data: unknown) => {
    const error = firstViolation(s, data);
    return error ? { error } : true;
  };
}

/** Answers are written as the handlers make them (no serializer drops or reorders a field). */
function compileAdminSerializer() {
  return (data: unknown) => JSON.stringify(data);
}

/** An onRoute hook of the admin scope: gives each route its schema from ADMIN_SCHEMAS, when there is one. */
export function applyAdminSchema(route: RouteOptions): void {
  const methods = Array.isArray(route.method) ? route.method : [route.method];
  for (const m of methods) {
    const schema = ADMIN_SCHEMAS[`${m} ${route.url}`];
    if (schema && !route.schema) {
      // A copy: Fastify normalises a route's schema in place, and ADMIN_SCHEMAS also makes /openapi.json.
      route.schema = structuredClone(schema);
      route.validatorCompiler = compileAdminValidator;
      route.serializerCompiler = compileAdminSerializer;
    }
  }
}
