import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { KeyObject } from 'node:crypto';
import {
  isPrivateKeyText,
  parseSignType,
  readPrivateKey,
  readPublicKey,
  verifyContentAsync,
  signContent,
  signingContent,
  verifyContent,
  publicKeyBase64,
  type SignType,
} from '../../src/crypto/signing.js';

interface Vector {
  name: string;
  key: string;
  sign_type: SignType;
  params: Record<string, string>;
  content: string;
  sign: string;
}

describe('gateway signing rule', () => {
  const vectors = JSON.parse(fs.readFileSync('docs/signing-vectors.json', 'utf8')) as Vector[];

  it('reproduces the known-answer vectors in docs/signing-vectors.json', () => {
    assert.ok(vectors.length >= 3);
    for (const v of vectors) {
      const priv = readPrivateKey(fs.readFileSync(v.key, 'utf8'));
      const pub = readPublicKey(fs.readFileSync(v.key.replace('.pem', '.pub.pem'), 'utf8'));
      assert.ok(priv && pub, v.name);
      assert.equal(signingContent(v.params), v.content, v.name);
      assert.equal(signContent(v.content, priv, v.sign_type), v.sign, v.name);
      assert.ok(verifyContent(v.content, v.sign, pub, v.sign_type), v.name);
    }
  });

  it('content: sign excluded, sign_type included, empty values dropped, ASCII order, raw values', () => {
    assert.equal(
      signingContent({
        sign: 'x',
        b: '2',
        a: '1',
        sign_type: 'RSA2',
        empty: '',
        B: 'upper',
        biz_content: '{"a":"x y&z"}',
      }),
      'B=upper&a=1&b=2&biz_content={"a":"x y&z"}&sign_type=RSA2',
    );
  });

  it('any change to any parameter breaks the signature; RSA and RSA2 do not mix', () => {
    const v = vectors[0] as Vector;
    const pub = readPublicKey(fs.readFileSync(v.key.replace('.pem', '.pub.pem'), 'utf8'));
    assert.ok(pub);
    for (const k of Object.keys(v.params)) {
      if (!v.params[k]) continue;
      const tampered = signingContent({ ...v.params, [k]: `${v.params[k]}x` });
      assert.equal(verifyContent(tampered, v.sign, pub, 'RSA2'), false, k);
    }
    assert.equal(verifyContent(v.content, v.sign, pub, 'RSA'), false);
    assert.equal(verifyContent(v.content, 'not base64!', pub, 'RSA2'), false);
    assert.equal(verifyContent(v.content, '', pub, 'RSA2'), false);
  });

  it('sign_type is case-insensitive; keys are read as PEM or bare Base64', () => {
    assert.equal(parseSignType('rsa2'), 'RSA2');
    assert.equal(parseSignType('Rsa'), 'RSA');
    assert.equal(parseSignType('SM2'), null);
    const pub = readPublicKey(fs.readFileSync('test/fixtures/keys/test-app-2048.pub.pem', 'utf8'));
    assert.ok(pub);
    assert.ok(readPublicKey(publicKeyBase64(pub)));
    assert.equal(readPublicKey('not a key'), null);
  });

  it('a private key given where a public key is asked for is refused, not turned into its public key', () => {
    const privPem = fs.readFileSync('test/fixtures/keys/test-app-2048.pem', 'utf8');
    const priv = readPrivateKey(privPem);
    assert.ok(priv);
    assert.equal(isPrivateKeyText(privPem), true);
    assert.equal(readPublicKey(privPem), null);
    const pkcs8 = priv.export({ type: 'pkcs8', format: 'der' }).toString('base64');
    const pkcs1 = priv.export({ type: 'pkcs1', format: 'pem' }).toString();
    const pkcs1Der = priv.export({ type: 'pkcs1', format: 'der' }).toString('base64');
    for (const text of [pkcs8, pkcs1, pkcs1Der]) {
      assert.equal(isPrivateKeyText(text), true);
      assert.equal(readPublicKey(text), null);
    }
    const pubPem = fs.readFileSync('test/fixtures/keys/test-app-2048.pub.pem', 'utf8');
    assert.equal(isPrivateKeyText(pubPem), false);
    assert.equal(isPrivateKeyText(publicKeyBase64(readPublicKey(pubPem) as KeyObject)), false);
  });

  it('only the canonical Base64 spelling of a signature is accepted', async () => {
    const v = vectors[0] as Vector;
    const pub = readPublicKey(fs.readFileSync(v.key.replace('.pem', '.pub.pem'), 'utf8'));
    assert.ok(pub);
    assert.ok(verifyContent(v.content, v.sign, pub, 'RSA2'));
    assert.ok(await verifyContentAsync(v.content, v.sign, pub, 'RSA2'));
    const unpadded = v.sign.replace(/=+$/, '');
    // A 2048-bit signature is 256 bytes: Base64 with '==' padding, whose last character has 4 unused bits.
    assert.notEqual(unpadded, v.sign);
    const last = unpadded.length - 1;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const bits = alphabet.indexOf(v.sign[last] ?? 'A');
    const sloppy = `${v.sign.slice(0, last)}${alphabet[bits ^ 1] ?? 'A'}${v.sign.slice(last + 1)}`;
    assert.deepEqual(Buffer.from(sloppy, 'base64'), Buffer.from(v.sign, 'base64'), 'the same bytes');
    for (const variant of [unpadded, sloppy, `${v.sign}\n`, ` ${v.sign}`, v.sign.replace(/\+/g, '-')]) {
      assert.equal(verifyContent(v.content, variant, pub, 'RSA2'), false, JSON.stringify(variant.slice(-6)));
      assert.equal(await verifyContentAsync(v.content, variant, pub, 'RSA2'), false);
    }
  });
});
