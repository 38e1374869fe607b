import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestPlatform, type TestPlatform } from '../support/platform.js';

/**
 * Medical-insurance authorisation (spec 6.4): the auth_code goes only to a redirect_uri the app registered,
 * compared as a parsed URL (scheme, host and port exactly; the path on a segment boundary), never as a text
 * prefix: `https://his.example.cn.evil.com/x` and `https://his.example.cn@evil.com/x` are somebody else.
 */
describe('security: medical-insurance redirect_uri is compared as a URL, not a text prefix', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
  });
  after(async () => {
    await t.close();
  });

  const register = async (uris: string[]) => {
    const r = await t.admin('PUT', `/admin/apps/${t.appId}/redirect-uris`, { redirect_uris: uris });
    assert.equal(r.status, 200, JSON.stringify(r.data));
  };

  const start = (redirectUri: string) => {
    const q = new URLSearchParams({ app_id: t.appId, open_id: 'u1', state: 's1', redirect_uri: redirectUri });
    return fetch(`${t.url}/oauth2/medicareAuth?${q.toString()}`, { redirect: 'manual' });
  };

  /** The whole way: start, consent page, grant; the URL the patient (and the auth_code) is sent to. */
  async function grantedTo(redirectUri: string): Promise<URL> {
    const s = await start(redirectUri);
    assert.equal(s.status, 302, `${redirectUri}: ${await s.text()}`);
    const page = await fetch(s.headers.get('location') ?? '');
    const action = /action="([^"]+)"/.exec(await page.text())?.[1] ?? '';
    const decided = await fetch(`${t.url}${action}`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'decision=grant',
    });
    assert.equal(decided.status, 302);
    return new URL(decided.headers.get('location') ?? '');
  }

  async function refused(redirectUri: string): Promise<void> {
    const r = await start(redirectUri);
    const text = await r.text();
    assert.equal(
      r.status,
      400,
      `${redirectUri} must be refused, got ${r.status} ${r.headers.get('location')}`,
    );
    assert.match(text, /INVALID_FIELD\.redirect_uri/);
  }

  it('a host registered without a path: look-alike hosts, userinfo, other ports and schemes get no auth_code', async () => {
    await register(['https://his.example.cn']);
    for (const evil of [
      'https://his.example.cn.evil.com/x',
      'https://his.example.cn@evil.com/x',
      'https://his.example.cn:pw@evil.com/x',
      'https://his.example.cn:8443/x',
      'https://his.example.cnevil.com/x',
      'http://his.example.cn/x',
      'https://user@his.example.cn/x',
    ])
      await refused(evil);
    // The registered origin itself, any path on it.
    const back = await grantedTo('https://his.example.cn/any/path?x=1');
    assert.equal(back.origin, 'https://his.example.cn');
    assert.equal(back.pathname, '/any/path');
    assert.equal(back.searchParams.get('x'), '1');
    assert.match(back.searchParams.get('auth_code') ?? '', /^[0-9a-f]{32}$/);
    // Host names are case-insensitive.
    assert.equal((await grantedTo('https://HIS.Example.CN/cb')).host, 'his.example.cn');
  });

  it('a registered path matches on a segment boundary: /cb allows /cb and /cb/x, not /cbx', async () => {
    await register(['https://his.example.cn/cb', 'https://his.example.cn:8443/mi/']);
    assert.equal((await grantedTo('https://his.example.cn/cb')).pathname, '/cb');
    assert.equal((await grantedTo('https://his.example.cn/cb/x')).pathname, '/cb/x');
    assert.equal((await grantedTo('https://his.example.cn/cb?from=app')).pathname, '/cb');
    assert.equal((await grantedTo('https://his.example.cn:8443/mi/back')).pathname, '/mi/back');
    for (const evil of [
      'https://his.example.cn/cbx',
      'https://his.example.cn/cb.evil',
      'https://his.example.cn/c',
      'https://his.example.cn/',
      'https://his.example.cn/cb/../admin',
      'https://his.example.cn/cb%2F..%2Fadmin',
      'https://his.example.cn/CB',
      'https://his.example.cn:8443/mi',
      'https://his.example.cn:8443/mix/back',
      'https://his.example.cn/mi/back',
      'https://his.example.cn.evil.com/cb',
      'https://his.example.cn@evil.com/cb',
    ])
      await refused(evil);
  });

  it('the admin API accepts only absolute http(s) URLs without userinfo, query or fragment', async () => {
    for (const bad of [
      'https://his.example.cn@evil.com/',
      'https://user:pw@his.example.cn/cb',
      'javascript:alert(1)',
      'ftp://his.example.cn/cb',
      'https://his.example.cn/cb?next=x',
      'https://his.example.cn/cb#frag',
      '/relative/cb',
      'https://',
      '',
    ]) {
      const r = await t.admin('PUT', `/admin/apps/${t.appId}/redirect-uris`, { redirect_uris: [bad] });
      assert.equal(r.status, 400, `${bad}: ${JSON.stringify(r.data)}`);
      assert.equal(r.data['code'], 'INVALID_FIELD.redirect_uris');
    }
    const ok = await t.admin('PUT', `/admin/apps/${t.appId}/redirect-uris`, {
      redirect_uris: ['https://HIS.example.cn/cb', 'http://his.example.cn:8080'],
    });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.data['redirect_uris'], ['https://his.example.cn/cb', 'http://his.example.cn:8080/']);
  });
});
