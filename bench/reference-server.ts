/**
 * The benchmark's reference: a bare Fastify server that does the same essential work as hospay on each measured
 * path, written the plainest fast way, so that hospay's figures can be read as a ratio to it ("numbers hold on a
 * noisy machine"). Spawned by bench/run.ts in its own process, like the real server; not part of hospay.
 *
 * Each request is ONE durable database round trip (a single autocommitted statement: a CTE writing every row),
 * into its own tables (`ref_*`, created `LIKE` hospay's so they carry the same columns, CHECKs, unique and
 * partial indexes, plus the same foreign keys) in the same database (PostgreSQL), or in its own embedded
 * database (PGlite, in-process, as hospay's embedded mode):
 *
 *   POST /ref/offline/FWC_IF_Barcode_Pay        XML parsed with fast-xml-parser (the offline door's hardening:
 *                                               strict UTF-8, no DOCTYPE, encoding declaration, validate, parse);
 *                                               writes the rows a paid barcode pay writes in hospay: the trade
 *                                               (already TRADE_SUCCESS), the simulator's trade and its ledger
 *                                               line, and the channel-call record; answers the same XML.
 *   POST /ref/offline/FWC_IF_Barcode_Pay_Query  one indexed SELECT (AccessToken check joined in).
 *   POST /ref/offline/FWC_IF_Barcode_Pay_Refund the rows a refund writes: the refund (SUCCESS), the trade's
 *                                               reserved/refunded amounts (guarded), the simulator's trade,
 *                                               refund and ledger line, the channel-call record.
 *   POST /ref/gateway                           lc.trade.h5.pay: form read, RSA2 verified once (the app's key kept
 *                                               in memory), the nonce row and the trade row, the answer signed
 *                                               once with RSA2 — on the event loop (no worker threads).
 *   notifications                               a notifier loop on the same interval and batch size as hospay's:
 *                                               claims a batch (FOR UPDATE SKIP LOCKED, joined to the trade),
 *                                               signs each form once, POSTs with fetch, then records every
 *                                               attempt and outcome of the batch in one statement.
 *
 * Control (bench only): POST /ref/setup, /ref/notify/pause, /ref/notify/resume, /ref/notify/seed,
 * /ref/notify/pay. Environment: REF_PORT, REF_DATABASE_URL (PostgreSQL) or REF_DATA_DIR (embedded),
 * REF_POOL (HOSPAY_DB_POOL, else 10 as hospay), REF_NOTIFY_INTERVAL_MS (1000), REF_NOTIFY_BATCH (20).
 */
import path from 'node:path';
import fs from 'node:fs';
import {
  createHash,
  createPublicKey,
  createSign,
  createVerify,
  generateKeyPairSync,
  randomBytes,
  randomInt,
  randomUUID,
  type KeyObject,
} from 'node:crypto';
import Fastify from 'fastify';
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { parse as parseLossless } from 'lossless-json';
import pg from 'pg';
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite';
import { Kysely } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import { migrate } from '../src/store/db.js';

// ---- the database: one round trip per call ----------------------------------------------------------------

interface Sql {
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

const INT8_OID = 20;

async function openSql(): Promise<Sql> {
  const url = process.env['REF_DATABASE_URL'];
  if (url) {
    const pool = new pg.Pool({
      connectionString: url,
      max: Number(process.env['REF_POOL'] ?? process.env['HOSPAY_DB_POOL'] ?? 10),
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    return {
      async query<T>(text: string, params: unknown[] = []) {
        return (await pool.query(text, params)).rows as T[];
      },
      close: () => pool.end(),
    };
  }
  const dir = process.env['REF_DATA_DIR'];
  if (!dir) throw new Error('REF_DATABASE_URL or REF_DATA_DIR is required');
  fs.mkdirSync(dir, { recursive: true });
  const lite = await PGlite.create({
    dataDir: path.join(dir, 'pgdata'),
    parsers: { [pgliteTypes.INT8]: (v: string) => Number(v) },
  });
  // The reference's own embedded database gets hospay's schema first, so that its tables can be made LIKE it.
  await migrate(new Kysely({ dialect: new PGliteDialect(lite) }));
  return {
    async query<T>(text: string, params: unknown[] = []) {
      return (await lite.query<T>(text, params)).rows;
    },
    close: () => lite.close(),
  };
}

const REF_TABLES: Array<[string, string, boolean]> = [
  // [reference table, hospay table, has a bigserial id]
  ['ref_apps', 'apps', false],
  ['ref_trades', 'trades', true],
  ['ref_refunds', 'refunds', true],
  ['ref_sim_trades', 'sim_trades', false],
  ['ref_sim_refunds', 'sim_refunds', false],
  ['ref_sim_ledger', 'sim_ledger', true],
  ['ref_channel_calls', 'channel_calls', true],
  ['ref_nonces', 'gateway_nonces', false],
  ['ref_notifications', 'notifications', true],
  ['ref_notify_attempts', 'notify_attempts', true],
];

async function createTables(db: Sql): Promise<void> {
  for (const [ref] of [...REF_TABLES].reverse()) await db.query(`DROP TABLE IF EXISTS ${ref} CASCADE`);
  for (const [ref, like, serial] of REF_TABLES) {
    await db.query(
      `CREATE TABLE ${ref} (LIKE ${like} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`,
    );
    if (serial) {
      await db.query(`CREATE SEQUENCE IF NOT EXISTS ${ref}_id_seq`);
      await db.query(`ALTER TABLE ${ref} ALTER COLUMN id SET DEFAULT nextval('${ref}_id_seq')`);
    }
  }
  // LIKE copies no foreign keys: the same ones as hospay's, so every insert pays the same checks.
  const fks = [
    'ALTER TABLE ref_trades ADD FOREIGN KEY (app_id) REFERENCES ref_apps(id)',
    'ALTER TABLE ref_refunds ADD FOREIGN KEY (trade_id) REFERENCES ref_trades(id)',
    'ALTER TABLE ref_refunds ADD FOREIGN KEY (app_id) REFERENCES ref_apps(id)',
    'ALTER TABLE ref_nonces ADD FOREIGN KEY (app_id) REFERENCES ref_apps(id)',
    'ALTER TABLE ref_notifications ADD FOREIGN KEY (app_id) REFERENCES ref_apps(id)',
    'ALTER TABLE ref_notifications ADD FOREIGN KEY (trade_id) REFERENCES ref_trades(id)',
    'ALTER TABLE ref_notify_attempts ADD FOREIGN KEY (notification_id) REFERENCES ref_notifications(id)',
  ];
  for (const fk of fks) await db.query(fk);
}

// ---- small helpers (the same formats as hospay's) -----------------------------------------------------------

const pad = (n: number) => n.toString().padStart(2, '0');
function shanghai(d: Date): string {
  const l = new Date(d.getTime() + 8 * 3_600_000);
  return `${l.getUTCFullYear()}-${pad(l.getUTCMonth() + 1)}-${pad(l.getUTCDate())} ${pad(l.getUTCHours())}:${pad(l.getUTCMinutes())}:${pad(l.getUTCSeconds())}`;
}
const compact = (d: Date) => shanghai(d).replace(/[-: ]/g, '');
const digits = (n: number) => {
  let s = '';
  for (let i = 0; i < n; i++) s += randomInt(10).toString();
  return s;
};
const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');
/** A yuan amount above zero as integer fen, without floating point; null when it is not one. */
function fen(text: string): number | null {
  const m = /^(0|[1-9][0-9]{0,7})(?:\.([0-9]{1,2}))?$/.exec(text);
  if (!m) return null;
  const v = Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0'));
  return v > 0 ? v : null;
}
const yuan = (f: number) => `${Math.floor(f / 100)}.${pad(f % 100)}`;

// ---- the offline door's XML, with the same parser options and checks --------------------------------------

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: 16,
});
const builder = new XMLBuilder({
  format: true,
  indentBy: '  ',
  suppressEmptyNode: false,
  processEntities: true,
});

class Refused extends Error {
  constructor(
    readonly code: string,
    readonly isSuccess = '0',
  ) {
    super(code);
  }
}

function readOfflineXml(body: Buffer): Map<string, string> {
  let text: string;
  try {
    text = decoder.decode(body);
  } catch {
    throw new Refused('XML_ENCODING');
  }
  if (text.includes('\u0000')) throw new Refused('XML_ENCODING');
  if (text.trim().length === 0) throw new Refused('XML_EMPTY');
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw new Refused('XML_DOCTYPE_FORBIDDEN');
  const decl = /^\s*<\?xml[^>]*encoding\s*=\s*["']([^"']+)["']/i.exec(text);
  if (decl && !/^utf-?8$/i.test(decl[1] ?? '')) throw new Refused('XML_ENCODING');
  if (XMLValidator.validate(text) !== true) throw new Refused('XML_MALFORMED');
  const doc = parser.parse(text) as Record<string, unknown>;
  const xml = doc['xml'];
  if (typeof xml !== 'object' || xml === null || Array.isArray(xml) || !Object.hasOwn(xml, 'head'))
    throw new Refused('XML_ROOT');
  const head = (xml as Record<string, unknown>)['head'];
  const fields = new Map<string, string>();
  if (typeof head !== 'object' || head === null) return fields;
  for (const [name, value] of Object.entries(head)) {
    if (Array.isArray(value)) throw new Refused(`REPEATED_FIELD.${name}`);
    if (typeof value === 'object' && value !== null) throw new Refused(`INVALID_FIELD.${name}`);
    fields.set(name, typeof value === 'string' ? value : String(value ?? ''));
  }
  return fields;
}

function need(f: Map<string, string>, name: string, max: number): string {
  const v = f.get(name);
  if (!v) throw new Refused(`MISSING_FIELD.${name}`);
  if (v.length > max) throw new Refused(`INVALID_FIELD.${name}`);
  return v;
}

function answerXml(
  head: Record<string, string>,
  isSuccess: string,
  subCode: string,
  resultName?: string,
  result?: Record<string, string>,
): string {
  const body: Record<string, unknown> = {
    ResponseResult: {
      IsSuccess: isSuccess,
      Message: isSuccess === '1' ? '成功 / Success' : '业务失败 / Business failed',
      SubCode: subCode,
      SubMessage: subCode,
    },
  };
  if (resultName && result) body[resultName] = result;
  return `<?xml version="1.0" encoding="utf-8"?>\n${builder.build({ xml: { head, body, sign: '' } }) as string}`;
}

interface TradeRow {
  id: number;
  app_id: string;
  trade_no: string;
  out_trade_no: string;
  channel_trade_no: string | null;
  total_fen: number;
  refunded_fen: number;
  status: string;
  pay_type: string | null;
  paid_at: Date | string | null;
  hospital_id: string | null;
  operator_id: string | null;
  terminal_id: string | null;
  buyer_logon_id: string | null;
  buyer_user_id: string | null;
  category: string;
}

const time = (d: Date | string | null) => (d ? shanghai(new Date(d)) : '');

// ---- the server ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const db = await openSql();
  await createTables(db);
  const platform = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const appKeys = new Map<string, KeyObject>();
  const notifyInterval = Number(process.env['REF_NOTIFY_INTERVAL_MS'] ?? 1000);
  const notifyBatch = Number(process.env['REF_NOTIFY_BATCH'] ?? 20);

  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });
  app.addContentTypeParser(
    ['text/xml', 'application/xml', 'application/x-www-form-urlencoded'],
    { parseAs: 'buffer', bodyLimit: 64 * 1024 },
    (_req, body, done) => done(null, body),
  );

  app.post('/ref/setup', async (req) => {
    const b = req.body as { app_id: string; access_token: string; public_key: string; hospital_id?: string };
    await db.query(
      `INSERT INTO ref_apps (id, name, hospital_id, token_hash, status, channel_map, created_at, public_key)
       VALUES ($1, 'reference', $2, $3, 'active', '{}', now(), $4)
       ON CONFLICT (id) DO UPDATE SET token_hash = EXCLUDED.token_hash, public_key = EXCLUDED.public_key`,
      [b.app_id, b.hospital_id ?? null, sha256(b.access_token), b.public_key],
    );
    appKeys.set(b.app_id, createPublicKey(b.public_key));
    return { ok: true };
  });

  // -- offline door ---------------------------------------------------------------------------------------

  app.post('/ref/offline/:name', async (req, reply) => {
    const { name } = req.params as { name: string };
    const head: Record<string, string> = {};
    reply.type('text/xml; charset=utf-8');
    try {
      if (!Buffer.isBuffer(req.body)) throw new Refused('UNSUPPORTED_CONTENT_TYPE');
      const f = readOfflineXml(req.body);
      for (const [k, v] of f) head[k] = v;
      const tokenHash = sha256(need(f, 'AccessToken', 128));
      const now = new Date();
      if (name === 'FWC_IF_Barcode_Pay') return await barcodePay(f, tokenHash, now, head);
      if (name === 'FWC_IF_Barcode_Pay_Query') return await query(f, tokenHash, head);
      if (name === 'FWC_IF_Barcode_Pay_Refund') return await refund(f, tokenHash, now, head);
      throw new Refused('UNKNOWN_INTERFACE');
    } catch (e) {
      if (e instanceof Refused) return answerXml(head, e.isSuccess, e.code);
      if ((e as { code?: string }).code === '23505') return answerXml(head, '0', 'OUT_TRADE_NO_CONFLICT');
      req.log.error(e);
      return answerXml(head, '2', 'SYSTEM_ERROR');
    }
  });

  async function barcodePay(
    f: Map<string, string>,
    tokenHash: string,
    now: Date,
    head: Record<string, string>,
  ) {
    const outTradeNo = need(f, 'OutTradeNo', 64);
    const authCode = need(f, 'AuthCode', 32);
    if (!/^[0-9]{10,32}$/.test(authCode)) throw new Refused('INVALID_FIELD.AuthCode');
    const amount = fen(need(f, 'TotalAmount', 12));
    if (amount === null) throw new Refused('INVALID_FIELD.TotalAmount');
    const subject = need(f, 'Caption', 128);
    const patient = need(f, 'PatientName', 64);
    const inhospital = need(f, 'InhospitalNo', 64);
    const orderType = need(f, 'OrderType', 32).toUpperCase();
    const payType = /^(2[5-9]|30)[0-9]{14,22}$/.test(authCode) ? 'alipay' : 'weixin';
    const fingerprint = sha256(
      JSON.stringify(['barcode', amount, sha256(authCode), payType, subject, f.get('Descriptive') ?? '']),
    );
    const tradeNo = `HP${compact(now)}${digits(10)}`;
    const channelTradeNo = `${compact(now).slice(0, 8)}22001${digits(15)}`;
    const category = /^[A-Za-z]+/.exec(outTradeNo)?.[0] ?? 'OTHER';
    const rows = await db.query<TradeRow>(
      `WITH app AS (
         SELECT id, hospital_id FROM ref_apps WHERE token_hash = $1 AND status = 'active'
       ), t AS (
         INSERT INTO ref_trades (trade_no, app_id, out_trade_no, kind, status, pay_type, channel, category,
           order_type, total_fen, subject, body, operator_id, terminal_id, hospital_id, patient_name,
           inhospital_no, fingerprint, channel_trade_no, buyer_logon_id, buyer_user_id, created_at, updated_at,
           expires_at, paid_at)
         SELECT $2, app.id, $3, 'barcode', 'TRADE_SUCCESS', $4, 'simulator', $5, $6, $7, $8, $9, $10, $11,
           app.hospital_id, $12, $13, $14, $15, $16, $17, $18, $18, $19, $18
         FROM app
         RETURNING *
       ), s AS (
         INSERT INTO ref_sim_trades (merchant, out_trade_no, pay_type, channel_trade_no, amount_fen, subject,
           status, rule, buyer_logon_id, buyer_user_id, created_at, paid_at)
         SELECT t.app_id, t.out_trade_no, t.pay_type, t.channel_trade_no, t.total_fen, t.subject, 'PAID', $20,
           t.buyer_logon_id, t.buyer_user_id, $18, $18 FROM t
       ), l AS (
         INSERT INTO ref_sim_ledger (merchant, out_trade_no, entry, amount_fen, created_at)
         SELECT t.app_id, t.out_trade_no, 'charge', t.total_fen, $18 FROM t
       ), c AS (
         INSERT INTO ref_channel_calls (app_id, channel_id, operation, out_trade_no, started_at, latency_ms,
           outcome)
         SELECT t.app_id, 'simulator', 'simulator.barcodePay', t.out_trade_no, $18, 0, 'paid' FROM t
       )
       SELECT * FROM t`,
      [
        tokenHash,
        tradeNo,
        outTradeNo,
        payType,
        category,
        orderType,
        amount,
        subject,
        f.get('Descriptive') ?? null,
        f.get('OperatorID') ?? null,
        f.get('TerminalID') ?? null,
        patient,
        inhospital,
        fingerprint,
        channelTradeNo,
        `138****${digits(4)}`,
        `2088${digits(12)}`,
        now.toISOString(),
        new Date(now.getTime() + 120_000).toISOString(),
        authCode.slice(-2),
      ],
    );
    const t = rows[0];
    if (!t) throw new Refused('ACCESS_TOKEN_INVALID', '3');
    return answerXml(head, '1', 'SUCCESS', 'BarcodeTradeResult', {
      TradeNo: t.channel_trade_no ?? '',
      OutTradeNo: t.out_trade_no,
      OpenUserID: t.app_id,
      TotalAmount: yuan(t.total_fen),
      PaymentDateTime: time(t.paid_at),
      PayType: t.pay_type ?? '',
      TradeStatus: t.status,
      PlatformTradeNo: t.trade_no,
    });
  }

  async function query(f: Map<string, string>, tokenHash: string, head: Record<string, string>) {
    const outTradeNo = need(f, 'OutTradeNo', 64);
    const rows = await db.query<TradeRow & { the_app: string }>(
      `SELECT a.id AS the_app, t.* FROM ref_apps a
       LEFT JOIN ref_trades t ON t.app_id = a.id AND t.out_trade_no = $2
       WHERE a.token_hash = $1 AND a.status = 'active'`,
      [tokenHash, outTradeNo],
    );
    const t = rows[0];
    if (!t) throw new Refused('ACCESS_TOKEN_INVALID', '3');
    if (t.id === null) throw new Refused('TRADE_NOT_EXIST');
    return answerXml(head, '1', 'SUCCESS', 'BarcodeTradeStatus', {
      TradeNo: t.channel_trade_no ?? '',
      OutTradeNo: t.out_trade_no,
      OpenUserID: t.the_app,
      TradeStatus: t.status,
      HospitalID: t.hospital_id ?? '',
      TotalAmount: yuan(t.total_fen),
      OperatorID: t.operator_id ?? '',
      TerminalID: t.terminal_id ?? '',
      BuyerLogonId: t.buyer_logon_id ?? '',
      PaymentDateTime: time(t.paid_at),
      Buyer_user_id: t.buyer_user_id ?? '',
      PayType: t.pay_type ?? '',
      RefundFee: yuan(t.refunded_fen),
      PlatformTradeNo: t.trade_no,
      Category: t.category,
    });
  }

  async function refund(f: Map<string, string>, tokenHash: string, now: Date, head: Record<string, string>) {
    const tradeNo = need(f, 'TradeNo', 64);
    const amount = fen(need(f, 'RefundAmount', 12));
    if (amount === null) throw new Refused('INVALID_FIELD.RefundAmount');
    const requestNo = need(f, 'OutRequestNo', 32);
    const outTradeNo = need(f, 'OutTradeNo', 64);
    const total = fen(need(f, 'TotalAmount', 12));
    if (total === null) throw new Refused('INVALID_FIELD.TotalAmount');
    const refundNo = `R${compact(now)}${digits(10)}`;
    // One statement: the guarded reservation, the refund and the simulator's books; a repeated request number
    // fails the unique key and the whole statement is undone.
    const rows = await db.query<TradeRow & { out_request_no: string; amount_fen: number }>(
      `WITH app AS (
         SELECT id FROM ref_apps WHERE token_hash = $1 AND status = 'active'
       ), t AS (
         UPDATE ref_trades SET
           refund_reserved_fen = refund_reserved_fen + $4,
           refunded_fen = refunded_fen + $4,
           status = CASE WHEN refunded_fen + $4 = total_fen - insurance_fen THEN 'TRADE_CLOSED' ELSE status END,
           closed_at = CASE WHEN refunded_fen + $4 = total_fen - insurance_fen THEN $7::timestamptz
             ELSE closed_at END,
           updated_at = $7
         WHERE app_id = (SELECT id FROM app) AND out_trade_no = $2 AND status = 'TRADE_SUCCESS'
           AND total_fen = $5 AND (trade_no = $3 OR channel_trade_no = $3)
           AND refund_reserved_fen + $4 <= total_fen - insurance_fen
         RETURNING *
       ), r AS (
         INSERT INTO ref_refunds (trade_id, app_id, out_request_no, kind, amount_fen, status, reason,
           hospital_id, terminal_id, channel_refund_no, created_at, updated_at, finished_at)
         SELECT t.id, t.app_id, $6, 'refund', $4, 'SUCCESS', $8, $9, $10, $11, $7, $7, $7 FROM t
         RETURNING out_request_no, amount_fen
       ), s AS (
         UPDATE ref_sim_trades SET refunded_fen = refunded_fen + $4,
           status = CASE WHEN refunded_fen + $4 = amount_fen THEN 'REFUNDED' ELSE status END
         WHERE merchant = (SELECT app_id FROM t) AND out_trade_no = $2 AND status = 'PAID'
       ), sr AS (
         INSERT INTO ref_sim_refunds (merchant, out_trade_no, out_request_no, amount_fen, refund_no, created_at)
         SELECT t.app_id, t.out_trade_no, $6, $4, $11, $7 FROM t
       ), l AS (
         INSERT INTO ref_sim_ledger (merchant, out_trade_no, entry, amount_fen, created_at)
         SELECT t.app_id, t.out_trade_no, 'refund', -$4::bigint, $7 FROM t
       ), c AS (
         INSERT INTO ref_channel_calls (app_id, channel_id, operation, out_trade_no, started_at, latency_ms,
           outcome)
         SELECT t.app_id, 'simulator', 'simulator.refund', t.out_trade_no, $7, 0, 'success' FROM t
       )
       SELECT t.*, r.out_request_no, r.amount_fen FROM t, r`,
      [
        tokenHash,
        outTradeNo,
        tradeNo,
        amount,
        total,
        requestNo,
        now.toISOString(),
        f.get('RefundmentReason') ?? null,
        f.get('HospitalID') ?? null,
        f.get('TerminalID') ?? null,
        refundNo,
      ],
    );
    const t = rows[0];
    if (!t) throw new Refused('REFUND_REFUSED');
    return answerXml(head, '1', 'SUCCESS', 'BarcodeTradeRefundResult', {
      TradeNo: t.channel_trade_no ?? '',
      OutTradeNo: t.out_trade_no,
      OpenUserID: t.app_id,
      RefundFee: yuan(t.refunded_fen),
      RefundChange: 'Y',
      OutRequestNo: t.out_request_no,
      RefundAmount: yuan(t.amount_fen),
      TradeStatus: t.status,
    });
  }

  // -- the signed gateway ---------------------------------------------------------------------------------

  const content = (p: Record<string, string>) =>
    Object.keys(p)
      .filter((k) => k !== 'sign' && p[k] !== '')
      .sort()
      .map((k) => `${k}=${p[k] ?? ''}`)
      .join('&');

  const signedAnswer = (p: Record<string, string>, code: string, msg: string, biz: string) => {
    const params: Record<string, string> = {
      app_id: p['app_id'] ?? '',
      method: p['method'] ?? '',
      timestamp: shanghai(new Date()),
      nonce_str: p['nonce_str'] ?? '',
      code,
      msg,
      biz_content: biz,
      sign_type: 'RSA2',
    };
    const sign = createSign('RSA-SHA256').update(content(params), 'utf8').sign(platform.privateKey, 'base64');
    const j = JSON.stringify;
    return (
      `{"app_id":${j(params['app_id'])},"method":${j(params['method'])},"timestamp":${j(params['timestamp'])},` +
      `"nonce_str":${j(params['nonce_str'])},"code":${j(code)},"msg":${j(msg)},"biz_content":${biz},` +
      `"sign_type":"RSA2","sign":${j(sign)}}`
    );
  };

  const REQUIRED = ['app_id', 'method', 'timestamp', 'nonce_str', 'biz_content', 'sign_type', 'sign'];

  app.post('/ref/gateway', async (req, reply) => {
    reply.type('application/json; charset=utf-8');
    const p: Record<string, string> = Object.create(null) as Record<string, string>;
    const refuse = (code: string, sub: string) =>
      signedAnswer(p, code, 'Invalid Arguments', JSON.stringify({ sub_code: sub, sub_msg: sub }));
    try {
      if (!Buffer.isBuffer(req.body)) return refuse('40002', 'isv.invalid-content-type');
      for (const [k, v] of new URLSearchParams(decoder.decode(req.body))) {
        if (Object.hasOwn(p, k)) return refuse('40002', 'isv.repeated-parameter');
        p[k] = v;
      }
      for (const k of REQUIRED) if (!p[k]) return refuse('40001', `isv.missing-${k.replace(/_/g, '-')}`);
      const key = appKeys.get(p['app_id'] ?? '');
      if (!key) return refuse('20001', 'isv.invalid-app-id');
      if ((p['sign_type'] ?? '').toUpperCase() !== 'RSA2')
        return refuse('40002', 'isv.invalid-signature-type');
      if (
        !createVerify('RSA-SHA256')
          .update(content(p), 'utf8')
          .verify(key, p['sign'] ?? '', 'base64')
      )
        return refuse('40002', 'isv.invalid-signature');
      const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(p['timestamp'] ?? '');
      if (!m) return refuse('40002', 'isv.invalid-timestamp');
      const ts = Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}+08:00`);
      const now = new Date();
      if (!(Math.abs(now.getTime() - ts) <= 300_000)) return refuse('40002', 'isv.stale-timestamp');
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(p['nonce_str'] ?? '')) return refuse('40002', 'isv.invalid-nonce');
      if (p['method'] !== 'lc.trade.h5.pay') return refuse('40002', 'isv.invalid-method');
      const biz = parseLossless(p['biz_content'] ?? '') as Record<string, unknown>;
      const str = (k: string) => (biz[k] === undefined || biz[k] === null ? undefined : String(biz[k]));
      const outTradeNo = str('out_trade_no');
      const amount = fen(str('total_amount') ?? '');
      const subject = str('subject');
      const orderType = (str('order_type') ?? '').toUpperCase();
      if (!outTradeNo || !/^[A-Za-z0-9_-]{1,64}$/.test(outTradeNo))
        return refuse('40002', 'INVALID_FIELD.out_trade_no');
      if (amount === null || !subject || !orderType) return refuse('40002', 'INVALID_FIELD');
      const token = randomBytes(18).toString('base64url');
      const extra = JSON.stringify({ sign_type: 'RSA2' });
      const fingerprint = sha256(
        JSON.stringify(['h5', amount, subject, str('return_url') ?? '', str('notify_url') ?? '', orderType]),
      );
      const rows = await db.query<{ trade_no: string; out_trade_no: string; code_url: string }>(
        `WITH n AS (
           INSERT INTO ref_nonces (app_id, nonce, expires_at)
           SELECT id, $2, $3 FROM ref_apps WHERE id = $1 AND status = 'active'
           RETURNING app_id
         ), t AS (
           INSERT INTO ref_trades (trade_no, app_id, out_trade_no, kind, status, category, order_type, total_fen,
             subject, body, hospital_id, timeout_express, fingerprint, code_url, cashier_token, created_at,
             updated_at, expires_at, notify_url, return_url, extra)
           SELECT $4, n.app_id, $5, 'h5', 'WAIT_BUYER_PAY', $6, $7, $8, $9, $10, NULL, '30m', $11, $12, $13,
             $14, $14, $15, $16, $17, $18
           FROM n
           RETURNING trade_no, out_trade_no, code_url
         )
         SELECT * FROM t`,
        [
          p['app_id'],
          p['nonce_str'],
          new Date(now.getTime() + 600_000).toISOString(),
          `HP${compact(now)}${digits(10)}`,
          outTradeNo,
          /^[A-Za-z]+/.exec(outTradeNo)?.[0] ?? 'OTHER',
          orderType,
          amount,
          subject,
          str('body') ?? null,
          fingerprint,
          `http://127.0.0.1/goto/${token}`,
          token,
          now.toISOString(),
          new Date(now.getTime() + 1_800_000).toISOString(),
          str('notify_url') ?? null,
          str('return_url') ?? null,
          extra,
        ],
      );
      const t = rows[0];
      if (!t) return refuse('20001', 'isv.invalid-app-id');
      const bizOut = JSON.stringify({
        sub_code: '',
        sub_msg: '',
        out_trade_no: t.out_trade_no,
        platform_trade_no: t.trade_no,
        goto_url: t.code_url,
      });
      return signedAnswer(p, '10000', 'Success', bizOut);
    } catch (e) {
      if ((e as { code?: string }).code === '23505') return refuse('40002', 'isv.repeated-nonce');
      req.log.error(e);
      return signedAnswer(p, '20000', 'Service Currently Unavailable', '{"sub_code":"SYSTEM_ERROR"}');
    }
  });

  // -- notifications --------------------------------------------------------------------------------------

  let paused = false;
  let stopped = false;
  let pass = 0;
  const owner = `ref-${randomBytes(4).toString('hex')}`;

  interface Claimed {
    id: number;
    notify_id: string;
    app_id: string;
    url: string;
    trade_status: string;
    attempts: number;
    out_trade_no: string;
    trade_no: string;
    channel_trade_no: string | null;
    buyer_user_id: string | null;
    total_fen: number;
    refunded_fen: number;
    paid_at: Date | string | null;
    pay_type: string | null;
  }

  async function notifyTick(): Promise<number> {
    const now = new Date();
    const claim = `${owner}:${++pass}`;
    const claimed = await db.query<Claimed>(
      `UPDATE ref_notifications n SET lease_until = $1, lease_owner = $2
       FROM ref_trades t
       WHERE n.id IN (
         SELECT id FROM ref_notifications
         WHERE status = 'PENDING' AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until < $3)
         ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
         AND t.id = n.trade_id
       RETURNING n.id, n.notify_id, n.app_id, n.url, n.trade_status, n.attempts, t.out_trade_no, t.trade_no,
         t.channel_trade_no, t.buyer_user_id, t.total_fen, t.refunded_fen, t.paid_at, t.pay_type`,
      [new Date(now.getTime() + 70_000).toISOString(), claim, now.toISOString(), notifyBatch],
    );
    if (claimed.length === 0) return 0;
    const results = await Promise.all(
      claimed.map(async (n) => {
        const started = new Date();
        const t0 = performance.now();
        const biz =
          `{"out_trade_no":${JSON.stringify(n.out_trade_no)},"trade_no":${JSON.stringify(n.channel_trade_no ?? '')},` +
          `"platform_trade_no":${JSON.stringify(n.trade_no)},"trade_status":${JSON.stringify(n.trade_status)},` +
          `"total_amount":${yuan(n.total_fen)},"gmt_payment":${JSON.stringify(time(n.paid_at))},` +
          `"refund_fee":${yuan(n.refunded_fen)}}`;
        const form: Record<string, string> = {
          app_id: n.app_id,
          method: 'lc.trade.notify',
          timestamp: shanghai(started),
          nonce_str: randomUUID().replace(/-/g, ''),
          notify_id: n.notify_id,
          charset: 'utf-8',
          version: '1.0',
          biz_content: biz,
          sign_type: 'RSA2',
        };
        form['sign'] = createSign('RSA-SHA256')
          .update(content(form), 'utf8')
          .sign(platform.privateKey, 'base64');
        let status: number | null = null;
        let body = '';
        let error: string | null = null;
        try {
          const res = await fetch(n.url, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
            body: new URLSearchParams(form).toString(),
            redirect: 'manual',
            signal: AbortSignal.timeout(10_000),
          });
          status = res.status;
          body = (await res.text()).slice(0, 200);
        } catch (e) {
          error = e instanceof Error ? e.message : String(e);
        }
        const ok = error === null && status !== null && status >= 200 && status < 300 && body === 'success';
        return { n, ok, started, latency: Math.round(performance.now() - t0), status, body, error };
      }),
    );
    const done = new Date();
    // Every attempt and every outcome of the batch in one statement.
    await db.query(
      `WITH a AS (
         INSERT INTO ref_notify_attempts (notification_id, attempt, started_at, http_status, latency_ms,
           body_excerpt, error)
         SELECT * FROM unnest($1::bigint[], $2::int[], $3::timestamptz[], $4::int[], $5::int[], $6::text[],
           $7::text[])
       )
       UPDATE ref_notifications SET attempts = attempts + 1, lease_until = NULL, lease_owner = NULL,
         status = CASE WHEN id = ANY($8::bigint[]) THEN 'DELIVERED' ELSE status END,
         delivered_at = CASE WHEN id = ANY($8::bigint[]) THEN $9::timestamptz ELSE delivered_at END,
         next_attempt_at = CASE WHEN id = ANY($8::bigint[]) THEN next_attempt_at
           ELSE $9::timestamptz + interval '4 minutes' END
       WHERE id = ANY($1::bigint[]) AND lease_owner = $10`,
      [
        results.map((r) => r.n.id),
        results.map((r) => r.n.attempts + 1),
        results.map((r) => r.started.toISOString()),
        results.map((r) => r.status),
        results.map((r) => r.latency),
        results.map((r) => r.body),
        results.map((r) => r.error),
        results.filter((r) => r.ok).map((r) => r.n.id),
        done.toISOString(),
        claim,
      ],
    );
    return claimed.length;
  }

  const loop = () => {
    if (stopped) return;
    if (paused) {
      setTimeout(loop, notifyInterval);
      return;
    }
    notifyTick()
      .then((n) => setTimeout(loop, n >= notifyBatch ? 0 : notifyInterval))
      .catch((e: unknown) => {
        console.error('ref notify tick failed', e);
        setTimeout(loop, notifyInterval);
      });
  };
  setTimeout(loop, notifyInterval);

  app.post('/ref/notify/pause', async () => {
    paused = true;
    return { paused };
  });
  app.post('/ref/notify/resume', async () => {
    paused = false;
    return { paused };
  });

  const paidTradeColumns = `trade_no, app_id, out_trade_no, kind, status, pay_type, channel, category, order_type,
    total_fen, subject, fingerprint, channel_trade_no, buyer_user_id, created_at, updated_at, expires_at, paid_at,
    notify_url, extra`;

  /** N paid trades with their PENDING notifications (what N H5 payments leave), in one statement. */
  app.post('/ref/notify/seed', async (req) => {
    const b = req.body as { app_id: string; n: number; url: string; prefix: string };
    const now = new Date().toISOString();
    await db.query(
      `WITH t AS (
         INSERT INTO ref_trades (${paidTradeColumns})
         SELECT 'HP' || $4::text || lpad(g::text, 10, '0'), $1, $4::text || g::text, 'h5', 'TRADE_SUCCESS', 'alipay', 'simulator',
           'OTHER', 'TREATMENT', 8888, 'seed', 'seed', '2026' || lpad(g::text, 24, '0'), '2088000000000000',
           $5, $5, $5, $5, $3, '{"sign_type":"RSA2"}'
         FROM generate_series(1, $2::int) g
         RETURNING id, app_id, notify_url
       )
       INSERT INTO ref_notifications (notify_id, app_id, trade_id, url, trade_status, status, attempts,
         next_attempt_at, created_at)
       SELECT replace(gen_random_uuid()::text, '-', ''), t.app_id, t.id, t.notify_url, 'TRADE_SUCCESS', 'PENDING',
         0, $5, $5 FROM t`,
      [b.app_id, b.n, b.url, b.prefix, now],
    );
    return { seeded: b.n };
  });

  /** One trade paid with its notification written by the same statement (the outbox of a transition). */
  app.post('/ref/notify/pay', async (req) => {
    const b = req.body as { app_id: string; out_trade_no: string; url: string };
    const now = new Date();
    const rows = await db.query<{ id: number }>(
      `WITH t AS (
         INSERT INTO ref_trades (${paidTradeColumns})
         VALUES ($2, $1, $3, 'h5', 'TRADE_SUCCESS', 'alipay', 'simulator', 'OTHER', 'TREATMENT', 8888, 'live',
           'live', $4, '2088000000000000', $5, $5, $5, $5, $6, '{"sign_type":"RSA2"}')
         RETURNING id, app_id, notify_url
       ), n AS (
         INSERT INTO ref_notifications (notify_id, app_id, trade_id, url, trade_status, status, attempts,
           next_attempt_at, created_at)
         SELECT replace(gen_random_uuid()::text, '-', ''), t.app_id, t.id, t.notify_url, 'TRADE_SUCCESS',
           'PENDING', 0, $5, $5 FROM t
       )
       SELECT id FROM t`,
      [
        b.app_id,
        `HP${compact(now)}${digits(10)}`,
        b.out_trade_no,
        `${compact(now).slice(0, 8)}22001${digits(15)}`,
        now.toISOString(),
        b.url,
      ],
    );
    return { id: rows[0]?.id };
  });

  const port = Number(process.env['REF_PORT'] ?? 0);
  const address = await app.listen({ host: '127.0.0.1', port });
  console.log(`reference serving on ${address}`);
  const stop = async () => {
    stopped = true;
    await app.close();
    await db.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

await main();
