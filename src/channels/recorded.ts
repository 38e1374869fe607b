import type { Channel, ChannelContext } from './channel.js';
import { CallRecorder } from './exchange.js';

const METHODS = [
  'barcodePay',
  'precreate',
  'wapPay',
  'query',
  'cancel',
  'close',
  'refund',
  'downloadBill',
] as const;

/**
 * Records every call of a channel that does not record its own exchanges (the simulator): operation, order,
 * latency and the outcome's kind and code — never the input (it holds auth codes).
 */
export function recordedChannel(channel: Channel): Channel {
  return new Proxy(channel, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || !(METHODS as readonly (string | symbol)[]).includes(prop))
        return value;
      return async (ctx: ChannelContext, input: { outTradeNo?: string; date?: string }) => {
        const rec = new CallRecorder(ctx, `${target.id}.${String(prop)}`, input?.outTradeNo);
        try {
          const out = (await (value as (c: ChannelContext, i: unknown) => Promise<unknown>).call(
            target,
            ctx,
            input,
          )) as { kind?: string; code?: string } | undefined;
          rec.done(out?.kind ? `${out.kind}${out.code ? ` ${out.code}` : ''}` : 'ok');
          return out;
        } catch (e) {
          rec.done('unknown: exception', { error: e instanceof Error ? e.message.slice(0, 200) : 'error' });
          throw e;
        }
      };
    },
  });
}
