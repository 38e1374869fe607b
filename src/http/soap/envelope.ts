import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { HospayError } from '../../domain/errors.js';
import { MAX_XML_DEPTH, XmlErrors } from '../../formats/xml.js';
import { decodeXmlDocument } from '../offline/body.js';
import { SOAP11_ENV, SOAP12_ENV, TEMPURI, escapeXml, interfaceOf } from './contract.js';

export type SoapVersion = '1.1' | '1.2';

/**
 * The largest envelope accepted. The document travels escaped inside it (`<` becomes `&lt;`, a character may be
 * sent as `&#x4E2D;`), so a document at the offline door's 64 KB limit needs room to grow; the document itself
 * is then held to the same 64 KB as at the XML door.
 */
export const MAX_SOAP_BYTES = 256 * 1024;

/** Who is at fault: the sender (SOAP 1.1 Client, 1.2 Sender), hospay (Server / Receiver), or the SOAP version. */
export type FaultKind = 'sender' | 'receiver' | 'version' | 'mustUnderstand';

/** An envelope-level error: answered as a SOAP Fault with HTTP 500, never in-band. */
export class SoapFault extends Error {
  constructor(
    readonly kind: FaultKind,
    readonly error: HospayError,
  ) {
    super(error.message);
    this.name = 'SoapFault';
  }
}

const fault = (code: string, zh: string, en: string, kind: FaultKind = 'sender') =>
  new SoapFault(kind, new HospayError(code, 'invalid', zh, en));

/** Envelope errors of the SOAP door (docs/errors.md, "SOAP faults"); the XML ones reuse the offline codes. */
export const SoapErrors = {
  versionMismatch: () =>
    fault(
      'SOAP_VERSION_MISMATCH',
      `信封命名空间必须是 ${SOAP11_ENV}（SOAP 1.1）或 ${SOAP12_ENV}（SOAP 1.2）`,
      `the Envelope's namespace must be ${SOAP11_ENV} (SOAP 1.1) or ${SOAP12_ENV} (SOAP 1.2)`,
      'version',
    ),
  notEnvelope: () =>
    fault('SOAP_ENVELOPE', '根元素必须是 SOAP Envelope', 'the root element must be a SOAP Envelope'),
  noBody: () => fault('SOAP_NO_BODY', 'SOAP Envelope 缺少 Body', 'the SOAP Envelope has no Body'),
  notOneOperation: () =>
    fault(
      'SOAP_NO_OPERATION',
      'SOAP Body 必须恰好包含一个操作元素',
      'the SOAP Body must contain exactly one operation element',
    ),
  unknownOperation: (name: string) =>
    fault('SOAP_UNKNOWN_OPERATION', `HospitalWS 没有操作 ${name}`, `HospitalWS has no operation ${name}`),
  actionMismatch: (action: string, operation: string) =>
    fault(
      'SOAP_ACTION_MISMATCH',
      `SOAPAction 指明操作 ${action}，但 Body 中是 ${operation}`,
      `the SOAPAction names ${action} but the Body holds ${operation}`,
    ),
  parameter: (zh: string, en: string) => fault('SOAP_PARAMETER', `参数 xml ${zh}`, `the parameter xml ${en}`),
  mustUnderstand: (name: string) =>
    fault(
      'SOAP_MUST_UNDERSTAND',
      `不支持必须理解的 SOAP Header ${name}`,
      `the SOAP Header ${name} must be understood but is not supported`,
      'mustUnderstand',
    ),
  tooLarge: () =>
    fault(
      'REQUEST_TOO_LARGE',
      `SOAP 请求超过 ${MAX_SOAP_BYTES / 1024} KB`,
      `the SOAP request is larger than ${MAX_SOAP_BYTES / 1024} KB`,
    ),
  contentType: () =>
    fault(
      'UNSUPPORTED_CONTENT_TYPE',
      '请使用 text/xml（SOAP 1.1）或 application/soap+xml（SOAP 1.2）',
      'send text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2)',
    ),
  system: () => fault('SYSTEM_ERROR', '系统错误', 'internal error', 'receiver'),
};

/** An offline XmlErrors error (empty, encoding, DOCTYPE, malformed) as a Fault. */
const asFault = (e: HospayError) => new SoapFault('sender', e);

/** The media type (lower case, no parameters) and the parameters of a Content-Type header. */
export function parseContentType(header: string | undefined): {
  type: string;
  params: Map<string, string>;
} {
  const [type = '', ...rest] = (header ?? '').split(';');
  const params = new Map<string, string>();
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    const key = p.slice(0, eq).trim().toLowerCase();
    let value = p.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (key && !params.has(key)) params.set(key, value);
  }
  return { type: type.trim().toLowerCase(), params };
}

/** The SOAP version a request speaks before its envelope is read: application/soap+xml is 1.2, all else 1.1. */
export function versionOfContentType(type: string): SoapVersion {
  return type === 'application/soap+xml' ? '1.2' : '1.1';
}

/**
 * Envelope bytes -> text, read as the XML door reads a document (src/http/offline/body.ts): the XML
 * declaration's encoding, else the Content-Type charset, else UTF-8; UTF-8, GBK, GB2312 (read as GBK) and
 * GB18030 only. Bytes that do not decode strictly, a NUL, a UTF-16 BOM or another encoding: XML_ENCODING.
 */
export function decodeEnvelope(bytes: Buffer, contentTypeCharset: string | undefined): string {
  if (bytes.length === 0) throw asFault(XmlErrors.empty());
  try {
    return decodeXmlDocument(bytes, contentTypeCharset);
  } catch (e) {
    throw asFault(e instanceof HospayError ? e : XmlErrors.encoding());
  }
}

// The offline door's hardening (src/http/offline/xml.ts): values stay strings, entities decoded once, no DTD
// (refused before parsing), the same depth limit; attributes are read here, for the namespace declarations.
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  htmlEntities: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: MAX_XML_DEPTH,
});

type Scope = ReadonlyMap<string, string>;

const ATTR = '@_';
const isElementKey = (k: string) => !k.startsWith(ATTR) && k !== '#text';

function split(qname: string): { prefix: string; local: string } {
  const i = qname.indexOf(':');
  return i < 0 ? { prefix: '', local: qname } : { prefix: qname.slice(0, i), local: qname.slice(i + 1) };
}

/** The namespace scope inside an element: its xmlns declarations over the parent's. */
function scopeOf(node: unknown, parent: Scope): Scope {
  if (typeof node !== 'object' || node === null || Array.isArray(node)) return parent;
  let scope: Map<string, string> | null = null;
  for (const [k, v] of Object.entries(node)) {
    if (!k.startsWith(ATTR)) continue;
    const name = k.slice(ATTR.length);
    if (name !== 'xmlns' && !name.startsWith('xmlns:')) continue;
    scope ??= new Map(parent);
    scope.set(name === 'xmlns' ? '' : name.slice(6), typeof v === 'string' ? v : '');
  }
  return scope ?? parent;
}

const nsOf = (qname: string, scope: Scope) => scope.get(split(qname).prefix) ?? '';

/** The child elements of a node, each once per occurrence, in document order of their names. */
function children(node: unknown): Array<[string, unknown]> {
  if (typeof node !== 'object' || node === null || Array.isArray(node)) return [];
  const out: Array<[string, unknown]> = [];
  for (const [k, v] of Object.entries(node)) {
    if (!isElementKey(k)) continue;
    if (Array.isArray(v)) for (const item of v) out.push([k, item]);
    else out.push([k, v]);
  }
  return out;
}

/** A short, printable form of a name taken from the request (for a Fault's text and the logs). */
function printable(name: string): string {
  return name.replace(/[^A-Za-z0-9_.:{}/-]/g, '?').slice(0, 64);
}

export interface SoapCall {
  version: SoapVersion;
  /** The operation, by the name the request used (an alias stays an alias). */
  operation: string;
  /** The offline interface answering it. */
  iface: string;
  /** The content of the `xml` parameter: the spec's XML document, as the HIS passed it to the stub. */
  xml: string;
}

/**
 * Reads a SOAP 1.1 or 1.2 envelope holding one HospitalWS operation, with the offline door's XML hardening.
 * Everything wrong with the envelope is a SoapFault; the document inside is not looked at here.
 */
export function parseEnvelope(text: string): SoapCall {
  if (text.trim().length === 0) throw asFault(XmlErrors.empty());
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw asFault(XmlErrors.doctype());
  if (/&#(?:0+|x0+);/i.test(text)) throw asFault(XmlErrors.malformed('a character reference to NUL (&#0;)'));
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw asFault(XmlErrors.malformed(`${valid.err.msg} (line ${valid.err.line})`));
  let doc: unknown;
  try {
    doc = parser.parse(text);
  } catch (e) {
    const msg = e instanceof Error ? e.message : '';
    throw asFault(
      XmlErrors.malformed(
        /nested tags/i.test(msg)
          ? `elements nested deeper than ${MAX_XML_DEPTH}`
          : msg.slice(0, 120) || 'unreadable',
      ),
    );
  }
  const roots = children(doc);
  if (roots.length !== 1) throw SoapErrors.notEnvelope();
  const [rootName, root] = roots[0] as [string, unknown];
  const rootScope = scopeOf(root, new Map());
  if (split(rootName).local !== 'Envelope') throw SoapErrors.notEnvelope();
  const envNs = nsOf(rootName, rootScope);
  const version: SoapVersion | null = envNs === SOAP11_ENV ? '1.1' : envNs === SOAP12_ENV ? '1.2' : null;
  if (!version) throw SoapErrors.versionMismatch();

  let body: { node: unknown; scope: Scope } | null = null;
  for (const [name, node] of children(root)) {
    const scope = scopeOf(node, rootScope);
    if (nsOf(name, scope) !== envNs) continue;
    const local = split(name).local;
    if (local === 'Header') checkHeaders(node, scope, envNs);
    else if (local === 'Body') {
      if (body) throw SoapErrors.noBody();
      body = { node, scope };
    }
  }
  if (!body) throw SoapErrors.noBody();

  const ops = children(body.node);
  if (ops.length !== 1) throw SoapErrors.notOneOperation();
  const [opName, op] = ops[0] as [string, unknown];
  const opScope = scopeOf(op, body.scope);
  const local = split(opName).local;
  const ns = nsOf(opName, opScope);
  if (ns !== TEMPURI) throw SoapErrors.unknownOperation(printable(ns ? `{${ns}}${local}` : local));
  const iface = interfaceOf(local);
  if (!iface) throw SoapErrors.unknownOperation(printable(local));

  // The one string parameter `xml` (qualified, as the WSDL's elementFormDefault says; unqualified tolerated).
  const params = children(op).filter(([name, node]) => {
    const n = nsOf(name, scopeOf(node, opScope));
    return split(name).local === 'xml' && (n === TEMPURI || n === '');
  });
  if (params.length > 1) throw SoapErrors.parameter('重复出现', 'appears more than once');
  const param = params[0]?.[1];
  let xml = '';
  if (typeof param === 'string') xml = param;
  else if (typeof param === 'object' && param !== null) {
    if (children(param).length > 0)
      throw SoapErrors.parameter(
        '必须是字符串（请将 XML 文档转义或放入 CDATA）',
        'must be a string (escape the XML document or put it in CDATA)',
      );
    const t = (param as Record<string, unknown>)['#text'];
    xml = typeof t === 'string' ? t : '';
  }
  return { version, operation: local, iface, xml };
}

/** A header block the sender says must be understood: hospay understands none. */
function checkHeaders(header: unknown, scope: Scope, envNs: string): void {
  for (const [name, node] of children(header)) {
    if (typeof node !== 'object' || node === null) continue;
    const s = scopeOf(node, scope);
    for (const [k, v] of Object.entries(node)) {
      if (!k.startsWith(ATTR)) continue;
      const attr = k.slice(ATTR.length);
      if (split(attr).local !== 'mustUnderstand' || nsOf(attr, s) !== envNs) continue;
      if (v === '1' || v === 'true') throw SoapErrors.mustUnderstand(printable(split(name).local));
    }
  }
}

/**
 * The operation a SOAPAction (1.1 header) or `action` parameter (1.2) names, if it names one of HospitalWS's:
 * "http://tempuri.org/Op", quoted or not, or the bare name. Empty, missing or foreign actions name none.
 */
export function operationOfAction(action: string | undefined): string | undefined {
  if (action === undefined) return undefined;
  // Quotes and spaces around it, however many (a client told to use '"…"' quotes it once more itself).
  const a = action.replace(/^["'\s]+|["'\s]+$/g, '');
  if (a === '') return undefined;
  const name = a.startsWith(TEMPURI) ? a.slice(TEMPURI.length) : a.includes('/') ? '' : a;
  return interfaceOf(name) ? name : undefined;
}

const CONTENT_TYPES: Record<SoapVersion, string> = {
  '1.1': 'text/xml; charset=utf-8',
  '1.2': 'application/soap+xml; charset=utf-8',
};

export const contentTypeOf = (v: SoapVersion) => CONTENT_TYPES[v];

function envelope(v: SoapVersion, body: string): string {
  return v === '1.1'
    ? `<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="${SOAP11_ENV}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body>${body}</soap:Body></soap:Envelope>`
    : `<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env="${SOAP12_ENV}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><env:Body>${body}</env:Body></env:Envelope>`;
}

/** Escapes the answer document as element text; CR kept as a reference (a parser would turn it into LF). */
const text = (s: string) => escapeXml(s).replace(/\r/g, '&#xD;');

/** `<OpResponse xmlns="http://tempuri.org/"><OpResult>answer</OpResult></OpResponse>` in its envelope. */
export function buildAnswer(v: SoapVersion, operation: string, answer: string): string {
  return envelope(
    v,
    `<${operation}Response xmlns="${TEMPURI}"><${operation}Result>${text(answer)}</${operation}Result></${operation}Response>`,
  );
}

const FAULT_CODES: Record<SoapVersion, Record<FaultKind, string>> = {
  '1.1': {
    sender: 'soap:Client',
    receiver: 'soap:Server',
    version: 'soap:VersionMismatch',
    mustUnderstand: 'soap:MustUnderstand',
  },
  '1.2': {
    sender: 'env:Sender',
    receiver: 'env:Receiver',
    version: 'env:VersionMismatch',
    mustUnderstand: 'env:MustUnderstand',
  },
};

/** A SOAP Fault in the request's version: the code, the bilingual message, and the stable code as detail. */
export function buildFault(v: SoapVersion, f: SoapFault): string {
  const code = FAULT_CODES[v][f.kind];
  const detail = `<hospay:SubCode xmlns:hospay="urn:hospay">${text(f.error.code)}</hospay:SubCode>`;
  if (v === '1.1') {
    return envelope(
      v,
      `<soap:Fault><faultcode>${code}</faultcode><faultstring>${text(f.error.bilingual)}</faultstring><detail>${detail}</detail></soap:Fault>`,
    );
  }
  return envelope(
    v,
    `<env:Fault><env:Code><env:Value>${code}</env:Value></env:Code><env:Reason><env:Text xml:lang="zh">${text(f.error.bilingual)}</env:Text><env:Text xml:lang="en">${text(f.error.en)}</env:Text></env:Reason><env:Detail>${detail}</env:Detail></env:Fault>`,
  );
}
