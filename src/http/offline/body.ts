import iconv from 'iconv-lite';
import { Errors } from '../../domain/errors.js';
import { XmlErrors, charsetOf, declaredEncoding, type XmlCharset } from '../../formats/xml.js';

/**
 * The bytes of the XML door (POST /offline/<Name>): a request body to the document's text, and the answer's
 * text to bytes in the request's encoding. Which body is read:
 *
 * - `text/xml`, `application/xml`: the body is the document;
 * - `application/x-www-form-urlencoded` or no Content-Type (.NET WebClient sends none, Java's
 *   HttpURLConnection sends the form type): the document itself when the body starts with `<` (after an
 *   optional BOM and whitespace), else the one form field `xml` (percent-decoded to bytes, then read like a
 *   body);
 * - anything else: UNSUPPORTED_CONTENT_TYPE, which says to send text/xml.
 *
 * The document's encoding: the XML declaration's, else the Content-Type charset (when it names an encoding the
 * door reads), else UTF-8. A UTF-8 BOM means UTF-8. The bytes must decode strictly in that encoding; see
 * decodeXmlDocument for what else is refused.
 */

const UTF8_BOM = [0xef, 0xbb, 0xbf] as const;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The media type (lower case) and charset parameter of a Content-Type header. */
export function parseContentType(header: string | undefined): { type: string; charset?: string } {
  const [type = '', ...params] = (header ?? '').split(';');
  let charset: string | undefined;
  for (const p of params) {
    const eq = p.indexOf('=');
    if (eq < 0 || p.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    charset = p
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1');
  }
  return { type: type.trim().toLowerCase(), ...(charset ? { charset } : {}) };
}

const hasUtf8Bom = (b: Uint8Array) => b[0] === UTF8_BOM[0] && b[1] === UTF8_BOM[1] && b[2] === UTF8_BOM[2];
const hasUtf16Bom = (b: Uint8Array) => (b[0] === 0xff && b[1] === 0xfe) || (b[0] === 0xfe && b[1] === 0xff);
const isSpace = (c: number | undefined) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/** The body is a document, not a form: `<` first, after an optional BOM and whitespace. */
function startsAsDocument(b: Uint8Array): boolean {
  if (hasUtf16Bom(b)) return true; // a UTF-16 document: read as one, to be refused for its encoding
  let i = hasUtf8Bom(b) ? 3 : 0;
  while (i < b.length && isSpace(b[i])) i++;
  return b[i] === 0x3c;
}

const hexValue = (c: number | undefined): number =>
  c === undefined
    ? -1
    : c >= 0x30 && c <= 0x39
      ? c - 0x30
      : c >= 0x41 && c <= 0x46
        ? c - 0x37
        : c >= 0x61 && c <= 0x66
          ? c - 0x57
          : -1;

/** application/x-www-form-urlencoded decoding to bytes (`+` is a space; a broken `%` escape stays as it is). */
function percentDecode(b: Uint8Array): Buffer {
  const out = Buffer.alloc(b.length);
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i] ?? 0;
    const hi = c === 0x25 ? hexValue(b[i + 1]) : -1;
    const lo = c === 0x25 ? hexValue(b[i + 2]) : -1;
    if (hi >= 0 && lo >= 0) {
      out[n++] = hi * 16 + lo;
      i += 2;
    } else out[n++] = c === 0x2b ? 0x20 : c;
  }
  return out.subarray(0, n);
}

/**
 * The values of one form field, as bytes: the charset of a form is the sender's (the Content-Type charset or the
 * document's own declaration), so they are decoded with the document, not here.
 */
function formField(body: Uint8Array, name: string): Buffer[] {
  const values: Buffer[] = [];
  let start = 0;
  while (start <= body.length) {
    let end = body.indexOf(0x26, start);
    if (end < 0) end = body.length;
    const pair = body.subarray(start, end);
    const eq = pair.indexOf(0x3d);
    const key = percentDecode(eq < 0 ? pair : pair.subarray(0, eq)).toString('latin1');
    if (key === name) values.push(percentDecode(eq < 0 ? new Uint8Array(0) : pair.subarray(eq + 1)));
    start = end + 1;
  }
  return values;
}

/** CJK ideographs (basic block and extension A): what Chinese text read as UTF-8 is made of. */
const CJK = /[\u3400-\u4dbf\u4e00-\u9fff]/;

function decodeAs(bytes: Uint8Array, charset: XmlCharset): string {
  if (charset === 'utf-8') {
    try {
      return strictUtf8.decode(bytes);
    } catch {
      throw XmlErrors.notDecodable(charset);
    }
  }
  // Declared GB but written in UTF-8: the bytes are valid UTF-8, and read so they hold Chinese. Real GBK text
  // almost never does (text of the 3,755 common hanzi never; see docs/offline-interfaces.md), while UTF-8
  // Chinese always does. Checked first: such bytes often do not decode as GBK either, and this is the reason.
  if (bytes.some((b) => b >= 0x80)) {
    let asUtf8: string | null;
    try {
      asUtf8 = strictUtf8.decode(bytes);
    } catch {
      asUtf8 = null;
    }
    if (asUtf8 !== null && CJK.test(asUtf8)) throw XmlErrors.utf8Declared(charset);
  }
  // GB2312 is read as GBK, its superset. iconv-lite writes U+FFFD for bytes it cannot read: refused (GBK has no
  // U+FFFD of its own; a GB18030 request that writes U+FFFD itself is refused too).
  const text = iconv.decode(Buffer.from(bytes), charset === 'GB18030' ? 'gb18030' : 'gbk');
  if (text.includes('\ufffd')) throw XmlErrors.notDecodable(charset);
  return text;
}

/**
 * The bytes of one XML document -> its text. `answerIn` learns the encoding as soon as it is known, so that even
 * a refusal is answered in the encoding the request declared. Refused (XML_ENCODING): a UTF-16 BOM, an encoding
 * other than UTF-8 / GBK / GB2312 / GB18030, a UTF-8 BOM with a GB declaration, bytes that do not decode, GB
 * declared over UTF-8 Chinese, a NUL character. (Any door reading XML bytes may use it.)
 */
export function decodeXmlDocument(
  bytes: Uint8Array,
  contentTypeCharset: string | undefined,
  answerIn: (charset: XmlCharset) => void = () => undefined,
): string {
  if (hasUtf16Bom(bytes)) throw XmlErrors.unsupportedEncoding('UTF-16');
  const bom = hasUtf8Bom(bytes);
  const rest = bom ? bytes.subarray(3) : bytes;
  // The declaration is ASCII in every encoding the door reads: read it from the first bytes as Latin-1.
  const declared = declaredEncoding(Buffer.from(rest.subarray(0, 256)).toString('latin1'));
  let charset: XmlCharset = 'utf-8';
  if (declared !== undefined) {
    const named = charsetOf(declared);
    if (named === null) throw XmlErrors.unsupportedEncoding(declared);
    charset = named;
  } else if (!bom && contentTypeCharset !== undefined) {
    // Without a declaration the Content-Type charset says it; one the door does not read is ignored (UTF-8).
    charset = charsetOf(contentTypeCharset) ?? 'utf-8';
  }
  answerIn(charset);
  if (bom && charset !== 'utf-8') throw XmlErrors.bomConflict(charset);
  const text = decodeAs(rest, charset);
  if (text.includes('\u0000')) throw XmlErrors.nul();
  return text;
}

/**
 * A request body -> the document's text (see the top of this file). `answerIn` is told the encoding the answer
 * is to be written in (UTF-8 until a document's encoding is known).
 */
export function readOfflineBody(
  body: unknown,
  contentType: string | undefined,
  answerIn: (charset: XmlCharset) => void,
): string {
  if (!Buffer.isBuffer(body) || body.length === 0) throw XmlErrors.empty();
  const { type, charset } = parseContentType(contentType);
  if (type === 'text/xml' || type === 'application/xml') return decodeXmlDocument(body, charset, answerIn);
  if (type !== 'application/x-www-form-urlencoded' && type !== '') throw XmlErrors.contentType();
  if (body.every((c) => isSpace(c))) throw XmlErrors.empty();
  if (startsAsDocument(body)) return decodeXmlDocument(body, charset, answerIn);
  const values = formField(body, 'xml');
  if (values.length === 0) throw XmlErrors.contentType();
  if (values.length > 1) throw Errors.repeatedField('xml');
  return decodeXmlDocument(values[0] ?? new Uint8Array(0), charset, answerIn);
}

/**
 * The answer's text (as built, declaring utf-8) -> the body and Content-Type to send, in the request's
 * encoding (UTF-8: the text, which the server writes as UTF-8). A character the encoding cannot carry is written as a character reference (`&#x20BB7;`), never
 * lost: GBK lacks the rarest hanzi (CJK extension B and later), a GB2312 answer uses only GB2312's rows (A1–A9
 * symbols, B0–F7 hanzi), so GBK-only characters such as 镕 go as references too. GB18030 carries everything.
 */
export function encodeOfflineAnswer(
  text: string,
  charset: XmlCharset,
): { body: Buffer | string; contentType: string } {
  // UTF-8: the text itself (the server writes it as UTF-8, with the headers in one write).
  if (charset === 'utf-8') return { body: text, contentType: 'text/xml; charset=utf-8' };
  const declared = text.replace(
    /^<\?xml version="1\.0" encoding="utf-8"\?>/,
    `<?xml version="1.0" encoding="${charset}"?>`,
  );
  return {
    body: iconv.encode(carried(declared, charset), charset === 'GB18030' ? 'gb18030' : 'gbk'),
    contentType: `text/xml; charset=${charset}`,
  };
}

/** Whether the answer's encoding carries a (non-ASCII) character as itself, in what every decoder of it reads. */
function canCarry(ch: string, charset: XmlCharset): boolean {
  const codec = charset === 'GB18030' ? 'gb18030' : 'gbk';
  const bytes = iconv.encode(ch, codec);
  if (iconv.decode(bytes, codec) !== ch) return false; // iconv-lite writes '?' for what it cannot encode
  if (charset === 'GB18030') return true;
  const [lead = 0, trail = 0] = bytes;
  // Two bytes only: the one-byte 0x80 (€ in Windows' code page 936) is not GBK to every reader.
  if (bytes.length !== 2) return false;
  if (charset === 'GBK')
    return lead >= 0x81 && lead <= 0xfe && trail >= 0x40 && trail <= 0xfe && trail !== 0x7f;
  // GB2312: rows A1–A9 (symbols) and B0–F7 (hanzi), both bytes A1–FE.
  return ((lead >= 0xa1 && lead <= 0xa9) || (lead >= 0xb0 && lead <= 0xf7)) && trail >= 0xa1 && trail <= 0xfe;
}

function carried(text: string, charset: XmlCharset): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    if (cp < 0x80) {
      out += ch;
      continue;
    }
    // A lone surrogate (from a request's &#xD800;) is not a character: U+FFFD, as a UTF-8 answer writes it.
    if (cp >= 0xd800 && cp <= 0xdfff) {
      out += charset === 'GB18030' ? '\ufffd' : '&#xFFFD;';
      continue;
    }
    out += canCarry(ch, charset) ? ch : `&#x${cp.toString(16).toUpperCase()};`;
  }
  return out;
}
