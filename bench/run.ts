/**
 * Load benchmark of the offline door: barcode pay (through the simulator), query and refund, with autocannon on
 * loopback against a server in its own process. Not part of `npm test`.
 *
 *   npm run bench                       PostgreSQL, then the embedded database
 *   npm run bench -- --db=postgres --duration=20 --connections=50
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import pg from 'pg';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k ?? '', v ?? 'true'];
  }),
);
const duration = Number(args['duration'] ?? 10);
const connections = Number(args['connections'] ?? 50);
const dbs = args['db'] ? [args['db']] : ['postgres', 'embedded'];
const PG_ADMIN = process.env['HOSPAY_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

interface Server {
  proc: ChildProcess;
  base: string;
  token: string;
  stop: () => Promise<void>;
}

async function startServer(db: string): Promise<Server> {
  const port = 21000 + Math.floor(Math.random() * 20000);
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn', PORT: String(port) };
  let cleanup = async () => {};
  if (db === 'postgres') {
    const name = `hospay_bench_${randomBytes(4).toString('hex')}`;
    const c = new pg.Client({ connectionString: PG_ADMIN });
    await c.connect();
    await c.query(`CREATE DATABASE ${name}`);
    await c.end();
    const url = new URL(PG_ADMIN);
    url.pathname = `/${name}`;
    env['DATABASE_URL'] = url.toString();
    env['HOSPAY_DATA_DIR'] = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-bench-'));
    cleanup = async () => {
      const d = new pg.Client({ connectionString: PG_ADMIN });
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
    };
  } else {
    delete env['DATABASE_URL'];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-bench-'));
    env['HOSPAY_DATA_DIR'] = dir;
    const prev = cleanup;
    cleanup = async () => {
      await prev();
      fs.rmSync(dir, { recursive: true, force: true });
    };
  }
  const proc = spawn(process.execPath, ['dist/cli/index.js', 'serve'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 60_000;
  while (!/hospay is serving/.test(out)) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`server did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const token = /AccessToken: (\S+)/.exec(out)?.[1];
  if (!token) throw new Error(`no demo token:\n${out}`);
  return {
    proc,
    base: `http://127.0.0.1:${port}`,
    token,
    async stop() {
      await new Promise<void>((resolve) => {
        proc.on('exit', () => resolve());
        proc.kill('SIGTERM');
      });
      await cleanup();
    },
  };
}

function peakRssMb(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return Math.round(kb / 1024);
  } catch {
    return 0;
  }
}

const xml = (fields: Record<string, string>) =>
  `<xml><head>${Object.entries(fields)
    .map(([k, v]) => `<${k}>${v}</${k}>`)
    .join('')}</head><body></body><sign></sign></xml>`;

async function post(base: string, name: string, fields: Record<string, string>): Promise<string> {
  const r = await fetch(`${base}/offline/${name}`, {
    method: 'POST',
    headers: { 'content-type': 'text/xml' },
    body: xml(fields),
  });
  return r.text();
}

let seq = 0;
const uniq = (p: string) =>
  `${p}${Date.now().toString(36)}${(seq++).toString(36)}${randomBytes(3).toString('hex')}`;

interface Row {
  db: string;
  path: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  ok: number;
}

async function load(
  s: Server,
  label: string,
  db: string,
  name: string,
  body: () => Record<string, string>,
): Promise<Row> {
  let ok = 0;
  const result = await autocannon({
    url: `${s.base}/offline/${name}`,
    method: 'POST',
    headers: { 'content-type': 'text/xml' },
    connections,
    duration,
    requests: [
      {
        setupRequest: (req) => ({ ...req, body: xml(body()) }),
        onResponse: (_status, resBody) => void (resBody.includes('<IsSuccess>1</IsSuccess>') && ok++),
      },
    ],
  });
  return {
    db,
    path: label,
    rps: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    ok,
  };
}

async function benchDb(db: string): Promise<Row[]> {
  const s = await startServer(db);
  const rows: Row[] = [];
  try {
    const base = {
      TotalAmount: '88.88',
      Caption: '门诊缴费',
      PatientName: '张三',
      InhospitalNo: '0001',
      OrderType: 'TREATMENT',
    };
    // Warm up.
    for (let i = 0; i < 50; i++)
      await post(s.base, 'FWC_IF_Barcode_Pay', {
        AccessToken: s.token,
        OutTradeNo: uniq('MZW'),
        AuthCode: '280000000000000000',
        ...base,
      });

    rows.push(
      await load(s, 'barcode pay', db, 'FWC_IF_Barcode_Pay', () => ({
        AccessToken: s.token,
        OutTradeNo: uniq('MZ'),
        AuthCode: '280000000000000000',
        ...base,
      })),
    );

    const paid: Array<{ no: string; tradeNo: string }> = [];
    for (let i = 0; i < 200; i++) {
      const no = uniq('ZY');
      const text = await post(s.base, 'FWC_IF_Barcode_Pay', {
        AccessToken: s.token,
        OutTradeNo: no,
        AuthCode: '280000000000000000',
        ...base,
        TotalAmount: '99999.00',
      });
      paid.push({ no, tradeNo: /<TradeNo>(\d+)<\/TradeNo>/.exec(text)?.[1] ?? '' });
    }
    let qi = 0;
    rows.push(
      await load(s, 'query', db, 'FWC_IF_Barcode_Pay_Query', () => ({
        AccessToken: s.token,
        OutTradeNo: paid[qi++ % paid.length]?.no ?? '',
      })),
    );
    let ri = 0;
    rows.push(
      await load(s, 'refund (0.01 each)', db, 'FWC_IF_Barcode_Pay_Refund', () => {
        const p = paid[ri++ % paid.length] ?? { no: '', tradeNo: '' };
        return {
          AccessToken: s.token,
          TradeNo: p.tradeNo,
          RefundAmount: '0.01',
          OutRequestNo: uniq('R'),
          OutTradeNo: p.no,
          TotalAmount: '99999.00',
        };
      }),
    );
    const mem = peakRssMb(s.proc.pid);
    for (const r of rows) Object.assign(r, { peakRssMb: mem });
  } finally {
    await s.stop();
  }
  return rows;
}

const all: Row[] = [];
for (const db of dbs) all.push(...(await benchDb(db)));
console.log(
  `\nhospay offline door, ${connections} connections, ${duration} s each, ${os.cpus().length} cores, Node ${process.version}`,
);
console.table(all);
