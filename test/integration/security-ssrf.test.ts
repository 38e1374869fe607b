import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import { orderNo, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_APP_KEY, gateway } from '../support/gateway.js';
import { HospayHome, TEST_MASTER_KEY } from '../support/spawn.js';
import { NotifyJob } from '../../src/jobs/notifier.js';
import type { ServiceDeps } from '../../src/services/deps.js';
import { postForm } from '../support/payer.js';

/**
 * notify_url must not make hospay POST into its own machine or network (blind SSRF): refused at the door when
 * the URL shows it, refused at delivery when the host name resolves there (DNS rebinding), private addresses
 * only when the app's allow-list has them. This platform runs WITHOUT HOSPAY_NOTIFY_ALLOW_LOOPBACK.
 */

interface Hit {
  path: string;
  host: string;
  form: URLSearchParams;
}

/** A HIS receiving notifications on one address. */
async function receiver(address: string): Promise<{ base: string; hits: Hit[]; close: () => Promise<void> }> {
  const hits: Hit[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      hits.push({ path: req.url ?? '', host: req.headers.host ?? '', form: new URLSearchParams(body) });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('success');
    });
  });
  await new Promise<void>((r) => server.listen(0, address, r));
  const port = (server.address() as AddressInfo).port;
  return {
    base: `http://${address.includes(':') ? `[${address}]` : address}:${port}`,
    hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A non-loopback IPv4 address of this machine in a range an allow-list may hold, with its /24. */
function intranetAddress(): { address: string; cidr: string } | null {
  const inRange = (a: string) =>
    /^(10\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.|100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.|192\.0\.2\.|198\.51\.100\.|203\.0\.113\.|198\.1[89]\.)/.test(
      a,
    );
  for (const list of Object.values(os.networkInterfaces())) {
    for (const i of list ?? []) {
      if (i.family === 'IPv4' && !i.internal && inRange(i.address))
        return { address: i.address, cidr: `${i.address.split('.').slice(0, 3).join('.')}.0/24` };
    }
  }
  return null;
}

describe('security: notify_url cannot reach internal addresses (SSRF)', () => {
  let t: TestPlatform;
  let loop: Awaited<ReturnType<typeof receiver>>;
  const names = new Map<string, Array<{ address: string; family: number }>>();

  before(async () => {
    t = await startTestPlatform({
      env: { HOSPAY_NOTIFY_ALLOW_LOOPBACK: '0', HOSPAY_NOTIFY_TIMEOUT: '1s' },
    });
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    loop = await receiver('127.0.0.1');
    // The notifier's resolver: test names resolve as set here (as an attacker's DNS would answer).
    (t.platform.deps as ServiceDeps).notifyResolver = async (host) => {
      const found = names.get(host.replace(/\.$/, ''));
      if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      return found;
    };
  });
  after(async () => {
    await loop.close();
    await t.close();
  });

  const h5 = (notifyUrl: string, over: Record<string, unknown> = {}) =>
    gateway(t, 'lc.trade.h5.pay', {
      out_trade_no: orderNo('MZ'),
      total_amount: '18.80',
      subject: '门诊缴费',
      return_url: 'https://his.example.cn/pay/return',
      notify_url: notifyUrl,
      order_type: 'TREATMENT',
      ...over,
    });

  /** Pays an H5 trade the way a payer does: goto_url → choose Alipay → simulator cashier → pay → back. */
  async function pay(gotoUrl: string): Promise<void> {
    const chosen = await postForm(gotoUrl, 'pay_type=alipay');
    assert.equal(chosen.status, 302);
    const paid = await postForm(chosen.headers.get('location') ?? '', 'action=pay');
    assert.equal(paid.status, 303);
    const back = await fetch(paid.headers.get('location') ?? '', { redirect: 'manual' });
    assert.equal(back.status, 302);
  }

  /** A paid H5 trade with this notify_url (accepted at the door), and one delivery pass. */
  async function paidAndDelivered(notifyUrl: string) {
    const a = await h5(notifyUrl);
    assert.equal(a.json.code, '10000', a.raw);
    await pay(String(a.biz['goto_url']));
    await new NotifyJob(t.platform.deps).tick();
    const n = await notificationOf(String(a.biz['out_trade_no']));
    const attempts = await t.platform.deps.notifications.attemptsOf([n.id]);
    return { n, attempts };
  }

  /** The one notification of the test app's trade with this order number. */
  async function notificationOf(outTradeNo: string) {
    const [n] = await t.platform.deps.notifications.ofTrades([(await t.trade(outTradeNo)).id]);
    assert.ok(n, `a notification of ${outTradeNo}`);
    return n;
  }

  it('lc.trade.h5.pay refuses, at the door, a notify_url whose text points inside (every spelling)', async () => {
    const port = new URL(loop.base).port;
    for (const url of [
      `http://127.0.0.1:${port}/admin/x`,
      'http://127.1/',
      'http://0x7f.1/',
      'http://2130706433/',
      'http://0177.0.0.1/',
      'http://[::1]/',
      'http://[::ffff:127.0.0.1]/',
      'http://localhost/',
      'http://localhost./',
      'http://LOCALHOST:3000/',
      'http://api.localhost/',
      'http://169.254.169.254/latest/meta-data/',
      'http://[::ffff:169.254.169.254]/',
      'http://[64:ff9b::a9fe:a9fe]/',
      'http://[fd00:ec2::254]/latest/meta-data/',
      'http://100.100.100.200/latest/meta-data/',
      'http://metadata.google.internal/computeMetadata/v1/',
      'http://0.0.0.0/',
      'http://[::]/',
      'http://224.0.0.1/',
      'http://[ff02::1]/',
      'http://255.255.255.255/',
      'http://240.0.0.1/',
      'http://[fe80::1]/',
      'http://10.0.0.5/his/notify',
      'http://172.16.0.1/',
      'http://192.168.1.10/',
      'http://100.64.0.1/',
      'http://[fd12:3456::1]/',
    ]) {
      const a = await h5(url);
      assert.equal(a.json.code, '40002', `${url}: ${a.raw}`);
      assert.equal(a.biz['sub_code'], 'INVALID_FIELD.notify_url', url);
      assert.match(String(a.biz['sub_msg']), /不允许内网|internal addresses are not allowed/, url);
    }
    // Userinfo and schemes other than http(s).
    for (const url of [
      'http://user:pw@his.example.cn/n',
      'http://his.example.cn@evil.example/n',
      'ftp://his.example.cn/n',
    ]) {
      const a = await h5(url);
      assert.equal(a.biz['sub_code'], 'INVALID_FIELD.notify_url', `${url}: ${a.raw}`);
    }
    // return_url: http(s) only, no userinfo.
    for (const url of ['javascript:alert(1)', 'https://his.example.cn@evil.example/back']) {
      const a = await h5('https://his.example.cn/pay/notify', { return_url: url });
      assert.equal(a.biz['sub_code'], 'INVALID_FIELD.return_url', `${url}: ${a.raw}`);
    }
    // Nothing was stored for any of them; public addresses and host names are accepted.
    for (const url of ['https://his.example.cn/pay/notify', 'http://8.8.8.8/n', 'http://[2001:4860::8888]/n'])
      assert.equal((await h5(url)).json.code, '10000', url);
    assert.equal(loop.hits.length, 0);
  });

  it('lc.ssc.trade.pay refuses the same at the door', async () => {
    const a = await gateway(t, 'lc.ssc.trade.pay', {
      out_trade_no: orderNo('MZ'),
      ssc_scene: 'TREATMENT',
      subject: '门诊医保缴费',
      notify_url: 'http://169.254.169.254/latest/meta-data/',
      return_url: 'https://his.example.cn/mi/return',
      total_amount: 100,
      cash_fee: '40.00',
      insurance_fee: '60.00',
      payment_type: 'alipay',
      user_id: 'u1',
      patient_name: '王医保',
      patient_card_no: '44010519800101123X',
      org_no: 'H44010100001',
      org_name: '市第一人民医院',
      city_code: '440100',
      ssc_ins_type: 'YB',
      ssc_serial_no: 'SSC0001',
      pay_auth_no: 'AUTH-NONE',
    });
    assert.equal(a.biz['sub_code'], 'INVALID_FIELD.notify_url', a.raw);
    assert.match(String(a.biz['sub_msg']), /链路本地|link-local/);
  });

  it('a host name that resolves to a loopback (or metadata) address is refused at delivery: nothing is sent', async () => {
    const port = new URL(loop.base).port;
    names.set('his.rebind.test', [{ address: '127.0.0.1', family: 4 }]);
    names.set('his.mapped.test', [{ address: '::ffff:127.0.0.1', family: 6 }]);
    names.set('his.mixed.test', [
      { address: '8.8.8.8', family: 4 },
      { address: '127.0.0.1', family: 4 },
    ]);
    names.set('his.metadata.test', [{ address: '169.254.169.254', family: 4 }]);
    for (const [host, what] of [
      ['his.rebind.test', /his\.rebind\.test \(127\.0\.0\.1\) is a loopback address/],
      ['his.mapped.test', /\(::ffff:127\.0\.0\.1\) is a loopback address/],
      ['his.mixed.test', /\(127\.0\.0\.1\) is a loopback address/],
      ['his.metadata.test', /\(169\.254\.169\.254\) is a link-local address/],
      ['his.rebind.test.', /is a loopback address/],
    ] as const) {
      const { n, attempts } = await paidAndDelivered(`http://${host}:${port}/notify`);
      assert.equal(n.status, 'PENDING', host);
      assert.equal(n.attempts, 1);
      assert.equal(attempts.length, 1);
      assert.equal(attempts[0]?.http_status, null);
      assert.match(attempts[0]?.error ?? '', /^refused: internal addresses are not allowed/, host);
      assert.match(attempts[0]?.error ?? '', what, host);
      assert.equal(n.last_error, attempts[0]?.error);
      // The normal schedule: tried again in 4 minutes (the name may be fixed, the allow-list changed).
      assert.equal(n.next_attempt_at.getTime(), t.clock.now().getTime() + 4 * 60_000);
    }
    assert.equal(loop.hits.length, 0, 'nothing reached the loopback receiver');
    await t.store.db
      .updateTable('notifications')
      .set({ status: 'FAILED' })
      .where('status', '=', 'PENDING')
      .execute();
  });

  it('a private address is delivered only when the app allow-lists it (admin API); a name is connected to the checked address', async (ctx) => {
    const intranet = intranetAddress();
    if (!intranet) return ctx.skip('this machine has no non-loopback address in a private range');
    const his = await receiver(intranet.address);
    try {
      const url = `${his.base}/notify`;
      // Not allow-listed: refused at the door.
      const refused = await h5(url);
      assert.equal(refused.biz['sub_code'], 'INVALID_FIELD.notify_url', refused.raw);
      assert.match(String(refused.biz['sub_msg']), /allow-list|白名单/);

      // The admin API: bad entries refused; a private range accepted and shown in the app views.
      for (const bad of [
        ['127.0.0.0/8'],
        ['169.254.169.254'],
        ['0.0.0.0/0'],
        ['8.8.8.0/24'],
        ['his.intranet'],
        'x',
      ]) {
        const r = await t.admin('PUT', `/admin/apps/${t.appId}/notify-allowlist`, {
          notify_private_cidrs: bad,
        });
        assert.equal(r.status, 400, JSON.stringify(bad));
        assert.equal(r.data['code'], 'INVALID_FIELD.notify_private_cidrs');
      }
      const set = await t.admin('PUT', `/admin/apps/${t.appId}/notify-allowlist`, {
        notify_private_cidrs: [intranet.cidr, 'fd12:3456::/48'],
      });
      assert.equal(set.status, 200, JSON.stringify(set.data));
      assert.deepEqual(set.data['notify_private_cidrs'], [intranet.cidr, 'fd12:3456::/48']);
      const got = await t.admin('GET', `/admin/apps/${t.appId}/notify-allowlist`);
      assert.deepEqual(got.data['notify_private_cidrs'], [intranet.cidr, 'fd12:3456::/48']);
      const list = (await t.admin('GET', '/admin/apps')) as unknown as {
        data: Array<Record<string, unknown>>;
      };
      const mine = list.data.find((a) => a['app_id'] === t.appId);
      assert.deepEqual(mine?.['notify_private_cidrs'], [intranet.cidr, 'fd12:3456::/48']);
      assert.equal(
        (await t.admin('PUT', '/admin/apps/hpnope/notify-allowlist', { notify_private_cidrs: [] })).status,
        404,
      );

      // Allow-listed: accepted and delivered, by address and by a name resolving to it.
      const direct = await paidAndDelivered(url);
      assert.equal(direct.n.status, 'DELIVERED', JSON.stringify(direct.attempts));
      names.set('his.intranet.test', [{ address: intranet.address, family: 4 }]);
      const port = new URL(his.base).port;
      const byName = await paidAndDelivered(`http://his.intranet.test:${port}/by-name`);
      assert.equal(byName.n.status, 'DELIVERED', JSON.stringify(byName.attempts));
      const named = his.hits.find((h) => h.path === '/by-name');
      assert.equal(named?.host, `his.intranet.test:${port}`, 'the Host header keeps the name');
      assert.equal(named?.form.get('method'), 'lc.trade.notify');

      // A trade accepted while allow-listed, delivered after the allow-list was emptied: refused at delivery.
      const a = await h5(url);
      assert.equal(a.json.code, '10000', a.raw);
      const emptied = await t.admin('PUT', `/admin/apps/${t.appId}/notify-allowlist`, {
        notify_private_cidrs: [],
      });
      assert.deepEqual(emptied.data['notify_private_cidrs'], []);
      const before = his.hits.length;
      await pay(String(a.biz['goto_url']));
      await new NotifyJob(t.platform.deps).tick();
      const n = await notificationOf(String(a.biz['out_trade_no']));
      assert.equal(n.status, 'PENDING');
      assert.match(n.last_error ?? '', /^refused: .*not in the app's notify allow-list/);
      assert.equal(his.hits.length, before, 'nothing sent');
      // Nor by a name resolving there.
      const again = await paidAndDelivered(`http://his.intranet.test:${port}/by-name-2`);
      assert.match(
        again.n.last_error ?? '',
        /his\.intranet\.test \(.*\) is .* not in the app's notify allow-list/,
      );
      assert.equal(his.hits.length, before);
    } finally {
      await his.close();
      await t.store.db
        .updateTable('notifications')
        .set({ status: 'FAILED' })
        .where('status', '=', 'PENDING')
        .execute();
    }
  });
});

describe('security: HOSPAY_NOTIFY_ALLOW_LOOPBACK (development and tests only)', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform({ env: { HOSPAY_NOTIFY_ALLOW_LOOPBACK: '1' } });
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
  });
  after(async () => {
    await t.close();
  });

  it('allows loopback only, and says so loudly at start-up', async () => {
    assert.match(t.logs(), /HOSPAY_NOTIFY_ALLOW_LOOPBACK is on.*ONLY/);
    const h5 = (notifyUrl: string) =>
      gateway(t, 'lc.trade.h5.pay', {
        out_trade_no: orderNo('MZ'),
        total_amount: '1.00',
        subject: '门诊缴费',
        notify_url: notifyUrl,
        order_type: 'TREATMENT',
      });
    for (const ok of ['http://127.0.0.1:3000/n', 'http://localhost:3000/n', 'http://[::1]:3000/n'])
      assert.equal((await h5(ok)).json.code, '10000', ok);
    for (const bad of [
      'http://169.254.169.254/',
      'http://0.0.0.0:3000/',
      'http://10.0.0.1/',
      'http://[fe80::1]/',
    ])
      assert.equal((await h5(bad)).biz['sub_code'], 'INVALID_FIELD.notify_url', bad);
  });
});

describe('security: the notify allow-list through the CLI', () => {
  let home: HospayHome;
  before(async () => {
    home = await HospayHome.create('hospay-ssrf', {
      env: { LOG_LEVEL: 'warn', HOSPAY_MASTER_KEY: TEST_MASTER_KEY },
    });
  });
  after(async () => {
    await home.close();
  });
  const run = (args: string[]) => home.run(args);

  it('hospay app notify-allowlist --set / --reset, shown by app list; bad ranges are usage errors', () => {
    const created = run(['app', 'create', '--name', '内网医院', '--json']);
    assert.equal(created.status, 0, created.stderr);
    const appId = (JSON.parse(created.stdout) as { app_id: string }).app_id;

    const set = run([
      'app',
      'notify-allowlist',
      '--app',
      appId,
      '--set',
      '10.8.3.0/16, fd12:3456::/48',
      '--json',
    ]);
    assert.equal(set.status, 0, set.stderr);
    assert.deepEqual(JSON.parse(set.stdout), ['10.8.0.0/16', 'fd12:3456::/48']);
    const list = run(['app', 'list', '--json']);
    const apps = JSON.parse(list.stdout) as Array<{ app_id: string; notify_private_cidrs: string[] }>;
    assert.deepEqual(apps.find((a) => a.app_id === appId)?.notify_private_cidrs, [
      '10.8.0.0/16',
      'fd12:3456::/48',
    ]);

    for (const bad of ['169.254.169.254/32', 'his.intranet']) {
      const r = run(['app', 'notify-allowlist', '--app', appId, '--set', bad]);
      assert.equal(r.status, 2, `${bad}: ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /--set: /);
    }
    const reset = run(['app', 'notify-allowlist', '--app', appId, '--reset', '--json']);
    assert.deepEqual(JSON.parse(reset.stdout), []);
  });
});
