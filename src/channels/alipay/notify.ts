/**
 * Alipay's asynchronous notifications: a form POST, signed with Alipay's key (RSA2 / RSA, verified by the SDK
 * by Alipay's rule), for this app (app_id or auth_app_id; a third-party app's: app_id the third-party app and
 * auth_app_id the authorising hospital) and, when one is set, this seller. The platform never
 * takes a notification's word for a payment: a genuine one about a trade makes it query the trade. Alipay wants
 * `success` (text/plain) once the notification is taken, anything else to send it again.
 */
import type { NotifyAck, NotifyParse } from '../channel.js';
import { notifySignatureValid, type Prepared } from './keys.js';

const ACK_SUCCESS: NotifyAck = { status: 200, contentType: 'text/plain', body: 'success' };
const ACK_FAIL: NotifyAck = { status: 200, contentType: 'text/plain', body: 'fail' };

/** Largest notification body read. */
const MAX_BODY = 64 * 1024;

/** Reads and checks one notification for the app whose settings are `p`. */
export function parseAlipayNotify(p: Prepared, body: Buffer): NotifyParse {
  const reject = (reason: string): NotifyParse => ({ kind: 'rejected', reason, ack: ACK_FAIL });
  if (!p.ok) return reject(`configuration: ${p.problem}`);
  const { settings } = p.value;
  const text = body.toString('utf8');
  if (text.length === 0 || text.length > MAX_BODY) return reject('empty or oversized body');
  const params: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(text)) {
    if (k in params) return reject(`parameter ${k} given twice`);
    params[k] = v;
  }
  if (!params['sign'] || !params['app_id']) return reject('not an Alipay notification (no sign or app_id)');
  const signType = params['sign_type'] ?? settings.signType;
  if (signType !== 'RSA2' && signType !== 'RSA') return reject(`unknown sign_type ${signType}`);
  if (!notifySignatureValid(p.value, params)) return reject('bad signature');
  if (settings.authAppId) {
    // Third-party app mode: sent to the third-party app (app_id) about the authorising hospital (auth_app_id).
    if (params['app_id'] !== settings.appId) return reject('notification for another app_id');
    if (params['auth_app_id'] !== settings.authAppId) return reject('notification for another auth_app_id');
  } else if (params['app_id'] !== settings.appId && params['auth_app_id'] !== settings.appId)
    return reject('notification for another app_id');
  if (settings.sellerId && params['seller_id'] && params['seller_id'] !== settings.sellerId)
    return reject('notification for another seller_id');
  const outTradeNo = params['out_trade_no'];
  if (params['trade_status'] && outTradeNo) return { kind: 'trade', outTradeNo, ack: ACK_SUCCESS };
  return { kind: 'ignored', ack: ACK_SUCCESS };
}
