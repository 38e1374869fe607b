import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import iconv from 'iconv-lite';
import {
  authCode,
  barcodeFields,
  orderNo,
  parseAnswer,
  qrFields,
  startTestPlatform,
  xmlDoc,
  type OfflineAnswer,
  type TestPlatform,
} from '../support/platform.js';

/**
 * Issue 12 §2: the encodings and content types HIS code really sends to the XML door. GBK / GB2312 / GB18030
 * requests are read and answered in their own encoding; raw XML without a Content-Type (.NET WebClient) or as a
 * form type (Java HttpURLConnection) is read; OrderType accepts the spec's positions 1–8.
 */

// The spec's request samples (interface-spec 5.1, 5.2, 5.4), verbatim: placeholders, the stray indentation
// and the " APPOINTMENT" with its tab included.
const SPEC_BARCODE_PAY = `<?xml version="1.0" encoding="utf-8" ?>
<xml>
   <head>
       <AccessToken>调用接口的授权码</AccessToken>
       <OutTradeNo>外部订单编号</OutTradeNo>
       <AuthCode>支付宝支付授权码</AuthCode>
       <TotalAmount>总金额</TotalAmount>
<Caption>标题</Caption>
       <Descriptive>描述</Descriptive>
       <OperatorID>操作员编号</OperatorID>
       <PatientName>患者姓名</PatientName>
       <InhospitalNo>住院号</InhospitalNo>
       <OrderType> APPOINTMENT</OrderType>\t
       <TerminalID>设备终端号</TerminalID>
       <PayType>支付类型</PayType>
       <Cnt>次数</Cnt>
   </head>
   <body></body>
   <sign></sign>
</xml>`;

const SPEC_QUERY = `<?xml version="1.0" encoding="utf-8" ?>
<xml>
   <head>
       <AccessToken>调用接口的授权码</AccessToken>
       <OutTradeNo>外部订单编号</OutTradeNo>
   </head>
   <body></body>
   <sign></sign>
</xml>`;

const SPEC_REFUND = `<?xml version="1.0" encoding="utf-8" ?>
<xml>
   <head>
       <AccessToken>调用接口的授权码</AccessToken>
       <TradeNo>支付平台订单号</TradeNo>
       <RefundAmount>退款金额</RefundAmount>
       <OutRequestNo>商户退款请求号</OutRequestNo>
       <RefundmentReason>退款原因</RefundmentReason>
       <HospitalID>医院编号</HospitalID>
       <TerminalID>设备终端号</TerminalID>
       <OutTradeNo>外部订单编号</OutTradeNo>
       <TotalAmount>总金额</TotalAmount>
       <PayType>支付类型</PayType>
   </head>
   <body></body>
   <sign></sign>
</xml>`;

/** A spec sample with its placeholders filled and its declaration naming `encoding`. */
function fill(sample: string, encoding: string, values: Record<string, string>): string {
  let doc = sample.replace('encoding="utf-8"', `encoding="${encoding}"`);
  for (const [tag, value] of Object.entries(values)) {
    const re = new RegExp(`<${tag}>[^<]*</${tag}>`);
    assert.match(doc, re, `the sample has <${tag}>`);
    doc = doc.replace(re, `<${tag}>${value}</${tag}>`);
  }
  return doc;
}

interface RawAnswer extends OfflineAnswer {
  contentType: string;
  bytes: Buffer;
}

/** POSTs exact bytes with exactly the given Content-Type (null: no Content-Type header at all). */
function post(url: string, body: Buffer, contentType: string | null): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'content-length': body.length };
    if (contentType !== null) headers['content-type'] = contentType;
    const req = http.request(url, { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const bytes = Buffer.concat(chunks);
        const type = res.headers['content-type'] ?? '';
        const charset = /charset=([^;]+)/i.exec(type)?.[1] ?? 'utf-8';
        // Character references (what GBK / GB2312 answers use for what they cannot carry) read as characters,
        // as any XML parser reads them (the test's parser leaves numeric references as they are).
        const text = iconv
          .decode(bytes, charset)
          .replace(/&#x([0-9a-f]+);/gi, (_m, hex: string) => String.fromCodePoint(parseInt(hex, 16)));
        resolve({ ...parseAnswer(res.statusCode ?? 0, text), contentType: type, bytes });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const isValidUtf8 = (b: Buffer) => {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
};

/** The answer is written in `charset`, says so in its header and its declaration, and is not UTF-8 in disguise. */
function assertAnswerIn(a: RawAnswer, charset: 'GBK' | 'GB2312' | 'GB18030') {
  assert.equal(a.status, 200);
  assert.equal(a.contentType, `text/xml; charset=${charset}`);
  assert.ok(
    a.bytes.subarray(0, 60).toString('latin1').startsWith(`<?xml version="1.0" encoding="${charset}"?>`),
    a.bytes.subarray(0, 60).toString('latin1'),
  );
  // Chinese text in GBK/GB18030 bytes is not valid UTF-8: proof the bytes really are the declared encoding.
  assert.ok(!isValidUtf8(a.bytes), 'the answer bytes are not UTF-8');
  const text = iconv.decode(a.bytes, charset === 'GB18030' ? 'gb18030' : 'gbk');
  assert.ok(!text.includes('\ufffd'), 'the answer decodes cleanly');
}

const percentEncode = (b: Buffer) => [...b].map((x) => `%${x.toString(16).padStart(2, '0')}`).join('');

describe('offline door: encodings and content types real HIS send (issue 12 §2)', () => {
  let t: TestPlatform;
  let url: string;
  before(async () => {
    t = await startTestPlatform();
    url = `${t.url}/offline/FWC_IF_Barcode_Pay`;
  });
  after(async () => {
    await t.close();
  });

  const tradeOf = (outTradeNo: string) => t.platform.deps.trades.byOutTradeNo(t.appId, outTradeNo);

  it('GBK: the spec’s barcode pay, query and refund samples round trip, 张三 and the Caption intact', async () => {
    const outTradeNo = orderNo();
    const pay = fill(SPEC_BARCODE_PAY, 'GBK', {
      AccessToken: t.token,
      OutTradeNo: outTradeNo,
      AuthCode: authCode(),
      TotalAmount: '88.88',
      Caption: '门诊缴费',
      Descriptive: '西药费、检查费',
      OperatorID: '收费员01',
      PatientName: '张三',
      InhospitalNo: 'MZ0001',
      TerminalID: 'T01',
      PayType: 'alipay',
      Cnt: '3',
    });
    const a = await post(url, iconv.encode(pay, 'gbk'), 'text/xml');
    assertAnswerIn(a, 'GBK');
    assert.equal(a.rr.IsSuccess, '1', a.rr.SubMessage);
    assert.equal(a.rr.SubMessage, '成功 / Success');
    assert.equal(a.head['PatientName'], '张三');
    assert.equal(a.head['Caption'], '门诊缴费');
    assert.equal(a.head['OperatorID'], '收费员01');
    assert.equal(a.head['OrderType'], 'APPOINTMENT');
    assert.equal(a.result['TradeStatus'], 'TRADE_SUCCESS');
    const row = await tradeOf(outTradeNo);
    assert.equal(row?.patient_name, '张三');
    assert.equal(row?.subject, '门诊缴费');
    assert.equal(row?.body, '西药费、检查费');

    const q = await post(
      `${t.url}/offline/FWC_IF_Barcode_Pay_Query`,
      iconv.encode(fill(SPEC_QUERY, 'GBK', { AccessToken: t.token, OutTradeNo: outTradeNo }), 'gbk'),
      'text/xml; charset=GBK',
    );
    assertAnswerIn(q, 'GBK');
    assert.equal(q.rr.SubCode, 'SUCCESS');
    assert.equal(q.result['TradeStatus'], 'TRADE_SUCCESS');

    const refund = fill(SPEC_REFUND, 'GBK', {
      AccessToken: t.token,
      TradeNo: a.result['TradeNo'] ?? '',
      RefundAmount: '8.88',
      OutRequestNo: 'R1',
      RefundmentReason: '患者退费：检查取消',
      HospitalID: 'H001',
      TerminalID: 'T01',
      OutTradeNo: outTradeNo,
      TotalAmount: '88.88',
      PayType: 'alipay',
    });
    const r = await post(
      `${t.url}/offline/FWC_IF_Barcode_Pay_Refund`,
      iconv.encode(refund, 'gbk'),
      'text/xml',
    );
    assertAnswerIn(r, 'GBK');
    assert.equal(r.rr.IsSuccess, '1', r.rr.SubMessage);
    assert.equal(r.head['RefundmentReason'], '患者退费：检查取消');
    assert.equal(r.result['RefundAmount'], '8.88');
    assert.equal(r.result['RefundChange'], 'Y');
  });

  it('GBK refusals are answered in GBK too, in Chinese a GBK reader can show', async () => {
    const doc = xmlDoc({ AccessToken: t.token, ...barcodeFields({ TotalAmount: '八十八' }) }).replace(
      'encoding="utf-8"',
      'encoding="GBK"',
    );
    const a = await post(url, iconv.encode(doc, 'gbk'), 'text/xml');
    assertAnswerIn(a, 'GBK');
    assert.equal(a.rr.SubCode, 'INVALID_FIELD.TotalAmount');
    assert.match(a.rr.SubMessage, /^字段 TotalAmount 无效：金额须为大于 0 的元/);
    assert.equal(a.head['TotalAmount'], '八十八');
  });

  it('GB2312 (as .NET names GBK) is read as GBK; a character GB2312 lacks is answered as a reference, never lost', async () => {
    const f = barcodeFields({ PatientName: '朱镕基', Caption: '住院预交金' }); // 镕: GBK, not GB2312
    const doc = xmlDoc({ AccessToken: t.token, ...f }).replace('encoding="utf-8"', 'encoding="gb2312"');
    const a = await post(url, iconv.encode(doc, 'gbk'), 'text/xml; charset=utf-8');
    assertAnswerIn(a, 'GB2312');
    assert.equal(a.rr.IsSuccess, '1', a.rr.SubMessage);
    assert.equal(a.head['PatientName'], '朱镕基');
    assert.equal(a.head['Caption'], '住院预交金');
    assert.equal((await tradeOf(f.OutTradeNo ?? ''))?.patient_name, '朱镕基');
    // GB2312 proper: 镕 is written &#x9555;, and no byte outside GB2312's rows is sent.
    assert.ok(a.bytes.includes(iconv.encode('朱&#x9555;基', 'gbk')));
    assert.ok(!a.bytes.includes(iconv.encode('镕', 'gbk')));
  });

  it('GB18030 carries every character; GBK answers what it cannot carry as a character reference', async () => {
    // 𠮷 (U+20BB7, CJK extension B): four bytes in GB18030, absent from GBK.
    const f = barcodeFields({ PatientName: '𠮷三' });
    const doc = xmlDoc({ AccessToken: t.token, ...f }).replace('encoding="utf-8"', 'encoding="GB18030"');
    const a = await post(url, iconv.encode(doc, 'gb18030'), 'application/xml');
    assertAnswerIn(a, 'GB18030');
    assert.equal(a.rr.IsSuccess, '1', a.rr.SubMessage);
    assert.equal(a.head['PatientName'], '𠮷三');
    assert.ok(a.bytes.includes(iconv.encode('𠮷三', 'gb18030')));
    assert.equal((await tradeOf(f.OutTradeNo ?? ''))?.patient_name, '𠮷三');

    // A GBK HIS sends 𠮷 as &#x20BB7;; it is stored as the character and echoed as the reference.
    const g = barcodeFields({ PatientName: 'NAME' });
    const gbkDoc = xmlDoc({ AccessToken: t.token, ...g })
      .replace('encoding="utf-8"', 'encoding="GBK"')
      .replace('<PatientName>NAME</PatientName>', '<PatientName>&#x20BB7;三</PatientName>');
    const b = await post(url, iconv.encode(gbkDoc, 'gbk'), 'text/xml');
    assertAnswerIn(b, 'GBK');
    assert.equal(b.rr.IsSuccess, '1', b.rr.SubMessage);
    assert.equal(b.head['PatientName'], '𠮷三');
    assert.ok(b.bytes.includes(iconv.encode('&#x20BB7;三', 'gbk')));
    assert.equal((await tradeOf(g.OutTradeNo ?? ''))?.patient_name, '𠮷三');
  });

  it('a declaration that does not match the bytes is refused, saying what is wrong, and nothing is stored', async () => {
    const f = () => barcodeFields();
    const cases: Array<[string, Buffer, RegExp]> = [
      [
        'UTF-8 bytes declared GBK',
        Buffer.from(xmlDoc({ AccessToken: t.token, ...f() }).replace('encoding="utf-8"', 'encoding="GBK"')),
        /declares GBK but its bytes are UTF-8/,
      ],
      [
        'bytes that are not GBK, declared GBK',
        Buffer.concat([
          Buffer.from('<?xml version="1.0" encoding="GBK"?><xml><head><Caption>'),
          Buffer.from([0xd5, 0xc5, 0xff, 0x81]),
          Buffer.from('</Caption></head></xml>'),
        ]),
        /declares GBK but its bytes are not valid GBK/,
      ],
      [
        'GBK bytes declared utf-8',
        iconv.encode(xmlDoc({ AccessToken: t.token, ...f() }), 'gbk'),
        /not valid UTF-8; to send GBK, declare <\?xml version="1\.0" encoding="GBK"\?>/,
      ],
      [
        'GBK bytes without a declaration',
        iconv.encode(xmlDoc({ AccessToken: t.token, ...f() }).replace(/^<\?xml[^>]*>/, ''), 'gbk'),
        /to send GBK, declare/,
      ],
      [
        'a UTF-8 byte-order mark and a GBK declaration',
        Buffer.concat([
          Buffer.from([0xef, 0xbb, 0xbf]),
          iconv.encode(
            xmlDoc({ AccessToken: t.token, ...f() }).replace('encoding="utf-8"', 'encoding="GBK"'),
            'gbk',
          ),
        ]),
        /byte-order mark but declares GBK/,
      ],
      [
        'Big5',
        Buffer.from('<?xml version="1.0" encoding="Big5"?><xml><head/></xml>'),
        /unsupported encoding Big5: use UTF-8, GBK, GB2312 or GB18030/,
      ],
    ];
    // SQL on purpose: a count of every trade proves a refused body wrote nothing.
    const count = async () =>
      Number(
        (
          await t.store.db
            .selectFrom('trades')
            .select((eb) => eb.fn.countAll<string>().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const before = await count();
    for (const [label, body, why] of cases) {
      const a = await post(url, body, 'text/xml');
      assert.equal(a.status, 200, label);
      assert.equal(a.rr.SubCode, 'XML_ENCODING', `${label}: ${a.rr.SubMessage}`);
      assert.equal(a.rr.IsSuccess, '0', label);
      assert.match(a.rr.SubMessage, why, label);
      assert.match(a.rr.SubMessage, /^[^/]*[\u4e00-\u9fff][^/]* \/ /, `${label}: 中文 / English`);
    }
    assert.equal(await count(), before);
  });

  it('no Content-Type, as .NET WebClient sends: the raw XML is read, in UTF-8 and in GBK', async () => {
    const f = barcodeFields();
    const a = await post(url, Buffer.from(xmlDoc({ AccessToken: t.token, ...f })), null);
    assert.equal(a.rr.IsSuccess, '1', a.rr.SubMessage);
    assert.equal(a.contentType, 'text/xml; charset=utf-8');
    assert.equal((await tradeOf(f.OutTradeNo ?? ''))?.patient_name, '张三');

    // WebClient.UploadString with Encoding = GBK.
    const g = barcodeFields({ PatientName: '王五' });
    const doc = xmlDoc({ AccessToken: t.token, ...g }).replace('encoding="utf-8"', 'encoding="GBK"');
    const b = await post(url, iconv.encode(doc, 'gbk'), null);
    assertAnswerIn(b, 'GBK');
    assert.equal(b.rr.IsSuccess, '1', b.rr.SubMessage);
    assert.equal(b.head['PatientName'], '王五');
  });

  it('raw XML sent as application/x-www-form-urlencoded (Java HttpURLConnection’s default) is read as XML', async () => {
    const f = barcodeFields();
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const a = await post(
      url,
      // A BOM and blank lines before the root element (without a declaration, which must come first).
      Buffer.concat([
        bom,
        Buffer.from(`\r\n ${xmlDoc({ AccessToken: t.token, ...f }).replace(/^<\?xml[^>]*>/, '')}`),
      ]),
      'application/x-www-form-urlencoded',
    );
    assert.equal(a.rr.IsSuccess, '1', a.rr.SubMessage);
    assert.equal(a.head['PatientName'], '张三');
  });

  it('a form field xml= is read, its bytes in the charset the form or the document declares', async () => {
    // UTF-8, among other fields.
    const f = barcodeFields();
    const a = await post(
      url,
      Buffer.from(`from=his&xml=${encodeURIComponent(xmlDoc({ AccessToken: t.token, ...f }))}`),
      'application/x-www-form-urlencoded',
    );
    assert.equal(a.rr.IsSuccess, '1', a.rr.SubMessage);

    // GBK percent-encoded (URLEncoder.encode(xml, "GBK")), the document declaring GBK, '+' for spaces.
    const g = barcodeFields({ PatientName: '赵六', Caption: '门诊 缴费' });
    const gbkDoc = xmlDoc({ AccessToken: t.token, ...g }).replace('encoding="utf-8"', 'encoding="GBK"');
    const b = await post(
      url,
      Buffer.from(`xml=${percentEncode(iconv.encode(gbkDoc, 'gbk')).replace(/%20/g, '+')}`),
      'application/x-www-form-urlencoded',
    );
    assertAnswerIn(b, 'GBK');
    assert.equal(b.rr.IsSuccess, '1', b.rr.SubMessage);
    assert.equal(b.head['PatientName'], '赵六');
    assert.equal(b.head['Caption'], '门诊 缴费');

    // No declaration: the form's charset says GBK.
    const h = barcodeFields({ PatientName: '钱七' });
    const bare = xmlDoc({ AccessToken: t.token, ...h }).replace(/^<\?xml[^>]*>/, '');
    const c = await post(
      url,
      Buffer.from(`xml=${percentEncode(iconv.encode(bare, 'gbk'))}`),
      'application/x-www-form-urlencoded; charset=GBK',
    );
    assertAnswerIn(c, 'GBK');
    assert.equal(c.rr.IsSuccess, '1', c.rr.SubMessage);
    assert.equal((await tradeOf(h.OutTradeNo ?? ''))?.patient_name, '钱七');
  });

  it('any other body is refused with a stable code that says to send text/xml', async () => {
    const cases: Array<[string, string, string | null]> = [
      [
        'a form without the field xml',
        'OutTradeNo=MZ1&TotalAmount=1.00',
        'application/x-www-form-urlencoded',
      ],
      ['JSON without a Content-Type', '{"OutTradeNo":"MZ1"}', null],
      ['JSON as JSON', '{"OutTradeNo":"MZ1"}', 'application/json'],
      ['XML as text/plain', '<xml><head/></xml>', 'text/plain'],
    ];
    for (const [label, body, type] of cases) {
      const a = await post(url, Buffer.from(body), type);
      assert.equal(a.status, 200, label);
      assert.equal(a.rr.SubCode, 'UNSUPPORTED_CONTENT_TYPE', `${label}: ${a.rr.SubMessage}`);
      assert.equal(a.rr.IsSuccess, '0');
      assert.match(
        a.rr.SubMessage,
        /^请以 Content-Type: text\/xml 发送 XML 文档.* \/ send the XML document as Content-Type: text\/xml/,
        label,
      );
    }
  });

  it('OrderType accepts the spec’s positions 1–8, at both offline pay interfaces', async () => {
    // The spec's list, in its order (interface-spec 5.1).
    const SPEC = [
      'APPOINTMENT',
      'TREATMENT',
      'HOSPITALIZATION',
      'ONLINE_CONSULTATION',
      'NUCLEIC_ACID_TEST',
      'BODY_TEST',
      'SCAN_TO_ORDER',
      'COMMERCIAL_OTHERS',
    ];
    for (const [i, name] of SPEC.entries()) {
      const f = barcodeFields({ OrderType: String(i + 1) });
      const a = await t.offline('FWC_IF_Barcode_Pay', f);
      assert.equal(a.rr.IsSuccess, '1', `${i + 1}: ${a.rr.SubMessage}`);
      assert.equal((await tradeOf(f.OutTradeNo ?? ''))?.order_type, name);
    }
    const q = qrFields({ OrderType: '3' });
    const qa = await t.offline('FWC_IF_Qrcode_Pay', q);
    assert.equal(qa.rr.IsSuccess, '1', qa.rr.SubMessage);
    assert.equal((await tradeOf(q.OutTradeNo ?? ''))?.order_type, 'HOSPITALIZATION');
    for (const bad of ['0', '9', '01', '1.0']) {
      const a = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ OrderType: bad }));
      assert.equal(a.rr.SubCode, 'INVALID_FIELD.OrderType', bad);
    }
  });
});
