import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  barcodeFields,
  postRaw,
  qrFields,
  startTestPlatform,
  xmlDoc,
  type TestPlatform,
} from '../support/platform.js';

/** The offline door: authentication, validation and XML hardening. Nothing bad gets a 5xx or a stack trace. */
describe('offline door: authentication, validation, hardening', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
  });
  after(async () => {
    await t.close();
  });

  // SQL on purpose: a count of every trade proves a refused request wrote nothing.
  const tradeCount = async () =>
    Number(
      (
        await t.store.db
          .selectFrom('trades')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const assertClean = (a: { status: number; text: string }) => {
    assert.equal(a.status, 200);
    assert.doesNotMatch(a.text, /at .*\.(ts|js):\d+|Error:|stack/i, 'no stack trace');
  };

  describe('AccessToken', () => {
    it('missing, unknown or disabled → IsSuccess=3', async () => {
      const before = await tradeCount();
      const missing = await t.offline('FWC_IF_Barcode_Pay', barcodeFields(), { token: null });
      assert.equal(missing.rr.IsSuccess, '3');
      assert.equal(missing.rr.SubCode, 'ACCESS_TOKEN_INVALID');
      const wrong = await t.offline('FWC_IF_Barcode_Pay', barcodeFields(), { token: 'x'.repeat(43) });
      assert.equal(wrong.rr.IsSuccess, '3');
      const other = await t.platform.deps.apps.create({ name: '停用医院' });
      await t.platform.deps.apps.setStatus(other.appId, 'disabled');
      const disabled = await t.offline('FWC_IF_Barcode_Pay', barcodeFields(), { token: other.accessToken });
      assert.equal(disabled.rr.IsSuccess, '3');
      assert.equal(await tradeCount(), before);
    });

    it('an app sees only its own trades', async () => {
      const f = barcodeFields();
      await t.offline('FWC_IF_Barcode_Pay', f);
      const other = await t.platform.deps.apps.create({ name: '另一家医院' });
      const q = await t.offline(
        'FWC_IF_Barcode_Pay_Query',
        { OutTradeNo: f.OutTradeNo },
        { token: other.accessToken },
      );
      assert.equal(q.rr.SubCode, 'TRADE_NOT_EXIST');
      assert.equal(q.result.TradeStatus, 'TRADE_NOT_EXIST');
    });
  });

  describe('required fields', () => {
    const required: Record<string, [Record<string, string | undefined>, string[]]> = {
      FWC_IF_Barcode_Pay: [
        barcodeFields(),
        ['OutTradeNo', 'AuthCode', 'TotalAmount', 'Caption', 'PatientName', 'InhospitalNo', 'OrderType'],
      ],
      FWC_IF_Qrcode_Pay: [
        qrFields(),
        ['OutTradeNo', 'TotalAmount', 'Caption', 'OrderType', 'PatientName', 'InhospitalNo'],
      ],
      FWC_IF_Barcode_Pay_Query: [{ OutTradeNo: 'MZ1' }, ['OutTradeNo']],
      FWC_IF_Barcode_Pay_Cancel: [{ OutTradeNo: 'MZ1' }, ['OutTradeNo']],
      FWC_IF_Barcode_Pay_Refund: [
        { TradeNo: 'T1', RefundAmount: '1.00', OutRequestNo: 'R1', OutTradeNo: 'MZ1', TotalAmount: '1.00' },
        ['TradeNo', 'RefundAmount', 'OutRequestNo', 'OutTradeNo', 'TotalAmount'],
      ],
    };
    for (const [name, [fields, names]] of Object.entries(required)) {
      for (const field of names) {
        it(`${name} without ${field} → MISSING_FIELD.${field}`, async () => {
          for (const value of [undefined, '', '   ']) {
            const a = await t.offline(name, { ...fields, [field]: value });
            assertClean(a);
            assert.equal(a.rr.IsSuccess, '0', a.text);
            assert.equal(a.rr.SubCode, `MISSING_FIELD.${field}`);
            assert.match(a.rr.SubMessage, new RegExp(`${field}.*/.*${field}`));
          }
        });
      }
    }
  });

  it('amounts: strictly yuan with at most two decimals, above zero', async () => {
    const before = await tradeCount();
    const bad = [
      '0',
      '0.00',
      '-1',
      '-0.01',
      '1.234',
      '1e3',
      '1E2',
      '01.00',
      '00',
      '+1',
      '1,000',
      '１２',
      '0x10',
      '.5',
      '5.',
      '1 000',
      'NaN',
      'Infinity',
      '100000000.00',
      '9007199254740993',
    ];
    for (const amount of bad) {
      const a = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ TotalAmount: amount }));
      assertClean(a);
      assert.equal(a.rr.SubCode, 'INVALID_FIELD.TotalAmount', amount);
    }
    for (const amount of ['1.2.3', '-5']) {
      const a = await t.offline('FWC_IF_Barcode_Pay_Refund', {
        TradeNo: 'T',
        RefundAmount: amount,
        OutRequestNo: 'R',
        OutTradeNo: 'MZ1',
        TotalAmount: '1.00',
      });
      assert.equal(a.rr.SubCode, 'INVALID_FIELD.RefundAmount', amount);
    }
    assert.equal(await tradeCount(), before);
    for (const [amount, fen] of [
      ['0.01', 1],
      ['19.99', 1999],
      ['0.1', 10],
      ['99999999.99', 9_999_999_999],
      ['5', 500],
    ] as const) {
      const f = barcodeFields({ TotalAmount: amount });
      const a = await t.offline('FWC_IF_Barcode_Pay', f);
      assert.equal(a.rr.IsSuccess, '1', amount);
      const row = await t.trade(f.OutTradeNo ?? '');
      assert.equal(row.total_fen, fen, amount);
    }
  });

  it('enums, lengths and formats name the field', async () => {
    const cases: Array<[string, Record<string, string>, string]> = [
      ['FWC_IF_Barcode_Pay', { OrderType: 'SHOPPING' }, 'INVALID_FIELD.OrderType'],
      ['FWC_IF_Barcode_Pay', { PayType: 'paypal' }, 'INVALID_FIELD.PayType'],
      ['FWC_IF_Barcode_Pay', { Cnt: 'five' }, 'INVALID_FIELD.Cnt'],
      ['FWC_IF_Barcode_Pay', { Cnt: '100' }, 'INVALID_FIELD.Cnt'],
      ['FWC_IF_Barcode_Pay', { AuthCode: '28abc' }, 'INVALID_FIELD.AuthCode'],
      ['FWC_IF_Barcode_Pay', { Caption: '长'.repeat(129) }, 'INVALID_FIELD.Caption'],
      ['FWC_IF_Barcode_Pay', { OutTradeNo: 'MZ 001' }, 'INVALID_FIELD.OutTradeNo'],
      ['FWC_IF_Barcode_Pay', { OutTradeNo: 'M'.repeat(65) }, 'INVALID_FIELD.OutTradeNo'],
      ['FWC_IF_Barcode_Pay', { PatientName: 'a\u0001b' }, 'INVALID_FIELD.PatientName'],
      ['FWC_IF_Qrcode_Pay', { Tel: 'call me' }, 'INVALID_FIELD.Tel'],
    ];
    for (const [name, change, code] of cases) {
      const base = name === 'FWC_IF_Qrcode_Pay' ? qrFields() : barcodeFields();
      const a = await t.offline(name, { ...base, ...change });
      assertClean(a);
      assert.equal(a.rr.IsSuccess, '0', `${JSON.stringify(change)}: ${a.text}`);
      assert.equal(a.rr.SubCode, code);
    }
    const ok = await t.offline(
      'FWC_IF_Barcode_Pay',
      barcodeFields({ OrderType: 'appointment', PayType: 'ALIPAY' }),
    );
    assert.equal(ok.rr.IsSuccess, '1');
  });

  it("query errors carry the spec's TradeStatus values", async () => {
    const missing = await t.offline('FWC_IF_Barcode_Pay_Query', {});
    assert.equal(missing.result.TradeStatus, 'ILLEGAL_ARGUMENT');
    const none = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: 'MZNONE' });
    assert.equal(none.result.TradeStatus, 'TRADE_NOT_EXIST');
  });

  describe('XML hardening', () => {
    const post = (body: string | Buffer, type = 'text/xml') =>
      postRaw(`${t.url}/offline/FWC_IF_Barcode_Pay`, body, type);
    const valid = () => xmlDoc({ AccessToken: t.token, ...barcodeFields() });

    const hostile: Array<[string, string | Buffer, string, string?]> = [
      [
        'billion laughs',
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><xml><head><Caption>&lol2;</Caption></head></xml>',
        'XML_DOCTYPE_FORBIDDEN',
      ],
      [
        'external entity',
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><head><Caption>&xxe;</Caption></head></xml>',
        'XML_DOCTYPE_FORBIDDEN',
      ],
      [
        'parameter entity',
        '<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x"> %p;]><xml/>',
        'XML_DOCTYPE_FORBIDDEN',
      ],
      [
        'internal entity for an amount',
        '<!DOCTYPE x [<!ENTITY fee "1">]><xml><head><TotalAmount>&fee;00</TotalAmount></head></xml>',
        'XML_DOCTYPE_FORBIDDEN',
      ],
      ['lowercase doctype', '<!doctype xml><xml><head/></xml>', 'XML_DOCTYPE_FORBIDDEN'],
      ['malformed', '<xml><head><OutTradeNo>1</head></xml>', 'XML_MALFORMED'],
      ['not xml at all', 'hello', 'XML_MALFORMED'],
      ['JSON body as xml', '{"OutTradeNo":"1"}', 'XML_MALFORMED'],
      ['wrong root', '<root><head/></root>', 'XML_ROOT'],
      ['no head', '<xml><body/></xml>', 'XML_ROOT'],
      [
        'deep nesting',
        `<xml><head>${'<a>'.repeat(5000)}${'</a>'.repeat(5000)}</head></xml>`,
        'XML_MALFORMED',
      ],
      [
        'nested field',
        '<xml><head><OutTradeNo><x>1</x></OutTradeNo></head></xml>',
        'INVALID_FIELD.OutTradeNo',
      ],
      [
        '__proto__ field',
        '<xml><head><__proto__><polluted>1</polluted></__proto__></head></xml>',
        'XML_MALFORMED',
      ],
      ['constructor field', '<xml><head><constructor>1</constructor></head></xml>', 'XML_MALFORMED'],
      ['empty body', '', 'XML_EMPTY'],
      ['whitespace body', '   \n ', 'XML_EMPTY'],
      [
        'GBK declared over UTF-8 bytes',
        '<?xml version="1.0" encoding="GBK"?><xml><head><Caption>门诊缴费</Caption></head></xml>',
        'XML_ENCODING',
      ],
      ['UTF-16 declared', '<?xml version="1.0" encoding="UTF-16"?><xml><head/></xml>', 'XML_ENCODING'],
      [
        'invalid UTF-8',
        Buffer.concat([
          Buffer.from('<xml><head><Caption>'),
          Buffer.from([0xc3, 0x28, 0xff]),
          Buffer.from('</Caption></head></xml>'),
        ]),
        'XML_ENCODING',
      ],
      ['NUL byte', '<xml><head><Caption>a\u0000b</Caption></head></xml>', 'XML_ENCODING'],
      ['JSON content type', '{"a":1}', 'UNSUPPORTED_CONTENT_TYPE', 'application/json'],
      ['no content type, not XML', '{"a":1}', 'UNSUPPORTED_CONTENT_TYPE', ''],
      ['form without xml field', 'foo=bar', 'UNSUPPORTED_CONTENT_TYPE', 'application/x-www-form-urlencoded'],
      [
        'form with two xml fields',
        'xml=%3Cxml%2F%3E&xml=%3Cxml%2F%3E',
        'REPEATED_FIELD.xml',
        'application/x-www-form-urlencoded',
      ],
      ['huge body', `<xml><head><Caption>${'x'.repeat(70_000)}</Caption></head></xml>`, 'REQUEST_TOO_LARGE'],
      [
        'script in a value',
        '<xml><head><AccessToken>&lt;script&gt;</AccessToken></head></xml>',
        'ACCESS_TOKEN_INVALID',
      ],
      [
        'CDATA token',
        '<xml><head><AccessToken><![CDATA[nope]]></AccessToken></head></xml>',
        'ACCESS_TOKEN_INVALID',
      ],
      ['processing instruction', '<?xml version="1.0"?><?evil x?><xml><head/></xml>', 'ACCESS_TOKEN_INVALID'],
      ['two roots', '<xml><head/></xml><xml><head/></xml>', 'XML_MALFORMED'],
    ];
    for (const [label, body, code, type] of hostile) {
      it(`${label} → ${code}`, async () => {
        const before = await tradeCount();
        const a = await post(body, type ?? 'text/xml');
        assertClean(a);
        assert.equal(a.rr.SubCode, code, a.text);
        assert.notEqual(a.rr.IsSuccess, '1');
        assert.equal(await tradeCount(), before);
      });
    }

    it('repeated fields are refused, and nothing is stored', async () => {
      const before = await tradeCount();
      const doc = valid().replace(
        '<TotalAmount>88.88</TotalAmount>',
        '<TotalAmount>88.88</TotalAmount><TotalAmount>0.01</TotalAmount>',
      );
      const a = await post(doc);
      assert.equal(a.rr.SubCode, 'REPEATED_FIELD.TotalAmount');
      assert.equal(await tradeCount(), before);
    });

    it('accepts application/xml, a BOM, and the form field xml', async () => {
      const bom = await post(
        Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(valid())]),
        'application/xml; charset=utf-8',
      );
      assert.equal(bom.rr.IsSuccess, '1', bom.text);
      const formAnswer = await post(
        `xml=${encodeURIComponent(valid())}`,
        'application/x-www-form-urlencoded',
      );
      assert.equal(formAnswer.rr.IsSuccess, '1', formAnswer.text);
    });

    it('values stay strings: "0.10" is ten fen, "00123" keeps its zeros', async () => {
      const f = barcodeFields({ TotalAmount: '0.10', InhospitalNo: '00123' });
      const a = await post(xmlDoc({ AccessToken: t.token, ...f }));
      assert.equal(a.result.TotalAmount, '0.10');
      const row = await t.trade(f.OutTradeNo ?? '');
      assert.equal(row.total_fen, 10);
      assert.equal(row.inhospital_no, '00123');
    });

    it('an unknown interface is named in the answer', async () => {
      const a = await postRaw(`${t.url}/offline/FWC_IF_Nope`, valid());
      assert.equal(a.rr.SubCode, 'UNKNOWN_INTERFACE');
      // However long the name: the door's XML answer (the name cut to 64 characters), not a bare HTTP error.
      const long = await postRaw(`${t.url}/offline/FWC_IF_${'X'.repeat(300)}`, valid());
      assert.equal(long.status, 200);
      assert.equal(long.rr.SubCode, 'UNKNOWN_INTERFACE');
      assert.ok(long.rr.SubMessage.length < 200, long.rr.SubMessage);
    });

    it('the process stays up and serves after all of it', async () => {
      const a = await post(valid());
      assert.equal(a.rr.IsSuccess, '1');
      const h = await fetch(`${t.url}/healthz`);
      assert.equal(h.status, 200);
    });
  });
});
