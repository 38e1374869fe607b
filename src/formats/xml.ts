import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { Errors, HospayError } from '../domain/errors.js';

/** The offline door accepts at most this many bytes. */
export const MAX_XML_BYTES = 64 * 1024;

/** Elements may nest at most this deep (the SOAP door's envelope parser uses the same limit). */
export const MAX_XML_DEPTH = 16;

const protocolError = (code: string, zh: string, en: string) => new HospayError(code, 'invalid', zh, en);

export const XmlErrors = {
  tooLarge: () =>
    protocolError(
      'REQUEST_TOO_LARGE',
      `请求超过 ${MAX_XML_BYTES / 1024} KB`,
      `the request is larger than ${MAX_XML_BYTES / 1024} KB`,
    ),
  empty: () => protocolError('XML_EMPTY', '请求体为空', 'the request body is empty'),
  encoding: () =>
    protocolError('XML_ENCODING', '请求不是有效的 UTF-8 编码', 'the request is not valid UTF-8'),
  doctype: () =>
    protocolError(
      'XML_DOCTYPE_FORBIDDEN',
      '不允许 DOCTYPE 或实体声明',
      'DOCTYPE and entity declarations are not allowed',
    ),
  malformed: (detail: string) =>
    protocolError('XML_MALFORMED', `XML 格式错误：${detail}`, `malformed XML: ${detail}`),
  root: () =>
    protocolError(
      'XML_ROOT',
      '根元素必须是 <xml>，并包含 <head>',
      'the root element must be <xml> with a <head>',
    ),
  contentType: () =>
    protocolError(
      'UNSUPPORTED_CONTENT_TYPE',
      '请以 Content-Type: text/xml 发送 XML 文档（也可用 application/xml，或表单字段 xml）',
      'send the XML document as Content-Type: text/xml (application/xml or a form field named xml also work)',
    ),
  nested: (field: string) => Errors.invalidField(field, '不能包含子元素', 'must be text, not elements'),
  /** The bytes do not decode in the encoding the request declares (UTF-8 when it declares none). */
  notDecodable: (charset: XmlCharset) =>
    charset === 'utf-8'
      ? protocolError(
          'XML_ENCODING',
          '请求不是有效的 UTF-8 编码；发送 GBK 时请声明 <?xml version="1.0" encoding="GBK"?>',
          'the request is not valid UTF-8; to send GBK, declare <?xml version="1.0" encoding="GBK"?>',
        )
      : protocolError(
          'XML_ENCODING',
          `请求声明为 ${charset} 编码，但内容不是有效的 ${charset}`,
          `the request declares ${charset} but its bytes are not valid ${charset}`,
        ),
  unsupportedEncoding: (label: string) => {
    const name = label.replace(/[^\x21-\x7e]/g, '?').slice(0, 32);
    return protocolError(
      'XML_ENCODING',
      `不支持的编码 ${name}，请使用 UTF-8、GBK、GB2312 或 GB18030`,
      `unsupported encoding ${name}: use UTF-8, GBK, GB2312 or GB18030`,
    );
  },
  /** Declared GBK / GB2312 / GB18030, but the bytes are UTF-8 Chinese text. */
  utf8Declared: (charset: XmlCharset) =>
    protocolError(
      'XML_ENCODING',
      `请求声明为 ${charset} 编码，但内容是 UTF-8 编码；请声明 encoding="utf-8"，或发送 ${charset} 编码的内容`,
      `the request declares ${charset} but its bytes are UTF-8: declare encoding="utf-8", or send ${charset} bytes`,
    ),
  bomConflict: (charset: XmlCharset) =>
    protocolError(
      'XML_ENCODING',
      `请求以 UTF-8 字节顺序标记（BOM）开头，却声明为 ${charset} 编码`,
      `the request starts with a UTF-8 byte-order mark but declares ${charset}`,
    ),
  nul: () => protocolError('XML_ENCODING', '请求包含 NUL 字符', 'the request contains a NUL character'),
};

/**
 * The encodings a request may be written in, by the name an answer declares: UTF-8 (the default), GBK, GB2312
 * and GB18030. GB2312 is read as GBK, its superset (as Windows and browsers do; .NET names GBK "gb2312").
 */
export type XmlCharset = 'utf-8' | 'GBK' | 'GB2312' | 'GB18030';

/** A charset label as HIS code writes it (XML declaration or Content-Type charset) -> its encoding, or null. */
export function charsetOf(label: string): XmlCharset | null {
  const l = label.trim().toLowerCase();
  if (l === 'utf-8' || l === 'utf8') return 'utf-8';
  if (['gbk', 'cp936', 'x-gbk', 'windows-936', 'ms936'].includes(l)) return 'GBK';
  if (['gb2312', 'gb_2312', 'gb_2312-80', 'euc-cn', 'x-euc-cn'].includes(l)) return 'GB2312';
  if (l === 'gb18030') return 'GB18030';
  return null;
}

/** The encoding the XML declaration at the start of the text names, if any. */
export function declaredEncoding(text: string): string | undefined {
  return /^\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']/i.exec(text)?.[1];
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Bytes -> text: strict UTF-8, BOM dropped, no NUL characters. */
export function decodeUtf8(bytes: Uint8Array): string {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw XmlErrors.encoding();
  }
  if (text.includes('\u0000')) throw XmlErrors.encoding();
  return text;
}

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false, // every value stays a string: "0.10" must not become 0.1
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true, // the five predefined entities and character references only; DOCTYPE is refused first
  htmlEntities: true, // numeric character references (&#20013;) as XML defines them, and HTML named ones
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: MAX_XML_DEPTH,
});

export type XmlFields = Map<string, string>;

/**
 * Parses an offline request document: `<xml><head>fields</head><body/><sign/></xml>`.
 * Returns the head fields in document order. Refuses DOCTYPE/entities, malformed XML, a wrong root, repeated
 * fields and fields that contain elements.
 */
export function parseOfflineXml(text: string): XmlFields {
  if (text.trim().length === 0) throw XmlErrors.empty();
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw XmlErrors.doctype();
  // &#0; is not a character XML allows (the parser would drop it silently).
  if (/&#(?:0+|x0+);/i.test(text)) throw XmlErrors.malformed('a character reference to NUL (&#0;)');
  // The text is characters already: the caller decoded the bytes as the declaration says (the XML door), or
  // got a string (the SOAP door). A declaration may name any encoding the door reads, nothing else.
  const declared = declaredEncoding(text);
  if (declared !== undefined && charsetOf(declared) === null) throw XmlErrors.unsupportedEncoding(declared);
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw XmlErrors.malformed(`${valid.err.msg} (line ${valid.err.line})`);
  let doc: unknown;
  try {
    doc = parser.parse(text);
  } catch (e) {
    throw XmlErrors.malformed(e instanceof Error ? e.message.slice(0, 120) : 'unreadable');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw XmlErrors.root();
  const roots = Object.keys(doc);
  if (roots.length !== 1 || roots[0] !== 'xml') throw XmlErrors.root();
  const xml = (doc as Record<string, unknown>)['xml'];
  if (typeof xml !== 'object' || xml === null || Array.isArray(xml)) throw XmlErrors.root();
  if (!Object.hasOwn(xml, 'head')) throw XmlErrors.root();
  const head = (xml as Record<string, unknown>)['head'];
  if (Array.isArray(head)) throw Errors.repeatedField('head');
  const fields: XmlFields = new Map();
  if (head === '' || head === undefined) return fields;
  if (typeof head !== 'object' || head === null) throw XmlErrors.root();
  for (const [name, value] of Object.entries(head)) {
    if (Array.isArray(value)) throw Errors.repeatedField(name);
    if (typeof value === 'object' && value !== null) throw XmlErrors.nested(name);
    fields.set(name, typeof value === 'string' ? value : String(value ?? ''));
  }
  return fields;
}

const builder = new XMLBuilder({
  format: true,
  indentBy: '  ',
  suppressEmptyNode: false,
  processEntities: true,
});

export type XmlValue = string | XmlObject;
export interface XmlObject {
  [name: string]: XmlValue;
}

/** Builds the answer document: the request head echoed, then body, then an empty sign. */
export function buildOfflineXml(head: XmlObject, body: XmlObject): string {
  const xml = builder.build({ xml: { head, body, sign: '' } }) as string;
  return `<?xml version="1.0" encoding="utf-8"?>\n${xml}`;
}
