/**
 * The only scripts hospay serves to payers: static, same-origin files (the pages that load them are served with
 * `script-src 'self'`; no inline script anywhere). They read what the server rendered into data attributes.
 */

/** The WeChat in-app cashier: hands the bridge parameters to WeixinJSBridge's getBrandWCPayRequest. */
export const WECHAT_SCRIPT = '/cashier/assets/wechat-pay.js';
/** The UnionPay form page: posts the form at once (the visible button does the same without script). */
export const FORM_SCRIPT = '/cashier/assets/form-post.js';

const WECHAT_PAY_JS = `(function () {
  'use strict';
  var box = document.getElementById('wxpay');
  var btn = document.getElementById('pay');
  var msg = document.getElementById('msg');
  if (!box || !btn || !msg) return;
  var params = null;
  try {
    params = JSON.parse(box.getAttribute('data-bridge') || 'null');
  } catch (e) {
    params = null;
  }
  var back = box.getAttribute('data-return') || '';
  if (back.charAt(0) !== '/' || back.charAt(1) === '/') back = '';
  var busy = false;
  function say(text, bad) {
    msg.textContent = text;
    msg.className = bad ? 'bad' : 'muted';
  }
  function done(res) {
    var m = res && res.err_msg;
    if (m === 'get_brand_wcpay_request:ok') {
      say('支付成功，正在确认结果… Paid, confirming…');
      if (back) window.location.replace(back);
      return;
    }
    busy = false;
    btn.disabled = false;
    if (m === 'get_brand_wcpay_request:cancel') say('已取消支付，可再次点击“支付”。Payment cancelled; you may try again.', true);
    else say('支付未完成，请稍后再试。The payment did not go through; please try again.', true);
  }
  function invoke() {
    try {
      WeixinJSBridge.invoke('getBrandWCPayRequest', params, done);
    } catch (e) {
      done(null);
    }
  }
  btn.addEventListener('click', function () {
    if (busy || !params) return;
    busy = true;
    btn.disabled = true;
    if (typeof WeixinJSBridge === 'undefined') {
      say('正在连接微信… Connecting to WeChat…');
      document.addEventListener('WeixinJSBridgeReady', invoke, { once: true });
    } else invoke();
  });
})();
`;

const FORM_POST_JS = `(function () {
  'use strict';
  var form = document.getElementById('upform');
  if (form) form.submit();
})();
`;

/** Path -> script text, served by the cashier pages (cashier.ts). */
export const CASHIER_SCRIPTS: Readonly<Record<string, string>> = {
  [WECHAT_SCRIPT]: WECHAT_PAY_JS,
  [FORM_SCRIPT]: FORM_POST_JS,
};
