// Writes docs/signing-vectors.json: known-answer vectors for the gateway signing rule, made with the public
// test keys in test/fixtures/keys. PKCS#1 v1.5 signatures are deterministic, so anyone can reproduce them.
import fs from 'node:fs';
import { readPrivateKey, signContent, signingContent, type SignType } from '../src/crypto/signing.js';

const keys: Record<string, string> = {
  'test-app-2048': fs.readFileSync('test/fixtures/keys/test-app-2048.pem', 'utf8'),
  'test-legacy-1024': fs.readFileSync('test/fixtures/keys/test-legacy-1024.pem', 'utf8'),
};

const h5 = {
  app_id: 'hp2d2a3c3043fd2fb1',
  method: 'lc.trade.h5.pay',
  timestamp: '2026-11-25 10:07:50',
  nonce_str: 'daaac020-0403-424e-847a-16c7671275de',
  biz_content:
    '{"out_trade_no":"MZ20261125010101001","total_amount":88.88,"subject":"门诊缴费","return_url":"https://his.example.cn/pay/return","notify_url":"https://his.example.cn/pay/notify","order_type":"TREATMENT"}',
  sign_type: 'RSA2',
  charset: '',
};

const cases: Array<{ name: string; key: string; signType: SignType; params: Record<string, string> }> = [
  {
    name: 'lc.trade.h5.pay request, RSA2 (empty charset left out)',
    key: 'test-app-2048',
    signType: 'RSA2',
    params: h5,
  },
  {
    name: 'the same request signed RSA (SHA1withRSA) with a legacy 1024-bit key',
    key: 'test-legacy-1024',
    signType: 'RSA',
    params: { ...h5, sign_type: 'RSA' },
  },
  {
    name: 'lc.trade.query request, RSA2',
    key: 'test-app-2048',
    signType: 'RSA2',
    params: {
      app_id: 'hp2d2a3c3043fd2fb1',
      method: 'lc.trade.query',
      timestamp: '2026-11-25 10:08:00',
      nonce_str: 'n-0001',
      biz_content: '{"out_trade_no":"MZ20261125010101001"}',
      sign_type: 'RSA2',
    },
  },
];

const vectors = cases.map((c) => {
  const key = readPrivateKey(keys[c.key] ?? '');
  if (!key) throw new Error(`bad key ${c.key}`);
  const content = signingContent(c.params);
  return {
    name: c.name,
    key: `test/fixtures/keys/${c.key}.pem`,
    sign_type: c.signType,
    params: c.params,
    content,
    sign: signContent(content, key, c.signType),
  };
});
fs.writeFileSync('docs/signing-vectors.json', `${JSON.stringify(vectors, null, 2)}\n`);
console.log(`wrote ${vectors.length} vectors`);
