/**
 * Conformance target: the Echo fixture channel (test/fixtures/channels/echo, a folder and nothing else),
 * registered through the registry's `definitions` option as a real channel is through CHANNEL_DEFINITIONS,
 * against its fake provider (test/fakes/echo-server.ts). It proves that adding a channel is one folder plus one
 * registry line, and that the shared exchange gives a new channel the suite's guarantees.
 */
import crypto from 'node:crypto';
import { conformanceContext, type ConformanceTarget } from '../suite.js';
import { CHANNEL_DEFINITIONS, ChannelRegistry } from '../../../src/channels/registry.js';
import { httpRequest } from '../../../src/channels/http.js';
import { systemClock } from '../../../src/domain/clock.js';
import { echoDefinition } from '../../fixtures/channels/echo/definition.js';
import { startEchoFake } from '../../fakes/echo-server.js';

const TIMEOUT_MS = 500;

export const target: ConformanceTarget = {
  id: 'echo',
  payType: 'alipay',
  supports: { barcode: true, precreate: true, cancel: true, close: true, refund: true, notify: true },
  timeoutMs: TIMEOUT_MS,
  authCode: () => `28${String(crypto.randomInt(0, 10 ** 9)).padStart(9, '0')}${crypto.randomInt(1000, 9999)}`,
  async start() {
    const secret = crypto.randomBytes(24).toString('hex');
    const fake = await startEchoFake({ secret, timeoutMs: TIMEOUT_MS });
    const registry = new ChannelRegistry({
      http: httpRequest,
      clock: systemClock,
      publicBaseUrl: () => 'https://hospay.example',
      withSimulator: false,
      definitions: [...CHANNEL_DEFINITIONS, echoDefinition],
    });
    const channel = registry.get('echo');
    if (!channel) throw new Error('the echo channel was not registered');
    const ctx = conformanceContext(
      { merchant_id: 'ECHO1', secret, gateway_url: fake.url, timeout_ms: String(TIMEOUT_MS) },
      'https://hospay.example/channels/echo/notify/APP1',
    );
    return { channel, ctx, fake };
  },
};
