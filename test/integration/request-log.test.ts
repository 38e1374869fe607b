import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { barcodeFields, startTestPlatform, type TestPlatform } from '../support/platform.js';

/**
 * The request log through the real door (src/http/server.ts, src/logging.ts lazyChild): at info, one line per
 * request, with its request id, path (capability tokens masked) and status, and the offline door's line with
 * the same request id; at warn, a request that logs nothing costs no logger of its own (none is made) and
 * writes nothing.
 */
describe('the request log', () => {
  let t: TestPlatform;
  const lines = (from: number) =>
    t
      .logs()
      .slice(from)
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  before(async () => {
    t = await startTestPlatform();
  });
  after(async () => {
    await t.close();
  });

  it('at info: one request line and one offline-call line, with the same request id', async () => {
    const f = barcodeFields();
    assert.equal((await t.offline('FWC_IF_Barcode_Pay', f)).rr.IsSuccess, '1');
    const from = t.logs().length;
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    assert.equal(q.rr.IsSuccess, '1');
    const got = lines(from);
    const request = got.filter((l) => l['msg'] === 'request');
    const call = got.filter((l) => l['msg'] === 'offline call');
    assert.equal(request.length, 1, JSON.stringify(got));
    assert.equal(call.length, 1, JSON.stringify(got));
    assert.equal(request[0]?.['path'], '/offline/FWC_IF_Barcode_Pay_Query');
    assert.equal(request[0]?.['status'], 200);
    assert.equal(request[0]?.['method'], 'POST');
    assert.equal(typeof request[0]?.['ms'], 'number');
    assert.ok(request[0]?.['reqId'] !== undefined);
    assert.equal(call[0]?.['reqId'], request[0]?.['reqId']);
    assert.equal(call[0]?.['subCode'], 'SUCCESS');
    assert.equal(call[0]?.['iface'], 'FWC_IF_Barcode_Pay_Query');
    // A capability in the path is masked in the request line.
    const page = t.logs().length;
    await fetch(`${t.url}/goto/abcdefghijklmnop?x=1`);
    const goto = lines(page).find((l) => l['msg'] === 'request');
    assert.equal(goto?.['path'], '/goto/abcd…');
  });

  it('at warn: no line, and no logger made per request', async () => {
    const log = t.platform.server.log as unknown as {
      level: string;
      child: (...a: unknown[]) => unknown;
    };
    const level = log.level;
    const child = log.child;
    let made = 0;
    log.child = function (this: unknown, ...a: unknown[]) {
      made++;
      return child.apply(this, a);
    };
    log.level = 'warn';
    try {
      const f = barcodeFields();
      const from = t.logs().length;
      assert.equal((await t.offline('FWC_IF_Barcode_Pay', f)).rr.IsSuccess, '1');
      for (let i = 0; i < 3; i++)
        assert.equal(
          (await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo })).rr.IsSuccess,
          '1',
        );
      assert.deepEqual(
        lines(from).filter((l) => l['msg'] === 'request' || l['msg'] === 'offline call'),
        [],
      );
      assert.equal(made, 0);
    } finally {
      log.child = child;
      log.level = level;
    }
  });
});
