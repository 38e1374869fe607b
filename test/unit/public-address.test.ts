import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defaultPublicBaseUrl, loadConfig } from '../../src/config/config.js';
import { publicAddressLines } from '../../src/cli/serve-banner.js';

describe('PUBLIC_BASE_URL: an address the server serves, and the start-up lines about it', () => {
  it('the default follows HOST and PORT', () => {
    assert.equal(loadConfig({ PORT: '9000' }).publicBaseUrl, 'http://127.0.0.1:9000');
    assert.equal(loadConfig({ PORT: '9000', HOST: '0.0.0.0' }).publicBaseUrl, 'http://127.0.0.1:9000');
    assert.equal(loadConfig({ PORT: '9000', HOST: '10.1.2.3' }).publicBaseUrl, 'http://10.1.2.3:9000');
    assert.equal(loadConfig({ PORT: '9000', HOST: '::' }).publicBaseUrl, 'http://[::1]:9000');
    assert.equal(loadConfig({ PORT: '9000', HOST: 'fd00::5' }).publicBaseUrl, 'http://[fd00::5]:9000');
    assert.equal(loadConfig({ PORT: '9000' }, { port: 9100 }).publicBaseUrl, 'http://127.0.0.1:9100');
    assert.equal(
      loadConfig({ PORT: '9000', PUBLIC_BASE_URL: 'https://pay.example-hospital.cn/' }).publicBaseUrl,
      'https://pay.example-hospital.cn',
    );
    assert.equal(defaultPublicBaseUrl('pay-host', 80), 'http://pay-host:80');
  });

  it('says which address patients get, and when their phones cannot open it, what to set', () => {
    const local = publicAddressLines(
      { publicBaseUrl: 'http://127.0.0.1:8080', host: '127.0.0.1', port: 8080, fromEnv: false },
      ['192.168.1.20'],
    ).join('\n');
    assert.match(
      local,
      /patients and the HIS get URLs under: http:\/\/127\.0\.0\.1:8080 \(.*unset: from HOST and PORT\)/,
    );
    assert.match(local, /only this machine can open it/);
    assert.match(local, /set HOST=0\.0\.0\.0 and PUBLIC_BASE_URL=http:\/\/192\.168\.1\.20:8080/);

    const lan = publicAddressLines(
      { publicBaseUrl: 'http://192.168.1.20:8080', host: '0.0.0.0', port: 8080, fromEnv: true },
      ['192.168.1.20'],
    );
    assert.deepEqual(lan, [
      '  患者与 HIS 得到的地址 / patients and the HIS get URLs under: http://192.168.1.20:8080 (PUBLIC_BASE_URL)',
    ]);

    const proxied = publicAddressLines(
      { publicBaseUrl: 'https://pay.example-hospital.cn', host: '127.0.0.1', port: 8080, fromEnv: true },
      [],
    ).join('\n');
    assert.match(proxied, /accepts connections from this machine only: .* must lead to a reverse proxy here/);

    const wrongPort = publicAddressLines(
      { publicBaseUrl: 'http://192.168.1.20:9999', host: '0.0.0.0', port: 8080, fromEnv: true },
      ['192.168.1.20'],
    ).join('\n');
    assert.match(wrongPort, /hospay listens on port 8080 but PUBLIC_BASE_URL uses port 9999/);
  });
});
