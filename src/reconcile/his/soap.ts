import { XMLParser, XMLValidator } from 'fast-xml-parser';

/**
 * SOAP as HIS vendors publish their chapter 7 interfaces: ASP.NET-style (.asmx) document/literal wrapped, one
 * string parameter `xml` carrying the spec's XML document, and one string `<Op>Result` carrying the answer:
 *
 *   <Op xmlns="ns"><xml>…the request document, escaped…</xml></Op>
 *   <OpResponse xmlns="ns"><OpResult>…the answer document, escaped…</OpResult></OpResponse>
 *
 * SOAP 1.1: text/xml with the SOAPAction header "ns/Op" (quoted); SOAP 1.2: application/soap+xml with the
 * action parameter. Used by the HIS client (hospay calling a SOAP HIS) and by the HIS simulator (serving it).
 * Envelopes are read namespace-aware (any prefix) with the hardening of the XML interfaces: no DOCTYPE or
 * entity declarations, a well-formedness check first, a nesting limit; the caller limits the size.
 */

export type SoapVersion = '1.1' | '1.2';

export const SOAP_ENVELOPE_NS: Readonly<Record<SoapVersion, string>> = {
  '1.1': 'http://schemas.xmlsoap.org/soap/envelope/',
  '1.2': 'http://www.w3.org/2003/05/soap-envelope',
};

/** The namespace ASP.NET services use unless their author chose another. */
export const DEFAULT_SOAP_NAMESPACE = 'http://tempuri.org/';

/** The chapter 7 interfaces as SOAP operations. */
export const HIS_SOAP_OPERATIONS = ['IF_Get_Hospital_Trade_List', 'HIS_IF_Query'] as const;

/** A malformed or unexpected envelope; `message` says what (English), `zh` the same in Chinese. */
export class SoapEnvelopeError extends Error {
  constructor(
    readonly zh: string,
    en: string,
  ) {
    super(en);
    this.name = 'SoapEnvelopeError';
  }
}

/** SOAPAction as ASP.NET forms it: the namespace, a "/" unless it ends with one, the operation. */
export function soapAction(namespace: string, op: string): string {
  return namespace.endsWith('/') ? `${namespace}${op}` : `${namespace}/${op}`;
}

/** Text content escaped for an element (the XML document travels as such a string). */
export function escapeXmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#xD;');
}

function escapeAttr(text: string): string {
  return escapeXmlText(text).replace(/"/g, '&quot;');
}

/** The Content-Type of a SOAP message (1.2 carries the action in it). */
export function soapContentType(version: SoapVersion, charset = 'utf-8', action?: string): string {
  return version === '1.1'
    ? `text/xml; charset=${charset}`
    : `application/soap+xml; charset=${charset}${action ? `; action="${action}"` : ''}`;
}

function envelope(version: SoapVersion, body: string, encoding = 'utf-8'): string {
  const p = version === '1.1' ? 'soap' : 'soap12';
  return (
    `<?xml version="1.0" encoding="${encoding}"?>` +
    `<${p}:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:${p}="${SOAP_ENVELOPE_NS[version]}">` +
    `<${p}:Body>${body}</${p}:Body></${p}:Envelope>`
  );
}

/** A request: `<Op xmlns="ns"><xml>document</xml></Op>` with its HTTP headers. */
export function soapRequest(
  version: SoapVersion,
  namespace: string,
  op: string,
  document: string,
): { body: string; headers: Record<string, string> } {
  const action = soapAction(namespace, op);
  return {
    body: envelope(
      version,
      `<${op} xmlns="${escapeAttr(namespace)}"><xml>${escapeXmlText(document)}</xml></${op}>`,
    ),
    headers:
      version === '1.1'
        ? {
            'content-type': soapContentType('1.1'),
            soapaction: `"${action}"`,
            accept: 'text/xml, application/xml',
          }
        : {
            'content-type': soapContentType('1.2', 'utf-8', action),
            accept: 'application/soap+xml, text/xml, application/xml',
          },
  };
}

/** An answer: `<OpResponse xmlns="ns"><OpResult>document</OpResult></OpResponse>`. */
export function soapResponse(
  version: SoapVersion,
  namespace: string,
  op: string,
  document: string,
  encoding = 'utf-8',
): string {
  return envelope(
    version,
    `<${op}Response xmlns="${escapeAttr(namespace)}"><${op}Result>${escapeXmlText(document)}</${op}Result></${op}Response>`,
    encoding,
  );
}

/** A SOAP Fault: the request's fault (Client / Sender) or the service's (Server / Receiver). */
export function soapFault(
  version: SoapVersion,
  who: 'client' | 'server',
  reason: string,
  encoding = 'utf-8',
): string {
  if (version === '1.1')
    return envelope(
      '1.1',
      `<soap:Fault><faultcode>soap:${who === 'client' ? 'Client' : 'Server'}</faultcode>` +
        `<faultstring>${escapeXmlText(reason)}</faultstring><detail /></soap:Fault>`,
      encoding,
    );
  return envelope(
    '1.2',
    `<soap12:Fault><soap12:Code><soap12:Value>soap12:${who === 'client' ? 'Sender' : 'Receiver'}</soap12:Value></soap12:Code>` +
      `<soap12:Reason><soap12:Text xml:lang="zh">${escapeXmlText(reason)}</soap12:Text></soap12:Reason><soap12:Detail /></soap12:Fault>`,
    encoding,
  );
}

// ------------------------------------------------------------------------------------------------ reading

/** An element with its namespace resolved. */
export interface SoapElement {
  ns: string;
  local: string;
  /** The name as written, e.g. "soap:Body". */
  name: string;
  children: SoapElement[];
  /** The element's own text (character data and CDATA of its direct content), untrimmed. */
  text: string;
}

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: true, // predefined entities and character references only; DOCTYPE refused before
  htmlEntities: true, // numeric character references (&#x4E2D;), as the XML interfaces read them
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: 16,
});

type Node = Record<string, unknown>;

const XML_NS = 'http://www.w3.org/XML/1998/namespace';

function resolve(node: Node, scope: ReadonlyMap<string, string>): SoapElement | null {
  const name = Object.keys(node).find((k) => k !== ':@');
  if (name === undefined || name === '#text') return null;
  const attrs = (node[':@'] ?? {}) as Record<string, unknown>;
  let inner = scope;
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'xmlns' || k.startsWith('xmlns:')) {
      if (inner === scope) inner = new Map(scope);
      (inner as Map<string, string>).set(k === 'xmlns' ? '' : k.slice(6), String(v));
    }
  }
  const colon = name.indexOf(':');
  const prefix = colon < 0 ? '' : name.slice(0, colon);
  const local = colon < 0 ? name : name.slice(colon + 1);
  // No prefix and no default namespace in scope: no namespace ("").
  const ns = prefix === 'xml' ? XML_NS : prefix === '' ? (inner.get('') ?? '') : inner.get(prefix);
  if (ns === undefined)
    throw new SoapEnvelopeError(`未声明的命名空间前缀 ${prefix}`, `undeclared namespace prefix ${prefix}`);
  const content = (node[name] ?? []) as Node[];
  const children: SoapElement[] = [];
  let text = '';
  for (const c of Array.isArray(content) ? content : []) {
    if (Object.hasOwn(c, '#text')) text += String(c['#text']);
    else {
      const el = resolve(c, inner);
      if (el) children.push(el);
    }
  }
  return { ns, local, name, children, text };
}

/**
 * Parses a SOAP envelope (1.1 or 1.2, any prefixes): its version and the element children of its Body.
 * Throws SoapEnvelopeError for a DOCTYPE, broken XML, too deep nesting, a root other than Envelope in a SOAP
 * envelope namespace, or a missing Body.
 */
export function parseSoapEnvelope(text: string): {
  version: SoapVersion;
  header: SoapElement | null;
  body: SoapElement[];
} {
  if (text.trim().length === 0) throw new SoapEnvelopeError('SOAP 消息为空', 'the SOAP message is empty');
  if (/<!DOCTYPE|<!ENTITY/i.test(text))
    throw new SoapEnvelopeError(
      '不允许 DOCTYPE 或实体声明',
      'DOCTYPE and entity declarations are not allowed',
    );
  if (/&#(?:0+|x0+);/i.test(text))
    throw new SoapEnvelopeError('包含 NUL 字符引用', 'a character reference to NUL (&#0;)');
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    const why = `${valid.err.msg} (line ${valid.err.line})`;
    throw new SoapEnvelopeError(`XML 格式错误：${why}`, `malformed XML: ${why}`);
  }
  let doc: unknown;
  try {
    doc = parser.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message.slice(0, 120) : 'unreadable';
    throw new SoapEnvelopeError(`XML 无法解析：${why}`, `unreadable XML: ${why}`);
  }
  const roots = (Array.isArray(doc) ? (doc as Node[]) : [])
    .map((n) => resolve(n, new Map()))
    .filter((e): e is SoapElement => e !== null);
  const root = roots[0];
  const version =
    root?.ns === SOAP_ENVELOPE_NS['1.1'] ? '1.1' : root?.ns === SOAP_ENVELOPE_NS['1.2'] ? '1.2' : null;
  if (roots.length !== 1 || !root || root.local !== 'Envelope' || version === null)
    throw new SoapEnvelopeError(
      '根元素不是 SOAP 1.1 或 1.2 的 Envelope',
      `the root element is not a SOAP 1.1 or 1.2 Envelope${root ? ` (got {${root.ns}}${root.local})` : ''}`,
    );
  const inEnv = root.children.filter((c) => c.ns === root.ns);
  const bodies = inEnv.filter((c) => c.local === 'Body');
  if (bodies.length !== 1 || !bodies[0])
    throw new SoapEnvelopeError('Envelope 须含一个 Body', 'the Envelope must have exactly one Body');
  return {
    version,
    header: inEnv.find((c) => c.local === 'Header') ?? null,
    body: bodies[0].children,
  };
}

export interface SoapFaultInfo {
  /** The fault code as written, e.g. "soap:Server" (1.1) or "soap:Receiver" (1.2, with a subcode). */
  code: string;
  /** faultstring (1.1) or the Reason texts (1.2), cleaned and cut for a report. */
  reason: string;
  /** Server / Receiver: the service failed, a retry may help; Client / Sender: the request was refused. */
  server: boolean;
}

/** Whitespace collapsed, control characters dropped, cut to `max` characters. */
function clean(text: string, max = 500): string {
  const t = text
    .replace(/[\p{Cc}]+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

function readFault(fault: SoapElement, version: SoapVersion): SoapFaultInfo {
  const child = (el: SoapElement | undefined, local: string) => el?.children.find((c) => c.local === local);
  let code: string;
  let reason: string;
  if (version === '1.1') {
    code = (child(fault, 'faultcode')?.text ?? '').trim();
    reason = child(fault, 'faultstring')?.text ?? '';
  } else {
    const c = child(fault, 'Code');
    code = (child(c, 'Value')?.text ?? '').trim();
    const sub = (child(child(c, 'Subcode'), 'Value')?.text ?? '').trim();
    if (sub) code = `${code} (${sub})`;
    reason = (child(fault, 'Reason')?.children ?? [])
      .filter((t) => t.local === 'Text')
      .map((t) => t.text.trim())
      .filter(Boolean)
      .join(' / ');
  }
  const local = (code.split(' ')[0] ?? '').replace(/^[^:]*:/, '').split('.')[0] ?? '';
  return {
    code: clean(code, 120) || '(no faultcode)',
    reason: clean(reason) || '(no faultstring)',
    server: local === 'Server' || local === 'Receiver',
  };
}

export type SoapAnswer =
  | { kind: 'result'; version: SoapVersion; value: string }
  | { kind: 'fault'; version: SoapVersion; fault: SoapFaultInfo };

/**
 * Reads the answer to operation `op`: the text of `<OpResponse><OpResult>` (the response element in the
 * service namespace, the result in it or unqualified), or the Fault. Throws SoapEnvelopeError when it is
 * neither.
 */
export function readSoapAnswer(text: string, namespace: string, op: string): SoapAnswer {
  const { version, body } = parseSoapEnvelope(text);
  const first = body[0];
  if (!first) throw new SoapEnvelopeError('Body 为空', 'the Body is empty');
  if (first.local === 'Fault' && first.ns === SOAP_ENVELOPE_NS[version])
    return { kind: 'fault', version, fault: readFault(first, version) };
  if (first.local !== `${op}Response`)
    throw new SoapEnvelopeError(
      `应答元素 ${first.local} 不是 ${op}Response`,
      `the answer element is ${first.local}, not ${op}Response`,
    );
  if (first.ns !== namespace)
    throw new SoapEnvelopeError(
      `应答命名空间 ${first.ns || '（无）'} 与所配置的 ${namespace} 不同（请核对 SOAP 命名空间设置）`,
      `the answer is in namespace "${first.ns}", not the configured "${namespace}" (check the SOAP namespace setting)`,
    );
  const results = first.children.filter(
    (c) => c.local === `${op}Result` && (c.ns === namespace || c.ns === ''),
  );
  const result = results[0];
  if (!result || results.length > 1)
    throw new SoapEnvelopeError(
      `${op}Response 中须有一个 ${op}Result`,
      `${op}Response must hold exactly one ${op}Result`,
    );
  if (result.children.length > 0)
    throw new SoapEnvelopeError(
      `${op}Result 须为字符串（转义后的 XML 文档），不能包含子元素`,
      `${op}Result must be a string (the XML document, escaped), not elements`,
    );
  return { kind: 'result', version, value: result.text.trim() };
}

/**
 * Reads a request to a service in `namespace`: its SOAP version, the operation (the Body's element, whatever
 * the SOAPAction says) and the `xml` string parameter. Throws SoapEnvelopeError for an envelope that is not
 * such a request; an operation in another namespace is named in the error.
 */
export function readSoapRequest(
  text: string,
  namespace: string,
): { version: SoapVersion; op: string; xml: string } {
  const { version, body } = parseSoapEnvelope(text);
  const first = body[0];
  if (!first) throw new SoapEnvelopeError('Body 为空', 'the Body is empty');
  if (first.ns !== namespace)
    throw new SoapEnvelopeError(
      `操作 ${first.local} 的命名空间 ${first.ns || '（无）'} 不是 ${namespace}`,
      `operation ${first.local} is in namespace "${first.ns}", not "${namespace}"`,
    );
  const params = first.children.filter((c) => c.local === 'xml' && (c.ns === namespace || c.ns === ''));
  if (params.length > 1)
    throw new SoapEnvelopeError('参数 xml 重复出现', 'the parameter xml appears more than once');
  if (params[0] && params[0].children.length > 0)
    throw new SoapEnvelopeError(
      '参数 xml 须为字符串（转义后的 XML 文档）',
      'the parameter xml must be a string (the XML document, escaped)',
    );
  return { version, op: first.local, xml: (params[0]?.text ?? '').trim() };
}

/** The SOAP version a request's Content-Type announces, if any (for a Fault before the envelope is read). */
export function soapVersionOfContentType(contentType: string | undefined): SoapVersion | null {
  const t = (contentType ?? '').toLowerCase();
  if (t.startsWith('application/soap+xml')) return '1.2';
  if (t.startsWith('text/xml') || t.startsWith('application/xml')) return '1.1';
  return null;
}

/** The charset parameter of a Content-Type header, if any. */
export function charsetParam(contentType: string | null | undefined): string | undefined {
  const m = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType ?? '');
  return m?.[1];
}
