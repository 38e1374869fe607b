import { LosslessNumber, stringify as stringifyLossless } from 'lossless-json';
import type { KeyObject } from 'node:crypto';
import { HospayError } from '../../domain/errors.js';
import { formatFen, type Fen } from '../../domain/money.js';
import { formatShanghai } from '../../domain/clock.js';
import { signPlatformParamsAsync, splitProofJson, type SignType } from '../../crypto/signing.js';

/** Gateway codes, Alipay's. */
export const GatewayCode = {
  SUCCESS: '10000',
  UNAVAILABLE: '20000',
  AUTH: '20001',
  MISSING: '40001',
  INVALID: '40002',
  BUSINESS: '40004',
} as const;
export type GatewayCode = (typeof GatewayCode)[keyof typeof GatewayCode];

const MSG: Record<GatewayCode, string> = {
  '10000': 'Success',
  '20000': 'Service Currently Unavailable',
  '20001': 'Insufficient Token Permissions',
  '40001': 'Missing Required Arguments',
  '40002': 'Invalid Arguments',
  '40004': 'Business Failed',
};

/** The gateway code of an error: missing fields 40001, invalid 40002, business 40004, auth 20001, system 20000. */
export function codeOf(error: HospayError): GatewayCode {
  if (error.kind === 'auth') return GatewayCode.AUTH;
  if (error.kind === 'system') return GatewayCode.UNAVAILABLE;
  if (error.kind === 'business') return GatewayCode.BUSINESS;
  return error.code.startsWith('MISSING_FIELD.') || error.code.startsWith('isv.missing')
    ? GatewayCode.MISSING
    : GatewayCode.INVALID;
}

/** An amount in fen as a JSON number with exactly two decimals (88.80), never through a float. */
export function money(fen: Fen): LosslessNumber {
  return new LosslessNumber(formatFen(fen));
}

/**
 * Compact JSON text of a biz_content object; amounts made with money() keep their exact digits. `&` is written
 * as \u0026 so the text can be signed without splitting into extra parameters (crypto/signing.ts).
 */
export function bizText(biz: Record<string, unknown>): string {
  return splitProofJson(stringifyLossless(biz) ?? '{}');
}

export interface SignedAnswer {
  /** The exact response body. */
  body: string;
  /** The parameters that were signed (for tests and for the docs' worked example). */
  params: Record<string, string>;
}

/**
 * The values an answer echoes from the request. Only values checked to be well-formed are echoed (a real app id,
 * a listed method, a nonce of the documented format), so no caller can choose text that the platform signs.
 */
export interface AnswerEcho {
  app_id?: string | undefined;
  method?: string | undefined;
  nonce_str?: string | undefined;
}

function answerParams(request: AnswerEcho, code: GatewayCode, biz: Record<string, unknown>, now: Date) {
  return {
    app_id: request.app_id ?? '',
    method: request.method ?? '',
    timestamp: formatShanghai(now),
    nonce_str: request.nonce_str ?? '',
    code,
    msg: MSG[code],
    biz_content: bizText(biz),
  };
}

/**
 * The response envelope of an authenticated request. It is signed by the same rule as requests: the top-level
 * fields except `sign`, with biz_content as its exact JSON text — which is written into the body verbatim, so a
 * verifier can take the text between `"biz_content":` and `,"sign_type"` as it is.
 */
export async function signedAnswer(
  request: AnswerEcho,
  code: GatewayCode,
  biz: Record<string, unknown>,
  key: KeyObject,
  signType: SignType,
  now: Date,
): Promise<SignedAnswer> {
  const params: Record<string, string> = { ...answerParams(request, code, biz, now), sign_type: signType };
  const sign = await signPlatformParamsAsync(params, key, signType);
  const j = JSON.stringify;
  const body =
    `{"app_id":${j(params['app_id'])},"method":${j(params['method'])},"timestamp":${j(params['timestamp'])},` +
    `"nonce_str":${j(params['nonce_str'])},"code":${j(code)},"msg":${j(params['msg'])},` +
    `"biz_content":${params['biz_content']},"sign_type":${j(signType)},"sign":${j(sign)}}`;
  return { body, params: { ...params, sign } };
}

/**
 * The answer to a request that was refused before its caller was authenticated (unreadable form, missing
 * parameter, unknown app, no key, bad sign_type or signature). It is NOT signed: the platform never signs
 * anything for a caller it does not know. It has no `sign_type` and no `sign`; an integrator treats it as a
 * refusal and never as proof of anything.
 */
export function unsignedAnswer(
  request: AnswerEcho,
  code: GatewayCode,
  biz: Record<string, unknown>,
  now: Date,
): SignedAnswer {
  const params = answerParams(request, code, biz, now);
  const j = JSON.stringify;
  const body =
    `{"app_id":${j(params.app_id)},"method":${j(params.method)},"timestamp":${j(params.timestamp)},` +
    `"nonce_str":${j(params.nonce_str)},"code":${j(code)},"msg":${j(params.msg)},` +
    `"biz_content":${params.biz_content}}`;
  return { body, params };
}

/** The biz_content of a refusal: sub_code and the bilingual sub_msg. */
export function errorBiz(error: HospayError, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { sub_code: error.code, sub_msg: error.bilingual, ...extra };
}
