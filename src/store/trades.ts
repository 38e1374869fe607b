import { CompiledQuery, sql, type Transaction, type UpdateQueryBuilder } from 'kysely';
import type { Db } from './db.js';
import type { Database, NewTrade, Trade } from './schema.js';
import { newTradeRow, tradeFromJson, type TradeRowFields } from './trade-row.js';
import { outbox, outboxText } from './outbox.js';
import { insertNonce, isNonceReplay, NonceReplayError, type GatewayNonce } from './nonces.js';
import type { PaidInfo } from '../domain/payment.js';
import { subFen, ZERO_FEN, type Fen } from '../domain/money.js';
import { Batcher, columnsOf } from './batcher.js';

type Exec = Db | Transaction<Database>;

/**
 * The trade reads of the query path, each a whole row as one JSON text (read back by tradeFromJson: one column
 * for the driver to describe and decode instead of every column of the table).
 */
const TRADE_BY_OUT_TRADE_NO =
  'select to_json(trades.*)::text as row from trades where app_id = $1 and out_trade_no = $2';
/** TRADE_BY_OUT_TRADE_NO for several order numbers: a row per number in its order, `row` null where none. */
const TRADES_BY_OUT_TRADE_NO =
  'select u.ord::int as ord, to_json(trades.*)::text as row from unnest($1::text[], $2::text[]) ' +
  'with ordinality as u(app_id, out_trade_no, ord) ' +
  'left join trades on trades.app_id = u.app_id and trades.out_trade_no = u.out_trade_no order by u.ord';
const TRADE_BY_ID = 'select to_json(trades.*)::text as row from trades where id = $1';

/**
 * Runs one fixed SQL text with its parameters, skipping Kysely's query building and compiling (for the statements
 * of the payment paths: building and compiling was a tenth of the server's CPU there). The text is a constant made
 * once, so the prepared statement's name (store/prepared.ts) is found by identity, not by hashing the text again.
 * The text must be plain PostgreSQL with $n parameters (it runs on PGlite too). Plugins see the statement as a
 * raw query (a plugin counting statements counts it), as they see sql`` templates.
 */
export async function runFixed<R>(exec: Exec, text: string, params: readonly unknown[]): Promise<R[]> {
  const q = CompiledQuery.raw(text, params as unknown[]);
  const executor = exec.getExecutor();
  executor.transformQuery(q.query, q.queryId);
  const r = await executor.executeQuery<R>(q);
  return r.rows;
}

/**
 * The columns of a new trade as newTradeRow makes it (store/trade-row.ts), in the table's order: the insert
 * names each of them. The rest (DEFAULTED) are left to the table's defaults and read back by the insert.
 */
const INSERTED = [
  'trade_no',
  'app_id',
  'out_trade_no',
  'kind',
  'status',
  'pay_type',
  'channel',
  'category',
  'order_type',
  'total_fen',
  'subject',
  'body',
  'operator_id',
  'terminal_id',
  'hospital_id',
  'patient_name',
  'inhospital_no',
  'tel',
  'trade_detail',
  'timeout_express',
  'fingerprint',
  'channel_trade_no',
  'code_url',
  'channel_code_url',
  'cashier_token',
  'buyer_logon_id',
  'buyer_user_id',
  'cancel_action',
  'created_at',
  'updated_at',
  'expires_at',
  'paid_at',
  'closed_at',
  'lease_until',
  'lease_owner',
  'notify_url',
  'return_url',
  'extra',
  'insurance_fen',
  'reduced_fen',
] as const satisfies ReadonlyArray<keyof NewTrade & keyof Trade>;
const DEFAULTED = [
  'id',
  'refund_reserved_fen',
  'refunded_fen',
  'job_attempts',
  'insurance_refunded_fen',
  'insurance_state',
  'settlement_no',
] as const satisfies ReadonlyArray<keyof Trade>;
// Every column of a trade is in one of the two lists: a new column that is in neither fails to compile here.
const everyColumnListed: [
  Exclude<keyof Trade, (typeof INSERTED)[number] | (typeof DEFAULTED)[number]>,
] extends [never]
  ? true
  : never = true;
void everyColumnListed;
const INSERTED_SET: ReadonlySet<string> = new Set(INSERTED);

const INSERT_TRADE =
  `insert into trades (${INSERTED.join(', ')}) values (${INSERTED.map((_, i) => `$${i + 1}`).join(', ')}) ` +
  `on conflict (app_id, out_trade_no) do nothing returning ${DEFAULTED.join(', ')}`;
const n0 = INSERTED.length;
/** The same, storing a gateway request's nonce in the same statement (see insertOrGet). */
const INSERT_TRADE_WITH_NONCE =
  `with n as (insert into gateway_nonces (app_id, nonce, expires_at) values ($${n0 + 1}, $${n0 + 2}, $${n0 + 3}) ` +
  `returning nonce) ${INSERT_TRADE}`;

type Defaulted = Pick<Trade, (typeof DEFAULTED)[number]>;

/** Each INSERTED column's SQL type, for the batch insert's arrays (a column missing here fails to compile). */
const COLUMN_TYPE: Record<(typeof INSERTED)[number], 'text' | 'bigint' | 'timestamptz'> = {
  trade_no: 'text',
  app_id: 'text',
  out_trade_no: 'text',
  kind: 'text',
  status: 'text',
  pay_type: 'text',
  channel: 'text',
  category: 'text',
  order_type: 'text',
  total_fen: 'bigint',
  subject: 'text',
  body: 'text',
  operator_id: 'text',
  terminal_id: 'text',
  hospital_id: 'text',
  patient_name: 'text',
  inhospital_no: 'text',
  tel: 'text',
  trade_detail: 'text',
  timeout_express: 'text',
  fingerprint: 'text',
  channel_trade_no: 'text',
  code_url: 'text',
  channel_code_url: 'text',
  cashier_token: 'text',
  buyer_logon_id: 'text',
  buyer_user_id: 'text',
  cancel_action: 'text',
  created_at: 'timestamptz',
  updated_at: 'timestamptz',
  expires_at: 'timestamptz',
  paid_at: 'timestamptz',
  closed_at: 'timestamptz',
  lease_until: 'timestamptz',
  lease_owner: 'text',
  notify_url: 'text',
  return_url: 'text',
  extra: 'text',
  insurance_fen: 'bigint',
  reduced_fen: 'bigint',
};
/** The INSERTED columns as arrays, one parameter each ($1 … $n0), unnested into rows `u` numbered by `ord`. */
const UNNEST_ROWS = (extra: ReadonlyArray<{ name: string; type: string }>) => {
  const cols = [...INSERTED.map((c) => ({ name: c as string, type: COLUMN_TYPE[c] })), ...extra];
  return (
    `u as (select * from unnest(${cols.map((c, i) => `$${i + 1}::${c.type}[]`).join(', ')}) ` +
    `with ordinality as u(${cols.map((c) => c.name).join(', ')}, ord))`
  );
};
const INSERT_FROM_U = (join: string) =>
  `ins as (insert into trades (${INSERTED.join(', ')}) select ${INSERTED.map((c) => `u.${c}`).join(', ')} ` +
  `from u${join} on conflict (app_id, out_trade_no) do nothing ` +
  `returning app_id, out_trade_no, ${DEFAULTED.join(', ')})`;
const JOIN_INS = 'left join ins on ins.app_id = u.app_id and ins.out_trade_no = u.out_trade_no';
/**
 * INSERT_TRADE for several trades in one statement (TradeRepository's batcher): a row per trade in its order,
 * with the defaulted columns of those inserted (id null: the order number was taken).
 */
const INSERT_TRADES =
  `with ${UNNEST_ROWS([])}, ${INSERT_FROM_U('')} ` +
  `select u.ord::int as ord, ${DEFAULTED.map((c) => `ins.${c}`).join(', ')} from u ${JOIN_INS} order by u.ord`;
/**
 * INSERT_TRADE_WITH_NONCE for several: a nonce used before is not stored and its trade not inserted (`fresh`
 * false: that request is a replay), where the one-row statement fails on the nonce's key.
 */
const INSERT_TRADES_WITH_NONCES =
  `with ${UNNEST_ROWS([
    { name: 'nonce_app_id', type: 'text' },
    { name: 'nonce', type: 'text' },
    { name: 'nonce_expires_at', type: 'timestamptz' },
  ])}, ` +
  'n as (insert into gateway_nonces (app_id, nonce, expires_at) select u.nonce_app_id, u.nonce, u.nonce_expires_at ' +
  'from u on conflict do nothing returning app_id, nonce), ' +
  `${INSERT_FROM_U(' join n on n.app_id = u.nonce_app_id and n.nonce = u.nonce')} ` +
  `select u.ord::int as ord, n.nonce is not null as fresh, ${DEFAULTED.map((c) => `ins.${c}`).join(', ')} ` +
  `from u left join n on n.app_id = u.nonce_app_id and n.nonce = u.nonce ${JOIN_INS} order by u.ord`;

/** markPaid as one fixed statement: the guarded update, its notification, the trade as one JSON text. */
const MARK_PAID =
  "with t as (update trades set status = 'TRADE_SUCCESS', channel_trade_no = $1, paid_at = $2, " +
  'buyer_logon_id = $3, buyer_user_id = $4, updated_at = $5 ' +
  "where id = $6 and status = 'WAIT_BUYER_PAY' returning *), " +
  `n as (${outboxText('$5', ['TRADE_SUCCESS', 'TRADE_CLOSED'])}) ` +
  'select to_json(t.*)::text as row from t';

/** MARK_PAID for several trades in one statement: a row per trade in its order, its JSON null if it was not waiting. */
const MARK_PAID_MANY =
  'with u as (select * from unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::timestamptz[], ' +
  '$6::bigint[]) with ordinality as u(channel_trade_no, paid_at, buyer_logon_id, buyer_user_id, now, id, ord)), ' +
  "t as (update trades set status = 'TRADE_SUCCESS', channel_trade_no = u.channel_trade_no, paid_at = u.paid_at, " +
  'buyer_logon_id = u.buyer_logon_id, buyer_user_id = u.buyer_user_id, updated_at = u.now from u ' +
  "where trades.id = u.id and trades.status = 'WAIT_BUYER_PAY' returning trades.*), " +
  `n as (${outboxText('t.updated_at', ['TRADE_SUCCESS', 'TRADE_CLOSED'])}) ` +
  'select u.ord::int as ord, to_json(t.*)::text as row from u left join t on t.id = u.id order by u.ord';

/** Where a trade's app and order number are among the insert's parameters (the batch key). */
const APP_ID_AT = INSERTED.indexOf('app_id');
const OUT_TRADE_NO_AT = INSERTED.indexOf('out_trade_no');

/** A batch statement's row as the trade it holds (`row`: the trade as one JSON text), or undefined for null. */
export const tradeOfRow = (r: { row: string | null }): Trade | undefined =>
  r.row === null ? undefined : tradeFromJson(r.row);

/** markPaid's parameters, in MARK_PAID's order (MARK_PAID_MANY takes them as arrays in the same order). */
const paidParams = ({ id, info, now }: MarkPaidItem): unknown[] => [
  info.channelTradeNo,
  info.paidAt,
  info.buyerLogonId ?? null,
  info.buyerUserId ?? null,
  now,
  id,
];

type NonceInsert = { params: unknown[]; nonce: GatewayNonce };
type MarkPaidItem = { id: number; info: PaidInfo; now: Date };

/**
 * The insert's parameters for a row that names exactly the INSERTED columns (what newTradeRow makes), in their
 * order; null for any other row (a column left out for its default, or one not in the list), which is then
 * inserted by Kysely as given.
 */
export function insertParams(trade: NewTrade): unknown[] | null {
  const row = trade as unknown as Record<string, unknown>;
  for (const k in row) if (row[k] !== undefined && !INSERTED_SET.has(k)) return null;
  const params = new Array<unknown>(INSERTED.length);
  for (let i = 0; i < INSERTED.length; i++) {
    const v = row[INSERTED[i] as string];
    if (v === undefined) return null;
    params[i] = v;
  }
  return params;
}

/**
 * Where each INSERTED column's value comes from when the caller does not give it, as newTradeRow decides: a
 * default value, or ('created_at') the given creation time. Learnt once, from newTradeRow itself (a probe row
 * with a marker creation time), so that newRowParams makes the same row without building it: newTradeRow's
 * object spread costs tens of microseconds per trade.
 */
const ROW_DEFAULTS: ReadonlyArray<{ value: unknown } | 'created_at' | null> = (() => {
  const marker = new Date(0);
  const required: TradeRowFields = {
    trade_no: '',
    app_id: '',
    out_trade_no: '',
    kind: 'void',
    category: '',
    order_type: '',
    total_fen: ZERO_FEN,
    subject: '',
    fingerprint: '',
    created_at: marker,
    expires_at: new Date(1),
  };
  const probe = newTradeRow(required) as unknown as Record<string, unknown>;
  return INSERTED.map((c) => {
    const v = probe[c];
    if (v === marker) return 'created_at';
    return v === undefined || c in required ? null : { value: v };
  });
})();

/**
 * The insert's parameters for newTradeRow(fields), made without building that row; null when the row would not
 * be one fixed insert (insertParams), which the caller then makes with newTradeRow.
 */
export function newRowParams(fields: TradeRowFields): unknown[] | null {
  const f = fields as unknown as Record<string, unknown>;
  for (const k in f) if (f[k] !== undefined && !INSERTED_SET.has(k)) return null;
  const params = new Array<unknown>(INSERTED.length);
  for (let i = 0; i < INSERTED.length; i++) {
    let v = f[INSERTED[i] as string];
    if (v === undefined) {
      const d = ROW_DEFAULTS[i];
      v = d === 'created_at' ? fields.created_at : d?.value;
      if (v === undefined) return null;
    }
    params[i] = v;
  }
  return params;
}

/** The stored trade: what was inserted, with what the table gave (its id and defaults). */
function insertedTrade(params: readonly unknown[], given: Defaulted): Trade {
  const t: Record<string, unknown> = { id: given.id };
  for (let i = 0; i < INSERTED.length; i++) t[INSERTED[i] as string] = params[i];
  for (const k of DEFAULTED) t[k] = given[k];
  return t as unknown as Trade;
}

/**
 * Trades and refunds. Every state change is a guarded UPDATE (WHERE status = the expected state), so two
 * requests, two jobs or two server instances can never both make the same transition.
 */
export class TradeRepository {
  /**
   * The payment paths' own statements, batched under load (store/batcher.ts): the trade's insert (with and
   * without a gateway nonce), markPaid and the read by order number. Alone they are the one-row statements.
   */
  private readonly inserts: Batcher<readonly unknown[], Defaulted | undefined>;
  private readonly nonceInserts: Batcher<NonceInsert, Defaulted | undefined | 'replay'>;
  private readonly paid: Batcher<MarkPaidItem, Trade | undefined>;
  /** The query's read by order number, batched likewise (a read sees what was committed when it started). */
  private readonly reads: Batcher<readonly [string, string], Trade | undefined>;

  constructor(private readonly db: Db) {
    const tradeKey = (params: readonly unknown[]) =>
      `${String(params[APP_ID_AT])}\u0000${String(params[OUT_TRADE_NO_AT])}`;
    const withNonce = ({ params, nonce }: NonceInsert) => [
      ...params,
      nonce.appId,
      nonce.nonce,
      nonce.expiresAt,
    ];
    this.inserts = new Batcher({
      name: 'trade_insert',
      key: tradeKey,
      one: async (params) => (await runFixed<Defaulted>(this.db, INSERT_TRADE, params))[0],
      many: async (items) => {
        const rows = await runFixed<Defaulted & { ord: number }>(
          this.db,
          INSERT_TRADES,
          columnsOf(items, INSERTED.length),
        );
        return rows.map((r) => (r.id === null ? undefined : r));
      },
    });
    this.nonceInserts = new Batcher({
      name: 'trade_insert_nonce',
      key: ({ params, nonce }) => [tradeKey(params), `n\u0000${nonce.appId}\u0000${nonce.nonce}`],
      one: async ({ params, nonce }) => {
        try {
          const [given] = await runFixed<Defaulted>(
            this.db,
            INSERT_TRADE_WITH_NONCE,
            withNonce({ params, nonce }),
          );
          return given;
        } catch (e) {
          if (isNonceReplay(e)) return 'replay';
          throw e;
        }
      },
      many: async (items) => {
        const rows = await runFixed<Defaulted & { ord: number; fresh: boolean }>(
          this.db,
          INSERT_TRADES_WITH_NONCES,
          columnsOf(items.map(withNonce), INSERTED.length + 3),
        );
        return rows.map((r) => (!r.fresh ? 'replay' : r.id === null ? undefined : r));
      },
    });
    this.reads = new Batcher({
      name: 'trade_read',
      key: ([appId, outTradeNo]) => `${appId}\u0000${outTradeNo}`,
      one: async (p) => {
        const [r] = await runFixed<{ row: string }>(this.db, TRADE_BY_OUT_TRADE_NO, p);
        return r && tradeFromJson(r.row);
      },
      many: async (items) => {
        const rows = await runFixed<{ row: string | null }>(this.db, TRADES_BY_OUT_TRADE_NO, [
          items.map((i) => i[0]),
          items.map((i) => i[1]),
        ]);
        return rows.map(tradeOfRow);
      },
    });
    this.paid = new Batcher({
      name: 'trade_paid',
      key: ({ id }) => String(id),
      one: async (item) => {
        const [r] = await runFixed<{ row: string }>(this.db, MARK_PAID, paidParams(item));
        return r && tradeFromJson(r.row);
      },
      many: async (items) => {
        const rows = await runFixed<{ row: string | null }>(
          this.db,
          MARK_PAID_MANY,
          columnsOf(items.map(paidParams), 6),
        );
        return rows.map(tradeOfRow);
      },
    });
  }

  /** How the batched statements ran (statements, items, items retried alone): for tests and diagnosis. */
  batchStats(): Record<'insert' | 'insertWithNonce' | 'markPaid' | 'read', Batcher<never, unknown>['stats']> {
    return {
      read: this.reads.stats,
      insert: this.inserts.stats,
      insertWithNonce: this.nonceInserts.stats,
      markPaid: this.paid.stats,
    };
  }

  /**
   * Inserts a new trade, or returns the existing one for (app, out_trade_no). With `nonce` (a gateway request's
   * nonce_str), the nonce is stored in the same statement: a nonce used before fails its unique key, nothing
   * is written, and NonceReplayError is thrown; otherwise `nonce.consumed` becomes true.
   */
  async insertOrGet(trade: NewTrade, nonce?: GatewayNonce): Promise<{ trade: Trade; inserted: boolean }> {
    return this.insertRow(trade, insertParams(trade), nonce);
  }

  /**
   * insertOrGet(newTradeRow(fields), nonce), without building the row first (the payment paths' insert): the same
   * statement, the same row.
   */
  async insertNewOrGet(
    fields: TradeRowFields,
    nonce?: GatewayNonce,
  ): Promise<{ trade: Trade; inserted: boolean }> {
    const params = newRowParams(fields);
    return params
      ? this.insertRow({ app_id: fields.app_id, out_trade_no: fields.out_trade_no }, params, nonce)
      : this.insertOrGet(newTradeRow(fields), nonce);
  }

  /** The insert: one fixed statement with `params` (insertParams), else Kysely's insert of `trade` as given. */
  private async insertRow(
    trade: Pick<NewTrade, 'app_id' | 'out_trade_no'>,
    params: unknown[] | null,
    nonce?: GatewayNonce,
  ): Promise<{ trade: Trade; inserted: boolean }> {
    let ins: Trade | undefined;
    if (params) {
      // The common row, as one fixed statement that reads back only what the table added.
      let given: Defaulted | undefined;
      if (nonce) {
        const r = await this.nonceInserts.run({ params, nonce });
        if (r === 'replay') throw new NonceReplayError();
        nonce.consumed = true;
        given = r;
      } else given = await this.inserts.run(params);
      if (given) ins = insertedTrade(params, given);
    } else if (nonce) {
      try {
        ins = await this.db
          .with('n', (db) => insertNonce(db, nonce))
          .insertInto('trades')
          .values(trade as NewTrade)
          .onConflict((oc) => oc.columns(['app_id', 'out_trade_no']).doNothing())
          .returningAll()
          .executeTakeFirst();
      } catch (e) {
        if (isNonceReplay(e)) throw new NonceReplayError();
        throw e;
      }
      nonce.consumed = true;
    } else {
      ins = await this.db
        .insertInto('trades')
        .values(trade as NewTrade)
        .onConflict((oc) => oc.columns(['app_id', 'out_trade_no']).doNothing())
        .returningAll()
        .executeTakeFirst();
    }
    if (ins) return { trade: ins, inserted: true };
    const existing = await this.byOutTradeNo(trade.app_id, trade.out_trade_no);
    if (!existing) throw new Error('trade vanished after a unique conflict');
    return { trade: existing, inserted: false };
  }

  /**
   * Burns an order number nobody has paid with yet (a cancel for a trade hospay never saw): a closed 'void'
   * trade takes the (app, out_trade_no) key, so a late pay with that number can never be charged.
   */
  async insertVoid(
    appId: string,
    outTradeNo: string,
    tradeNo: string,
    now: Date,
  ): Promise<{ trade: Trade; inserted: boolean }> {
    return this.insertOrGet(
      newTradeRow({
        trade_no: tradeNo,
        app_id: appId,
        out_trade_no: outTradeNo,
        kind: 'void',
        status: 'TRADE_CLOSED',
        category: 'VOID',
        order_type: '',
        total_fen: ZERO_FEN,
        subject: '',
        fingerprint: 'void',
        cancel_action: 'close',
        created_at: now,
        expires_at: now,
        closed_at: now,
      }),
    );
  }

  /**
   * The trade by its order number (the query's one statement): fixed text (runFixed), the row as one JSON text
   * (tradeFromJson).
   */
  async byOutTradeNo(appId: string, outTradeNo: string, exec: Exec = this.db): Promise<Trade | undefined> {
    if (exec === this.db) return this.reads.run([appId, outTradeNo]);
    const [r] = await runFixed<{ row: string }>(exec, TRADE_BY_OUT_TRADE_NO, [appId, outTradeNo]);
    return r && tradeFromJson(r.row);
  }

  async byId(id: number): Promise<Trade | undefined> {
    const [r] = await runFixed<{ row: string }>(this.db, TRADE_BY_ID, [id]);
    return r && tradeFromJson(r.row);
  }

  async byCashierToken(token: string): Promise<Trade | undefined> {
    return this.db.selectFrom('trades').selectAll().where('cashier_token', '=', token).executeTakeFirst();
  }

  /** WAIT_BUYER_PAY -> TRADE_SUCCESS. Returns the updated trade, or undefined if it was not waiting. */
  async markPaid(id: number, info: PaidInfo, now: Date): Promise<Trade | undefined> {
    // The same statement transition() builds, fixed (runFixed): it is on every payment's path, batched under load.
    return this.paid.run({ id, info, now });
  }

  /**
   * Runs a guarded state change and, in the same statement, writes the notification (outbox) for a trade that
   * has a notify_url and has just become TRADE_SUCCESS or TRADE_CLOSED: no notify before commit, none lost.
   */
  private async transition(
    update: (db: Exec) => UpdateQueryBuilder<Database, 'trades', 'trades', Trade>,
    now: Date,
    exec: Exec = this.db,
    notifyOn: ReadonlyArray<'TRADE_SUCCESS' | 'TRADE_CLOSED'> = ['TRADE_SUCCESS', 'TRADE_CLOSED'],
  ): Promise<Trade | undefined> {
    return exec
      .with('t', (db) => update(db as unknown as Exec))
      .with('n', (db) => outbox(db, now, notifyOn))
      .selectFrom('t')
      .selectAll()
      .executeTakeFirst() as Promise<Trade | undefined>;
  }

  /** WAIT_BUYER_PAY -> TRADE_CLOSED without payment. */
  async markClosedUnpaid(id: number, action: 'close' | null, now: Date): Promise<Trade | undefined> {
    return this.transition(
      (db) =>
        db
          .updateTable('trades')
          .set({ status: 'TRADE_CLOSED', cancel_action: action, closed_at: now, updated_at: now })
          .where('id', '=', id)
          .where('status', '=', 'WAIT_BUYER_PAY')
          .returningAll(),
      now,
    );
  }

  /**
   * A trade that the channel reports as paid and then refunded in full (by a cancel, or found so on query):
   * booked as paid, fully refunded by a 'cancel' refund record, and closed, in one transaction.
   */
  async markPaidAndReversed(
    id: number,
    info: PaidInfo,
    now: Date,
    requestNo: string,
  ): Promise<Trade | undefined> {
    return this.db.transaction().execute(async (tx) => {
      const t = await this.transition(
        (db) =>
          db
            .updateTable('trades')
            .set({
              status: 'TRADE_CLOSED',
              channel_trade_no: info.channelTradeNo,
              paid_at: info.paidAt,
              buyer_logon_id: info.buyerLogonId ?? null,
              buyer_user_id: info.buyerUserId ?? null,
              refund_reserved_fen: sql<Fen>`total_fen - insurance_fen`,
              refunded_fen: sql<Fen>`total_fen - insurance_fen`,
              cancel_action: 'refund',
              closed_at: now,
              updated_at: now,
            })
            .where('id', '=', id)
            .where('status', '=', 'WAIT_BUYER_PAY')
            .returningAll(),
        now,
        tx,
      );
      if (!t) return undefined;
      await tx
        .insertInto('refunds')
        .values({
          trade_id: t.id,
          app_id: t.app_id,
          out_request_no: requestNo,
          kind: 'cancel',
          amount_fen: subFen(t.total_fen, t.insurance_fen),
          status: 'SUCCESS',
          reason: 'cancel',
          hospital_id: null,
          terminal_id: null,
          channel_refund_no: null,
          fail_code: null,
          created_at: now,
          updated_at: now,
          finished_at: now,
          lease_until: null,
        })
        .execute();
      return t;
    });
  }

  /**
   * TRADE_SUCCESS -> TRADE_FINISHED once the refund window is over, but not while a refund is in flight (its
   * outcome unknown, its amount reserved): that refund may have been made at the channel, and completing it may
   * close the trade, which a finished trade can no longer do.
   */
  async markFinished(id: number, paidBefore: Date, now: Date): Promise<Trade | undefined> {
    return this.db
      .updateTable('trades')
      .set({ status: 'TRADE_FINISHED', updated_at: now })
      .where('id', '=', id)
      .where('status', '=', 'TRADE_SUCCESS')
      .where('paid_at', '<=', paidBefore)
      .where((eb) => eb('refund_reserved_fen', '=', eb.ref('refunded_fen')))
      .returningAll()
      .executeTakeFirst();
  }

  async setChannelCode(
    id: number,
    fields: { channelCodeUrl: string; channelTradeNo: string | null; codeUrl?: string },
    now: Date,
  ): Promise<void> {
    await this.db
      .updateTable('trades')
      .set({
        channel_code_url: fields.channelCodeUrl,
        channel_trade_no: fields.channelTradeNo,
        ...(fields.codeUrl !== undefined ? { code_url: fields.codeUrl } : {}),
        updated_at: now,
      })
      .where('id', '=', id)
      .execute();
  }

  /** Aggregated QR: the payer's app decides the pay type, once. Returns the trade if this call set it. */
  async choosePayType(id: number, payType: string, channel: string, now: Date): Promise<Trade | undefined> {
    return this.db
      .updateTable('trades')
      .set({ pay_type: payType, channel, updated_at: now })
      .where('id', '=', id)
      .where('pay_type', 'is', null)
      .where('status', '=', 'WAIT_BUYER_PAY')
      .returningAll()
      .executeTakeFirst();
  }

  // ---- background job claims -----------------------------------------------------------------------

  /**
   * Claims unpaid trades past their deadline for the expiry job. FOR UPDATE SKIP LOCKED plus a lease means
   * two instances never work on the same trade at once, and a crashed instance's claims expire.
   */
  async claimExpired(now: Date, owner: string, leaseMs: number, limit: number): Promise<Trade[]> {
    const leaseUntil = new Date(now.getTime() + leaseMs);
    const r = await sql<Trade>`
      UPDATE trades SET lease_until = ${leaseUntil}, lease_owner = ${owner}, job_attempts = job_attempts + 1
      WHERE id IN (
        SELECT id FROM trades
        WHERE status = 'WAIT_BUYER_PAY' AND expires_at <= ${now}
          AND (lease_until IS NULL OR lease_until < ${now})
        ORDER BY expires_at
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED)
      RETURNING *`.execute(this.db);
    return r.rows;
  }

  /** The insurance part of a mixed payment was settled at the medical-insurance side. */
  async markInsuranceSettled(id: number, settlementNo: string, now: Date): Promise<void> {
    await this.db
      .updateTable('trades')
      .set({ insurance_state: 'SETTLED', settlement_no: settlementNo, updated_at: now })
      .where('id', '=', id)
      .where('insurance_state', '=', 'NONE')
      .execute();
  }

  /**
   * Closed mixed payments whose insurance settlement must be undone: ended unpaid, or cancelled (reversed).
   * A paid trade whose cash part was refunded is not among them: its insurance part is refunded by the
   * hospital's national process, as the HIS reports it.
   */
  async claimInsuranceReversals(now: Date, owner: string, leaseMs: number, limit: number): Promise<Trade[]> {
    const leaseUntil = new Date(now.getTime() + leaseMs);
    const r = await sql<Trade>`
      UPDATE trades SET lease_until = ${leaseUntil}, lease_owner = ${owner}
      WHERE id IN (
        SELECT id FROM trades
        WHERE insurance_state = 'SETTLED' AND status = 'TRADE_CLOSED'
          AND (paid_at IS NULL OR cancel_action = 'refund')
          AND (lease_until IS NULL OR lease_until < ${now})
        ORDER BY id
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED)
      RETURNING *`.execute(this.db);
    return r.rows;
  }

  async markInsuranceReversed(id: number, now: Date): Promise<boolean> {
    const r = await this.db
      .updateTable('trades')
      .set((eb) => ({
        insurance_state: 'REVERSED',
        insurance_refunded_fen: eb.ref('insurance_fen'),
        updated_at: now,
        lease_until: null,
        lease_owner: null,
      }))
      .where('id', '=', id)
      .where('insurance_state', '=', 'SETTLED')
      .returning('id')
      .executeTakeFirst();
    return r !== undefined;
  }

  /** Cancel of a paid trade that has no cash part (all insurance): closed here, the insurance reversed by the job. */
  async closeInsuranceOnly(id: number, now: Date): Promise<Trade | undefined> {
    return this.transition(
      (db) =>
        db
          .updateTable('trades')
          .set({ status: 'TRADE_CLOSED', cancel_action: 'refund', closed_at: now, updated_at: now })
          .where('id', '=', id)
          .where('status', '=', 'TRADE_SUCCESS')
          .where((eb) => eb('total_fen', '=', eb.ref('insurance_fen')))
          .returningAll(),
      now,
    );
  }

  async releaseLease(id: number, owner: string, retryAt: Date | null): Promise<void> {
    await this.db
      .updateTable('trades')
      .set({ lease_until: retryAt, lease_owner: null })
      .where('id', '=', id)
      .where('lease_owner', '=', owner)
      .execute();
  }
}
