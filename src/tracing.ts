import { createRequire } from 'node:module';
import type { FastifyPluginCallback } from 'fastify';
import type { Config } from './config/config.js';
import { maskUrlPath } from './logging.js';

/**
 * OpenTelemetry traces, off by default (HOSPAY_OTEL_ENABLED=1 turns them on). Off, nothing of the SDK is
 * loaded: this module imports only types, and the channel spans (channels/exchange.ts) go to the API's no-op
 * tracer. On, one trace per HIS request:
 *
 *   HTTP request (@fastify/otel, a plugin on each Fastify instance)
 *     ├─ channel <operation>   (channels/exchange.ts CallRecorder: every provider call, the simulator's too)
 *     ├─ POST                  (@opentelemetry/instrumentation-undici: a real channel's wire call, beside it)
 *     └─ pg.query …            (@opentelemetry/instrumentation-pg: PostgreSQL only; PGlite is in-process)
 *
 * exported with OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (the standard OTEL_* variables apply: service name,
 * headers, sampler, batch sizes).
 *
 * ESM note: the SDK patches `pg` through require-in-the-middle, which sees only `require` calls, and hospay
 * imports `pg` as ESM before the SDK starts. So once the SDK is on, `pg` and `pg-pool` are required here once
 * more: the hook patches their (shared, cached) exports, which are the very objects the store already uses.
 * undici needs no patching (diagnostics_channel); @fastify/otel is a plugin.
 *
 * What spans never carry: the query string of a URL, a capability token in a path (masked as in the logs),
 * SQL parameter values (instrumentation-pg records the statement text only).
 */
export interface Tracing {
  /** Register on each Fastify instance, before any route (server.ts does, through ServerParts.otelPlugin). */
  fastifyPlugin: FastifyPluginCallback;
  /** Flushes the spans still buffered and stops the SDK. */
  shutdown(): Promise<void>;
}

/** Starts the SDK when HOSPAY_OTEL_ENABLED is on; null (and nothing loaded) when off. */
export async function startTracing(config: Config): Promise<Tracing | null> {
  if (!config.observability.otelEnabled) return null;
  const [{ NodeSDK }, { OTLPTraceExporter }, { PgInstrumentation }, { UndiciInstrumentation }, otel] =
    await Promise.all([
      import('@opentelemetry/sdk-node'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/instrumentation-pg'),
      import('@opentelemetry/instrumentation-undici'),
      import('@fastify/otel'),
    ]);
  const FastifyOtelInstrumentation = otel.FastifyOtelInstrumentation;
  const fastify = new FastifyOtelInstrumentation({
    // One span per request (the hooks' and handler's spans would be named after the plugin's source text).
    instrumentHooks: false,
    instrumentHandler: false,
    requestHook: (span, request) => span.setAttribute('url.path', maskUrlPath(request.url)),
  });
  const base = config.observability.otlpEndpoint?.replace(/\/+$/, '');
  const sdk = new NodeSDK({
    serviceName: process.env['OTEL_SERVICE_NAME'] || 'hospay',
    traceExporter: new OTLPTraceExporter(base ? { url: `${base}/v1/traces` } : {}),
    instrumentations: [
      fastify,
      new PgInstrumentation({ requireParentSpan: true }),
      new UndiciInstrumentation({
        requireParentforSpans: true,
        requestHook: (span, request) => {
          // The provider's URL without its query (it may carry signed parameters).
          span.setAttribute('url.full', `${request.origin}${request.path.split('?')[0] ?? ''}`);
        },
      }),
    ],
  });
  sdk.start();
  // See the ESM note above: let require-in-the-middle patch the already loaded pg modules.
  const require = createRequire(import.meta.url);
  for (const m of ['pg', 'pg-pool'])
    try {
      require(m);
    } catch {
      /* not installed: nothing to patch */
    }
  return {
    fastifyPlugin: fastify.plugin() as unknown as FastifyPluginCallback,
    shutdown: () => sdk.shutdown(),
  };
}
