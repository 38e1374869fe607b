import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TEST_DB } from '../support/db.js';
import { postRaw, qrFields, xmlDoc } from '../support/platform.js';
import { TEST_APP_KEY, gateway } from '../support/gateway.js';
import { HospayHome, randomPort, type HospayProcess } from '../support/spawn.js';

/** Issue 12 §3 and §5: what a newcomer sees from `hospay serve`, a usage error and `app create`. */
describe(`hospay CLI for a newcomer (${TEST_DB})`, () => {
  let home: HospayHome;
  let server: HospayProcess;
  const port = randomPort();
  const base = `http://127.0.0.1:${port}`;

  before(async () => {
    // No PUBLIC_BASE_URL, HOST or PORT: what a newcomer starts with.
    home = await HospayHome.create('hospay-cli-newcomer', { env: { LOG_LEVEL: 'warn', HOSPAY_JOBS: 'off' } });
    server = await home.start(['serve', '--port', String(port)], {
      ready: /hospay is serving[^\n]*\n(.*\n){2}/,
    });
  });
  after(async () => {
    await home.close();
  });

  const serverOut = () => server.out();
  const run = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => home.run(args, { env: extraEnv });
  /** A signed gateway call to the spawned server as the given app. */
  const gatewayAs = (appId: string, method: string, biz: Record<string, unknown>) =>
    gateway({ appId, url: base }, method, biz);

  it('serve: without PUBLIC_BASE_URL, answers carry the address the server listens on, and the start-up line says so', async () => {
    assert.match(
      serverOut(),
      new RegExp(
        `patients and the HIS get URLs under: ${base} \\(PUBLIC_BASE_URL .*unset: from HOST and PORT\\)`,
      ),
    );
    assert.match(serverOut(), /only this machine can open it, not the patients' phones/);
    assert.match(serverOut(), /set HOST=0\.0\.0\.0 and PUBLIC_BASE_URL=/);
    const token = /AccessToken: (\S+)/.exec(serverOut())?.[1] ?? '';
    const qr = await postRaw(
      `${base}/offline/FWC_IF_Qrcode_Pay`,
      xmlDoc({ AccessToken: token, ...qrFields() }),
    );
    assert.equal(qr.rr.IsSuccess, '1', qr.text);
    const code = qr.result.TwoDimensionCode ?? '';
    assert.ok(code.startsWith(`${base}/cashier/qr/`), code);
    const page = await fetch(code);
    assert.equal(page.status, 200, 'the code opens on this server');
    assert.match(await page.text(), /医院收银台/);
    const landing = await (await fetch(`${base}/`)).text();
    assert.match(landing, new RegExp(`curl -s ${base}/offline/FWC_IF_Barcode_Pay`));
  });

  it('app create without --generate-key says the gateway refuses the app until a key is added, and how', async () => {
    const r = run(['app', 'create', '--name', '无密钥医院']);
    assert.equal(r.status, 0, r.stderr);
    const appId = /app_id:\s+(\S+)/.exec(r.stdout)?.[1] ?? '';
    assert.match(r.stdout, /offline XML door \(FWC_IF_\*\): ready/);
    assert.match(
      r.stdout,
      /gateway \(lc\.\*\): no public key yet, its requests are refused \(isv\.missing-app-public-key\)/,
    );
    assert.match(r.stdout, new RegExp(`hospay app key --app ${appId} --public-key app-public\\.pem`));
    assert.match(r.stdout, /--generate-key/);
    assert.match(r.stdout, /payments go to the built-in simulator/);
    // What it says is what the gateway does.
    const biz = {
      out_trade_no: `MZ${Date.now()}`,
      total_amount: '1.00',
      subject: '挂号费',
      order_type: 'APPOINTMENT',
    };
    const refused = await gatewayAs(appId, 'lc.trade.h5.pay', biz);
    assert.equal(refused.biz['sub_code'], 'isv.missing-app-public-key', refused.raw);
    // Following the advice makes it work.
    const keyFile = path.join(home.dataDir, 'app-public.pem');
    fs.writeFileSync(keyFile, TEST_APP_KEY.publicPem);
    const key = run(['app', 'key', '--app', appId, '--public-key', keyFile]);
    assert.equal(key.status, 0, key.stderr);
    const ok = await gatewayAs(appId, 'lc.trade.h5.pay', biz);
    assert.equal(ok.json.code, '10000', ok.raw);

    const withKey = run(['app', 'create', '--name', '有密钥医院', '--generate-key']);
    assert.equal(withKey.status, 0, withKey.stderr);
    assert.match(withKey.stdout, /gateway \(lc\.\*\): public key registered/);
    assert.doesNotMatch(withKey.stdout, /missing-app-public-key/);
    assert.match(withKey.stdout, /-----BEGIN PRIVATE KEY-----/);
    const json = JSON.parse(
      run(['app', 'create', '--name', 'JSON 医院', '--generate-key', '--json']).stdout,
    ) as Record<string, string>;
    for (const k of ['app_id', 'name', 'access_token', 'private_key', 'public_key']) assert.ok(json[k], k);
    assert.match(json['private_key'] ?? '', /BEGIN PRIVATE KEY/);
    assert.match(json['public_key'] ?? '', /BEGIN PUBLIC KEY/);
  });
  it('a usage error prints the one-line error and where the help is, not the whole help', () => {
    const cases: Array<[string[], RegExp, string]> = [
      [['his-sim', '--dorp', 'MZ1'], /--dorp/, 'hospay his-sim --help'],
      [['his-sim', '--broken', 'sometimes'], /--broken must be/, 'hospay his-sim --help'],
      [['frobnicate'], /unknown command "frobnicate"/, 'hospay --help'],
      [['app', 'create'], /--name is required/, 'hospay app --help'],
      [
        ['operator', 'create', '--username', 'bad name', '--name', 'x'],
        /--username/,
        'hospay operator --help',
      ],
      [['report', '--date', '2026-11-25', '--format', 'pdf'], /--format must be/, 'hospay report --help'],
    ];
    for (const [args, error, pointer] of cases) {
      const r = run(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 2, `${args.join(' ')}: only the error and the pointer:\n${r.stderr}`);
      assert.match(lines[0] ?? '', /^hospay: /);
      assert.match(lines[0] ?? '', error);
      assert.equal(lines[1], `用法见 / for usage: ${pointer}`);
      assert.doesNotMatch(r.stderr, /Usage:/);
    }
  });

  it('--help still prints the help (of the command), and does nothing else', () => {
    const all = run(['--help']);
    assert.equal(all.status, 0);
    assert.match(all.stdout, /hospay serve \[--port N\]/);
    const sim = run(['his-sim', '--help']);
    assert.equal(sim.status, 0, sim.stderr);
    assert.match(sim.stdout, /--drop ORDER/);
    const before = JSON.parse(run(['app', 'list', '--json']).stdout) as unknown[];
    const create = run(['app', 'create', '--name', '不该创建', '--help']);
    assert.equal(create.status, 0, create.stderr);
    assert.match(create.stdout, /hospay app create --name NAME/);
    const afterList = JSON.parse(run(['app', 'list', '--json']).stdout) as unknown[];
    assert.equal(afterList.length, before.length, '--help creates no app');
    for (const cmd of ['operator', 'report', 'reconcile', 'channel', 'notify'])
      assert.match(run([cmd, '-h']).stdout, new RegExp(`hospay ${cmd}`), cmd);
  });
});
