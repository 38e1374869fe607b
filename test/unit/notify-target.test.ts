import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkNotifyUrlText,
  classifyAddress,
  ipv6Bytes,
  notifyPolicy,
  parseAllowList,
  parseAllowListEntry,
} from '../../src/services/notify-target.js';

const kind = (a: string) => classifyAddress(a)?.kind ?? null;

describe('notify targets: the address classifier', () => {
  it('loopback, in every spelling the URL parser and the resolver produce', () => {
    for (const a of ['127.0.0.1', '127.255.255.254', '::1', '[::1]', '::ffff:127.0.0.1', '::ffff:7f00:1'])
      assert.equal(kind(a), 'loopback', a);
    assert.equal(kind('0:0:0:0:0:0:0:1'), 'loopback');
  });

  it('link-local, cloud metadata, unspecified, multicast, broadcast and reserved: forbidden', () => {
    for (const a of [
      '169.254.169.254',
      '169.254.0.23',
      '100.100.100.200',
      '168.63.129.16',
      '192.0.0.192',
      'fd00:ec2::254',
      '0.0.0.0',
      '0.1.2.3',
      '::',
      '224.0.0.1',
      '239.255.255.250',
      'ff02::1',
      'ff05::2',
      '255.255.255.255',
      '240.0.0.1',
      'fe80::1',
      'fe80::1%eth0',
      'febf::1',
      'fec0::1',
      '::ffff:169.254.169.254',
      '64:ff9b::a9fe:a9fe', // NAT64 of 169.254.169.254
      '2002:a9fe:a9fe::1', // 6to4 of 169.254.169.254
      '2002:7f00:1::', // 6to4 of 127.0.0.1 (loopback, classified as such)
      '::7f00:1', // IPv4-compatible (deprecated)
      '::ffff:0:7f00:1', // SIIT
      '2001::1', // Teredo
      '100::1',
      '64:ff9b:1::1',
      '4000::1',
    ])
      assert.ok(['forbidden', 'loopback'].includes(kind(a) ?? ''), `${a}: ${kind(a)}`);
    assert.equal(kind('2002:7f00:1::'), 'loopback');
    assert.match(classifyAddress('169.254.169.254')?.en ?? '', /link-local/);
    assert.match(classifyAddress('100.100.100.200')?.en ?? '', /metadata/);
    assert.match(classifyAddress('fd00:ec2::254')?.en ?? '', /metadata/);
  });

  it('private ranges (allow-list only) and public addresses', () => {
    for (const a of [
      '10.0.0.1',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.10',
      '100.64.0.1',
      '100.127.255.255',
      'fc00::1',
      'fd12:3456::1',
      '::ffff:10.1.2.3',
      '192.0.2.2',
      '198.18.0.1',
      '2001:db8::1',
    ])
      assert.equal(kind(a), 'private', a);
    for (const a of [
      '8.8.8.8',
      '172.32.0.1',
      '100.128.0.1',
      '11.0.0.1',
      '2001:4860:4860::8888',
      '240e::1',
      '::ffff:8.8.8.8',
      '64:ff9b::808:808',
    ])
      assert.equal(kind(a), 'public', a);
    assert.equal(
      classifyAddress('::ffff:10.1.2.3')?.address,
      '10.1.2.3',
      'the allow-list sees the IPv4 form',
    );
    assert.equal(kind('his.example.cn'), null);
    assert.equal(kind('1.2.3'), null);
  });

  it('parses IPv6 text to bytes', () => {
    assert.deepEqual([...(ipv6Bytes('::1') ?? [])], [...new Array<number>(15).fill(0), 1]);
    assert.deepEqual([...(ipv6Bytes('::ffff:1.2.3.4') ?? []).slice(10)], [0xff, 0xff, 1, 2, 3, 4]);
    assert.deepEqual([...(ipv6Bytes('2001:db8::') ?? []).slice(0, 4)], [0x20, 0x01, 0x0d, 0xb8]);
  });
});

describe('notify targets: the allow-list', () => {
  it('accepts CIDRs inside private ranges, in canonical form', () => {
    assert.deepEqual(parseAllowListEntry('10.8.0.0/16'), { cidr: '10.8.0.0/16' });
    assert.deepEqual(parseAllowListEntry('10.8.3.4/16'), { cidr: '10.8.0.0/16' });
    assert.deepEqual(parseAllowListEntry('192.168.1.20'), { cidr: '192.168.1.20/32' });
    assert.deepEqual(parseAllowListEntry('FD12:3456:0::/48'), { cidr: 'fd12:3456::/48' });
    assert.deepEqual(parseAllowListEntry('100.64.0.0/10'), { cidr: '100.64.0.0/10' });
    assert.deepEqual(parseAllowList(['10.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12']), {
      cidrs: ['10.0.0.0/8', '172.16.0.0/12'],
    });
  });

  it('refuses loopback, link-local, metadata, public space, ranges wider than a private range, names', () => {
    for (const e of [
      '127.0.0.0/8',
      '127.0.0.1',
      '169.254.0.0/16',
      '169.254.169.254',
      '0.0.0.0/0',
      '8.0.0.0/8',
      '10.0.0.0/7',
      '172.0.0.0/8',
      '::/0',
      '::1',
      'fe80::/10',
      'fc00::/6',
      '::ffff:10.0.0.0/104',
      'his.intranet',
      '10.0.0.0/33',
      '',
    ])
      assert.ok('why' in parseAllowListEntry(e), e);
    assert.ok('why' in parseAllowList('10.0.0.0/8'));
    assert.ok('why' in parseAllowList([1]));
    assert.ok('why' in parseAllowList(new Array(65).fill('10.0.0.0/8')));
  });
});

describe('notify targets: the URL at the door', () => {
  const none = notifyPolicy(false, '[]');
  const refused = (u: string, p = none) => checkNotifyUrlText(u, p);

  it('refuses internal IP literals in every spelling, localhost, metadata names, userinfo, other schemes', () => {
    for (const u of [
      'http://127.0.0.1:8080/admin/x',
      'http://127.1/',
      'http://0x7f.1/',
      'http://2130706433/',
      'http://0177.0.0.1/',
      'http://[::1]/',
      'http://[::ffff:127.0.0.1]/',
      'http://[0:0:0:0:0:ffff:7f00:1]/',
      'http://localhost/',
      'http://localhost./',
      'http://LOCALHOST:3000/',
      'http://api.localhost/',
      'http://169.254.169.254/latest/meta-data/',
      'http://[fd00:ec2::254]/',
      'http://100.100.100.200/latest/meta-data/',
      'http://metadata.google.internal/computeMetadata/v1/',
      'http://metadata.google.internal./',
      'http://0.0.0.0/',
      'http://[::]/',
      'http://224.0.0.1/',
      'http://[ff02::1]/',
      'http://255.255.255.255/',
      'http://[fe80::1]/',
      'http://10.0.0.5/',
      'http://192.168.1.10/',
      'http://[fd12::1]/',
      'http://user:pass@his.example.cn/n',
      'http://his.example.cn@evil.example/n',
      'ftp://his.example.cn/n',
      'javascript:alert(1)',
      'not a url',
    ])
      assert.ok(refused(u), u);
    assert.match(
      refused('http://127.0.0.1/')?.en ?? '',
      /internal addresses are not allowed: 127\.0\.0\.1 is a loopback/,
    );
    assert.match(refused('http://0x7f.1/')?.zh ?? '', /不允许内网或本机地址/);
    assert.match(refused('http://10.0.0.5/')?.en ?? '', /not in the app's notify allow-list/);
  });

  it('accepts public addresses and host names; private ones when allow-listed; loopback only with the switch', () => {
    for (const u of [
      'https://his.example.cn/pay/notify',
      'http://8.8.8.8/n',
      'http://[2001:4860::1]:8080/n',
      'http://his/n',
    ])
      assert.equal(refused(u), null, u);
    const intranet = notifyPolicy(false, '["10.8.0.0/16","fd12::/16"]');
    assert.equal(refused('http://10.8.1.2:9000/n', intranet), null);
    assert.equal(refused('http://[fd12::1]/n', intranet), null);
    assert.equal(refused('http://[::ffff:10.8.1.2]/n', intranet), null);
    assert.ok(refused('http://10.9.1.2/n', intranet));
    assert.ok(refused('http://127.0.0.1/n', intranet));
    const dev = notifyPolicy(true, '[]');
    assert.equal(refused('http://127.0.0.1:3000/n', dev), null);
    assert.equal(refused('http://localhost:3000/n', dev), null);
    assert.equal(refused('http://[::1]:3000/n', dev), null);
    assert.ok(refused('http://169.254.169.254/', dev), 'the switch is for loopback only');
    assert.ok(refused('http://10.0.0.1/', dev));
    assert.ok(refused('http://0.0.0.0:3000/', dev));
  });
});
