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
 *
 * The common document (see readPlainOfflineXml) is read by a small scanner; every other document, and every
 * one that is refused, goes through the validator and the general parser, so refusals and unusual documents
 * are read exactly as the parser reads them (test/unit/offline-xml.test.ts compares the two on many documents).
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
  return readPlainOfflineXml(text) ?? parseGeneralOfflineXml(text);
}

/** The general path: the validator (its message on malformed XML), the parser, then the shape's checks. */
export function parseGeneralOfflineXml(text: string): XmlFields {
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

// ---- the plain document, read without the general parser ------------------------------------------------------

/** An XML declaration of version 1.0 with an optional encoding and standalone (one space between parts). */
const PLAIN_DECLARATION =
  /<\?xml version=(?:"1\.0"|'1\.0')(?: encoding=(?:"[A-Za-z][A-Za-z0-9._-]*"|'[A-Za-z][A-Za-z0-9._-]*'))?(?: standalone=(?:"(?:yes|no)"|'(?:yes|no)'))? ?\?>/y;
/** A start tag without attributes, or an empty-element tag: `<Name>`, `<Name/>`. ASCII names only. */
const PLAIN_TAG = /<([A-Za-z_][A-Za-z0-9_.-]*)(\/?)>/y;
/** Character data without markup, references or control characters (the rest is the parser's). */
// eslint-disable-next-line no-control-regex -- control characters are exactly what it leaves to the parser
const PLAIN_TEXT = /[^<>&\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*/y;
const XML_SPACE = /[ \t\r\n]*/y;

/** Names the general parser treats specially or that are Object.prototype's: left to it. */
const isPlainName = (name: string) => !Object.hasOwn(Object.prototype, name) && !name.startsWith('__');

/**
 * The common request document, read by a scanner: an optional declaration at the very start, `<xml>`, its
 * children (`head` once; the others ignored), each an empty element, a text or a list of text elements, then
 * only whitespace. Names are ASCII without attributes; texts have no markup, references or control
 * characters (CR only around a value); head fields appear once. Values are trimmed as the parser trims them. Anything else: null (the
 * general parser decides, including every refusal).
 */
export function readPlainOfflineXml(text: string): XmlFields | null {
  let at = 0;
  const space = () => {
    XML_SPACE.lastIndex = at;
    XML_SPACE.test(text);
    at = XML_SPACE.lastIndex;
  };
  /** A tag at `at`: its name and whether it is empty (`<x/>`), or null. */
  const tag = (): { name: string; empty: boolean } | null => {
    PLAIN_TAG.lastIndex = at;
    const m = PLAIN_TAG.exec(text);
    if (!m || !isPlainName(m[1] ?? '')) return null;
    at = PLAIN_TAG.lastIndex;
    return { name: m[1] ?? '', empty: m[2] === '/' };
  };
  const close = (name: string): boolean => {
    const end = `</${name}>`;
    if (!text.startsWith(end, at)) return false;
    at += end.length;
    return true;
  };
  /** Text up to the next `<`, trimmed; null if it holds what the general parser must read. */
  const chars = (): string | null => {
    PLAIN_TEXT.lastIndex = at;
    PLAIN_TEXT.test(text);
    const end = PLAIN_TEXT.lastIndex;
    if (text.charCodeAt(end) !== 0x3c) return null; // not followed by a tag: '&', '>', a control character, the end
    const value = text.slice(at, end).trim();
    at = end;
    return value.includes('\r') ? null : value; // CR inside a value: line ends are the parser's
  };
  /** The content of an element whose start tag was read: its text, or its text elements (into `into`). */
  const content = (name: string, into: XmlFields | null): boolean => {
    const start = at;
    const value = chars();
    if (value === null) return false;
    if (close(name)) {
      // A text: the head as text is the parser's (refused or empty); a field's text is its value.
      return into === null || value === '';
    }
    if (value !== '') return false; // text mixed with elements
    at = start;
    for (;;) {
      space();
      if (close(name)) return true;
      const child = tag();
      if (!child) return false;
      let v = '';
      if (!child.empty) {
        const t = chars();
        if (t === null || !close(child.name)) return false;
        v = t;
      }
      if (into) {
        if (into.has(child.name)) return false; // repeated: the parser's refusal
        into.set(child.name, v);
      }
    }
  };

  if (text.startsWith('<?xml')) {
    PLAIN_DECLARATION.lastIndex = 0;
    if (!PLAIN_DECLARATION.test(text)) return null;
    at = PLAIN_DECLARATION.lastIndex;
    space();
  }
  if (!text.startsWith('<xml>', at)) return null;
  at += 5;
  let fields: XmlFields | null = null;
  for (;;) {
    space();
    if (close('xml')) break;
    const el = tag();
    if (!el) return null;
    const isHead = el.name === 'head';
    if (isHead && fields) return null; // two heads: the parser's refusal
    const into: XmlFields | null = isHead ? new Map() : null;
    if (!el.empty && !content(el.name, into)) return null;
    if (isHead) fields = into;
  }
  space();
  if (at !== text.length || fields === null) return null;
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
  const doc = { xml: { head, body, sign: '' } };
  const xml = writePlain(doc, 0) ?? (builder.build(doc) as string);
  return `<?xml version="1.0" encoding="utf-8"?>\n${xml}`;
}

/** The same document by the general builder only (the reference the direct writer is tested against). */
export function buildOfflineXmlGeneral(head: XmlObject, body: XmlObject): string {
  return `<?xml version="1.0" encoding="utf-8"?>\n${builder.build({ xml: { head, body, sign: '' } }) as string}`;
}

const MARKUP = /[&<>'"]/;
const MARKUP_ALL = /[&<>'"]/g;
const ENTITY: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  "'": '&apos;',
  '"': '&quot;',
};
const escapeText = (s: string) => (MARKUP.test(s) ? s.replace(MARKUP_ALL, (c) => ENTITY[c] ?? c) : s);

/**
 * The answer as the builder writes it (format on, two-space indent, `<x></x>` for an empty value or element,
 * & < > ' " escaped), by direct concatenation; null for what it leaves to the builder (names it treats
 * specially: `#text`, `?…`, `@_…`; values other than text and elements). test/unit/offline-xml.test.ts
 * compares the two.
 */
function writePlain(obj: Readonly<Record<string, unknown>>, level: number): string | null {
  const indent = '  '.repeat(level);
  let out = '';
  for (const key in obj) {
    if (!Object.hasOwn(obj, key)) continue;
    const v = obj[key];
    if (v === undefined) continue;
    if (key === '#text' || key.startsWith('?') || key.startsWith('@_')) return null;
    if (typeof v === 'string') {
      out += v === '' ? `${indent}<${key}></${key}>\n` : `${indent}<${key}>${escapeText(v)}</${key}>\n`;
    } else if (typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date)) {
      const inner = writePlain(v as Record<string, unknown>, level + 1);
      if (inner === null) return null;
      out +=
        inner === '' ? `${indent}<${key}></${key}>\n` : `${indent}<${key}>\n${inner}${indent}</${key}>\n`;
    } else return null;
  }
  return out;
}
