import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import { answerOfflineDocument } from '../offline/routes.js';
import { MAX_XML_BYTES, XmlErrors } from '../../formats/xml.js';
import { buildWsdl, interfaceOf, operationNames } from './contract.js';
import {
  MAX_SOAP_BYTES,
  SoapErrors,
  SoapFault,
  buildAnswer,
  buildFault,
  contentTypeOf,
  decodeEnvelope,
  operationOfAction,
  parseContentType,
  parseEnvelope,
  versionOfContentType,
  type SoapVersion,
} from './envelope.js';

/** Media types a SOAP envelope may come with (1.1: text/xml; 1.2: application/soap+xml; application/xml tolerated). */
const ENVELOPE_TYPES = new Set(['text/xml', 'application/soap+xml', 'application/xml']);

function sendFault(req: FastifyRequest, reply: FastifyReply, version: SoapVersion, f: SoapFault) {
  req.log.info({ door: 'soap', fault: f.error.code }, 'soap fault');
  return reply.code(500).type(contentTypeOf(version)).send(buildFault(version, f));
}

/** The operation a request's action names, when it names another operation than the Body's (else null). */
function conflictingAction(req: FastifyRequest, version: SoapVersion, iface: string): string | null {
  const header = req.headers['soapaction'];
  const actions = [typeof header === 'string' ? header : undefined];
  if (version === '1.2') actions.push(parseContentType(req.headers['content-type']).params.get('action'));
  for (const a of actions) {
    const named = operationOfAction(a);
    if (named !== undefined && interfaceOf(named) !== iface) return named;
  }
  return null;
}

/**
 * The SOAP door: the HospitalWS contract (src/http/soap/contract.ts) at /linkingif.asmx, /HospitalWS.asmx and
 * the paths of HOSPAY_SOAP_PATHS. Each operation hands its `xml` string to the offline door's handler
 * (answerOfflineDocument) and returns that answer as `<Op>Result`: the same answers, errors, idempotency and
 * logging as the XML door. Envelope errors are SOAP Faults with HTTP 500; the document's errors stay in-band.
 */
export async function registerSoapRoutes(app: FastifyInstance, deps: ServiceDeps): Promise<void> {
  await app.register(async (scope) => {
    // Every body arrives as bytes: decoded and parsed (hardened) here.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_SOAP_BYTES }, (_req, body, done) =>
      done(null, body),
    );

    scope.setErrorHandler((err: Error & { code?: string }, req, reply) => {
      const version = versionOfContentType(parseContentType(req.headers['content-type']).type);
      let f: SoapFault;
      if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') f = SoapErrors.tooLarge();
      else if (
        err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ||
        err.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH'
      ) {
        f = SoapErrors.contentType();
      } else {
        req.log.error({ err: err.message, code: err.code, door: 'soap' }, 'soap door: unexpected error');
        f = SoapErrors.system();
      }
      return sendFault(req, reply, version, f);
    });

    for (const path of deps.config.soapPaths) {
      scope.get(path, async (req, reply) => {
        const query = (req.query ?? {}) as Record<string, unknown>;
        // The address is the configured public one, never built from the request's Host header.
        const address = `${deps.config.publicBaseUrl}${path}`;
        if (Object.keys(query).some((k) => k.toLowerCase() === 'wsdl')) {
          return reply.type('text/xml; charset=utf-8').send(buildWsdl(address));
        }
        return reply
          .header('x-content-type-options', 'nosniff')
          .type('text/plain; charset=utf-8')
          .send(
            `HospitalWS — hospay SOAP 门户 / SOAP door\n\nWSDL: ${address}?wsdl\n` +
              `SOAP 1.1 (text/xml) 与 / and SOAP 1.2 (application/soap+xml), POST ${address}\n\n` +
              `操作 / operations:\n${operationNames()
                .map((op) => `  ${op}`)
                .join('\n')}\n`,
          );
      });

      scope.post(path, async (req, reply) => {
        const ct = parseContentType(req.headers['content-type']);
        let version = versionOfContentType(ct.type);
        try {
          if (!ENVELOPE_TYPES.has(ct.type)) throw SoapErrors.contentType();
          const bytes = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
          const call = parseEnvelope(decodeEnvelope(bytes, ct.params.get('charset')));
          version = call.version;
          const action = conflictingAction(req, version, call.iface);
          if (action) throw SoapErrors.actionMismatch(action, call.operation);
          // Inside SOAP the document is a string, already characters: a declared encoding="GBK" is read as it.
          const xml = call.xml;
          const answer = await answerOfflineDocument(
            deps,
            { log: req.log.child({ door: 'soap', op: call.operation, soap: version }), door: 'soap' },
            call.iface,
            () => {
              // The document is held to the XML door's limit, and answered as the XML door answers it.
              if (Buffer.byteLength(xml, 'utf8') > MAX_XML_BYTES) throw XmlErrors.tooLarge();
              return xml;
            },
          );
          return reply
            .code(200)
            .type(contentTypeOf(version))
            .send(buildAnswer(version, call.operation, answer));
        } catch (e) {
          if (e instanceof SoapFault) return sendFault(req, reply, version, e);
          req.log.error(
            { err: e instanceof Error ? e.message : String(e), door: 'soap' },
            'soap door: unexpected error',
          );
          return sendFault(req, reply, version, SoapErrors.system());
        }
      });
    }
  });
}
