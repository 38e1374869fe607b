/**
 * The hostile input corpus of the reliability battery (issue items 8 and 11), as data: what is sent to each
 * door and the one error code each case must get. Shared by hostile-input.test.ts and logs.test.ts; the amount
 * families are shared by the unit and the door-level amount tests.
 *
 * A body is either fixed bytes/text or built from a small context (the AccessToken, a signed form), so the same
 * case can be replayed against any platform and any number of times.
 */
import fc from 'fast-check';

// ---------------------------------------------------------------------------------------------------------------
// The offline XML door: POST /offline/<Name>
// ---------------------------------------------------------------------------------------------------------------

export interface OfflineContext {
  /** The test app's AccessToken. */
  token: string;
  /** A complete, valid FWC_IF_Barcode_Pay head (a fresh OutTradeNo each call), AccessToken included. */
  validFields: () => Record<string, string>;
  /** The XML document of the given head fields (values escaped). */
  doc: (fields: Record<string, string>) => string;
}

export interface OfflineCase {
  label: string;
  family: string;
  /** The interface name in the path (default FWC_IF_Barcode_Pay). */
  iface?: string;
  /** The Content-Type header; null sends none (default text/xml). */
  contentType?: string | null;
  body: string | Buffer | ((c: OfflineContext) => string | Buffer);
  /** The SubCode the answer must carry. */
  expect: string;
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const bytes = (...parts: Array<string | number[] | Buffer>) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
const nest = (n: number, tag = 'a') => `${`<${tag}>`.repeat(n)}x${`</${tag}>`.repeat(n)}`;
/** The valid head with one field replaced by raw (unescaped) XML. */
const withRaw = (c: OfflineContext, field: string, rawXml: string) =>
  c.doc(c.validFields()).replace(new RegExp(`<${field}>[^<]*</${field}>`), `<${field}>${rawXml}</${field}>`);

const BILLION_LAUGHS = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<xml><head><Caption>&lol9;</Caption></head></xml>`;

const QUADRATIC = `<!DOCTYPE q [<!ENTITY a "${'a'.repeat(30_000)}">]><xml><head><Caption>${'&a;'.repeat(3_000)}</Caption></head></xml>`;

export const OFFLINE_CORPUS: OfflineCase[] = [
  // Entities and DTDs: refused before any parsing.
  { label: 'billion laughs', family: 'entities', body: BILLION_LAUGHS, expect: 'XML_DOCTYPE_FORBIDDEN' },
  { label: 'quadratic blow-up', family: 'entities', body: QUADRATIC, expect: 'XML_DOCTYPE_FORBIDDEN' },
  {
    label: 'external entity (file)',
    family: 'entities',
    body: '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><head><Caption>&xxe;</Caption></head></xml>',
    expect: 'XML_DOCTYPE_FORBIDDEN',
  },
  {
    label: 'external entity (http)',
    family: 'entities',
    body: '<!DOCTYPE x [<!ENTITY xxe SYSTEM "http://127.0.0.1:1/secret">]><xml><head><AccessToken>&xxe;</AccessToken></head></xml>',
    expect: 'XML_DOCTYPE_FORBIDDEN',
  },
  {
    label: 'parameter entity',
    family: 'entities',
    body: '<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:1/evil.dtd"> %p;]><xml><head/></xml>',
    expect: 'XML_DOCTYPE_FORBIDDEN',
  },
  {
    label: 'external DTD',
    family: 'entities',
    body: '<!DOCTYPE xml SYSTEM "http://127.0.0.1:1/x.dtd"><xml><head/></xml>',
    expect: 'XML_DOCTYPE_FORBIDDEN',
  },
  {
    label: 'public DTD',
    family: 'entities',
    body: '<!DOCTYPE xml PUBLIC "-//X//DTD X//EN" "http://127.0.0.1:1/x.dtd"><xml><head/></xml>',
    expect: 'XML_DOCTYPE_FORBIDDEN',
  },
  {
    label: 'mixed-case doctype',
    family: 'entities',
    body: '<!DoCtYpE xml><xml><head/></xml>',
    expect: 'XML_DOCTYPE_FORBIDDEN',
  },
  {
    label: 'entity without doctype',
    family: 'entities',
    body: '<!ENTITY a "b"><xml><head/></xml>',
    expect: 'XML_DOCTYPE_FORBIDDEN',
  },
  {
    label: 'internal entity for an amount',
    family: 'entities',
    body: (c) =>
      `<!DOCTYPE x [<!ENTITY fee "1">]>${withRaw(c, 'TotalAmount', '&fee;00').replace(/^<\?xml[^>]*>/, '')}`,
    expect: 'XML_DOCTYPE_FORBIDDEN',
  },
  {
    label: 'billion laughs after a BOM',
    family: 'entities',
    body: bytes(BOM, BILLION_LAUGHS),
    expect: 'XML_DOCTYPE_FORBIDDEN',
  },
  {
    label: 'billion laughs in the form field xml',
    family: 'entities',
    contentType: 'application/x-www-form-urlencoded',
    body: `xml=${encodeURIComponent(BILLION_LAUGHS)}`,
    expect: 'XML_DOCTYPE_FORBIDDEN',
  },
  {
    label: 'XInclude in a field',
    family: 'entities',
    body: (c) =>
      withRaw(
        c,
        'Caption',
        '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"/>',
      ),
    expect: 'INVALID_FIELD.Caption',
  },
  // Nesting.
  {
    label: 'deep nesting (9,000 levels)',
    family: 'nesting',
    body: `<xml><head>${nest(9_000)}</head></xml>`,
    expect: 'XML_MALFORMED',
  },
  {
    label: 'nesting just over the limit',
    family: 'nesting',
    body: `<xml><head>${nest(17)}</head></xml>`,
    expect: 'XML_MALFORMED',
  },
  {
    label: 'deep nesting in body',
    family: 'nesting',
    body: `<xml><head/><body>${nest(9_000)}</body></xml>`,
    expect: 'XML_MALFORMED',
  },
  {
    label: 'a field with child elements',
    family: 'nesting',
    body: (c) => withRaw(c, 'OutTradeNo', '<x>MZ1</x>'),
    expect: 'INVALID_FIELD.OutTradeNo',
  },
  // Huge bodies and huge parts.
  {
    label: '70 KB body',
    family: 'size',
    body: `<xml><head><Caption>${'x'.repeat(70_000)}</Caption></head></xml>`,
    expect: 'REQUEST_TOO_LARGE',
  },
  {
    label: '10 MB body',
    family: 'size',
    body: Buffer.alloc(10 * 1024 * 1024, 0x78),
    expect: 'REQUEST_TOO_LARGE',
  },
  {
    label: '60 KB field value',
    family: 'size',
    body: (c) => c.doc({ ...c.validFields(), Caption: '长'.repeat(20_000) }),
    expect: 'INVALID_FIELD.Caption',
  },
  {
    label: '9,000 entity references in a field',
    family: 'size',
    body: (c) => withRaw(c, 'Caption', '&amp;'.repeat(9_000)),
    expect: 'INVALID_FIELD.Caption',
  },
  {
    label: '60 KB comment',
    family: 'size',
    body: `<xml><!--${'x'.repeat(60_000)}--><head/></xml>`,
    expect: 'ACCESS_TOKEN_INVALID',
  },
  {
    label: '3,000 attributes',
    family: 'size',
    body: `<xml><head ${Array.from({ length: 3_000 }, (_, i) => `a${i}="1"`).join(' ')}/></xml>`,
    expect: 'ACCESS_TOKEN_INVALID',
  },
  {
    label: '4,000 unknown fields',
    family: 'size',
    body: (c) =>
      `<xml><head><AccessToken>${c.token}</AccessToken>${Array.from({ length: 4_000 }, (_, i) => `<f${i}>1</f${i}>`).join('')}</head></xml>`,
    expect: 'MISSING_FIELD.OutTradeNo',
  },
  // Repeated fields.
  {
    label: 'repeated TotalAmount',
    family: 'repeated',
    body: (c) =>
      c
        .doc(c.validFields())
        .replace(/(<TotalAmount>[^<]*<\/TotalAmount>)/, '$1<TotalAmount>0.01</TotalAmount>'),
    expect: 'REPEATED_FIELD.TotalAmount',
  },
  {
    label: 'repeated AccessToken',
    family: 'repeated',
    body: (c) =>
      `<xml><head><AccessToken>${c.token}</AccessToken><AccessToken>${c.token}</AccessToken></head></xml>`,
    expect: 'REPEATED_FIELD.AccessToken',
  },
  {
    label: 'one field 5,000 times',
    family: 'repeated',
    body: `<xml><head>${'<X>1</X>'.repeat(5_000)}</head></xml>`,
    expect: 'REPEATED_FIELD.X',
  },
  {
    label: 'two heads',
    family: 'repeated',
    body: '<xml><head/><head/></xml>',
    expect: 'REPEATED_FIELD.head',
  },
  {
    label: 'repeated attribute',
    family: 'repeated',
    body: '<xml><head a="1" a="2"/></xml>',
    expect: 'XML_MALFORMED',
  },
  {
    label: 'two form fields xml',
    family: 'repeated',
    contentType: 'application/x-www-form-urlencoded',
    body: 'xml=%3Cxml%2F%3E&xml=%3Cxml%2F%3E',
    expect: 'REPEATED_FIELD.xml',
  },
  // Prototype keys.
  {
    label: '__proto__ element with a child',
    family: 'prototype',
    body: '<xml><head><__proto__><polluted>1</polluted></__proto__></head></xml>',
    expect: 'XML_MALFORMED',
  },
  {
    label: '__proto__ element with text',
    family: 'prototype',
    body: '<xml><head><__proto__>1</__proto__></head></xml>',
    expect: 'XML_MALFORMED',
  },
  {
    label: 'constructor element',
    family: 'prototype',
    body: '<xml><head><constructor><prototype>1</prototype></constructor></head></xml>',
    expect: 'XML_MALFORMED',
  },
  {
    label: 'hasOwnProperty element',
    family: 'prototype',
    body: (c) =>
      `<xml><head><AccessToken>${c.token}</AccessToken><hasOwnProperty>1</hasOwnProperty></head></xml>`,
    expect: 'MISSING_FIELD.OutTradeNo',
  },
  {
    label: 'interface named __proto__',
    family: 'prototype',
    iface: '__proto__',
    body: (c) => c.doc(c.validFields()),
    expect: 'UNKNOWN_INTERFACE',
  },
  {
    label: 'interface named constructor',
    family: 'prototype',
    iface: 'constructor',
    body: (c) => c.doc(c.validFields()),
    expect: 'UNKNOWN_INTERFACE',
  },
  {
    label: 'interface named toString',
    family: 'prototype',
    iface: 'toString',
    body: (c) => c.doc(c.validFields()),
    expect: 'UNKNOWN_INTERFACE',
  },
  {
    label: 'interface name with path traversal',
    family: 'prototype',
    iface: '..%2F..%2Fetc%2Fpasswd',
    body: (c) => c.doc(c.validFields()),
    expect: 'UNKNOWN_INTERFACE',
  },
  // Byte-order marks.
  {
    label: 'BOM and a wrong root',
    family: 'bom',
    body: bytes(BOM, '<root><head/></root>'),
    expect: 'XML_ROOT',
  },
  {
    label: 'two BOMs',
    family: 'bom',
    body: bytes(BOM, BOM, '<xml><head/></xml>'),
    expect: 'ACCESS_TOKEN_INVALID',
  },
  {
    label: 'UTF-16 BOM and UTF-16 text',
    family: 'bom',
    body: bytes([0xff, 0xfe], Buffer.from('<xml><head/></xml>', 'utf16le')),
    expect: 'XML_ENCODING',
  },
  // NUL.
  {
    label: 'NUL byte',
    family: 'nul',
    body: '<xml><head><Caption>a\u0000b</Caption></head></xml>',
    expect: 'XML_ENCODING',
  },
  {
    label: 'NUL in the form field',
    family: 'nul',
    contentType: 'application/x-www-form-urlencoded',
    body: 'xml=%3Cxml%3E%00%3C%2Fxml%3E',
    expect: 'XML_ENCODING',
  },
  {
    label: 'NUL character reference as the token',
    family: 'nul',
    body: '<xml><head><AccessToken>&#0;</AccessToken></head></xml>',
    expect: 'XML_MALFORMED', // &#0; is not an XML character; refused before anything is read
  },
  // Invalid UTF-8 and other encodings.
  {
    label: 'invalid UTF-8 bytes',
    family: 'utf8',
    body: bytes('<xml><head><Caption>', [0xc3, 0x28, 0xff], '</Caption></head></xml>'),
    expect: 'XML_ENCODING',
  },
  {
    label: 'overlong UTF-8',
    family: 'utf8',
    body: bytes('<xml><head><Caption>', [0xc0, 0xaf], '</Caption></head></xml>'),
    expect: 'XML_ENCODING',
  },
  {
    label: 'UTF-8 encoded surrogate (CESU-8)',
    family: 'utf8',
    body: bytes('<xml><head><Caption>', [0xed, 0xa0, 0x80], '</Caption></head></xml>'),
    expect: 'XML_ENCODING',
  },
  {
    label: 'truncated multi-byte character',
    family: 'utf8',
    body: bytes('<xml><head><Caption>', [0xe4, 0xb8], '</Caption></head></xml>'),
    expect: 'XML_ENCODING',
  },
  {
    label: 'GBK bytes',
    family: 'utf8',
    body: bytes('<xml><head><Caption>', [0xd6, 0xd0, 0xce, 0xc4], '</Caption></head></xml>'),
    expect: 'XML_ENCODING',
  },
  {
    label: 'GBK declared over UTF-8 bytes',
    family: 'utf8',
    body: '<?xml version="1.0" encoding="GBK"?><xml><head><Caption>门诊缴费</Caption></head></xml>',
    expect: 'XML_ENCODING',
  },
  {
    label: 'GBK declared, bytes not GBK',
    family: 'utf8',
    body: bytes(
      '<?xml version="1.0" encoding="GBK"?><xml><head><Caption>',
      [0xd6, 0xff],
      '</Caption></head></xml>',
    ),
    expect: 'XML_ENCODING',
  },
  {
    label: 'UTF-16 declared',
    family: 'utf8',
    body: '<?xml version="1.0" encoding="UTF-16"?><xml><head/></xml>',
    expect: 'XML_ENCODING',
  },
  {
    label: 'broken %-escape in the form field',
    family: 'utf8',
    contentType: 'application/x-www-form-urlencoded',
    body: 'xml=%3Cxml%3E%E4%B8%3C%2Fxml%3E',
    expect: 'XML_ENCODING',
  },
  // Wrong roots and broken documents.
  { label: 'wrong root', family: 'root', body: '<root><head/></root>', expect: 'XML_ROOT' },
  { label: 'root in upper case', family: 'root', body: '<XML><head/></XML>', expect: 'XML_ROOT' },
  {
    label: 'namespaced root',
    family: 'root',
    body: '<x:xml xmlns:x="urn:x"><head/></x:xml>',
    expect: 'XML_ROOT',
  },
  { label: 'no head', family: 'root', body: '<xml><body/></xml>', expect: 'XML_ROOT' },
  {
    label: 'two roots',
    family: 'root',
    body: '<xml><head/></xml><xml><head/></xml>',
    expect: 'XML_MALFORMED',
  },
  {
    label: 'unclosed CDATA',
    family: 'root',
    body: '<xml><head><Caption><![CDATA[abc</Caption></head></xml>',
    expect: 'XML_MALFORMED',
  },
  { label: 'plain text', family: 'root', body: 'hello', expect: 'XML_MALFORMED' },
  { label: 'empty body', family: 'root', body: '', expect: 'XML_EMPTY' },
  { label: 'whitespace body', family: 'root', body: ' \r\n\t ', expect: 'XML_EMPTY' },
  // Content types, and JSON where XML or a form belongs.
  {
    label: 'JSON content type',
    family: 'content-type',
    contentType: 'application/json',
    body: '{"AccessToken":"x"}',
    expect: 'UNSUPPORTED_CONTENT_TYPE',
  },
  {
    label: 'no content type, JSON body',
    family: 'content-type',
    contentType: null,
    body: (c) => Buffer.from(JSON.stringify(c.validFields())),
    expect: 'UNSUPPORTED_CONTENT_TYPE',
  },
  {
    label: 'text/plain',
    family: 'content-type',
    contentType: 'text/plain',
    body: (c) => c.doc(c.validFields()),
    expect: 'UNSUPPORTED_CONTENT_TYPE',
  },
  {
    label: 'multipart form',
    family: 'content-type',
    contentType: 'multipart/form-data; boundary=b',
    body: '--b\r\nContent-Disposition: form-data; name="xml"\r\n\r\n<xml><head/></xml>\r\n--b--\r\n',
    expect: 'UNSUPPORTED_CONTENT_TYPE',
  },
  {
    label: 'JSON in place of the form',
    family: 'json',
    contentType: 'application/x-www-form-urlencoded',
    body: (c) => JSON.stringify({ xml: c.doc(c.validFields()) }),
    expect: 'UNSUPPORTED_CONTENT_TYPE',
  },
  {
    label: 'JSON in place of XML',
    family: 'json',
    body: (c) => JSON.stringify(c.validFields()),
    expect: 'XML_MALFORMED',
  },
  // Hostile values in a well-formed document.
  {
    label: 'SQL in OutTradeNo',
    family: 'values',
    body: (c) => c.doc({ ...c.validFields(), OutTradeNo: "MZ1'; DROP TABLE trades; --" }),
    expect: 'INVALID_FIELD.OutTradeNo',
  },
  {
    label: 'amount with an exponent',
    family: 'values',
    body: (c) => c.doc({ ...c.validFields(), TotalAmount: '1e3' }),
    expect: 'INVALID_FIELD.TotalAmount',
  },
  {
    label: 'amount in full-width digits',
    family: 'values',
    body: (c) => c.doc({ ...c.validFields(), TotalAmount: '８８.８８' }),
    expect: 'INVALID_FIELD.TotalAmount',
  },
  {
    label: 'amount above 2^53',
    family: 'values',
    body: (c) => c.doc({ ...c.validFields(), TotalAmount: '9007199254740993' }),
    expect: 'INVALID_FIELD.TotalAmount',
  },
  {
    label: 'control character in a name',
    family: 'values',
    body: (c) => c.doc({ ...c.validFields(), PatientName: '张\u0001三' }),
    expect: 'INVALID_FIELD.PatientName',
  },
];

// ---------------------------------------------------------------------------------------------------------------
// The signed gateway: POST /gateway
// ---------------------------------------------------------------------------------------------------------------

export interface GatewayContext {
  appId: string;
  /** A correctly signed form body (URL-encoded) with a fresh nonce and the current time. */
  form: (biz: string, over?: Record<string, string>, method?: string) => string;
  /** lc.trade.h5.pay biz_content text: a valid one with the given changes (a fresh out_trade_no each call). */
  h5: (over?: Record<string, unknown>) => string;
}

export interface GatewayCase {
  label: string;
  family: string;
  /** Default application/x-www-form-urlencoded; null sends none. */
  contentType?: string | null;
  body: (c: GatewayContext) => string | Buffer;
  /** The gateway code and sub_code the answer must carry. */
  expect: { code: string; sub: string };
}

const isv = (sub: string, code = '40002') => ({ code, sub });
const field = (sub: string) => ({ code: sub.startsWith('MISSING_FIELD') ? '40001' : '40002', sub });
/** The h5 text without one key. */
const h5Without = (c: GatewayContext, key: string) => {
  const o = JSON.parse(c.h5()) as Record<string, unknown>;
  delete o[key];
  return o;
};

export const GATEWAY_CORPUS: GatewayCase[] = [
  // Transport.
  {
    label: 'JSON content type',
    family: 'content-type',
    contentType: 'application/json',
    body: (c) => JSON.stringify({ app_id: c.appId, method: 'lc.trade.query' }),
    expect: isv('isv.invalid-content-type'),
  },
  {
    label: 'billion laughs as text/xml',
    family: 'content-type',
    contentType: 'text/xml',
    body: () => BILLION_LAUGHS,
    expect: isv('isv.invalid-content-type'),
  },
  {
    label: 'no content type',
    family: 'content-type',
    contentType: null,
    body: (c) => Buffer.from(c.form(c.h5())),
    expect: isv('isv.invalid-content-type'),
  },
  {
    label: 'text/plain',
    family: 'content-type',
    contentType: 'text/plain',
    body: (c) => c.form(c.h5()),
    expect: isv('isv.invalid-content-type'),
  },
  {
    label: 'multipart form',
    family: 'content-type',
    contentType: 'multipart/form-data; boundary=b',
    body: (c) => `--b\r\nContent-Disposition: form-data; name="app_id"\r\n\r\n${c.appId}\r\n--b--\r\n`,
    expect: isv('isv.invalid-content-type'),
  },
  {
    label: 'JSON in place of the form',
    family: 'json',
    body: (c) => JSON.stringify({ app_id: c.appId, method: 'lc.trade.h5.pay', biz_content: c.h5() }),
    expect: isv('isv.missing-app-id', '40001'),
  },
  { label: 'empty body', family: 'json', body: () => '', expect: isv('isv.missing-app-id', '40001') },
  {
    label: 'names and values all empty',
    family: 'repeated',
    body: () => '=&=&=',
    expect: isv('isv.repeated-parameter'),
  },
  {
    label: '70 KB body',
    family: 'size',
    body: () => `app_id=${'x'.repeat(70_000)}`,
    expect: isv('isv.request-too-large'),
  },
  {
    label: '10 MB body',
    family: 'size',
    body: () => Buffer.alloc(10 * 1024 * 1024, 0x61),
    expect: isv('isv.request-too-large'),
  },
  {
    label: 'invalid UTF-8 bytes',
    family: 'utf8',
    body: (c) => bytes(c.form(c.h5()), '&x=', [0xc3, 0x28, 0xff]),
    expect: isv('isv.invalid-encoding'),
  },
  {
    label: 'overlong UTF-8',
    family: 'utf8',
    body: () => bytes('app_id=', [0xc0, 0xaf]),
    expect: isv('isv.invalid-encoding'),
  },
  {
    label: 'broken %-escape',
    family: 'utf8',
    body: (c) => c.form(c.h5()).replace(/^/, 'x=%E4%B8&'),
    expect: isv('isv.invalid-encoding'),
  },
  {
    label: '%-encoded surrogate (CESU-8)',
    family: 'utf8',
    body: (c) => `${c.form(c.h5())}&x=%ED%A0%80`,
    expect: isv('isv.invalid-encoding'),
  },
  {
    label: 'NUL as %00',
    family: 'nul',
    body: (c) => `${c.form(c.h5())}&x=a%00b`,
    expect: isv('isv.invalid-encoding'),
  },
  {
    label: 'BOM inside app_id',
    family: 'bom',
    body: (c) => c.form(c.h5(), { app_id: `\ufeff${c.appId}` }),
    expect: isv('isv.invalid-app-id', '20001'),
  },
  {
    label: 'BOM before biz_content',
    family: 'bom',
    body: (c) => c.form(`\ufeff${c.h5()}`),
    expect: field('INVALID_FIELD.biz_content'),
  },
  // Repeated parameters.
  {
    label: 'repeated app_id',
    family: 'repeated',
    body: (c) => `${c.form(c.h5())}&app_id=${c.appId}`,
    expect: isv('isv.repeated-parameter'),
  },
  {
    label: 'repeated sign',
    family: 'repeated',
    body: (c) => `${c.form(c.h5())}&sign=AAAA`,
    expect: isv('isv.repeated-parameter'),
  },
  {
    label: 'repeated biz_content',
    family: 'repeated',
    body: (c) => `${c.form(c.h5())}&biz_content=${encodeURIComponent(c.h5({ total_amount: '0.01' }))}`,
    expect: isv('isv.repeated-parameter'),
  },
  {
    label: 'repeated key in biz_content',
    family: 'repeated',
    body: (c) => c.form(c.h5().replace('{', '{"total_amount":"0.01",')),
    expect: field('INVALID_FIELD.biz_content'),
  },
  // Prototype keys.
  {
    label: '__proto__ parameter',
    family: 'prototype',
    body: (c) => `${c.form(c.h5())}&__proto__=polluted`,
    expect: isv('isv.invalid-signature'),
  },
  {
    label: '__proto__[polluted] parameter',
    family: 'prototype',
    body: (c) => `__proto__%5Bpolluted%5D=1&${c.form(c.h5())}`,
    expect: isv('isv.invalid-signature'),
  },
  {
    label: 'constructor parameter',
    family: 'prototype',
    body: (c) => `${c.form(c.h5())}&constructor=x`,
    expect: isv('isv.invalid-signature'),
  },
  {
    label: 'method __proto__',
    family: 'prototype',
    body: (c) => c.form(c.h5(), {}, '__proto__'),
    expect: isv('isv.invalid-method'),
  },
  {
    label: 'method constructor',
    family: 'prototype',
    body: (c) => c.form(c.h5(), {}, 'constructor'),
    expect: isv('isv.invalid-method'),
  },
  {
    label: 'method hasOwnProperty',
    family: 'prototype',
    body: (c) => c.form(c.h5(), {}, 'hasOwnProperty'),
    expect: isv('isv.invalid-method'),
  },
  {
    label: 'app_id __proto__',
    family: 'prototype',
    body: (c) => c.form(c.h5(), { app_id: '__proto__' }),
    expect: isv('isv.invalid-app-id', '20001'),
  },
  {
    label: 'subject smuggled through __proto__',
    family: 'prototype',
    body: (c) => {
      const rest = JSON.stringify(h5Without(c, 'subject')).slice(1);
      return c.form(`{"__proto__":{"subject":"smuggled"},${rest}`);
    },
    expect: field('MISSING_FIELD.subject'),
  },
  {
    label: 'constructor.prototype in biz_content',
    family: 'prototype',
    body: (c) => {
      const rest = JSON.stringify(h5Without(c, 'subject')).slice(1);
      return c.form(`{"constructor":{"prototype":{"subject":"smuggled"}},${rest}`);
    },
    expect: field('MISSING_FIELD.subject'),
  },
  // Hostile common parameters (signed, so they reach their own check).
  {
    label: '5,000-character app_id',
    family: 'values',
    body: (c) => c.form(c.h5(), { app_id: 'a'.repeat(5_000) }),
    expect: isv('isv.invalid-app-id', '20001'),
  },
  {
    label: 'SQL in app_id',
    family: 'values',
    body: (c) => c.form(c.h5(), { app_id: "' OR '1'='1" }),
    expect: isv('isv.invalid-app-id', '20001'),
  },
  {
    label: 'SQL in nonce_str',
    family: 'values',
    body: (c) => c.form(c.h5(), { nonce_str: "n' OR 1=1 --" }),
    expect: isv('isv.invalid-nonce'),
  },
  {
    label: '65-character nonce_str',
    family: 'values',
    body: (c) => c.form(c.h5(), { nonce_str: 'n'.repeat(65) }),
    expect: isv('isv.invalid-nonce'),
  },
  {
    label: 'impossible timestamp',
    family: 'values',
    body: (c) => c.form(c.h5(), { timestamp: '9999-99-99 99:99:99' }),
    expect: isv('isv.invalid-timestamp'),
  },
  {
    label: 'six-digit year',
    family: 'values',
    body: (c) => c.form(c.h5(), { timestamp: '275760-09-13 00:00:00' }),
    expect: isv('isv.invalid-timestamp'),
  },
  {
    label: 'sign_type with a trailing space',
    family: 'values',
    body: (c) => c.form(c.h5(), { sign_type: 'RSA2 ' }),
    expect: isv('isv.invalid-signature-type'),
  },
  {
    label: 'sign_type in full-width letters',
    family: 'values',
    body: (c) => c.form(c.h5(), { sign_type: 'ＲＳＡ２' }),
    expect: isv('isv.invalid-signature-type'),
  },
  {
    label: '5,000 unsigned parameters',
    family: 'size',
    body: (c) => c.form(c.h5()) + Array.from({ length: 5_000 }, (_, i) => `&p${i}=1`).join(''),
    expect: isv('isv.invalid-signature'),
  },
  {
    label: 'full-width parameter name',
    family: 'values',
    body: (c) => c.form(c.h5()).replace('app_id=', 'app_%EF%BD%89d='),
    expect: isv('isv.missing-app-id', '40001'),
  },
  // biz_content.
  {
    label: 'biz_content not JSON',
    family: 'json',
    body: (c) => c.form('{"out_trade_no":'),
    expect: field('INVALID_FIELD.biz_content'),
  },
  {
    label: 'biz_content a JSON string',
    family: 'json',
    body: (c) => c.form('"hello"'),
    expect: field('INVALID_FIELD.biz_content'),
  },
  {
    label: 'biz_content null',
    family: 'json',
    body: (c) => c.form('null'),
    expect: field('INVALID_FIELD.biz_content'),
  },
  {
    label: 'biz_content trailing garbage',
    family: 'json',
    body: (c) => c.form(`${c.h5()}xyz`),
    expect: field('INVALID_FIELD.biz_content'),
  },
  {
    label: 'biz_content two objects',
    family: 'json',
    body: (c) => c.form(c.h5() + c.h5()),
    expect: field('INVALID_FIELD.biz_content'),
  },
  {
    label: 'billion laughs as biz_content',
    family: 'entities',
    body: (c) => c.form(BILLION_LAUGHS),
    expect: field('INVALID_FIELD.biz_content'),
  },
  {
    label: 'biz_content nested 9,000 deep',
    family: 'nesting',
    body: (c) => c.form(`${'['.repeat(9_000)}${']'.repeat(9_000)}`),
    expect: field('INVALID_FIELD.biz_content'),
  },
  {
    label: 'deeply nested business_params',
    family: 'nesting',
    body: (c) =>
      c.form(c.h5().replace(/}$/, `,"business_params":${'{"a":'.repeat(2_000)}1${'}'.repeat(2_000)}}`)),
    expect: field('INVALID_FIELD.business_params'),
  },
  {
    label: 'NUL escape in subject',
    family: 'nul',
    body: (c) => c.form(c.h5({ subject: 'a\u0000b' })),
    expect: field('INVALID_FIELD.subject'),
  },
  {
    label: 'lone surrogate escape in subject',
    family: 'utf8',
    body: (c) => c.form(c.h5().replace(/"subject":"[^"]*"/, '"subject":"a\\ud800b"')),
    expect: field('INVALID_FIELD.subject'),
  },
  {
    label: 'amount 1e999999',
    family: 'values',
    body: (c) => c.form(c.h5().replace(/"total_amount":"[^"]*"/, '"total_amount":1e999999')),
    expect: field('INVALID_FIELD.total_amount'),
  },
  {
    label: 'amount an object',
    family: 'values',
    body: (c) => c.form(c.h5({ total_amount: { value: '1.00' } })),
    expect: field('INVALID_FIELD.total_amount'),
  },
  {
    label: 'amount an array',
    family: 'values',
    body: (c) => c.form(c.h5({ total_amount: ['1.00'] })),
    expect: field('INVALID_FIELD.total_amount'),
  },
  {
    label: 'amount true',
    family: 'values',
    body: (c) => c.form(c.h5({ total_amount: true })),
    expect: field('INVALID_FIELD.total_amount'),
  },
  {
    label: 'SQL in out_trade_no',
    family: 'values',
    body: (c) => c.form(c.h5({ out_trade_no: "MZ1'; DROP TABLE trades; --" })),
    expect: field('INVALID_FIELD.out_trade_no'),
  },
  {
    label: '10,000-character out_trade_no',
    family: 'size',
    body: (c) => c.form(c.h5({ out_trade_no: 'M'.repeat(10_000) })),
    expect: field('INVALID_FIELD.out_trade_no'),
  },
  {
    label: '40 KB subject',
    family: 'size',
    body: (c) => c.form(c.h5({ subject: 'x'.repeat(40_000) })),
    expect: field('INVALID_FIELD.subject'),
  },
  {
    label: '2,000 unknown keys and no subject',
    family: 'size',
    body: (c) => {
      const o = h5Without(c, 'subject');
      for (let i = 0; i < 2_000; i++) o[`k${i}`] = 1;
      return c.form(JSON.stringify(o));
    },
    expect: field('MISSING_FIELD.subject'),
  },
  {
    label: 'javascript: return_url',
    family: 'values',
    body: (c) => c.form(c.h5({ return_url: 'javascript:alert(document.cookie)' })),
    expect: field('INVALID_FIELD.return_url'),
  },
  // Forgery (issue 11 §1): text that would make a signed answer verify over other parameters (a paid
  // lc.trade.notify). Unauthenticated: the answer is unsigned and echoes nothing unchecked. Authenticated: the
  // answer is signed, but the injected value is not echoed and JSON carries & as \u0026.
  ...(['app_id', 'method', 'nonce_str', 'timestamp'] as const).map((name): GatewayCase => ({
    label: `unauthenticated: a forged notification injected into ${name}`,
    family: 'forgery',
    body: (c) => {
      const p: Record<string, string> = {
        app_id: c.appId,
        method: 'lc.trade.query',
        timestamp: '2026-11-25 10:00:00',
        nonce_str: 'n1',
        biz_content: '{"out_trade_no":"MZ1"}',
        sign_type: 'RSA2',
        sign: 'AAAA',
      };
      p[name] = `${p[name]}${FORGED_NOTIFY}`;
      return new URLSearchParams(p).toString();
    },
    expect: name === 'app_id' ? isv('isv.invalid-app-id', '20001') : isv('isv.invalid-signature'),
  })),
  {
    label: 'authenticated: a forged notification injected into method',
    family: 'forgery',
    body: (c) => c.form('{"out_trade_no":"MZ1"}', {}, `lc.trade.query${FORGED_NOTIFY}`),
    expect: isv('isv.invalid-method'),
  },
  {
    label: 'authenticated: a forged notification injected into nonce_str',
    family: 'forgery',
    body: (c) => c.form('{"out_trade_no":"MZ1"}', { nonce_str: `n${FORGED_NOTIFY}` }, 'lc.trade.query'),
    expect: isv('isv.invalid-nonce'),
  },
  {
    label: 'authenticated: a forged notification injected into timestamp',
    family: 'forgery',
    body: (c) => c.form('{"out_trade_no":"MZ1"}', { timestamp: `2026${FORGED_NOTIFY}` }, 'lc.trade.query'),
    expect: isv('isv.invalid-timestamp'),
  },
  {
    label: "return_url parameters that would split the redirect's signed content",
    family: 'forgery',
    body: (c) => c.form(c.h5({ return_url: `https://his.example.cn/r?x=1%26method%3Dlc.trade.notify` })),
    expect: field('INVALID_FIELD.return_url'),
  },
];

/** What an attacker appends to a value to have a paid lc.trade.notify signed (issue 11 §1). */
export const FORGED_NOTIFY =
  '&biz_content={"out_trade_no":"MZ_UNPAID","trade_status":"TRADE_SUCCESS","total_amount":9999.00}' +
  '&charset=utf-8&method=lc.trade.notify&nonce_str=x&notify_id=forged&sign_type=RSA2' +
  '&timestamp=2026-11-25 10:00:00&version=1.0&~=1';

// ---------------------------------------------------------------------------------------------------------------
// Amounts (item 11): an oracle written independently of src/domain/money.ts, and the hostile families.
// ---------------------------------------------------------------------------------------------------------------

/** The largest amount in fen: 99,999,999.99 yuan. */
export const MAX_FEN_ORACLE = 9_999_999_999n;

/**
 * What a yuan string is worth in fen, or null if it must be refused: ASCII digits, no leading zeros except
 * "0.xx", at most two decimals, greater than zero, at most 99,999,999.99. Computed with BigInt.
 */
export function expectedFen(text: string): number | null {
  const m = /^(0|[1-9][0-9]*)(?:\.([0-9]{1,2}))?$/.exec(text);
  if (!m) return null;
  const fen = BigInt(m[1] ?? '0') * 100n + BigInt((m[2] ?? '').padEnd(2, '0'));
  return fen > 0n && fen <= MAX_FEN_ORACLE ? Number(fen) : null;
}

/** fen → "88.88", written without the code under test. */
export function canonicalYuan(fen: number): string {
  const f = BigInt(fen);
  return `${f / 100n}.${(f % 100n).toString().padStart(2, '0')}`;
}

const digit = fc.constantFrom(...'0123456789'.split(''));
const digits = (min: number, max: number) =>
  fc.array(digit, { minLength: min, maxLength: max }).map((a) => a.join(''));
const fenInRange = fc.integer({ min: 1, max: Number(MAX_FEN_ORACLE) });

/** Every spelling of a valid amount: "88.80", "88.8", "5", "0.05". */
export const validYuan = fenInRange.chain((fen) => {
  const two = canonicalYuan(fen);
  const spellings = [two];
  if (fen % 10 === 0) spellings.push(two.slice(0, -1));
  if (fen % 100 === 0) spellings.push(two.slice(0, -3));
  return fc.constantFrom(...spellings);
});

const FULL_WIDTH = (d: string) => String.fromCharCode(0xff10 + Number(d));
const ARABIC_INDIC = (d: string) => String.fromCharCode(0x0660 + Number(d));
const DEVANAGARI = (d: string) => String.fromCharCode(0x0966 + Number(d));
const MATH_BOLD = (d: string) => String.fromCodePoint(0x1d7ce + Number(d));

/** Replaces at least one ASCII digit of s with the given script's digit. */
const foreignDigits = (map: (d: string) => string) =>
  validYuan.chain((s) =>
    fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }).map((flags) => {
      const chars = [...s];
      const firstDigit = chars.findIndex((ch) => /[0-9]/.test(ch));
      return chars
        .map((ch, i) => (/[0-9]/.test(ch) && (flags[i] || i === firstDigit) ? map(ch) : ch))
        .join('');
    }),
  );

const WHITESPACE = [' ', '\t', '\n', '\r', '\u00a0', '\u3000', '\ufeff', '\u2003', '\u000b', '\u000c'];

/** The hostile families of item 11, each guaranteed to be refused by a correct parser. */
export const HOSTILE_AMOUNTS: Record<string, fc.Arbitrary<string>> = {
  zero: fc.constantFrom('0', '0.0', '0.00'),
  negative: fc.oneof(
    validYuan.map((s) => `-${s}`),
    fc.constantFrom('-0', '-0.00', '−1', '‐1'),
  ),
  'three or more decimals': fc
    .tuple(
      validYuan.map((s) => s.split('.')[0] ?? '1'),
      digits(3, 9),
    )
    .map(([w, f]) => `${w}.${f}`),
  exponent: fc
    .tuple(
      fc.oneof(validYuan, digits(1, 4)),
      fc.constantFrom('e', 'E'),
      fc.constantFrom('', '+', '-'),
      digits(1, 3),
    )
    .map(([m, e, sign, x]) => `${m}${e}${sign}${x}`),
  'leading zeros': fc.oneof(
    fc.tuple(fc.integer({ min: 1, max: 3 }), validYuan).map(([n, s]) => `${'0'.repeat(n)}${s}`),
    fc.constantFrom('00', '00.5', '000.01', '01', '007'),
  ),
  'full-width digits': foreignDigits(FULL_WIDTH),
  'other scripts’ digits': fc.oneof(
    foreignDigits(ARABIC_INDIC),
    foreignDigits(DEVANAGARI),
    foreignDigits(MATH_BOLD),
  ),
  'full-width point': validYuan.filter((s) => s.includes('.')).map((s) => s.replace('.', '．')),
  'above the maximum and 2^53': fc.oneof(
    fc.bigInt({ min: MAX_FEN_ORACLE + 1n, max: 2n ** 60n }).map((f) => canonicalYuan(Number(f))),
    fc.bigInt({ min: 100_000_000n, max: 2n ** 80n }).map((y) => y.toString()),
    fc.constantFrom('9007199254740993', '9007199254740992', '100000000', '100000000.00', '99999999.991'),
  ),
  whitespace: fc
    .tuple(validYuan, fc.constantFrom(...WHITESPACE), fc.constantFrom('before', 'after', 'inside'))
    .map(([s, w, where]) =>
      where === 'before' ? `${w}${s}` : where === 'after' ? `${s}${w}` : `${s.slice(0, 1)}${w}${s.slice(1)}`,
    ),
  'plus sign': validYuan.map((s) => `+${s}`),
  'hex, octal and binary': fc.oneof(
    fc
      .tuple(
        fc.constantFrom('0x', '0X'),
        fc.array(fc.constantFrom(...'0123456789abcdefABCDEF'), { minLength: 1, maxLength: 8 }),
      )
      .map(([p, h]) => p + h.join('')),
    fc
      .tuple(
        fc.constantFrom('0o', '0b', '0O', '0B'),
        digits(1, 8).map((d) => d.replace(/[2-9]/g, '1')),
      )
      .map(([p, d]) => p + d),
  ),
  'Infinity and NaN': fc.constantFrom(
    'Infinity',
    '-Infinity',
    '+Infinity',
    'NaN',
    'infinity',
    'Inf',
    '∞',
    'nan',
  ),
  separators: fc
    .tuple(fc.integer({ min: 1_000, max: 99_999_999 }), fc.constantFrom(',', '_', "'", ' ', '，'))
    .map(([n, sep]) => n.toLocaleString('en-US').replace(/,/g, sep)),
  'bare points': fc.oneof(
    digits(1, 2).map((d) => `.${d}`),
    validYuan.filter((s) => !s.includes('.')).map((s) => `${s}.`),
    fc.constantFrom('.', '..', '1..2', '1.2.3', '1.-2'),
  ),
  empty: fc.constant(''),
};

/** Any member of the hostile families. */
export const hostileAmount = fc.oneof(...Object.values(HOSTILE_AMOUNTS));
