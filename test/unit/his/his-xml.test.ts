import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import iconv from 'iconv-lite';
import { HisError } from '../../../src/reconcile/his/his-error.js';
import {
  decodeHisBytes,
  parseQueryAnswer,
  parseShanghai,
  parseTradeListAnswer,
} from '../../../src/reconcile/his/his-xml.js';
import { parseSignedNonZeroYuan } from '../../../src/domain/money.js';

const doc = (body: string, head = '<head> </head>') =>
  `<?xml version="1.0" encoding="utf-8" ?>\n<xml>\n${head}\n<body>\n${body}\n</body>\n<sign></sign>\n</xml>`;
const rr = (isSuccess = '1', message = '成功') =>
  `<ResponseResult><IsSuccess>${isSuccess}</IsSuccess><Message>${message}</Message><SubCode>SUCCESS</SubCode><SubMessage>${message}</SubMessage></ResponseResult>`;
const row = (over: Record<string, string> = {}) => {
  const f: Record<string, string> = {
    CardNo: '123456',
    PatientName: '张三',
    CostType: '门诊',
    OutTradeStatus: '2',
    TradeNo: '2026112522001400001',
    Amount: '88.88',
    OutTradeNo: 'H0001',
    TradeOptDateTime: '2026-11-25 10:00:00',
    ...over,
  };
  return `<GetHospitalTradeList>${Object.entries(f)
    .map(([k, v]) => `<${k}>${v}</${k}>`)
    .join('')}</GetHospitalTradeList>`;
};

function rejects(fn: () => unknown, code: string, match?: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof HisError, `expected HisError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (match) assert.match(e.bilingual, match);
    return true;
  });
}

// The spec's own answer example for HIS_IF_Query (chapter 7.2), verbatim apart from IsSuccess.
const SPEC_QUERY = `<?xml version="1.0" encoding="utf-8" ?>
<xml>
   <head>
       <AccessToken>调用接口的授权码</AccessToken>
       <OutTradeNo>外部订单编号</OutTradeNo>
   </head>
   <body>
       <ResponseResult>
           <IsSuccess>1</IsSuccess>
           <Message>消息</Message>
           <SubCode>业务返回码</SubCode>
           <SubMessage>业务返回码描述</SubMessage>
       </ResponseResult>
       <HisTradeStatus>
           <TradeNo>支付平台订单号</TradeNo>
           <OutTradeNo>外部订单编号</OutTradeNo>
           <MedicalCard>就诊卡</MedicalCard>
           <TradeList>
               <HisFlowID>2022010101010100001</HisFlowID>
               <TotalAmount>100</TotalAmount>
               <DateTime>2022-01-01 01:01:01</DateTime>
               <PayType>支付宝</PayType>
           </TradeList>
           <TradeList>
               <HisFlowID>T2022010101010100001</HisFlowID>
               <TotalAmount>-50</TotalAmount>
               <DateTime>2022-03-01 12:01:01</DateTime>
               <PayType>支付宝</PayType>
           </TradeList>
       </HisTradeStatus>
   </body>
   <sign></sign>
</xml>`;

describe('HIS answer parser: IF_Get_Hospital_Trade_List', () => {
  it('reads repeated GetHospitalTradeList rows into typed records (fen, status, Shanghai time)', () => {
    const { records } = parseTradeListAnswer(
      doc(rr() + row() + row({ OutTradeStatus: '3', Amount: '5', OutTradeNo: 'H0002' })),
    );
    assert.equal(records.length, 2);
    assert.deepEqual(records[0], {
      outTradeNo: 'H0001',
      tradeNo: '2026112522001400001',
      amountFen: 8888,
      status: 'PAID',
      cardNo: '123456',
      patientName: '张三',
      costType: '门诊',
      time: new Date('2026-11-25T02:00:00Z'),
    });
    assert.equal(records[1]?.status, 'REFUNDED');
    assert.equal(records[1]?.amountFen, 500);
  });

  it('a single row is still a list; no rows is an empty list; values stay strings ("0.10", leading zeros)', () => {
    assert.equal(parseTradeListAnswer(doc(rr())).records.length, 0);
    const one = parseTradeListAnswer(doc(rr() + row({ Amount: '0.10', CardNo: '000123' }))).records;
    assert.equal(one.length, 1);
    assert.equal(one[0]?.amountFen, 10);
    assert.equal(one[0]?.cardNo, '000123');
  });

  it("the spec's own trade-list example (placeholder texts) is refused, not turned into records", () => {
    const spec = doc(
      rr() +
        '<GetHospitalTradeList><CardNo>卡号/住院号</CardNo><PatientName>患者姓名</PatientName><CostType>费用类别</CostType>' +
        '<OutTradeStatus>交易状态</OutTradeStatus><TradeNo>支付平台订单号</TradeNo><Amount>金额</Amount>' +
        '<OutTradeNo>外部订单编号</OutTradeNo><TradeOptDateTime>订单操作时间</TradeOptDateTime></GetHospitalTradeList>',
    );
    rejects(() => parseTradeListAnswer(spec), 'HIS_MALFORMED', /OutTradeStatus/);
  });

  it('refuses bad amounts, statuses, times and missing fields, naming the row and field', () => {
    for (const amount of ['-1.00', '1e3', '12.345', '0', '', '１']) {
      rejects(() => parseTradeListAnswer(doc(rr() + row({ Amount: amount }))), 'HIS_MALFORMED', /Amount/);
    }
    rejects(
      () => parseTradeListAnswer(doc(rr() + row({ OutTradeStatus: '1' }))),
      'HIS_MALFORMED',
      /OutTradeStatus/,
    );
    for (const t of [
      '2026-11-25T10:00:00',
      '2026-02-30 10:00:00',
      '2026-11-25 24:00:00',
      '2026/11/25 10:00:00',
    ]) {
      rejects(
        () => parseTradeListAnswer(doc(rr() + row({ TradeOptDateTime: t }))),
        'HIS_MALFORMED',
        /TradeOptDateTime/,
      );
    }
    const noOut = row().replace('<OutTradeNo>H0001</OutTradeNo>', '');
    rejects(
      () => parseTradeListAnswer(doc(rr() + noOut)),
      'HIS_MALFORMED',
      /GetHospitalTradeList\[1\] has no OutTradeNo/,
    );
    rejects(
      () => parseTradeListAnswer(doc(rr() + row() + row({ TradeNo: '' }))),
      'HIS_MALFORMED',
      /\[2\]\/TradeNo/,
    );
  });

  it('refuses repeated or nested fields, repeated ResponseResult, unknown body elements', () => {
    const twice = row().replace('<Amount>88.88</Amount>', '<Amount>88.88</Amount><Amount>1.00</Amount>');
    rejects(() => parseTradeListAnswer(doc(rr() + twice)), 'HIS_MALFORMED', /Amount appears more than once/);
    const nested = row().replace('<Amount>88.88</Amount>', '<Amount><x>1</x></Amount>');
    rejects(() => parseTradeListAnswer(doc(rr() + nested)), 'HIS_MALFORMED', /must be text/);
    rejects(
      () => parseTradeListAnswer(doc(rr() + rr())),
      'HIS_MALFORMED',
      /ResponseResult appears more than once/,
    );
    rejects(
      () => parseTradeListAnswer(doc(rr() + '<Other>1</Other>')),
      'HIS_MALFORMED',
      /unexpected element Other/,
    );
    rejects(() => parseTradeListAnswer(doc(row())), 'HIS_MALFORMED', /ResponseResult is missing/);
  });

  it('IsSuccess other than 1 is HIS_REFUSED with the HIS message', () => {
    rejects(() => parseTradeListAnswer(doc(rr('0', '系统繁忙') + row())), 'HIS_REFUSED', /系统繁忙/);
  });

  it('hardening: DOCTYPE/entities, bad UTF-8, other encodings, size, broken XML, wrong root', () => {
    const evil = `<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><body>${rr()}</body></xml>`;
    rejects(() => parseTradeListAnswer(evil), 'HIS_MALFORMED', /DOCTYPE/);
    rejects(() => parseTradeListAnswer(new Uint8Array([0x3c, 0x78, 0xff, 0xfe])), 'HIS_MALFORMED', /UTF-8/);
    rejects(
      () => parseTradeListAnswer(doc(rr()).replace('encoding="utf-8"', 'encoding="gbk"')),
      'HIS_MALFORMED',
      /gbk/,
    );
    rejects(() => parseTradeListAnswer(doc(rr()), 100), 'HIS_MALFORMED', /larger than 100 bytes/);
    rejects(() => parseTradeListAnswer(doc(rr()).slice(0, -10)), 'HIS_MALFORMED');
    rejects(() => parseTradeListAnswer('<root><body/></root>'), 'HIS_MALFORMED', /root element/);
    rejects(() => parseTradeListAnswer(''), 'HIS_MALFORMED', /empty/);
    // Bytes with a BOM are fine; predefined entities are decoded.
    const bytes = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from(doc(rr() + row({ PatientName: 'A&amp;B' }))),
    ]);
    assert.equal(parseTradeListAnswer(bytes).records[0]?.patientName, 'A&B');
  });
});

describe('HIS answer bytes: encodings (issue 18)', () => {
  const gbkDoc = doc(rr() + row({ PatientName: '欧阳锋' })).replace('encoding="utf-8"', 'encoding="GBK"');
  const gbk = iconv.encode(gbkDoc, 'gbk');

  it('GBK / GB2312 / GB18030 bytes are decoded by the declaration or the HTTP charset', () => {
    assert.equal(parseTradeListAnswer(gbk).records[0]?.patientName, '欧阳锋');
    assert.equal(
      parseTradeListAnswer(gbk, undefined, { httpCharset: 'gb2312' }).records[0]?.patientName,
      '欧阳锋',
    );
    // A default UTF-8 header in front of GBK bytes that declare GBK: the declaration is used.
    assert.equal(
      parseTradeListAnswer(gbk, undefined, { httpCharset: 'utf-8' }).records[0]?.patientName,
      '欧阳锋',
    );
    const b18030 = iconv.encode(gbkDoc.replace('GBK', 'GB18030'), 'gb18030');
    assert.equal(parseTradeListAnswer(b18030).records[0]?.patientName, '欧阳锋');
    assert.equal(decodeHisBytes(Buffer.from('<a>中</a>'), 'UTF-8'), '<a>中</a>');
  });

  it('bytes not valid in their encoding, or an unknown encoding, are refused; a string is never re-decoded', () => {
    rejects(
      () => parseTradeListAnswer(Buffer.concat([gbk.subarray(0, 80), Buffer.from([0x81, 0x20])])),
      'HIS_MALFORMED',
      /GBK/,
    );
    rejects(
      () => parseTradeListAnswer(gbk, undefined, { httpCharset: 'big5' }),
      'HIS_MALFORMED',
      /unsupported encoding big5/,
    );
    rejects(() => decodeHisBytes(Buffer.from('<a>\u0000</a>')), 'HIS_MALFORMED', /NUL/);
    // Text from inside a SOAP envelope: its own declaration is moot.
    assert.equal(
      parseTradeListAnswer(gbkDoc, undefined, { fromEnvelope: true }).records[0]?.patientName,
      '欧阳锋',
    );
    rejects(() => parseTradeListAnswer(gbkDoc), 'HIS_MALFORMED', /GBK is not UTF-8/);
  });

  it('numeric character references are read (a GBK HIS writes what GBK cannot encode that way)', () => {
    const r = parseTradeListAnswer(doc(rr() + row({ PatientName: '&#x9F98;&#20013;' })));
    assert.equal(r.records[0]?.patientName, '龘中');
  });
});

describe('HIS answer parser: HIS_IF_Query', () => {
  it("reads the spec's own example: signed flows 100 and -50 yuan, 支付宝 understood", () => {
    const { query } = parseQueryAnswer(SPEC_QUERY);
    assert.equal(query.found, true);
    assert.equal(query.outTradeNo, '外部订单编号');
    assert.equal(query.medicalCard, '就诊卡');
    assert.deepEqual(
      query.flows.map((f) => [f.hisFlowId, f.amountFen, f.time.toISOString(), f.payType, f.payTypeCode]),
      [
        ['2022010101010100001', 10000, '2021-12-31T17:01:01.000Z', '支付宝', 'alipay'],
        ['T2022010101010100001', -5000, '2022-03-01T04:01:01.000Z', '支付宝', 'alipay'],
      ],
    );
  });

  it('one TradeList is a list; no HisTradeStatus means not found', () => {
    const one = SPEC_QUERY.replace(/<TradeList>\s*<HisFlowID>T[\s\S]*?<\/TradeList>/, '');
    assert.equal(parseQueryAnswer(one).query.flows.length, 1);
    const none = parseQueryAnswer(doc(rr())).query;
    assert.deepEqual(none, { found: false, outTradeNo: '', tradeNo: '', medicalCard: '', flows: [] });
    const empty = parseQueryAnswer(
      doc(rr() + '<HisTradeStatus><OutTradeNo>X</OutTradeNo></HisTradeStatus>'),
    ).query;
    assert.equal(empty.found, false);
  });

  it('refuses bad amounts, duplicate HisFlowID, repeated HisTradeStatus, refusals', () => {
    for (const amount of ['+100', '--5', '-0', '0', '1e2', '-12.345']) {
      rejects(
        () => parseQueryAnswer(SPEC_QUERY.replace('<TotalAmount>100<', `<TotalAmount>${amount}<`)),
        'HIS_MALFORMED',
        /TotalAmount/,
      );
    }
    rejects(
      () => parseQueryAnswer(SPEC_QUERY.replace('T2022010101010100001', '2022010101010100001')),
      'HIS_MALFORMED',
      /unique/,
    );
    const status = SPEC_QUERY.match(/<HisTradeStatus>[\s\S]*<\/HisTradeStatus>/)?.[0] ?? '';
    rejects(
      () => parseQueryAnswer(doc(rr() + status + status)),
      'HIS_MALFORMED',
      /HisTradeStatus appears more than once/,
    );
    rejects(
      () => parseQueryAnswer(SPEC_QUERY.replace('<IsSuccess>1<', '<IsSuccess>是否成功<')),
      'HIS_REFUSED',
    );
  });
});

describe('HIS helpers', () => {
  it('parseShanghai and parseSignedNonZeroYuan (TotalAmount) are exact', () => {
    assert.equal(parseShanghai('2026-11-25 00:00:00')?.toISOString(), '2026-11-24T16:00:00.000Z');
    assert.equal(parseShanghai('2024-02-29 12:00:00')?.toISOString(), '2024-02-29T04:00:00.000Z');
    assert.equal(parseShanghai('2025-02-29 12:00:00'), null);
    assert.equal(parseSignedNonZeroYuan('-0.01'), -1);
    assert.equal(parseSignedNonZeroYuan('99999999.99'), 9_999_999_999);
    assert.equal(parseSignedNonZeroYuan('-'), null);
  });
});
