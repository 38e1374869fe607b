import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { formatShanghai } from '../../src/domain/clock.js';
import {
  readPrivateKey,
  signParams,
  signingContent,
  verifyContent,
  type SignType,
} from '../../src/crypto/signing.js';

/**
 * Where a gateway call goes, and as which app: a test platform, or a `hospay serve` child. The request's timestamp
 * is the clock's (the test platform's fake clock), or now.
 */
export interface GatewayTarget {
  url: string;
  appId: string;
  clock?: { now(): Date };
}

export const TEST_APP_KEY = {
  privateKey: readPrivateKey(fs.readFileSync('test/fixtures/keys/test-app-2048.pem', 'utf8')) as KeyObject,
  publicPem: fs.readFileSync('test/fixtures/keys/test-app-2048.pub.pem', 'utf8'),
};
export const LEGACY_APP_KEY = {
  privateKey: readPrivateKey(fs.readFileSync('test/fixtures/keys/test-legacy-1024.pem', 'utf8')) as KeyObject,
  publicPem: fs.readFileSync('test/fixtures/keys/test-legacy-1024.pub.pem', 'utf8'),
};

export interface GatewayAnswer {
  status: number;
  raw: string;
  json: {
    app_id: string;
    method: string;
    timestamp: string;
    nonce_str: string;
    code: string;
    msg: string;
    biz_content: Record<string, unknown>;
    sign_type: string;
    sign: string;
  };
  biz: Record<string, unknown>;
}

/** Builds a signed gateway form, as an integrator would: the helper the docs show. */
export function signedForm(
  params: Record<string, string>,
  key: KeyObject,
  signType: SignType = 'RSA2',
): Record<string, string> {
  const p = { ...params, sign_type: params['sign_type'] ?? signType };
  return { ...p, sign: signParams(p, key, signType) };
}

export interface CallOptions {
  appId?: string;
  key?: KeyObject;
  signType?: SignType;
  /** Changes applied to the parameters before signing. */
  before?: (p: Record<string, string>) => void;
  /** Changes applied after signing (tampering). */
  after?: (p: Record<string, string>) => void;
  contentType?: string;
  rawBody?: string;
}

/** A gateway call's signed form, encoded as sent (signed beforehand, many calls can leave at once). */
export function gatewayBody(
  t: GatewayTarget,
  method: string,
  biz: Record<string, unknown> | string,
  o: CallOptions = {},
): string {
  const params: Record<string, string> = {
    app_id: o.appId ?? t.appId,
    method,
    timestamp: formatShanghai(t.clock?.now() ?? new Date()),
    nonce_str: randomUUID(),
    biz_content: typeof biz === 'string' ? biz : JSON.stringify(biz),
    sign_type: o.signType ?? 'RSA2',
  };
  o.before?.(params);
  const signed = signedForm(params, o.key ?? TEST_APP_KEY.privateKey, o.signType ?? 'RSA2');
  o.after?.(signed);
  return o.rawBody ?? new URLSearchParams(signed).toString();
}

/** Posts a gateway body; the answer's HTTP status and text, whatever they are. */
export async function postGateway(
  t: { url: string },
  body: string,
  contentType = 'application/x-www-form-urlencoded; charset=utf-8',
): Promise<{ status: number; raw: string }> {
  const res = await fetch(`${t.url}/gateway`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body,
  });
  return { status: res.status, raw: await res.text() };
}

/** A signed gateway call; the answer's HTTP status and text, whatever they are. */
export function gatewayRaw(
  t: GatewayTarget,
  method: string,
  biz: Record<string, unknown> | string,
  o: CallOptions = {},
): Promise<{ status: number; raw: string }> {
  return postGateway(t, gatewayBody(t, method, biz, o), o.contentType);
}

/** A signed gateway call (the test app's key unless `o.key`), its answer parsed. */
export async function gateway(
  t: GatewayTarget,
  method: string,
  biz: Record<string, unknown> | string,
  o: CallOptions = {},
): Promise<GatewayAnswer> {
  const { status, raw } = await gatewayRaw(t, method, biz, o);
  const json = JSON.parse(raw) as GatewayAnswer['json'];
  return { status, raw, json, biz: json.biz_content };
}

/** Verifies a gateway answer as an integrator must: over the raw biz_content text as received. */
export function verifyAnswer(raw: string, publicKey: KeyObject): boolean {
  const json = JSON.parse(raw) as Record<string, string>;
  const start = raw.indexOf('"biz_content":') + '"biz_content":'.length;
  const end = raw.lastIndexOf(',"sign_type":');
  const bizText = raw.slice(start, end);
  const params: Record<string, string> = {
    app_id: json['app_id'] ?? '',
    method: json['method'] ?? '',
    timestamp: json['timestamp'] ?? '',
    nonce_str: json['nonce_str'] ?? '',
    code: json['code'] ?? '',
    msg: json['msg'] ?? '',
    biz_content: bizText,
    sign_type: json['sign_type'] ?? '',
  };
  const type = json['sign_type'] === 'RSA' ? 'RSA' : 'RSA2';
  return verifyContent(signingContent(params), json['sign'] ?? '', publicKey, type);
}
