/* eslint-disable */
// The plain reference of `npm run bench` (issue 16), vendored VERBATIM from ../shared/perf/reference-server.js:
// everything after the END-OF-HEADER line below is byte-identical to that file (test/unit/bench-plain.test.ts
// checks it when ../shared/perf is there). Do not edit it; the harness adapts to it instead:
// - it is CommonJS (`require`) and this package is ESM, so bench/harness.ts (startPlain) copies it into a
//   temporary directory together with the keys.json it reads from its own directory (made at run time with
//   ../shared/perf/genkeys.js's logic) and runs it there with NODE_PATH=<repo>/node_modules;
// - this header only adds comments (and the eslint-disable above); the file is listed in .prettierignore.
// END-OF-HEADER
const fastify = require('fastify')({ logger: false, bodyLimit: 64 * 1024 });
const { XMLParser, XMLBuilder } = require('fast-xml-parser');
const crypto = require('crypto');
const { Pool } = require('pg');
const keys = require('./keys.json');
const merchantPub = crypto.createPublicKey(keys.merchantPub);
const gwPriv = crypto.createPrivateKey(keys.gwPriv);
const parser = new XMLParser({ processEntities: false, parseTagValue: false, ignoreDeclaration: true });
const builder = new XMLBuilder({});
const pool = new Pool({ host: '127.0.0.1', port: Number(process.env.PGPORT || 5432), user: 'postgres', database: process.env.PGDATABASE || 'gwref', max: Number(process.env.POOL || 10), idleTimeoutMillis: 0 });
const DTD = /<!DOCTYPE|<!ENTITY/i;
fastify.addContentTypeParser(['application/xml', 'text/xml'], { parseAs: 'string' }, (req, body, done) => done(null, body));
function parseXml(body) {
  if (typeof body !== 'string' || DTD.test(body)) { const e = new Error('DTD not allowed'); e.statusCode = 400; throw e; }
  const doc = parser.parse(body, true);
  if (!doc || typeof doc.xml !== 'object') { const e = new Error('bad xml'); e.statusCode = 400; throw e; }
  return doc.xml;
}
const canon = (o) => Object.keys(o).filter(k => k !== 'sign' && o[k] !== '').sort().map(k => `${k}=${o[k]}`).join('&');
fastify.get('/hello', async () => ({ hello: 'world' }));
fastify.get('/cpu', async () => process.cpuUsage());
fastify.post('/xml', async (req, reply) => {
  const x = parseXml(req.body);
  reply.type('application/xml');
  return builder.build({ xml: { return_code: 'SUCCESS', out_trade_no: x.out_trade_no, total_fee: x.total_fee } });
});
fastify.post('/xml-read', async (req, reply) => {
  const x = parseXml(req.body);
  const r = await pool.query('SELECT id, out_trade_no, amount_fen, status FROM pay_order WHERE out_trade_no = $1', [x.out_trade_no]);
  const o = r.rows[0] || {};
  reply.type('application/xml');
  return builder.build({ xml: { return_code: 'SUCCESS', out_trade_no: x.out_trade_no, trade_no: String(o.id || ''), total_fee: String(o.amount_fen || ''), status: o.status || '' } });
});
const signAsync = (data) => new Promise((res, rej) => crypto.sign('sha256', data, gwPriv, (e, s) => e ? rej(e) : res(s)));
async function gw(req, reply, mode) {
  const x = parseXml(req.body);
  if (!/^\d{1,12}$/.test(x.total_fee || '')) { reply.code(400); return 'bad amount'; }
  const ok = crypto.verify('sha256', Buffer.from(canon(x)), merchantPub, Buffer.from(x.sign || '', 'base64'));
  if (!ok) { reply.code(401); return 'bad sign'; }
  let id;
  if (mode === 'cte') {
    const r = await pool.query(`WITH o AS (INSERT INTO pay_order(out_trade_no, merchant_id, amount_fen, status) VALUES ($1,$2,$3,'TRADE_SUCCESS') RETURNING id)
      INSERT INTO outbox(order_id, event, payload) SELECT id, 'trade.success', jsonb_build_object('amount_fen',$3::bigint) FROM o RETURNING order_id`, [x.out_trade_no, Number(x.mch_id), x.total_fee]);
    id = r.rows[0].order_id;
  } else {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      const r = await c.query(`INSERT INTO pay_order(out_trade_no, merchant_id, amount_fen, status) VALUES ($1,$2,$3,'TRADE_SUCCESS') RETURNING id`, [x.out_trade_no, Number(x.mch_id), x.total_fee]);
      id = r.rows[0].id;
      await c.query(`INSERT INTO outbox(order_id, event, payload) VALUES ($1,'trade.success',$2)`, [id, JSON.stringify({ amount_fen: x.total_fee })]);
      await c.query('COMMIT');
    } catch (e) { await c.query('ROLLBACK').catch(() => {}); throw e; } finally { c.release(); }
  }
  const resp = { return_code: 'SUCCESS', trade_no: String(id), out_trade_no: x.out_trade_no, total_fee: x.total_fee, nonce_str: crypto.randomBytes(8).toString('hex') };
  const data = Buffer.from(canon(resp));
  resp.sign = (mode === 'sync' ? crypto.sign('sha256', data, gwPriv) : await signAsync(data)).toString('base64');
  reply.type('application/xml');
  return builder.build({ xml: resp });
}
fastify.post('/gw-sync', (req, reply) => gw(req, reply, 'sync'));
fastify.post('/gw-async', (req, reply) => gw(req, reply, 'async'));
fastify.post('/gw-cte', (req, reply) => gw(req, reply, 'cte'));
fastify.listen({ port: Number(process.env.PORT || 3000), host: '127.0.0.1' }).then(() => console.log('listening', process.pid));
