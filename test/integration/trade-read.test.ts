import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { freshDatabase, TEST_DB, type TestDatabase } from '../support/db.js';
import { migrate, openStore, type Store } from '../../src/store/db.js';
import { TradeRepository } from '../../src/store/trades.js';
import { newTradeRow } from '../../src/store/trade-row.js';
import { fen } from '../../src/domain/money.js';
import type { Trade } from '../../src/store/schema.js';

/**
 * The trade read by order number and by id (the query's one statement) comes back as one JSON text
 * (`to_json(trades.*)`, src/store/trade-row.ts tradeFromJson): it must be the very row the driver gives column by
 * column — every column, its type (Dates, numbers, null), every value — on both databases, also when the
 * session's time zone is not UTC.
 */
describe('a trade read as one JSON text is the row as the driver reads it', () => {
  let db: TestDatabase;
  let store: Store;
  let trades: TradeRepository;

  const columnByColumn = async (s: Store, id: number): Promise<Trade | undefined> =>
    s.db.selectFrom('trades').selectAll().where('id', '=', id).executeTakeFirst();

  before(async () => {
    db = await freshDatabase();
    store = await openStore(db.store);
    await migrate(store.db);
    await store.db
      .insertInto('apps')
      .values({
        id: 'hpread',
        name: 'Read',
        hospital_id: null,
        token_hash: 'x'.repeat(64),
        status: 'active',
        categories: null,
        channel_map: '{}',
        created_at: new Date(),
      })
      .execute();
    trades = new TradeRepository(store.db);
  });
  after(async () => {
    await store.close();
    await db.drop();
  });

  it('a trade with every column set, and one with every nullable column null', async () => {
    const at = (ms: number) => new Date(Date.UTC(2026, 0, 31, 23, 59, 59) + ms);
    const { trade: full } = await trades.insertOrGet(
      newTradeRow({
        trade_no: 'T1',
        app_id: 'hpread',
        out_trade_no: 'MZ-全-1',
        kind: 'barcode',
        status: 'TRADE_SUCCESS',
        category: 'OUTPATIENT',
        order_type: '1',
        total_fen: fen(9_007_199_254_740),
        subject: '挂号费 "quoted" \\ back\nline \u2028 😀',
        body: 'b',
        operator_id: 'op',
        terminal_id: 'tm',
        hospital_id: 'H1',
        patient_name: '张三',
        inhospital_no: 'IN1',
        tel: '13800000000',
        trade_detail: '[{"a":1}]',
        timeout_express: '15m',
        fingerprint: 'fp',
        pay_type: 'alipay',
        channel: 'simulator',
        channel_trade_no: 'CT1',
        code_url: 'https://x/y?z=1&w=2',
        channel_code_url: 'https://c',
        cashier_token: 'ct',
        buyer_logon_id: 'b***@x',
        buyer_user_id: '2088',
        cancel_action: 'refund',
        created_at: at(1),
        updated_at: at(2),
        expires_at: at(3),
        paid_at: at(999),
        closed_at: at(5),
        lease_until: at(6),
        lease_owner: 'w1',
        notify_url: 'https://n',
        return_url: 'https://r',
        extra: '{"k":"v"}',
        insurance_fen: fen(1),
        reduced_fen: fen(2),
      }),
    );
    const { trade: bare } = await trades.insertOrGet(
      newTradeRow({
        trade_no: 'T2',
        app_id: 'hpread',
        out_trade_no: 'MZ2',
        kind: 'h5',
        category: 'X',
        order_type: '',
        total_fen: fen(1),
        subject: '',
        fingerprint: '',
        created_at: at(0),
        expires_at: at(0),
      }),
    );
    for (const t of [full, bare]) {
      const expected = await columnByColumn(store, t.id);
      assert.ok(expected);
      assert.deepEqual(await trades.byOutTradeNo('hpread', t.out_trade_no), expected);
      assert.deepEqual(await trades.byId(t.id), expected);
      assert.ok((await trades.byId(t.id))?.created_at instanceof Date);
    }
    assert.equal(await trades.byOutTradeNo('hpread', 'nope'), undefined);
    assert.equal(await trades.byId(-1), undefined);
  });

  it(
    'the same in a session whose time zone is not UTC (PostgreSQL)',
    { skip: TEST_DB !== 'postgres' },
    async () => {
      if (db.store.kind !== 'postgres') return;
      const url = new URL(db.store.url);
      url.searchParams.set('options', '-c TimeZone=Asia/Kathmandu');
      const other = await openStore({ ...db.store, url: url.toString() });
      try {
        const t = await new TradeRepository(other.db).byOutTradeNo('hpread', 'MZ-全-1');
        assert.ok(t);
        assert.deepEqual(t, await columnByColumn(store, t.id));
        assert.equal(t.paid_at?.toISOString(), '2026-01-31T23:59:59.999Z');
        const zone = await sql<{ z: string }>`SELECT now()::text AS z`.execute(other.db);
        assert.match(zone.rows[0]?.z ?? '', /\+05:45$/);
      } finally {
        await other.close();
      }
    },
  );
});
