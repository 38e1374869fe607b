import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { authCode, barcodeFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { startHisSimulator } from '../../src/reconcile/his/his-sim.js';
import { reconcileDay, type ReconProgress } from '../../src/reconcile/run.js';
import { fen } from '../../src/domain/money.js';

/**
 * Reconciliation with the app's settings (admin API), every kind of difference through the HIS simulator and
 * the simulated bill, the HIS AccessToken sealed at rest, evidence, cut-off hour and the pending pool.
 */
describe('reconciliation settings and differences end to end', () => {
  let t: TestPlatform;
  let his: Awaited<ReturnType<typeof startHisSimulator>>;
  const HIS_TOKEN = 'HIS-TOKEN-42-secret';

  before(async () => {
    t = await startTestPlatform();
    his = await startHisSimulator(0, '127.0.0.1', { accessToken: HIS_TOKEN });
  });
  after(async () => {
    await his.close();
    await t.close();
  });

  const admin = (method: string, path: string, body?: unknown) => t.admin(method, path, body);
  const settingsPath = () => `/admin/apps/${t.appId}/reconciliation`;
  const app = async () => (await t.platform.deps.apps.get(t.appId))!;
  const run = async (date: string, onProgress?: (p: ReconProgress) => void) =>
    (
      await reconcileDay(t.platform.recon, {
        app: await app(),
        date,
        payTypes: ['alipay'],
        ...(onProgress ? { onProgress } : {}),
      })
    )[0]!;
  const differences = async (date: string) =>
    t.platform.recon.reconciliation.differences({ date, present: true });
  /** Pays `amount` by barcode at the given instant; returns the order number. */
  const payAt = async (iso: string, amount: string): Promise<string> => {
    t.clock.set(iso);
    const f = barcodeFields({ AuthCode: authCode('00', 'alipay'), TotalAmount: amount });
    const a = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    return f.OutTradeNo ?? '';
  };
  /** The HIS records what the platform has (as a well-behaved HIS would), from scratch. */
  const feedHis = async () => {
    his.sim.reset();
    const { trades, refunds } = await t.platform.recon.reconciliation.paidMovements();
    his.sim.loadFromTrades(trades, refunds);
  };

  it('settings are validated field by field, the HIS token is sealed and never shown', async () => {
    const bad: Array<[unknown, string]> = [
      [{ his_base_url: 'ftp://his.example' }, 'INVALID_FIELD.his_base_url'],
      [{ his_base_url: 'http://user:pw@his.example' }, 'INVALID_FIELD.his_base_url'],
      [{ settings: { hisSliceMinutes: 7 } }, 'INVALID_FIELD.hisSliceMinutes'],
      [{ settings: { cutoffHour: 24 } }, 'INVALID_FIELD.cutoffHour'],
      [{ settings: { feeRateBps: { alipay: 2000 } } }, 'INVALID_FIELD.feeRateBps.alipay'],
      [{ settings: { feeRateBps: { paypal: 60 } } }, 'INVALID_FIELD.feeRateBps.paypal'],
      [{ settings: { pendingDayz: 3 } }, 'INVALID_FIELD.pendingDayz'],
      [{ his_access_token: 'has space' }, 'INVALID_FIELD.his_access_token'],
      [{ colour: 'red' }, 'INVALID_FIELD.colour'],
    ];
    for (const [body, code] of bad) {
      const r = await admin('PUT', settingsPath(), body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.data['code'], code);
      assert.match(String(r.data['message']), / \/ /, 'Chinese / English');
    }
    const before = await app();
    assert.equal(before.his_base_url, null, 'nothing changed by the refusals');
    assert.equal(before.recon_settings, '{}');

    const ok = await admin('PUT', settingsPath(), {
      his_base_url: `${his.url}/`,
      his_access_token: HIS_TOKEN,
      settings: { hisSliceMinutes: 30, hisTimeoutSeconds: 1, hisRetries: 0 },
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.data));
    assert.equal(ok.data['his_base_url'], his.url, 'trailing slash trimmed');
    assert.equal(ok.data['his_access_token'], 'set');
    assert.ok(!JSON.stringify(ok.data).includes(HIS_TOKEN));
    const stored = await app();
    assert.match(stored.his_token_sealed ?? '', /^v1:[0-9a-f]{8}:/);
    assert.ok(!(stored.his_token_sealed ?? '').includes(HIS_TOKEN), 'sealed, not plain');
    const got = await admin('GET', settingsPath());
    assert.equal((got.data['settings'] as { hisSliceMinutes: number }).hisSliceMinutes, 30);
    assert.equal((got.data['settings'] as { pendingDays: number }).pendingDays, 3, 'defaults fill the rest');
    assert.equal((await admin('GET', '/admin/apps/NOPE/reconciliation')).status, 404);
    // A sealed token copied to another app does not open there.
    assert.throws(() => t.platform.deps.secrets.open(stored.his_token_sealed ?? '', 'app:OTHER:his_token'));
  });

  it('a clean day: no differences; the HIS is asked in 30-minute slices with the token; evidence is kept', async () => {
    const date = '2026-11-20';
    await payAt('2026-11-20T02:00:00Z', '10.00');
    await payAt('2026-11-20T06:00:00Z', '20.00');
    await feedHis();
    const listBefore = his.sim.requests.tradeList;
    const stages = new Set<string>();
    const r = await run(date, (p) => stages.add(p.stage));
    assert.equal(r.differences, 0, JSON.stringify(r));
    assert.equal(r.matched >= 2, true);
    assert.equal(his.sim.requests.tradeList - listBefore, 48, '48 slices of 30 minutes');
    for (const s of ['bill', 'platform', 'his', 'match', 'save']) assert.ok(stages.has(s), s);
    const evidence = await t.platform.recon.reconciliation.evidence(t.appId, date, 'alipay');
    assert.equal(evidence.filter((e) => e.source === 'HIS_TRADE_LIST').length, 48);
    assert.equal(evidence.filter((e) => e.source === 'CHANNEL_BILL').length, 1);
    assert.equal(
      evidence.reduce((s, e) => s + (e.source === 'HIS_TRADE_LIST' ? e.records : 0), 0),
      2,
    );
    const answers = t.platform.recon.reconciliation.hisAnswersContaining(
      t.appId,
      date,
      'alipay',
      '<GetHospitalTradeList>',
    );
    assert.ok((await answers).length > 0);
    // Re-running replaces the evidence rather than adding to it.
    await run(date);
    const again = await t.platform.recon.reconciliation.evidence(t.appId, date, 'alipay');
    assert.equal(again.length, 49);
  });

  it('every kind of difference is found and classified through the HIS simulator and the simulated bill', async () => {
    const date = '2026-11-21';
    const at = (h: number) => `2026-11-21T0${h}:00:00Z`;
    const status = await payAt(at(1), '11.00');
    const dup = await payAt(at(2), '12.00');
    const feeOrder = await payAt(at(3), '100.00');
    const lostAtChannel = await payAt(at(4), '14.00');
    const amount = await payAt(at(5), '15.00');
    const lostAtHis = await payAt(at(6), '16.00');
    await feedHis();
    const flow = (no: string) => his.sim.paymentOf(no)?.hisFlowId ?? '';
    his.sim.faults.status.set(flow(status), '3'); // the HIS says refunded
    his.sim.faults.duplicate.add(flow(dup));
    his.sim.faults.amountFen.set(flow(amount), fen(1490));
    his.sim.faults.drop.add(flow(lostAtHis));
    his.sim.addExtra({ amountFen: fen(999), time: new Date(at(7)), payType: 'alipay' });
    // The channel has no record of one payment (its books lost it): PLATFORM_ONLY.
    await t.store.db.deleteFrom('sim_trades').where('out_trade_no', '=', lostAtChannel).execute();
    // The channel bills 0.6 %; the hospital's contract says 0.55 %: FEE_MISMATCH beyond the 1 fen tolerance.
    assert.equal(
      (await admin('PUT', settingsPath(), { settings: { feeRateBps: { alipay: 55 } } })).status,
      200,
    );
    try {
      const r = await run(date);
      const rows = await differences(date);
      const codes = rows.map((x) => `${x.code}:${x.out_trade_no}`);
      const expect = [
        `STATUS_MISMATCH:${status}`,
        `DUPLICATE:${dup}`,
        `FEE_MISMATCH:${feeOrder}`,
        `PLATFORM_ONLY:${lostAtChannel}`,
        `AMOUNT_MISMATCH:${amount}`,
        `HIS_MISSING:${lostAtHis}`,
      ];
      for (const e of expect) assert.ok(codes.includes(e), `${e} in ${codes.join(' ')}`);
      // The payment the HIS lists as refunded is one difference, not also a missing and a stray record.
      assert.equal(codes.filter((c) => c.endsWith(`:${status}`)).length, 1, codes.join(' '));
      assert.ok(
        codes.some((c) => c.startsWith('HIS_ONLY:PHANTOM')),
        codes.join(' '),
      );
      const fee = JSON.parse(rows.find((x) => x.code === 'FEE_MISMATCH')?.detail ?? '{}') as {
        fee: { expectedFen: number; actualFen: number };
      };
      assert.deepEqual(fee.fee, { expectedFen: 55, actualFen: 60 });
      // The HIS re-check used the sealed token: the simulator refuses HIS_IF_Query without it.
      const missing = JSON.parse(rows.find((x) => x.code === 'HIS_MISSING')?.detail ?? '{}') as {
        hisCheck: { found: boolean; error?: string };
      };
      assert.equal(missing.hisCheck.error, undefined, JSON.stringify(missing));
      assert.equal(missing.hisCheck.found, false, JSON.stringify(missing));
      // Every other fee is within the tolerance (0.55 % vs 0.6 % of small amounts differs by at most 1 fen).
      assert.equal(rows.filter((x) => x.code === 'FEE_MISMATCH').length, 1);
      assert.equal(r.differences, rows.length);
    } finally {
      await admin('PUT', settingsPath(), { settings: { feeRateBps: { alipay: null } } });
      his.sim.reset();
    }
  });

  it('with the wrong HIS token the re-check says so instead of guessing', async () => {
    const date = '2026-11-22';
    const no = await payAt('2026-11-22T03:00:00Z', '21.00');
    await feedHis();
    his.sim.faults.drop.add(his.sim.paymentOf(no)?.hisFlowId ?? '');
    await admin('PUT', settingsPath(), { his_access_token: 'WRONG-TOKEN' });
    try {
      await run(date);
      const row = (await differences(date)).find((x) => x.code === 'HIS_MISSING');
      const detail = JSON.parse(row?.detail ?? '{}') as {
        hisCheck: { error?: string; suggestion: { zh: string } };
      };
      assert.match(detail.hisCheck.error ?? '', /ACCESS_TOKEN_INVALID|AccessToken/);
      assert.match(detail.hisCheck.suggestion.zh, /重跑/);
    } finally {
      await admin('PUT', settingsPath(), { his_access_token: HIS_TOKEN });
      his.sim.reset();
    }
  });

  it('a slow HIS is a HIS error of the day; the channel comparison still stands', async () => {
    const date = '2026-11-23';
    await payAt('2026-11-23T03:00:00Z', '31.00');
    await feedHis();
    his.sim.faults.delayMs = 1_500; // the app's timeout is 1 s, no retries
    try {
      const r = await run(date);
      assert.match(r.hisError ?? '', /timeout|超时|HIS_TIMEOUT/i, JSON.stringify(r));
      assert.equal(r.differences, 0);
      assert.ok(r.matched >= 1);
      const runRow = await t.platform.recon.reconciliation.run(t.appId, date, 'alipay');
      assert.ok(runRow?.error);
    } finally {
      his.sim.faults.delayMs = 0;
    }
  });

  it('a payment at 23:50 that the channel books after midnight waits in the pending pool, then matches', async () => {
    // 2026-11-24 23:50 Shanghai; the channel's books say 00:05 the next day.
    const no = await payAt('2026-11-24T15:50:00Z', '41.00');
    await feedHis();
    await t.store.db
      .updateTable('sim_trades')
      .set({ paid_at: new Date('2026-11-24T16:05:00Z') })
      .where('out_trade_no', '=', no)
      .execute();
    const d1 = await run('2026-11-24');
    assert.equal(d1.differences, 0, 'not a difference yet');
    assert.ok(d1.pending >= 1);
    const d2 = await run('2026-11-25');
    assert.equal(d2.differences, 0, JSON.stringify(await differences('2026-11-25')));
    assert.equal(d2.pending, 0, 'matched the next day');
  });

  it('a cut-off hour moves the business day, and the channel lines after midnight come from the next bill', async () => {
    await admin('PUT', settingsPath(), { settings: { cutoffHour: 2 } });
    try {
      // 2026-11-27 01:30 Shanghai belongs to business day 2026-11-26 with a 02:00 cut-off.
      await payAt('2026-11-26T17:30:00Z', '51.00');
      await payAt('2026-11-26T04:00:00Z', '52.00');
      await feedHis();
      const r = await run('2026-11-26');
      assert.equal(r.differences, 0, JSON.stringify(await differences('2026-11-26')));
      assert.equal(r.totals?.channel.payment.fen, 5100 + 5200);
      assert.equal(r.totals?.platform.payment.fen, 5100 + 5200);
    } finally {
      await admin('PUT', settingsPath(), { settings: { cutoffHour: 0 } });
    }
  });

  it('POST /admin/reconcile runs a day; bad input is refused', async () => {
    const r = await admin('POST', '/admin/reconcile', { date: '2026-11-20', app_id: t.appId });
    assert.equal(r.status, 200, JSON.stringify(r.data));
    assert.ok(Array.isArray(r.data['outcomes']));
    assert.equal((await admin('POST', '/admin/reconcile', { date: '2026-02-30' })).status, 400);
    assert.equal(
      (await admin('POST', '/admin/reconcile', { date: '2026-11-20', app_id: 'NOPE' })).status,
      404,
    );
  });
});
