import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { TEST_DB } from '../support/db.js';
import { gateway } from '../support/gateway.js';
import { postForm } from '../support/payer.js';
import { barcodeFields, parseAnswer, xmlDoc, type OfflineAnswer } from '../support/platform.js';
import { NotifyReceiver } from '../support/receiver.js';
import { HospayHome, randomPort, sleep, type HospayProcess } from '../support/spawn.js';

/** The worker processes of a `serve --workers N` primary (its children, from /proc). */
function workerPids(primary: number): number[] {
  try {
    return fs
      .readFileSync(`/proc/${primary}/task/${primary}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The workers that logged a request line (LOG_LEVEL=info: one line per request, with the worker's id). */
function requestsByWorker(out: string): Map<string, number> {
  const by = new Map<string, number>();
  for (const line of out.split('\n')) {
    if (!line.startsWith('{') || !line.includes('"msg":"request"')) continue;
    const w = String((JSON.parse(line) as { worker?: unknown }).worker);
    by.set(w, (by.get(w) ?? 0) + 1);
  }
  return by;
}

if (TEST_DB === 'embedded')
  describe('serve --workers on the embedded database', () => {
    let home: HospayHome;
    before(async () => {
      home = await HospayHome.create('hospay-workers-embedded', { env: { LOG_LEVEL: 'warn' } });
    });
    after(async () => {
      await home.close();
    });

    it('refuses more than one worker (exit 2, both ways out named) and starts nothing', async () => {
      const port = randomPort();
      for (const how of [
        { args: ['serve', '--port', String(port), '--workers', '2'], env: {} },
        { args: ['serve', '--port', String(port)], env: { HOSPAY_WORKERS: '2' } },
      ]) {
        const r = home.run(how.args, { env: how.env });
        assert.equal(r.status, 2, r.stderr);
        assert.match(r.stderr, /内嵌数据库只能由一个进程使用/);
        assert.match(r.stderr, /embedded database belongs to one process/);
        assert.match(r.stderr, /DATABASE_URL/);
        assert.match(r.stderr, /HOSPAY_WORKERS|--workers/);
        assert.doesNotMatch(r.stdout, /hospay is serving/);
      }
      // Nothing was started: no database, no lock, no admin token, nothing on the port.
      assert.deepEqual(fs.readdirSync(home.dataDir), []);
      await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
    });

    it('refuses a worker count that is not 1..64 (exit 2)', () => {
      for (const bad of ['0', 'two']) {
        const r = home.run(['serve', `--workers=${bad}`]);
        assert.equal(r.status, 2, `${bad}: ${r.stderr}`);
        assert.match(r.stderr, /--workers must be a whole number from 1 to 64/);
      }
      assert.deepEqual(fs.readdirSync(home.dataDir), []);
    });
  });
else
  describe(`serve --workers 2 (${TEST_DB})`, () => {
    let home: HospayHome;
    let server: HospayProcess;
    const receiver = new NotifyReceiver();
    const port = randomPort();
    const base = `http://127.0.0.1:${port}`;
    let token = '';
    let paidOrder = '';

    /** An offline call: through fetch's keep-alive pool, or (`fresh`) on a new connection of its own. */
    const offline = async (
      name: string,
      fields: Record<string, string | undefined>,
      fresh = false,
    ): Promise<OfflineAnswer> => {
      const body = xmlDoc({ AccessToken: token, ...fields });
      if (!fresh) {
        const res = await fetch(`${base}/offline/${name}`, {
          method: 'POST',
          headers: { 'content-type': 'text/xml' },
          body,
        });
        return parseAnswer(res.status, await res.text());
      }
      // fetch cannot be told to use a new connection ("connection" is a forbidden header): node:http can.
      return new Promise((resolve, reject) => {
        const req = http.request(
          `${base}/offline/${name}`,
          {
            method: 'POST',
            agent: false,
            timeout: 20_000,
            headers: {
              'content-type': 'text/xml',
              connection: 'close',
              'content-length': Buffer.byteLength(body),
            },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (text += d));
            res.on('end', () => resolve(parseAnswer(res.statusCode ?? 0, text)));
          },
        );
        req.on('timeout', () => req.destroy(new Error(`${name}: no answer within 20 s`)));
        req.on('error', reject);
        req.end(body);
      });
    };
    /** A query of the paid trade: true when it answered success. */
    const queryOk = async (fresh = false) => {
      const a = await offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: paidOrder }, fresh);
      return a.status === 200 && a.rr.IsSuccess === '1';
    };

    before(async () => {
      home = await HospayHome.create('hospay-workers', {
        env: {
          // One line per request, with the worker's id: shows which worker answered.
          LOG_LEVEL: 'info',
          PORT: String(port),
          PUBLIC_BASE_URL: base,
          HOSPAY_NOTIFY_ALLOW_LOOPBACK: '1',
          HOSPAY_NOTIFY_INTERVAL: '200ms',
        },
      });
      await receiver.start();
    });
    after(async () => {
      await home.close();
      await receiver.stop();
    });

    it('starts two workers behind one port; the demo token is printed once, by the primary', async () => {
      server = await home.start(['serve', '--workers', '2']);
      const out = server.out();
      token = /AccessToken: (\S+)/.exec(out)?.[1] ?? '';
      assert.ok(token, out);
      assert.equal(out.match(/AccessToken:/g)?.length, 1, 'the demo token is printed exactly once');
      assert.match(out, /2 workers \(pids \d+, \d+; primary \d+\)/);
      const pids = workerPids(server.pid ?? 0);
      assert.equal(pids.length, 2, `two worker processes: ${pids.join(' ')}`);
    });

    it('answers the offline door and the gateway, and both workers take requests', async () => {
      const f = barcodeFields();
      const paid = await offline('FWC_IF_Barcode_Pay', f);
      assert.equal(paid.rr.IsSuccess, '1', paid.text);
      paidOrder = f.OutTradeNo ?? '';
      // New connections are handed to the workers in turn.
      const answers = await Promise.all(Array.from({ length: 10 }, () => queryOk(true)));
      assert.ok(answers.every(Boolean));

      const created = home.run(['app', 'create', '--name', '多进程医院', '--generate-key', '--json']);
      assert.equal(created.status, 0, created.stderr);
      const app = JSON.parse(created.stdout) as { app_id: string; private_key: string };
      const key = createPrivateKey(app.private_key);
      const outTradeNo = `MZW${Date.now()}`;
      const h5 = await gateway(
        { url: base, appId: app.app_id },
        'lc.trade.h5.pay',
        {
          out_trade_no: outTradeNo,
          total_amount: '12.34',
          subject: '门诊缴费',
          notify_url: receiver.url('/notify'),
          order_type: 'TREATMENT',
        },
        { key },
      );
      assert.equal(h5.json.code, '10000', h5.raw);

      // Jobs claim their work in the database: with two workers the notification is delivered exactly once.
      const chosen = await postForm(String(h5.biz['goto_url']), 'pay_type=weixin');
      const paidPage = await postForm(chosen.headers.get('location') ?? '', 'action=pay');
      assert.equal(paidPage.status, 303);
      const back = await fetch(paidPage.headers.get('location') ?? '', { redirect: 'manual' });
      assert.equal(back.status, 200);
      const q = await gateway(
        { url: base, appId: app.app_id },
        'lc.trade.query',
        { out_trade_no: outTradeNo },
        { key },
      );
      assert.equal(q.biz['trade_status'], 'TRADE_SUCCESS', q.raw);
      await until('the notification', () => receiver.got.length > 0, 30_000);
      await sleep(2_000); // several notifier passes of both workers
      assert.equal(receiver.got.length, 1, 'delivered once');
      assert.equal(receiver.got[0]?.outTradeNo, outTradeNo);

      const by = requestsByWorker(server.out());
      assert.deepEqual([...by.keys()].sort(), ['1', '2'], JSON.stringify([...by]));
    });

    it('replaces a worker killed with SIGKILL; requests keep succeeding', async () => {
      const primary = server.pid ?? 0;
      const [victim, survivor] = workerPids(primary);
      assert.ok(victim && survivor);
      process.kill(victim, 'SIGKILL');
      await until('the killed worker to go', () => !alive(victim));
      // Once the primary has seen the death, it hands new connections to the other worker only. (A connection
      // handed out in the instant between the death and the primary noticing it is lost until the client's
      // timeout: node:cluster round-robin; see docs.)
      await until('the primary to see it', () =>
        /a worker died unexpectedly: replacing it/.test(server.out()),
      );
      const during = await Promise.all(Array.from({ length: 6 }, () => queryOk(true)));
      assert.ok(during.every(Boolean));
      await until('a replacement worker', () => /replacement worker listening/.test(server.out()));
      const now = workerPids(primary);
      assert.equal(now.length, 2);
      assert.ok(now.includes(survivor) && !now.includes(victim), now.join(' '));
      assert.match(server.out(), /"signal":"SIGKILL"/);
      const afterwards = await Promise.all(Array.from({ length: 6 }, () => queryOk(true)));
      assert.ok(afterwards.every(Boolean));
    });

    it('SIGHUP restarts every worker one at a time without failing a request', async () => {
      const primary = server.pid ?? 0;
      const before = workerPids(primary);
      const logged = server.out().length;
      let stop = false;
      let ok = 0;
      const failures: string[] = [];
      // Keep-alive clients (fetch's pool) querying all the time.
      const loop = async () => {
        while (!stop) {
          try {
            if (await queryOk()) ok++;
            else failures.push('not success');
          } catch (e) {
            failures.push(String((e as { cause?: { code?: string } }).cause?.code ?? e));
          }
        }
      };
      const loops = Array.from({ length: 4 }, loop);
      await sleep(300);
      process.kill(primary, 'SIGHUP');
      await until('the restart to finish', () =>
        /SIGHUP: every worker restarted/.test(server.out().slice(logged)),
      );
      await sleep(300);
      stop = true;
      await Promise.all(loops);
      assert.deepEqual(failures, []);
      assert.ok(ok > 20, `requests answered: ${ok}`);
      const now = workerPids(primary);
      assert.equal(now.length, 2);
      for (const pid of before) assert.ok(!now.includes(pid), `${pid} was restarted: ${now.join(' ')}`);
      assert.equal(server.out().match(/AccessToken:/g)?.length, 1, 'no worker printed a token');
    });

    it('SIGTERM stops the workers and the primary exits 0', async () => {
      const pids = workerPids(server.pid ?? 0);
      assert.equal(await server.stop('SIGTERM'), 0, server.out().slice(-2000));
      await until('the workers to exit', () => pids.every((p) => !alive(p)), 10_000);
      await assert.rejects(fetch(`${base}/healthz`));
    });
  });
