import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { maskAccount, maskPersonName } from '../../src/store/desk.js';
import { csvCell } from '../../src/http/pages/desk-trades.js';
import { shownUrl } from '../../src/services/desk-timeline.js';

describe('the desk: masking and CSV cells', () => {
  it('masks a name as 张*三 / 张*', () => {
    assert.equal(maskPersonName('张三'), '张*');
    assert.equal(maskPersonName('张小三'), '张*三');
    assert.equal(maskPersonName('欧阳小明'), '欧*明');
    assert.equal(maskPersonName('张'), '*');
    assert.equal(maskPersonName('𠮷野家'), '𠮷*家', 'by code point, not UTF-16 unit');
    assert.equal(maskPersonName(null), null);
  });
  it('masks a buyer account', () => {
    assert.equal(maskAccount('13812345678'), '138***78');
    assert.equal(maskAccount('a@b.cn'), '***');
    assert.equal(maskAccount(null), null);
  });
  it('quotes every cell and defuses formulas', () => {
    assert.equal(csvCell('88.88'), '"88.88"');
    assert.equal(csvCell('a"b'), '"a""b"');
    for (const f of ['=1+1', '+1', '-2+3', '@SUM(A1)', '\t=1', '\r=1'])
      assert.equal(csvCell(f), `"'${f}"`, JSON.stringify(f));
    assert.equal(csvCell('张*'), '"张*"');
  });
  it('shows a URL without its query', () => {
    assert.equal(shownUrl('https://his.example/notify?token=s3cret'), 'https://his.example/notify?…');
    assert.equal(shownUrl('https://his.example/notify'), 'https://his.example/notify');
  });
});
