import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import iconv from 'iconv-lite';
import { HisClient } from '../../../src/reconcile/his/his-client.js';
import { startHisSimulator, type HisSimulator } from '../../../src/reconcile/his/his-sim.js';
import { expectHisError, SimulatedHis } from '../../support/his.js';
import { soapFault, soapResponse } from '../../../src/reconcile/his/soap.js';
import { fen } from '../../../src/domain/money.js';

/** 2026-11-25 00:00:00 Asia/Shanghai. */
const DAY = new Date('2026-11-24T16:00:00Z');
const at = (hhmmss: string) => new Date(`2026-11-25T${hhmmss}+08:00`);
const HOUR = 3600_000;
const NS = 'http://tempuri.org/';

/**
 * The HIS client calling chapter 7 as SOAP operations (issue 18 §2), against the HIS simulator's SOAP service
 * over real HTTP, and against recorded answers for what a simulator does not do: what is sent, the answer read
 * namespace-aware, faults, retries, limits, hardening, GBK.
 */
describe('HisClient over SOAP (his-sim --soap, real HTTP)', () => {
  const his = new SimulatedHis({
    options: { accessToken: 'tok-soap', soap: true },
    path: '/HisService.asmx',
    client: { protocol: 'soap11' },
  });
  let sim: HisSimulator;
  let url: string;
  const client = (over: Parameters<SimulatedHis['client']>[0] = {}) => his.client(over);
  const hisError = expectHisError;
  /** A fetch that records the request and answers with the given bytes. */
  const recorded = (status: number, contentType: string, body: string | Buffer) => {
    const seen: Array<{ url: string; headers: Record<string, string>; body: string }> = [];
    const f = (async (input: string | URL | Request, init?: RequestInit) => {
      seen.push({
        url: String(input),
        headers: init?.headers as Record<string, string>,
        body: String(init?.body),
      });
      return new Response(body, { status, headers: { 'content-type': contentType } });
    }) as typeof fetch;
    return { fetch: f, seen };
  };

  before(async () => {
    await his.start();
    ({ sim, url } = his);
  });
  after(async () => {
    await his.close();
  });
  beforeEach(() => {
    his.reset();
  });

  it('SOAP 1.1 and 1.2: a day in slices and HIS_IF_Query, the same records as over plain XML', async () => {
    sim.addPayment({ outTradeNo: 'S1', amountFen: fen(1234), time: at('10:00:00'), patientName: '李四' });
    sim.addPayment({ outTradeNo: 'S2', amountFen: fen(100), time: at('23:59:59') });
    sim.addRefund({ outTradeNo: 'S1', amountFen: fen(234), time: at('11:00:00') });
    const xml = await new HisClient({ baseUrl: url, accessToken: 'tok-soap' }).getDay(DAY, HOUR, 'alipay');
    for (const protocol of ['soap11', 'soap12'] as const) {
      const day = await client({ protocol }).getDay(DAY, HOUR, 'alipay');
      assert.deepEqual(day.records, xml.records, protocol);
      assert.deepEqual(
        day.records.map((r) => [r.outTradeNo, r.status, r.amountFen, r.patientName]),
        [
          ['S1', 'PAID', 1234, '李四'],
          ['S1', 'REFUNDED', 234, '李四'],
          ['S2', 'PAID', 100, '测试患者'],
        ],
      );
      const q = await client({ protocol }).queryTrade('S1');
      assert.deepEqual(
        q.flows.map((f) => f.amountFen),
        [1234, -234],
      );
    }
    assert.equal(sim.requests.tradeList, 72);
  });

  it('what is sent: <Op xmlns="ns"><xml>document</xml></Op>, SOAPAction (1.1) or action (1.2)', async () => {
    const answer = soapResponse(
      '1.1',
      'urn:vendor:his',
      'HIS_IF_Query',
      '<?xml version="1.0" encoding="utf-8"?><xml><head/><body><ResponseResult><IsSuccess>1</IsSuccess></ResponseResult></body><sign/></xml>',
    );
    const r11 = recorded(200, 'text/xml; charset=utf-8', answer);
    await client({
      fetch: r11.fetch,
      soapNamespace: 'urn:vendor:his',
      baseUrl: 'http://his.test/ws/His.asmx',
    }).queryTrade('A&B<1>');
    const sent = r11.seen[0]!;
    assert.equal(sent.url, 'http://his.test/ws/His.asmx');
    assert.equal(sent.headers['content-type'], 'text/xml; charset=utf-8');
    assert.equal(sent.headers['soapaction'], '"urn:vendor:his/HIS_IF_Query"');
    assert.match(
      sent.body,
      /<soap:Envelope [^>]*xmlns:soap="http:\/\/schemas\.xmlsoap\.org\/soap\/envelope\/"><soap:Body><HIS_IF_Query xmlns="urn:vendor:his"><xml>&lt;\?xml version="1\.0" encoding="utf-8"\?&gt;/,
    );
    assert.match(
      sent.body,
      /&lt;OutTradeNo&gt;A&amp;amp;B&amp;lt;1&amp;gt;&lt;\/OutTradeNo&gt;/,
      'escaped twice',
    );

    const r12 = recorded(
      200,
      'application/soap+xml; charset=utf-8',
      answer.replace('http://schemas.xmlsoap.org/soap/envelope/', 'http://www.w3.org/2003/05/soap-envelope'),
    );
    await client({ protocol: 'soap12', fetch: r12.fetch })
      .queryTrade('X')
      .catch(() => undefined);
    assert.equal(
      r12.seen[0]!.headers['content-type'],
      'application/soap+xml; charset=utf-8; action="http://tempuri.org/HIS_IF_Query"',
    );
    assert.equal(r12.seen[0]!.headers['soapaction'], undefined);
    assert.match(r12.seen[0]!.body, /xmlns:soap12="http:\/\/www\.w3\.org\/2003\/05\/soap-envelope"/);
  });

  it('the answer is read namespace-aware, whatever the prefixes; CDATA and character references too', async () => {
    const doc =
      '<xml><head/><body><ResponseResult><IsSuccess>1</IsSuccess></ResponseResult><HisTradeStatus><OutTradeNo>P1</OutTradeNo>' +
      '<TradeList><HisFlowID>F1</HisFlowID><TotalAmount>1.00</TotalAmount><DateTime>2026-11-25 10:00:00</DateTime><PayType>支付宝</PayType></TradeList>' +
      '</HisTradeStatus></body><sign/></xml>';
    const bodies = [
      // Prefixed everything, as PHP and Java stacks write it.
      `<E:Envelope xmlns:E="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="${NS}"><E:Body><t:HIS_IF_QueryResponse><t:HIS_IF_QueryResult>${doc.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</t:HIS_IF_QueryResult></t:HIS_IF_QueryResponse></E:Body></E:Envelope>`,
      // Unqualified result, CDATA, a header.
      `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header/><soap:Body><r:HIS_IF_QueryResponse xmlns:r="${NS}"><HIS_IF_QueryResult><![CDATA[${doc}]]></HIS_IF_QueryResult></r:HIS_IF_QueryResponse></soap:Body></soap:Envelope>`,
      // Character references for the Chinese text.
      `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><HIS_IF_QueryResponse xmlns="${NS}"><HIS_IF_QueryResult>${doc
        .replace(/</g, '&lt;')
        .replace(
          '支付宝',
          '&amp;#x652F;&amp;#x4ED8;&amp;#x5B9D;',
        )}</HIS_IF_QueryResult></HIS_IF_QueryResponse></soap:Body></soap:Envelope>`,
    ];
    for (const body of bodies) {
      const r = recorded(200, 'text/xml; charset=utf-8', body);
      const q = await client({ fetch: r.fetch }).queryTrade('P1');
      assert.equal(q.flows[0]?.payTypeCode, 'alipay', body);
    }
    // The right local names in another namespace are not the answer.
    const other = recorded(
      200,
      'text/xml',
      `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><HIS_IF_QueryResponse xmlns="urn:other"><HIS_IF_QueryResult>x</HIS_IF_QueryResult></HIS_IF_QueryResponse></soap:Body></soap:Envelope>`,
    );
    const e = await hisError(client({ fetch: other.fetch }).queryTrade('P1'), 'HIS_MALFORMED');
    assert.match(e.en, /namespace "urn:other", not the configured "http:\/\/tempuri\.org\/"/);
  });

  it('a Server fault is retried like HTTP 5xx, then kept: HIS_SOAP_FAULT with faultcode and faultstring', async () => {
    sim.faults.broken = 'fault';
    for (const protocol of ['soap11', 'soap12'] as const) {
      sim.requests.tradeList = 0;
      his.sleeps.length = 0;
      const e = await hisError(
        client({ protocol }).getTradeList({ begin: at('10:00:00'), end: at('11:00:00'), payType: 'alipay' }),
        'HIS_SOAP_FAULT',
      );
      assert.equal(sim.requests.tradeList, 3, '1 + 2 retries');
      assert.deepEqual(his.sleeps, [10, 20]);
      assert.equal(e.details.faultCode, protocol === 'soap11' ? 'soap:Server' : 'soap12:Receiver');
      assert.match(e.zh, /HIS 数据库不可用（模拟）/);
      assert.match(e.en, /HTTP 500/);
      assert.match(e.details.raw ?? '', /Fault/);
    }
  });

  it('a Client fault is not retried; an unknown operation is named; HTTP 500 without a fault is HIS_HTTP_500', async () => {
    const client11 = recorded(
      500,
      'text/xml',
      soapFault('1.1', 'client', 'Server did not recognize the value of HTTP Header SOAPAction'),
    );
    const e = await hisError(client({ fetch: client11.fetch }).queryTrade('A'), 'HIS_SOAP_FAULT');
    assert.equal(client11.seen.length, 1, 'not retried');
    assert.equal(e.details.serverFault, false);
    assert.match(e.en, /did not recognize the value of HTTP Header SOAPAction/);

    sim.faults.broken = 'http500';
    await hisError(client().queryTrade('A'), 'HIS_HTTP_500');
    assert.equal(sim.requests.query, 3);
    sim.faults.broken = null;

    const html = recorded(404, 'text/html', '<html><body>Not Found</body></html>');
    await hisError(client({ fetch: html.fetch }).queryTrade('A'), 'HIS_HTTP_404');
    // The simulator's SOAP door itself: a mistyped namespace is a Client fault naming the operation.
    const e2 = await hisError(
      client({ soapNamespace: 'http://tempuri.org' }).queryTrade('A'),
      'HIS_SOAP_FAULT',
    );
    assert.match(e2.en, /operation HIS_IF_Query is in namespace "http:\/\/tempuri\.org"/);
  });

  it('hardening: a DOCTYPE in the envelope, broken XML, too deep, too large, no envelope, elements as result', async () => {
    const env = (body: string) =>
      `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>${body}</soap:Body></soap:Envelope>`;
    const cases: Array<[string, RegExp]> = [
      [`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>${env('&a;')}`, /DOCTYPE/],
      [env('<HIS_IF_QueryResponse xmlns="http://tempuri.org/"><HIS_IF_QueryResult>'), /malformed XML/],
      [env(`${'<a>'.repeat(20)}${'</a>'.repeat(20)}`), /Maximum nested tags exceeded/],
      ['<xml><head/><body/></xml>', /not a SOAP 1\.1 or 1\.2 Envelope/],
      [
        env(
          '<HIS_IF_QueryResponse xmlns="http://tempuri.org/"><HIS_IF_QueryResult><xml><head/></xml></HIS_IF_QueryResult></HIS_IF_QueryResponse>',
        ),
        /must be a string/,
      ],
      [env('<Other xmlns="http://tempuri.org/"/>'), /answer element is Other, not HIS_IF_QueryResponse/],
      [env('<e:HIS_IF_QueryResponse/>'), /undeclared namespace prefix e/],
    ];
    for (const [body, why] of cases) {
      const r = recorded(200, 'text/xml', body);
      const e = await hisError(client({ fetch: r.fetch }).queryTrade('A'), 'HIS_MALFORMED');
      assert.match(e.en, why, body);
    }
    const big = recorded(200, 'text/xml', env(`<x>${'a'.repeat(5000)}</x>`));
    const e = await hisError(
      client({ fetch: big.fetch, maxAnswerBytes: 1000 }).queryTrade('A'),
      'HIS_MALFORMED',
    );
    assert.match(e.en, /larger than 1000 bytes/);
    // The document inside is checked as over plain XML: a DOCTYPE in it is refused too.
    sim.faults.broken = 'doctype';
    await hisError(client().queryTrade('A'), 'HIS_MALFORMED');
  });

  it('GBK: the HTTP charset, or the declaration behind a UTF-8 default header, decodes the envelope', async () => {
    const doc =
      '<?xml version="1.0" encoding="GBK"?><xml><head/><body><ResponseResult><IsSuccess>1</IsSuccess></ResponseResult>' +
      '<GetHospitalTradeList><CardNo>1</CardNo><PatientName>欧阳娜娜</PatientName><CostType>门诊</CostType><OutTradeStatus>2</OutTradeStatus>' +
      '<TradeNo>T</TradeNo><Amount>9.99</Amount><OutTradeNo>G1</OutTradeNo><TradeOptDateTime>2026-11-25 10:30:00</TradeOptDateTime></GetHospitalTradeList></body><sign/></xml>';
    const envelope = soapResponse('1.1', NS, 'IF_Get_Hospital_Trade_List', doc, 'GBK');
    const gbk = iconv.encode(envelope, 'gbk');
    assert.ok(!gbk.equals(Buffer.from(envelope)), 'really GBK bytes');
    for (const contentType of [
      'text/xml; charset=GBK',
      'text/xml; charset=gb2312',
      'text/xml; charset=utf-8',
      'text/xml',
    ]) {
      const r = recorded(200, contentType, gbk);
      const list = await client({ fetch: r.fetch }).getTradeList({
        begin: at('10:00:00'),
        end: at('11:00:00'),
        payType: 'alipay',
      });
      assert.equal(list.records[0]?.patientName, '欧阳娜娜', contentType);
    }
    // Bytes that are no GBK are refused, not guessed.
    const bad = recorded(
      200,
      'text/xml; charset=GBK',
      Buffer.concat([Buffer.from(envelope.slice(0, 60)), Buffer.from([0x81, 0x20])]),
    );
    await hisError(client({ fetch: bad.fetch }).queryTrade('A'), 'HIS_MALFORMED');

    // The simulator answering in GBK, over SOAP and over plain XML.
    const {
      url: gbkUrl,
      sim: gbkSim,
      close: closeGbk,
    } = await startHisSimulator(0, '127.0.0.1', {
      soap: true,
      encoding: 'gbk',
    });
    try {
      gbkSim.addPayment({
        outTradeNo: 'G2',
        amountFen: fen(500),
        time: at('10:10:00'),
        patientName: '诸葛亮',
      });
      const res = await fetch(`${gbkUrl}/IF_Get_Hospital_Trade_List`, {
        method: 'POST',
        body: '<xml><head/></xml>',
      });
      assert.equal(res.headers.get('content-type'), 'text/xml; charset=GBK');
      for (const [baseUrl, protocol] of [
        [`${gbkUrl}/HisService.asmx`, 'soap12'],
        [gbkUrl, 'xml'],
      ] as const) {
        const list = await new HisClient({ baseUrl, protocol }).getTradeList({
          begin: at('10:00:00'),
          end: at('11:00:00'),
          payType: 'alipay',
        });
        assert.equal(list.records[0]?.patientName, '诸葛亮', protocol);
      }
    } finally {
      await closeGbk();
    }
  });
});
