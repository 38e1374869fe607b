/**
 * The plain reference of `npm run bench` (bench/plain/reference-server.js) is a verbatim copy of
 * ../shared/perf/reference-server.js but for its documented header; and the /gw-cte bodies the benchmark signs
 * pass the reference's own signature check (its `canon` and `crypto.verify`, read from the vendored file); and,
 * when PostgreSQL is reachable, the harness starts it unchanged on its own database and it answers /xml-read and
 * /gw-cte over HTTP.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import pg from 'pg';
import {
  PG_ADMIN,
  createPlainDb,
  plainKeys,
  plainOrderNo,
  plainXml,
  signedGwBodies,
  startPlain,
} from '../../bench/harness.js';

const VENDORED = path.resolve('bench/plain/reference-server.js');
const ORIGINAL = path.resolve('../shared/perf/reference-server.js');
const MARKER = '// END-OF-HEADER\n';

/** The vendored file without its header: what must equal the original byte for byte. */
function body(): Buffer {
  const text = fs.readFileSync(VENDORED);
  const at = text.indexOf(MARKER);
  assert.ok(at > 0, `${VENDORED} has no "${MARKER.trim()}" line ending its header`);
  const header = text.subarray(0, at).toString('utf8');
  // The header adds comments only (and the eslint-disable), never code.
  for (const line of header.split('\n').filter(Boolean))
    assert.match(line, /^(\/\/|\/\*.*\*\/$)/, `a header line that is not a comment: ${line}`);
  return text.subarray(at + MARKER.length);
}

describe('bench/plain/reference-server.js', () => {
  it(
    'is byte-identical to ../shared/perf/reference-server.js after its header',
    { skip: fs.existsSync(ORIGINAL) ? false : `${ORIGINAL} is not on this machine` },
    () => {
      const original = fs.readFileSync(ORIGINAL);
      const vendored = body();
      assert.equal(vendored.length, original.length, 'the vendored copy differs in length from the original');
      assert.ok(
        vendored.equals(original),
        'the vendored copy differs from ../shared/perf/reference-server.js',
      );
    },
  );

  it('accepts the /gw-cte bodies the benchmark signs (its own canon and verify)', async () => {
    const code = body().toString('utf8');
    // The reference's canonical content, taken from the vendored file itself.
    const canonSrc = /const canon = (\(o\) => .*);\n/.exec(code)?.[1];
    assert.ok(canonSrc, 'the reference has no canon function any more');
    const canon = (0, eval)(canonSrc) as (o: Record<string, string>) => string;
    const keys = plainKeys();
    const bodies = await signedGwBodies(keys.merchantPriv, 3, 'T');
    assert.equal(bodies.length, 3);
    const parser = new XMLParser({ processEntities: false, parseTagValue: false, ignoreDeclaration: true });
    const pub = crypto.createPublicKey(keys.merchantPub);
    const seen = new Set<string>();
    for (const b of bodies) {
      const x = (parser.parse(b, true) as { xml: Record<string, string> }).xml;
      assert.deepEqual(Object.keys(x).sort(), [
        'appid',
        'body',
        'mch_id',
        'nonce_str',
        'out_trade_no',
        'sign',
        'total_fee',
      ]);
      assert.match(x['total_fee'] ?? '', /^\d{1,12}$/);
      const ok = crypto.verify('sha256', Buffer.from(canon(x)), pub, Buffer.from(x['sign'] ?? '', 'base64'));
      assert.ok(ok, `the reference would refuse: ${b}`);
      // A tampered amount is refused (the signature covers it).
      assert.ok(
        !crypto.verify(
          'sha256',
          Buffer.from(canon({ ...x, total_fee: '1' })),
          pub,
          Buffer.from(x['sign'] ?? '', 'base64'),
        ),
      );
      seen.add(x['out_trade_no'] ?? '');
    }
    assert.equal(seen.size, 3, 'every body has its own out_trade_no');
  });

  it('starts unchanged through the harness and answers /xml-read and /gw-cte (PostgreSQL)', async (t) => {
    const probe = new pg.Client({ connectionString: PG_ADMIN, connectionTimeoutMillis: 3000 });
    try {
      await probe.connect();
      await probe.end();
    } catch {
      t.skip(`PostgreSQL is not reachable at ${PG_ADMIN}`);
      return;
    }
    const pdb = await createPlainDb(1000);
    const keys = plainKeys();
    const server = await startPlain(pdb, keys);
    try {
      const read = await fetch(`${server.base}/xml-read`, {
        method: 'POST',
        headers: { 'content-type': 'application/xml' },
        body: plainXml({ out_trade_no: plainOrderNo(42) }),
      });
      const readText = await read.text();
      assert.equal(read.status, 200, readText);
      assert.match(readText, /<out_trade_no>PO42<\/out_trade_no>/);
      assert.match(readText, /<status>TRADE_SUCCESS<\/status>/);

      const [gw] = await signedGwBodies(keys.merchantPriv, 1, 'UT');
      const paid = await fetch(`${server.base}/gw-cte`, {
        method: 'POST',
        headers: { 'content-type': 'application/xml' },
        body: gw ?? '',
      });
      const paidText = await paid.text();
      assert.equal(paid.status, 200, paidText);
      assert.match(paidText, /<return_code>SUCCESS<\/return_code>/);
      // The answer is signed with the reference's own key (keys.json's gwPriv).
      const x = (
        new XMLParser({ processEntities: false, parseTagValue: false }).parse(paidText, true) as {
          xml: Record<string, string>;
        }
      ).xml;
      const content = Object.keys(x)
        .filter((k) => k !== 'sign' && x[k] !== '')
        .sort()
        .map((k) => `${k}=${x[k]}`)
        .join('&');
      assert.ok(
        crypto.verify(
          'sha256',
          Buffer.from(content),
          crypto.createPublicKey(keys.gwPub),
          Buffer.from(x['sign'] ?? '', 'base64'),
        ),
      );
      // One durable write: the order and its outbox row.
      const c = new pg.Client({ connectionString: pdb.url });
      await c.connect();
      try {
        const r = await c.query<{ n: string }>(
          'SELECT count(*) AS n FROM pay_order o JOIN outbox b ON b.order_id = o.id WHERE o.out_trade_no LIKE $1',
          ['UT%'],
        );
        assert.equal(r.rows[0]?.n, '1');
      } finally {
        await c.end();
      }

      // A body whose amount was changed after signing is refused.
      const tampered = (gw ?? '').replace('<total_fee>8888</total_fee>', '<total_fee>1</total_fee>');
      const refused = await fetch(`${server.base}/gw-cte`, {
        method: 'POST',
        headers: { 'content-type': 'application/xml' },
        body: tampered,
      });
      assert.equal(refused.status, 401, await refused.text());
    } finally {
      await server.stop();
      await pdb.drop();
    }
  });
});
