import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { orderNo, qrFields, startTestPlatform, type TestPlatform } from '../../support/platform.js';
import { TEST_APP_KEY, gateway } from '../../support/gateway.js';
import { canonicalYuan, expectedFen, hostileAmount, validYuan } from './corpus.js';
import { assertNoSecrets } from './log-check.js';

/**
 * Item 11 of the reliability battery, through the real doors: TotalAmount of the offline XML door, total_amount
 * of the gateway's biz_content as a JSON string and as a JSON number. Each amount is either refused with the
 * field's code (and nothing stored), or accepted with exactly the right fen stored and answered.
 */

const RUNS = 100;
const seed = Number(process.env['FC_SEED'] ?? Date.now() % 2 ** 31);

/** What a door makes of a text value: trimmed first (both doors trim text values), then read as yuan. */
function doorOutcome(text: string, field: string): { fen: number } | { code: string } {
  const v = text.trim();
  if (v === '') return { code: `MISSING_FIELD.${field}` };
  const fen = expectedFen(v);
  return fen === null ? { code: `INVALID_FIELD.${field}` } : { fen };
}

/** Printable strings only: raw control characters would make the XML itself malformed, a different error. */
const printable = (s: string) =>
  [...s].every((c) => c.charCodeAt(0) >= 0x20 || c === '\t' || c === '\n' || c === '\r');
const doorAmount = fc.oneof(validYuan, hostileAmount).filter(printable);

/** JSON number texts: valid and hostile ones (exponents, 3 decimals, signs, zero, huge). */
const jsonNumber = fc.oneof(
  validYuan,
  fc
    .tuple(
      fc.constantFrom('', '-'),
      fc.oneof(fc.constant('0'), fc.bigInt({ min: 1n, max: 10n ** 20n }).map(String)),
      fc.oneof(fc.constant(''), fc.stringMatching(/^\.[0-9]{1,4}$/)),
      fc.oneof(fc.constant(''), fc.stringMatching(/^[eE][+-]?[0-9]{1,3}$/)),
    )
    .map(([sign, int, frac, exp]) => `${sign}${int}${frac}${exp}`),
);

const EXAMPLES = ['1e2', '88.880', '0.001', '88.8', '0.10', '99999999.99', '100000000', '-1', '0', '1E+2'];

describe('reliability 11: amounts through the doors', () => {
  let t: TestPlatform;
  const figures = {
    offline: { accepted: 0, refused: 0 },
    string: { accepted: 0, refused: 0 },
    number: { accepted: 0, refused: 0 },
  };
  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
  });
  after(async () => {
    await t?.close();
  });

  const stored = async (outTradeNo: string) =>
    (await t.platform.deps.trades.byOutTradeNo(t.appId, outTradeNo))?.total_fen;

  async function offline(amount: string): Promise<void> {
    const f = qrFields({ TotalAmount: amount });
    const no = f.OutTradeNo ?? '';
    const want = doorOutcome(amount, 'TotalAmount');
    const a = await t.offline('FWC_IF_Qrcode_Pay', f);
    assert.ok(a.status < 500);
    if ('code' in want) {
      assert.equal(a.rr.SubCode, want.code, `${JSON.stringify(amount)}: ${a.rr.SubMessage}`);
      assert.equal(await stored(no), undefined, 'nothing stored');
      figures.offline.refused++;
    } else {
      assert.equal(a.rr.SubCode, 'SUCCESS', `${JSON.stringify(amount)}: ${a.rr.SubMessage}`);
      assert.equal(await stored(no), want.fen, JSON.stringify(amount));
      const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: no });
      assert.equal(q.result['TotalAmount'], canonicalYuan(want.fen));
      figures.offline.accepted++;
    }
  }

  async function viaGateway(amountJson: string, kind: 'string' | 'number'): Promise<void> {
    const no = orderNo('MZ');
    const biz = `{"out_trade_no":"${no}","total_amount":${amountJson},"subject":"门诊缴费","order_type":"TREATMENT"}`;
    const text = kind === 'string' ? (JSON.parse(amountJson) as string) : amountJson;
    // A string is trimmed; a JSON number has no spaces to trim.
    const want = doorOutcome(text, 'total_amount');
    const a = await gateway(t, 'lc.trade.h5.pay', biz);
    assert.ok(a.status < 500);
    if ('code' in want) {
      assert.equal(a.biz['sub_code'], want.code, `${amountJson}: ${a.raw}`);
      assert.equal(a.json.code, want.code.startsWith('MISSING') ? '40001' : '40002');
      assert.equal(await stored(no), undefined, 'nothing stored');
      figures[kind].refused++;
    } else {
      assert.equal(a.json.code, '10000', `${amountJson}: ${a.raw}`);
      assert.equal(await stored(no), want.fen, amountJson);
      const q = await gateway(t, 'lc.trade.query', { out_trade_no: no });
      assert.ok(q.raw.includes(`"total_amount":${canonicalYuan(want.fen)},`), q.raw);
      figures[kind].accepted++;
    }
  }

  it(`offline TotalAmount: ${RUNS} generated amounts and the examples`, async (tc) => {
    for (const s of [...EXAMPLES, ' 88.88 ', '８８.８８', '88,88']) await offline(s);
    await fc.assert(fc.asyncProperty(doorAmount, offline), { numRuns: RUNS, seed });
    tc.diagnostic(
      `seed ${seed}: offline ${figures.offline.accepted} accepted exactly, ${figures.offline.refused} refused`,
    );
  });

  it(`gateway total_amount as a JSON string: ${RUNS} generated amounts and the examples`, async (tc) => {
    for (const s of [...EXAMPLES, ' 88.88 ', '８８.８８']) await viaGateway(JSON.stringify(s), 'string');
    await fc.assert(
      fc.asyncProperty(doorAmount, (s) => viaGateway(JSON.stringify(s), 'string')),
      { numRuns: RUNS, seed },
    );
    tc.diagnostic(
      `seed ${seed}: JSON string ${figures.string.accepted} accepted exactly, ${figures.string.refused} refused`,
    );
  });

  it(`gateway total_amount as a JSON number: ${RUNS} generated amounts and the examples`, async (tc) => {
    for (const s of EXAMPLES) await viaGateway(s, 'number');
    await fc.assert(
      fc.asyncProperty(jsonNumber, (s) => viaGateway(s, 'number')),
      { numRuns: RUNS, seed },
    );
    tc.diagnostic(
      `seed ${seed}: JSON number ${figures.number.accepted} accepted exactly, ${figures.number.refused} refused`,
    );
  });

  it('logs: no private keys, payment codes, ID or phone numbers', async (tc) => {
    const scan = assertNoSecrets(t.logs(), {
      values: [t.token],
      privateKeys: [(await t.platform.deps.keys.active()).privateKey],
    });
    tc.diagnostic(`logs: ${scan.lines} lines, ${scan.searched} secrets/patterns searched, none found`);
  });
});
