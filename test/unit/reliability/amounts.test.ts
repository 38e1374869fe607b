import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  MAX_FEN,
  fen,
  formatFen,
  parsePositiveYuan,
  parseYuanToFen,
  type Fen,
} from '../../../src/domain/money.js';
import {
  HOSTILE_AMOUNTS,
  MAX_FEN_ORACLE,
  canonicalYuan,
  expectedFen,
  hostileAmount,
  validYuan,
} from '../../integration/reliability/corpus.js';

/**
 * Item 11 of the reliability battery, on the money parsing itself (src/domain/money.ts): property-based, against
 * an oracle written with BigInt and a regular expression of its own. Every hostile family is refused; every valid
 * yuan string round-trips exactly (parse → fen → format → the same canonical string).
 */

const RUNS = 20_000;
const seed = Number(process.env['FC_SEED'] ?? Date.now() % 2 ** 31);
const params = (numRuns: number) => ({ numRuns, seed });

describe('reliability 11: amounts (money.ts, property-based)', () => {
  it('the oracle and the code agree on the maximum', () => {
    assert.equal(BigInt(MAX_FEN), MAX_FEN_ORACLE);
  });

  for (const [family, arb] of Object.entries(HOSTILE_AMOUNTS)) {
    it(`refused: ${family}`, () => {
      fc.assert(
        fc.property(arb, (s) => {
          assert.equal(expectedFen(s), null, `the oracle refuses ${JSON.stringify(s)}`);
          assert.equal(parsePositiveYuan(s), null, JSON.stringify(s));
        }),
        params(2_000),
      );
    });
  }

  it(`valid amounts round-trip exactly: parse → fen → format (${RUNS} runs)`, (tc) => {
    fc.assert(
      fc.property(validYuan, (s) => {
        const parsed = parsePositiveYuan(s);
        assert.equal(parsed, expectedFen(s), s);
        assert.ok(parsed !== null && Number.isSafeInteger(parsed));
        const canonical = formatFen(parsed);
        assert.equal(canonical, canonicalYuan(parsed));
        assert.equal(parsePositiveYuan(canonical), parsed, 'the canonical string reads back the same');
        assert.equal(formatFen(parsePositiveYuan(canonical) ?? fen(-1)), canonical);
      }),
      params(RUNS),
    );
    tc.diagnostic(`seed ${seed}: ${RUNS} valid spellings round-tripped`);
  });

  it('every fen from 1 to the maximum formats and reads back to itself', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_FEN }), (n) => {
        const s = formatFen(fen(n));
        assert.match(s, /^(0|[1-9][0-9]{0,7})\.[0-9]{2}$/);
        assert.equal(parsePositiveYuan(s), n);
      }),
      params(RUNS),
    );
  });

  it('the float traps are exact: 0.29, 1.15, 4.35, 8.88, 19.99, 16.90, 99999999.99', () => {
    for (const [s, expected] of [
      ['0.29', 29],
      ['1.15', 115],
      ['4.35', 435],
      ['8.88', 888],
      ['19.99', 1999],
      ['16.90', 1690],
      ['0.07', 7],
      ['1.00', 100],
      ['99999999.99', 9_999_999_999],
      ['90071992.55', 9_007_199_255],
    ] as const) {
      assert.equal(parsePositiveYuan(s), expected, s);
      assert.equal(formatFen(fen(expected)), canonicalYuan(expected));
    }
  });

  it(`any string: the code agrees with the oracle (${RUNS} runs, mixed generators)`, (tc) => {
    const alphabet = fc
      .array(fc.constantFrom(...'0123456789.-+eE x,０１'.split('')), { maxLength: 14 })
      .map((a) => a.join(''));
    fc.assert(
      fc.property(
        fc.oneof(validYuan, hostileAmount, alphabet, fc.string(), fc.string({ unit: 'binary' })),
        (s) => {
          assert.equal(parsePositiveYuan(s), expectedFen(s), JSON.stringify(s));
        },
      ),
      params(RUNS),
    );
    tc.diagnostic(`seed ${seed}`);
  });

  it('exhaustively: every string of up to 5 characters over "0123456789." agrees with the oracle', (tc) => {
    const chars = '0123456789.';
    let n = 0;
    let accepted = 0;
    const walk = (prefix: string) => {
      n++;
      const got = parsePositiveYuan(prefix);
      assert.equal(got, expectedFen(prefix), JSON.stringify(prefix));
      if (got !== null) accepted++;
      if (prefix.length < 5) for (const c of chars) walk(prefix + c);
    };
    walk('');
    tc.diagnostic(`${n} strings checked, ${accepted} valid`);
  });

  it('zero: allowed only where the field may be zero (parseYuanToFen), never as a payment', () => {
    for (const s of ['0', '0.0', '0.00']) {
      assert.equal(parseYuanToFen(s), 0);
      assert.equal(parsePositiveYuan(s), null);
    }
    fc.assert(
      fc.property(hostileAmount, (s) => {
        // A hostile string that is not a zero is refused by the zero-allowing parser too.
        if (!/^0(\.0{1,2})?$/.test(s)) assert.equal(parseYuanToFen(s), null, JSON.stringify(s));
      }),
      params(5_000),
    );
  });

  it('formatFen refuses what is not a safe whole number of fen', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.double({ noInteger: true }),
          fc.constantFrom(NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 53), 1e300),
        ),
        (x) => {
          assert.throws(() => formatFen(x as Fen), RangeError); // formatFen's own guard, past the type
        },
      ),
      params(2_000),
    );
  });
});
