import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { authCode, barcodeFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_DB } from '../support/db.js';
import { startTracing } from '../../src/tracing.js';
import { testConfig } from '../support/platform.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: Array<{ key: string; value: Record<string, unknown> }>;
}

/** A local OTLP/HTTP receiver (JSON): every span it was sent. */
class OtlpReceiver {
  readonly spans: OtlpSpan[] = [];
  readonly bodies: string[] = [];
  private server: http.Server | null = null;
  url = '';

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        this.bodies.push(body);
        if (req.url === '/v1/traces') {
          const doc = JSON.parse(body) as {
            resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: OtlpSpan[] }> }>;
          };
          for (const rs of doc.resourceSpans ?? [])
            for (const ss of rs.scopeSpans ?? []) this.spans.push(...(ss.spans ?? []));
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

const attr = (s: OtlpSpan, key: string) => {
  const v = s.attributes?.find((a) => a.key === key)?.value;
  return v ? Object.values(v)[0] : undefined;
};

describe('OpenTelemetry traces', () => {
  it('are off by default: nothing is started', async () => {
    assert.equal(testConfig().observability.otelEnabled, false);
    assert.equal(await startTracing(testConfig()), null);
  });

  describe('on (HOSPAY_OTEL_ENABLED=1, OTLP/HTTP to a local receiver)', () => {
    const otlp = new OtlpReceiver();
    let t: TestPlatform;
    let fields: Record<string, string | undefined>;

    before(async () => {
      await otlp.start();
      t = await startTestPlatform({
        env: { HOSPAY_OTEL_ENABLED: '1', OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url },
      });
      fields = barcodeFields({ AuthCode: authCode('00') });
      const a = await t.offline('FWC_IF_Barcode_Pay', fields);
      assert.equal(a.rr.IsSuccess, '1', a.text);
      // Closing the platform flushes the buffered spans to the receiver.
      await t.close();
    });
    after(async () => {
      await otlp.stop();
    });

    it('link the HIS request, the channel call and (PostgreSQL) the queries in one trace', () => {
      const root = otlp.spans.find((s) => attr(s, 'url.path') === '/offline/FWC_IF_Barcode_Pay');
      assert.ok(root, `no request span: ${otlp.spans.map((s) => s.name).join(', ')}`);
      assert.ok(!root.parentSpanId, 'the request span is the root');
      const byId = new Map(otlp.spans.map((s) => [s.spanId, s]));
      const underRoot = (s: OtlpSpan) => {
        for (let p = s.parentSpanId; p; p = byId.get(p)?.parentSpanId) if (p === root.spanId) return true;
        return false;
      };
      const channel = otlp.spans.find((s) => s.name === 'channel simulator.barcodePay');
      assert.ok(channel, `no channel span: ${otlp.spans.map((s) => s.name).join(', ')}`);
      assert.equal(channel.traceId, root.traceId);
      assert.ok(underRoot(channel), 'the channel span is a descendant of the request span');
      assert.equal(attr(channel, 'hospay.channel.outcome'), 'paid');
      const pg = otlp.spans.filter((s) => s.traceId === root.traceId && s.name.startsWith('pg.query'));
      if (TEST_DB === 'postgres') {
        assert.ok(pg.length >= 1, `no pg span: ${otlp.spans.map((s) => s.name).join(', ')}`);
        assert.ok(pg.every(underRoot), 'every query span is a descendant of the request span');
      } else assert.equal(pg.length, 0); // PGlite is in-process: no driver to instrument
    });

    it('carry no payment code, patient name or AccessToken', () => {
      const all = otlp.bodies.join('\n');
      assert.ok(all.length > 0);
      assert.ok(!all.includes(fields.AuthCode ?? '-'), 'payment code in a span');
      assert.ok(!all.includes('张三'), 'patient name in a span');
      assert.ok(!all.includes(t.token), 'AccessToken in a span');
    });
  });
});
