/**
 * A fake Echo provider (the made-up provider of the fixture channel in test/fixtures/channels/echo), written to
 * its protocol and independent of the adapter's code: JSON POSTs to /v1/<op>, the body signed with HMAC-SHA256
 * of the merchant's secret in `x-echo-signature`, answers signed the same way. It keeps books of trades and
 * refunds, and misbehaves once per op when told to (the conformance suite's behaviours).
 */
import http from 'node:http';
import crypto from 'node:crypto';
import type { Behaviour, FakeProvider, FakeTradeState, Operation } from '../conformance/suite.js';

interface Trade {
  tradeNo: string;
  state: FakeTradeState;
  amountFen: number;
  refundedFen: number;
  refunds: Map<string, { no: string; amountFen: number }>;
}

const STATE: Record<FakeTradeState, string> = {
  paid: 'PAID',
  waiting: 'WAITING',
  closed: 'CLOSED',
  refunded: 'REFUNDED',
};

export interface EchoFake extends FakeProvider {
  secret: string;
}

export async function startEchoFake(opts: { secret: string; timeoutMs: number }): Promise<EchoFake> {
  const hmac = (body: string) => crypto.createHmac('sha256', opts.secret).update(body).digest('hex');
  const trades = new Map<string, Trade>();
  const scripted = new Map<string, Behaviour>();
  const seen: Array<{ op: string; signatureValid: boolean }> = [];
  let seq = 0;
  const newTrade = (amountFen: number, state: FakeTradeState): Trade => ({
    tradeNo: `E${Date.now()}${String(++seq).padStart(6, '0')}`,
    state,
    amountFen,
    refundedFen: 0,
    refunds: new Map(),
  });
  const view = (no: string, t: Trade) => ({
    out_trade_no: no,
    trade_no: t.tradeNo,
    state: STATE[t.state],
    amount_fen: t.amountFen,
    refunded_fen: t.refundedFen,
    ...(t.state === 'paid' || t.state === 'refunded' ? { paid_at: new Date().toISOString() } : {}),
  });

  /** The provider's books: what the operation does when it behaves. */
  function perform(op: string, req: Record<string, unknown>, behaviour: Behaviour): object {
    const no = String(req['out_trade_no'] ?? '');
    const t = trades.get(no);
    if (behaviour === 'system_error') return { code: 'SYSTEM_ERROR', message: 'try again' };
    if (behaviour === 'declined') return { code: 'DECLINED', message: 'balance not enough' };
    switch (op) {
      case 'pay': {
        if (t) return { code: 'DECLINED', message: 'duplicate out_trade_no' };
        const n = newTrade(Number(req['amount_fen']), behaviour === 'paying' ? 'waiting' : 'paid');
        trades.set(no, n);
        return { code: behaviour === 'paying' ? 'PAYING' : 'OK', trade: view(no, n) };
      }
      case 'precreate': {
        const n = t ?? newTrade(Number(req['amount_fen']), 'waiting');
        trades.set(no, n);
        return { code: 'OK', trade: view(no, n), code_url: `https://echo.example/qr/${n.tradeNo}` };
      }
      case 'query':
        return t ? { code: 'OK', trade: view(no, t) } : { code: 'NOT_FOUND' };
      case 'close': {
        const n = t ?? newTrade(1, 'closed');
        if (n.state === 'waiting') n.state = 'closed';
        trades.set(no, n);
        return { code: 'OK', trade: view(no, n) };
      }
      case 'cancel': {
        const n = t ?? newTrade(1, 'closed');
        if (n.state === 'waiting') n.state = 'closed';
        if (n.state === 'paid') {
          n.refundedFen = n.amountFen;
          n.state = 'refunded';
        }
        trades.set(no, n);
        return { code: 'OK', trade: view(no, n) };
      }
      case 'refund': {
        if (!t || t.state !== 'paid') return { code: 'DECLINED', message: 'trade not paid' };
        const key = String(req['out_request_no'] ?? '');
        const amount = Number(req['amount_fen']);
        let r = t.refunds.get(key);
        if (!r) {
          if (t.refundedFen + amount > t.amountFen) return { code: 'DECLINED', message: 'refund exceeds' };
          r = { no: `R${t.tradeNo}${t.refunds.size + 1}`, amountFen: amount };
          t.refunds.set(key, r);
          t.refundedFen += amount;
        }
        return { code: 'OK', refund_no: r.no, trade: view(no, t) };
      }
      default:
        return { code: 'NOT_FOUND' };
    }
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const op = (req.url ?? '').replace(/^\/v1\//, '');
      const signatureValid = req.headers['x-echo-signature'] === hmac(body);
      seen.push({ op, signatureValid });
      const behaviour = scripted.get(op) ?? 'ok';
      scripted.delete(op);
      const answer = (status: number, text: string, signature = hmac(text)) => {
        res.writeHead(status, { 'content-type': 'application/json', 'x-echo-signature': signature });
        res.end(text);
      };
      if (!signatureValid) return answer(200, JSON.stringify({ code: 'DECLINED', message: 'bad signature' }));
      if (behaviour === 'timeout') {
        setTimeout(() => answer(200, JSON.stringify({ code: 'SYSTEM_ERROR' })), opts.timeoutMs + 700);
        return;
      }
      if (behaviour === 'http_500') return answer(500, 'internal error');
      if (behaviour === 'malformed') return answer(200, '<html>not json</html>');
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(body) as Record<string, unknown>;
      } catch {
        return answer(200, JSON.stringify({ code: 'DECLINED', message: 'unreadable request' }));
      }
      if (behaviour === 'bad_signature') {
        const text = JSON.stringify({ code: 'OK', trade: { state: 'PAID', trade_no: 'FORGED' } });
        return answer(200, text, hmac(`${text}x`));
      }
      answer(200, JSON.stringify(perform(op, parsed, behaviour)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  return {
    url: `http://127.0.0.1:${port}`,
    secret: opts.secret,
    script: (op: Operation, behaviour: Behaviour) => {
      scripted.set(op, behaviour);
    },
    setTrade: (no, state) => {
      const t = trades.get(no);
      if (t) t.state = state;
    },
    trade: (no) => {
      const t = trades.get(no);
      return t && { state: t.state, amountFen: t.amountFen, refundedFen: t.refundedFen };
    },
    requests: () => seen,
    notification: (no, o) => {
      const body = JSON.stringify({ out_trade_no: no, state: STATE[trades.get(no)?.state ?? 'paid'] });
      const signature = hmac(o?.tamper ? body.replace('}', ',"x":1}') : body);
      return { headers: { 'x-echo-signature': signature }, body: Buffer.from(body) };
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
