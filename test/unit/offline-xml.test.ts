/**
 * The offline door's XML fast paths (src/formats/xml.ts) against the general parser and builder they stand in
 * for: the scanner that reads the common request document must read exactly what the validator + parser read,
 * and leave every document it does not take (every refusal among them) to them; the direct writer of the answer
 * must write the builder's bytes. Compared on fixed edge cases and on many generated documents.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildOfflineXml,
  buildOfflineXmlGeneral,
  parseGeneralOfflineXml,
  parseOfflineXml,
  readPlainOfflineXml,
  type XmlObject,
} from '../../src/formats/xml.js';
import { HospayError } from '../../src/domain/errors.js';

/** What the general path makes of a text: the fields in order, or the refusal's code and message. */
function general(text: string): { fields: Array<[string, string]> } | { error: string } {
  try {
    return { fields: [...parseGeneralOfflineXml(text)] };
  } catch (e) {
    return { error: e instanceof HospayError ? `${e.code} ${e.bilingual}` : String(e) };
  }
}

/** The scanner takes a text only to read it as the general path does; it leaves every refusal to it. */
function assertSame(text: string): 'plain' | 'general' {
  const plain = readPlainOfflineXml(text);
  const g = general(text);
  if (plain === null) return 'general';
  assert.ok(
    'fields' in g,
    `the scanner read a document the parser refuses: ${JSON.stringify(text)} (${JSON.stringify(g)})`,
  );
  assert.deepEqual([...plain], g.fields, JSON.stringify(text));
  return 'plain';
}

/** A small seeded generator (the same documents every run). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const TEXT_PIECES = [
  'MZ2026',
  '0.10',
  '88.88',
  ' ',
  '  ',
  '\t',
  '\n',
  '\r\n',
  '\r',
  '挂号费',
  '张三',
  '\u3000',
  '\u00a0',
  '\ufeff',
  '\u2028',
  '&amp;',
  '&lt;',
  '&#20013;',
  '&nbsp;',
  '&',
  '>',
  '<',
  "'",
  '"',
  ']]>',
  '\u0001',
  '\u007f',
  '\ud800',
  '😀',
  '<![CDATA[x]]>',
  '<!-- c -->',
  '<b>x</b>',
  '<b/>',
  'abc def',
];
const NAMES = [
  'AccessToken',
  'OutTradeNo',
  'TotalAmount',
  'Caption',
  'head',
  'body',
  'sign',
  'xml',
  'a.b',
  'a-b',
  '_x',
  'x1',
  '1x',
  'constructor',
  '__proto__',
  'toString',
  'hasOwnProperty',
  '#text',
  '名字',
  'a:b',
];
const SPACES = ['', '', '', ' ', '\n', '\r\n', '\n  ', '\t'];

function generate(r: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  // Half of the documents stay close to what a HIS sends (mostly plain), half wander off.
  const odd = r() < 0.5 ? 0.15 : 0.01;
  const text = () => {
    let s = '';
    const n = Math.floor(r() * 4);
    for (let i = 0; i < n; i++) s += r() < 1 - odd * 2 ? pick(TEXT_PIECES.slice(0, 15)) : pick(TEXT_PIECES);
    return s;
  };
  const leaf = (name: string) => {
    const k = r() * (odd * 5);
    if (k < 0.1) return `<${name}/>`;
    if (k < 0.13) return `<${name} />`;
    if (k < 0.16) return `<${name} a="1">${text()}</${name}>`;
    if (k < 0.18) return `<${name}>${text()}</${name} >`;
    if (k < 0.2) return `<${name}>${text()}</${pick(NAMES)}>`;
    return `<${name}>${text()}</${name}>`;
  };
  const container = (name: string, depth: number): string => {
    const n = Math.floor(r() * 5);
    let s = `<${name}>`;
    for (let i = 0; i < n; i++) {
      const child = r() < 1 - odd ? pick(NAMES.slice(0, 4)) : pick(NAMES);
      s += pick(SPACES) + (depth < 2 && r() < odd ? container(child, depth + 1) : leaf(child));
      if (r() < odd / 4) s += text();
    }
    return `${s}${pick(SPACES)}</${name}>`;
  };
  const decl = pick([
    '',
    '',
    '<?xml version="1.0" encoding="utf-8"?>',
    '<?xml version="1.0" encoding="GBK"?>',
    "<?xml version='1.0'?>",
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
    '<?xml version="1.0"  encoding="utf-8"?>',
    '<?xml version="1.1"?>',
    ' <?xml version="1.0"?>',
    '<?xml version="1.0" encoding="utf-8" ?>',
  ]);
  let children = '';
  const n = Math.floor(r() * 4);
  const order = ['head', 'body', 'sign', 'head', pick(NAMES)];
  for (let i = 0; i < n + 1; i++) {
    const name = i === 0 && r() < 1 - odd ? 'head' : pick(order);
    const k = r();
    children += pick(SPACES) + (k < 0.6 ? container(name, 0) : k < 0.8 ? `<${name}/>` : leaf(name));
  }
  const tail = r() < odd ? pick([' x', '<x/>', '<!-- end -->']) : pick(['', '\n', '\r\n']);
  return `${decl}${pick(SPACES)}<xml>${children}${pick(SPACES)}</xml>${tail}`;
}

describe('offline XML: the scanner reads what the parser reads', () => {
  it('reads the common document, and the same as the parser', () => {
    const doc =
      '<?xml version="1.0" encoding="utf-8"?>\n<xml>\n  <head>\n    <AccessToken>tok-en_1</AccessToken>\n' +
      '    <OutTradeNo> MZ1 </OutTradeNo>\n    <Caption>挂号费</Caption>\n    <Descriptive/>\n' +
      '    <Tel></Tel>\n  </head>\n  <body></body>\n  <sign/>\n</xml>\n';
    assert.equal(assertSame(doc), 'plain');
    assert.deepEqual(
      [...parseOfflineXml(doc)],
      [
        ['AccessToken', 'tok-en_1'],
        ['OutTradeNo', 'MZ1'],
        ['Caption', '挂号费'],
        ['Descriptive', ''],
        ['Tel', ''],
      ],
    );
    assert.equal(assertSame('<xml><head><A>1</A></head></xml>'), 'plain');
    assert.equal(assertSame('<xml>\r\n<head>\r\n<A>1</A>\r\n</head>\r\n</xml>\r\n'), 'plain');
    assert.equal(assertSame('<xml><head/></xml>'), 'plain');
    assert.equal(assertSame('<xml><head></head><body><x>1</x></body></xml>'), 'plain');
  });

  it('leaves every refusal and every unusual document to the parser', () => {
    for (const doc of [
      '<xml><head><A>1</A><A>2</A></head></xml>', // repeated field
      '<xml><head><A>1</A></head><head/></xml>', // two heads
      '<xml><body/></xml>', // no head
      '<xml><head>text</head></xml>',
      '<xml><head><A><B>1</B></A></head></xml>', // nested
      '<xml><head><A>a&amp;b</A></head></xml>', // a reference
      '<xml><head><A>a\rb</A></head></xml>',
      '<xml><head><A>1</A></head></xml>x',
      '<xml><head><A>1</B></head></xml>',
      '<xml><head><A>1</A></head>',
      '<xml a="1"><head/></xml>',
      '<root><head/></root>',
      ' <xml><head/></xml>',
      '<xml><head><__proto__>1</__proto__></head></xml>',
      '<xml><head><constructor>1</constructor></head></xml>',
      '<?xml version="1.0" encoding="utf-8"?><!-- c --><xml><head/></xml>',
    ])
      assert.equal(assertSame(doc), 'general', doc);
  });

  it('agrees with the parser on 20,000 generated documents', () => {
    const r = rng(16);
    const taken = { plain: 0, general: 0 };
    for (let i = 0; i < 20_000; i++) taken[assertSame(generate(r))]++;
    // The generator makes both kinds in numbers: the comparison means something.
    assert.ok(taken.plain > 2_000 && taken.general > 2_000, JSON.stringify(taken));
  });
});

describe("offline XML: the direct writer writes the builder's bytes", () => {
  const VALUES = ['', 'x', '1', 'a&b', '<tag>', "it's", '"q"', '挂号费 / Fee', ' sp ', '\n', '&amp;', '😀'];
  const KEYS = ['IsSuccess', 'Message', 'TradeNo', 'a.b', 'x-y', '#text', '?pi', '@_attr'];

  it('writes the same document for the answers the door builds and for generated trees', () => {
    const r = rng(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
    const tree = (depth: number): XmlObject => {
      const o: XmlObject = {};
      const n = Math.floor(r() * 5);
      for (let i = 0; i < n; i++)
        o[r() < 0.9 ? pick(KEYS.slice(0, 5)) : pick(KEYS)] =
          depth < 3 && r() < 0.3 ? tree(depth + 1) : pick(VALUES);
      return o;
    };
    const answer: [XmlObject, XmlObject] = [
      { AccessToken: 'tok', OutTradeNo: 'MZ1' },
      {
        ResponseResult: {
          IsSuccess: '1',
          Message: '成功 / Success',
          SubCode: 'SUCCESS',
          SubMessage: '成功 / Success',
        },
        BarcodeTradeStatus: { TradeNo: '', OutTradeNo: 'MZ1', TotalAmount: '0.10', Buyer_user_id: '' },
      },
    ];
    assert.equal(buildOfflineXml(...answer), buildOfflineXmlGeneral(...answer));
    assert.equal(buildOfflineXml({}, {}), buildOfflineXmlGeneral({}, {}));
    for (let i = 0; i < 5_000; i++) {
      const head = tree(1);
      const body = tree(1);
      assert.equal(
        buildOfflineXml(head, body),
        buildOfflineXmlGeneral(head, body),
        JSON.stringify([head, body]),
      );
    }
  });
});
