import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestPlatform, type TestPlatform } from '../support/platform.js';
import {
  deskGet,
  deskPost,
  deskUser,
  formToken,
  outcomeOf,
  paidTrade,
  refundsAtChannel,
  requestsOf,
  tradePath,
  waitingTrade,
  type DeskUser,
} from '../support/desk-actions.js';
import { REFUND_RULES } from '../../src/simulator/provider.js';

describe('desk actions and maker–checker approvals (HTTP)', () => {
  let t: TestPlatform;
  let appB: string;
  let sup: DeskUser; // cashier supervisor, hospital A
  let fin: DeskUser; // finance, hospital A
  let fin2: DeskUser; // another finance, hospital A
  let it_: DeskUser; // hospital IT, hospital A
  let finB: DeskUser; // finance, hospital B only

  before(async () => {
    t = await startTestPlatform();
    appB = (await t.platform.deps.apps.create({ name: '乙医院', hospitalId: 'H002' })).appId;
    sup = await deskUser(t, 'sup.li', 'cashier_supervisor', [t.appId]);
    fin = await deskUser(t, 'fin.wang', 'finance', [t.appId]);
    fin2 = await deskUser(t, 'fin.zhao', 'finance', [t.appId]);
    it_ = await deskUser(t, 'it.chen', 'hospital_it', [t.appId]);
    finB = await deskUser(t, 'fin.b', 'finance', [appB]);
  });
  after(async () => {
    await t.close();
  });

  const auditOf = (outTradeNo: string) => t.platform.deps.audit.forTrade(t.appId, outTradeNo);

  it('a supervisor’s refund waits for finance; finance approves and it is refunded once; a second approve does nothing', async () => {
    const no = await paidTrade(t, '100.00');
    const token = formToken();
    const asked = await deskPost(t, sup, tradePath(t, no, 'refund'), {
      amount: '30.00',
      reason: '检查取消 13812345678',
      token,
    });
    assert.deepEqual(outcomeOf(asked), { m: 'refund_pending', c: null });
    assert.ok(asked.location.startsWith(tradePath(t, no) + '?'), asked.location);
    const [req] = await requestsOf(t, no);
    assert.ok(req);
    assert.equal(req.status, 'PENDING');
    assert.equal(req.amount_fen, 3000);
    assert.equal(req.out_request_no, `DESK${token}`);
    assert.equal(req.requested_by, 'sup.li');
    assert.deepEqual(await refundsAtChannel(t, no), { count: 0, sumFen: 0 }, 'nothing moves before approval');

    // The requester sees it waiting for someone else, without approve buttons; finance sees them.
    const supPage = await deskGet(t, sup, '/desk/approvals');
    assert.equal(supPage.status, 200);
    assert.match(supPage.text, new RegExp(`id="request-${req.id}"`));
    assert.match(supPage.text, /waiting for someone else/);
    assert.doesNotMatch(supPage.text, new RegExp(`id="approve-${req.id}"`));
    const finPage = await deskGet(t, fin, '/desk/approvals');
    assert.match(finPage.text, new RegExp(`id="approve-${req.id}"`));
    assert.doesNotMatch(finPage.text, /13812345678/, 'a phone number in the reason is never shown');
    assert.match(finPage.text, /检查取消 138\*{4}678/);

    // A cashier supervisor cannot approve (not even someone else's).
    const supApprove = await deskPost(t, sup, `/desk/approvals/${req.id}/approve`);
    assert.equal(supApprove.status, 403);

    const approved = await deskPost(t, fin, `/desk/approvals/${req.id}/approve`);
    assert.deepEqual(outcomeOf(approved), { m: 'refund_done', c: null });
    assert.ok(approved.location.startsWith('/desk/approvals?'));
    const done = await t.platform.deps.deskRequests.get(req.id);
    assert.equal(done?.status, 'DONE');
    assert.equal(done?.decided_by, 'fin.wang');
    assert.equal((await t.trade(no)).refunded_fen, 3000);
    assert.deepEqual(await refundsAtChannel(t, no), { count: 1, sumFen: -3000 });

    // Approving again (a double click, another finance person): already decided, nothing moves.
    assert.deepEqual(outcomeOf(await deskPost(t, fin, `/desk/approvals/${req.id}/approve`)), {
      m: 'already_decided',
      c: null,
    });
    assert.deepEqual(outcomeOf(await deskPost(t, fin2, `/desk/approvals/${req.id}/approve`)), {
      m: 'already_decided',
      c: null,
    });
    assert.deepEqual(await refundsAtChannel(t, no), { count: 1, sumFen: -3000 });

    // The audit trail: request (pending), approve, execute; no reason text (it may hold personal data).
    const audit = await auditOf(no);
    const actions = audit.map((a) => `${a.action}:${a.outcome}:${a.actor}`);
    assert.deepEqual(actions.slice(0, 3), [
      'refund.request:pending:sup.li',
      'refund.approve:ok:fin.wang',
      'refund.execute:ok:fin.wang',
    ]);
    assert.ok(audit.every((a) => a.request_id === req.id));
    assert.ok(audit.every((a) => !a.detail.includes('13812345678') && !a.detail.includes('检查取消')));
    assert.match(audit[0]?.detail ?? '', /"amount":"30.00"/);
  });

  it('several approvals at once of one request refund exactly once', async () => {
    const no = await paidTrade(t, '50.00');
    outcomeOf(
      await deskPost(t, sup, tradePath(t, no, 'refund'), {
        amount: '20.00',
        reason: '重复收费',
        token: formToken(),
      }),
    );
    const [req] = await requestsOf(t, no);
    assert.ok(req);
    const answers = await Promise.all(
      [fin, fin2, fin, fin2].map((u) => deskPost(t, u, `/desk/approvals/${req.id}/approve`)),
    );
    const ms = answers.map((a) => outcomeOf(a).m).sort();
    assert.deepEqual(ms, ['already_decided', 'already_decided', 'already_decided', 'refund_done']);
    assert.deepEqual(await refundsAtChannel(t, no), { count: 1, sumFen: -2000 });
  });

  it('nobody approves their own request (the page refuses it, and so does the table)', async () => {
    const no = await paidTrade(t, '40.00');
    outcomeOf(
      await deskPost(t, fin, tradePath(t, no, 'refund'), {
        amount: '10.00',
        reason: '退费',
        token: formToken(),
      }),
    );
    const [req] = await requestsOf(t, no);
    assert.ok(req);
    const page = await deskGet(t, fin, '/desk/approvals');
    assert.doesNotMatch(
      page.text,
      new RegExp(`id="approve-${req.id}"`),
      'no approve button on one’s own request',
    );
    assert.deepEqual(outcomeOf(await deskPost(t, fin, `/desk/approvals/${req.id}/approve`)), {
      m: 'self_approval',
      c: null,
    });
    assert.deepEqual(outcomeOf(await deskPost(t, fin, `/desk/approvals/${req.id}/reject`, { reason: 'x' })), {
      m: 'self_approval',
      c: null,
    });
    assert.equal((await t.platform.deps.deskRequests.get(req.id))?.status, 'PENDING');
    assert.deepEqual(await refundsAtChannel(t, no), { count: 0, sumFen: 0 });
    // The table's CHECK holds even for a caller that skips the guarded update.
    await assert.rejects(
      t.store.db
        .updateTable('desk_requests')
        .set({ status: 'APPROVED', decided_by: 'fin.wang', decided_at: new Date() })
        .where('id', '=', req.id)
        .execute(),
    );
    const audit = await t.platform.deps.audit.forTrade(t.appId, no);
    assert.ok(
      audit.some((a) => a.action === 'refund.approve' && a.outcome === 'refused' && a.actor === 'fin.wang'),
    );
    // Another finance person may.
    assert.deepEqual(outcomeOf(await deskPost(t, fin2, `/desk/approvals/${req.id}/approve`)), {
      m: 'refund_done',
      c: null,
    });
  });

  it('a rejected request moves nothing and cannot be approved afterwards', async () => {
    const no = await paidTrade(t, '40.00');
    outcomeOf(
      await deskPost(t, sup, tradePath(t, no, 'refund'), {
        amount: '10.00',
        reason: '退费',
        token: formToken(),
      }),
    );
    const [req] = await requestsOf(t, no);
    assert.ok(req);
    assert.deepEqual(outcomeOf(await deskPost(t, fin, `/desk/approvals/${req.id}/reject`, { reason: '' })), {
      m: 'invalid_reason',
      c: null,
    });
    assert.deepEqual(
      outcomeOf(
        await deskPost(t, fin, `/desk/approvals/${req.id}/reject`, { reason: '金额有误', back: 'trade' }),
      ),
      { m: 'rejected', c: null },
    );
    const r = await t.platform.deps.deskRequests.get(req.id);
    assert.equal(r?.status, 'REJECTED');
    assert.equal(r?.decided_by, 'fin.wang');
    assert.deepEqual(outcomeOf(await deskPost(t, fin2, `/desk/approvals/${req.id}/approve`)), {
      m: 'already_decided',
      c: null,
    });
    assert.deepEqual(await refundsAtChannel(t, no), { count: 0, sumFen: 0 });
  });

  it('the same form submitted twice makes one request; with approval off, one refund', async () => {
    const no = await paidTrade(t, '60.00');
    const token = formToken();
    const form = { amount: '15.00', reason: '重复提交', token };
    assert.equal(outcomeOf(await deskPost(t, sup, tradePath(t, no, 'refund'), form)).m, 'refund_pending');
    assert.equal(outcomeOf(await deskPost(t, sup, tradePath(t, no, 'refund'), form)).m, 'duplicate');
    assert.equal((await requestsOf(t, no)).length, 1);
    // The same token with another amount is not a new request either.
    assert.equal(
      outcomeOf(await deskPost(t, sup, tradePath(t, no, 'refund'), { ...form, amount: '16.00' })).m,
      'invalid_form',
    );
    assert.equal((await requestsOf(t, no)).length, 1);

    await t.platform.deps.apps.setDeskApproval(t.appId, false);
    try {
      const no2 = await paidTrade(t, '60.00');
      const form2 = { amount: '15.00', reason: '立即退款', token: formToken() };
      const answers = await Promise.all([
        deskPost(t, sup, tradePath(t, no2, 'refund'), form2),
        deskPost(t, sup, tradePath(t, no2, 'refund'), form2),
      ]);
      const ms = answers.map((a) => outcomeOf(a).m).sort();
      assert.ok(ms.includes('refund_done'), ms.join());
      assert.equal((await requestsOf(t, no2)).length, 1);
      assert.deepEqual(await refundsAtChannel(t, no2), { count: 1, sumFen: -1500 });
    } finally {
      await t.platform.deps.apps.setDeskApproval(t.appId, true);
    }
  });

  it('with approval off for the hospital, a refund is executed at once through the refund service', async () => {
    await t.platform.deps.apps.setDeskApproval(t.appId, false);
    try {
      const no = await paidTrade(t, '80.00');
      const a = await deskPost(t, sup, tradePath(t, no, 'refund'), {
        amount: '80.00',
        reason: '全额退',
        token: formToken(),
      });
      assert.deepEqual(outcomeOf(a), { m: 'refund_done', c: null });
      const [req] = await requestsOf(t, no);
      assert.equal(req?.status, 'DONE');
      assert.equal(req?.decided_by, null);
      const trade = await t.trade(no);
      assert.equal(trade.refunded_fen, 8000);
      assert.equal(trade.status, 'TRADE_CLOSED');
      // The refund is the refund service's own record, with the desk's request number.
      const refund = await t.platform.deps.refunds.byRequestNo(trade.id, req?.out_request_no ?? '');
      assert.equal(refund?.status, 'SUCCESS');
      assert.equal(refund?.amount_fen, 8000);
      const actions = (await t.platform.deps.audit.forTrade(t.appId, no)).map(
        (e) => `${e.action}:${e.outcome}`,
      );
      assert.deepEqual(actions, ['refund.request:ok', 'refund.execute:ok']);
    } finally {
      await t.platform.deps.apps.setDeskApproval(t.appId, true);
    }
  });

  it('over-refunds, bad amounts and missing reasons are refused with the service’s own error', async () => {
    const no = await paidTrade(t, '10.00');
    const over = await deskPost(t, sup, tradePath(t, no, 'refund'), {
      amount: '10.01',
      reason: 'x',
      token: formToken(),
    });
    assert.deepEqual(outcomeOf(over), { m: 'refused', c: 'REFUND_AMOUNT_EXCEEDED' });
    for (const amount of ['abc', '0', '-1.00', '1.001', '', '1e3', '9'.repeat(40)]) {
      const a = await deskPost(t, sup, tradePath(t, no, 'refund'), {
        amount,
        reason: 'x',
        token: formToken(),
      });
      assert.deepEqual(outcomeOf(a), { m: 'invalid_amount', c: null }, amount);
    }
    for (const reason of ['', '   ', '长'.repeat(257)]) {
      const a = await deskPost(t, sup, tradePath(t, no, 'refund'), {
        amount: '1.00',
        reason,
        token: formToken(),
      });
      assert.deepEqual(outcomeOf(a), { m: 'invalid_reason', c: null });
    }
    const badToken = await deskPost(t, sup, tradePath(t, no, 'refund'), {
      amount: '1.00',
      reason: 'x',
      token: 'abc',
    });
    assert.deepEqual(outcomeOf(badToken), { m: 'invalid_form', c: null });
    assert.equal((await requestsOf(t, no)).length, 0);

    // Two requests that each fit but not together: the second is refused at execution by the refund service.
    outcomeOf(
      await deskPost(t, sup, tradePath(t, no, 'refund'), { amount: '8.00', reason: 'a', token: formToken() }),
    );
    outcomeOf(
      await deskPost(t, sup, tradePath(t, no, 'refund'), { amount: '5.00', reason: 'b', token: formToken() }),
    );
    const [second, first] = await requestsOf(t, no);
    assert.ok(first && second);
    assert.equal(outcomeOf(await deskPost(t, fin, `/desk/approvals/${first.id}/approve`)).m, 'refund_done');
    assert.deepEqual(outcomeOf(await deskPost(t, fin, `/desk/approvals/${second.id}/approve`)), {
      m: 'refund_failed',
      c: 'REFUND_AMOUNT_EXCEEDED',
    });
    const failed = await t.platform.deps.deskRequests.get(second.id);
    assert.equal(failed?.status, 'FAILED');
    assert.match(failed?.result ?? '', /REFUND_AMOUNT_EXCEEDED/);
    assert.match(failed?.result ?? '', /退款金额超过可退金额 \/ the refund amount exceeds/);
    assert.deepEqual(await refundsAtChannel(t, no), { count: 1, sumFen: -800 });

    // An unpaid trade: no refund, the service's TRADE_NOT_PAID.
    const unpaid = await waitingTrade(t);
    assert.deepEqual(
      outcomeOf(
        await deskPost(t, sup, tradePath(t, unpaid, 'refund'), {
          amount: '1.00',
          reason: 'x',
          token: formToken(),
        }),
      ),
      { m: 'refused', c: 'TRADE_NOT_PAID' },
    );
  });

  it('a refund the channel declines ends FAILED with its message, and the reservation is released', async () => {
    const no = await paidTrade(t, '30.00');
    outcomeOf(
      await deskPost(t, sup, tradePath(t, no, 'refund'), {
        amount: '30.00',
        reason: REFUND_RULES.DECLINED,
        token: formToken(),
      }),
    );
    const [req] = await requestsOf(t, no);
    assert.ok(req);
    const a = await deskPost(t, fin, `/desk/approvals/${req.id}/approve`, { back: 'trade' });
    assert.deepEqual(outcomeOf(a), { m: 'refund_failed', c: 'REFUND_DECLINED' });
    assert.ok(a.location.startsWith(tradePath(t, no) + '?'), 'back to the trade page when asked from there');
    const failed = await t.platform.deps.deskRequests.get(req.id);
    assert.equal(failed?.status, 'FAILED');
    const result = JSON.parse(failed?.result ?? '{}') as { code?: string; message?: string };
    assert.equal(result.code, 'REFUND_DECLINED');
    assert.match(result.message ?? '', / \/ /, 'bilingual');
    const trade = await t.trade(no);
    assert.equal(trade.refund_reserved_fen, 0, 'the reservation is given back');
    assert.equal(trade.refunded_fen, 0);
    const audit = await t.platform.deps.audit.forTrade(t.appId, no);
    assert.ok(audit.some((e) => e.action === 'refund.execute' && e.outcome === 'failed'));
    // The whole amount can be refunded by a new request.
    outcomeOf(
      await deskPost(t, sup, tradePath(t, no, 'refund'), {
        amount: '30.00',
        reason: '重新退款',
        token: formToken(),
      }),
    );
    const [again] = await requestsOf(t, no);
    assert.ok(again && again.id !== req.id);
    assert.equal(outcomeOf(await deskPost(t, fin, `/desk/approvals/${again.id}/approve`)).m, 'refund_done');
    assert.deepEqual(await refundsAtChannel(t, no), { count: 1, sumFen: -3000 });
  });

  it('a refund with an unknown outcome stays in progress; trying again completes it without refunding twice', async () => {
    const no = await paidTrade(t, '20.00');
    outcomeOf(
      await deskPost(t, sup, tradePath(t, no, 'refund'), {
        amount: '4.00',
        reason: REFUND_RULES.SYSTEM_ERROR_BUT_REFUNDED,
        token: formToken(),
      }),
    );
    const [req] = await requestsOf(t, no);
    assert.ok(req);
    assert.deepEqual(outcomeOf(await deskPost(t, fin, `/desk/approvals/${req.id}/approve`)), {
      m: 'refund_processing',
      c: 'REFUND_PROCESSING',
    });
    assert.equal((await t.platform.deps.deskRequests.get(req.id))?.status, 'APPROVED');
    const page = await deskGet(t, sup, '/desk/approvals');
    assert.match(page.text, new RegExp(`id="retry-${req.id}"`));
    t.clock.advance(10 * 60_000); // past the refund's lease
    assert.deepEqual(outcomeOf(await deskPost(t, sup, `/desk/approvals/${req.id}/retry`)), {
      m: 'refund_done',
      c: null,
    });
    assert.equal((await t.platform.deps.deskRequests.get(req.id))?.status, 'DONE');
    assert.deepEqual(await refundsAtChannel(t, no), { count: 1, sumFen: -400 });
    assert.equal(outcomeOf(await deskPost(t, sup, `/desk/approvals/${req.id}/retry`)).m, 'not_retryable');
  });

  it('a cancel request, approved, reverses the paid trade in full', async () => {
    const no = await paidTrade(t, '12.34');
    const a = await deskPost(t, sup, tradePath(t, no, 'cancel'), { reason: '患者放弃', token: formToken() });
    assert.deepEqual(outcomeOf(a), { m: 'cancel_pending', c: null });
    const [req] = await requestsOf(t, no);
    assert.equal(req?.kind, 'cancel');
    assert.equal(req?.amount_fen, null);
    assert.deepEqual(outcomeOf(await deskPost(t, fin, `/desk/approvals/${req?.id}/approve`)), {
      m: 'cancel_done',
      c: null,
    });
    const trade = await t.trade(no);
    assert.equal(trade.status, 'TRADE_CLOSED');
    assert.equal(trade.refunded_fen, 1234);
    assert.deepEqual(await refundsAtChannel(t, no), { count: 1, sumFen: -1234 });
    // A cancel after a refund is refused by the cancel rules.
    const no2 = await paidTrade(t, '20.00');
    await t.platform.deps.apps.setDeskApproval(t.appId, false);
    try {
      outcomeOf(
        await deskPost(t, sup, tradePath(t, no2, 'refund'), {
          amount: '1.00',
          reason: 'x',
          token: formToken(),
        }),
      );
      assert.deepEqual(
        outcomeOf(await deskPost(t, sup, tradePath(t, no2, 'cancel'), { reason: 'x', token: formToken() })),
        { m: 'refused', c: 'TRADE_HAS_REFUND' },
      );
    } finally {
      await t.platform.deps.apps.setDeskApproval(t.appId, true);
    }
  });

  it('wrong role: 403 and nothing done', async () => {
    const no = await paidTrade(t, '10.00');
    // hospital IT may not ask for money actions nor see approvals; finance may not close trades.
    const r = await deskPost(t, it_, tradePath(t, no, 'refund'), {
      amount: '1.00',
      reason: 'x',
      token: formToken(),
    });
    assert.equal(r.status, 403);
    assert.equal(
      (await deskPost(t, it_, tradePath(t, no, 'cancel'), { reason: 'x', token: formToken() })).status,
      403,
    );
    assert.equal((await deskGet(t, it_, '/desk/approvals')).status, 403);
    const unpaid = await waitingTrade(t);
    assert.equal((await deskPost(t, fin, tradePath(t, unpaid, 'close'))).status, 403);
    assert.equal((await deskPost(t, fin, tradePath(t, no, 'resend'))).status, 403);
    assert.equal((await deskPost(t, sup, tradePath(t, no, 'resend'))).status, 403);
    assert.equal((await requestsOf(t, no)).length, 0);
    assert.equal((await t.trade(unpaid)).status, 'WAIT_BUYER_PAY');
  });

  it('another hospital’s trade or request answers exactly like a missing one (404)', async () => {
    const no = await paidTrade(t, '10.00');
    const other = await deskPost(t, finB, tradePath(t, no, 'refund'), {
      amount: '1.00',
      reason: 'x',
      token: formToken(),
    });
    const missing = await deskPost(t, finB, tradePath(t, 'NOSUCHTRADE', 'refund', appB), {
      amount: '1.00',
      reason: 'x',
      token: formToken(),
    });
    assert.equal(other.status, 404);
    assert.equal(missing.status, 404);
    assert.equal(other.text, missing.text);
    assert.equal((await deskPost(t, finB, tradePath(t, no, 'query'))).status, 404);
    assert.equal((await requestsOf(t, no)).length, 0);

    outcomeOf(
      await deskPost(t, sup, tradePath(t, no, 'refund'), { amount: '1.00', reason: 'x', token: formToken() }),
    );
    const [req] = await requestsOf(t, no);
    assert.ok(req);
    const approve = await deskPost(t, finB, `/desk/approvals/${req.id}/approve`);
    const approveMissing = await deskPost(t, finB, `/desk/approvals/999999999/approve`);
    assert.equal(approve.status, 404);
    assert.equal(approve.text, approveMissing.text);
    assert.equal((await deskPost(t, finB, `/desk/approvals/${req.id}/reject`, { reason: 'x' })).status, 404);
    assert.equal((await deskPost(t, finB, `/desk/approvals/abc/approve`)).status, 404);
    assert.doesNotMatch(
      (await deskGet(t, finB, '/desk/approvals')).text,
      new RegExp(`id="request-${req.id}"`),
    );
    assert.equal((await t.platform.deps.deskRequests.get(req.id))?.status, 'PENDING');
  });

  it('without the CSRF token (or with a wrong one, or without a session) nothing is done', async () => {
    const no = await paidTrade(t, '10.00');
    const form = { amount: '1.00', reason: 'x', token: formToken() };
    assert.equal((await deskPost(t, sup, tradePath(t, no, 'refund'), form, null)).status, 403);
    assert.equal((await deskPost(t, sup, tradePath(t, no, 'refund'), form, fin.csrf)).status, 403);
    const noSession = await deskPost(t, { ...sup, cookie: '' }, tradePath(t, no, 'refund'), form);
    assert.equal(noSession.status, 303);
    assert.match(noSession.location, /^\/finance\/login/);
    assert.equal((await requestsOf(t, no)).length, 0);
    outcomeOf(await deskPost(t, sup, tradePath(t, no, 'refund'), form));
    const [req] = await requestsOf(t, no);
    assert.ok(req);
    assert.equal((await deskPost(t, fin, `/desk/approvals/${req.id}/approve`, {}, null)).status, 403);
    assert.equal((await deskPost(t, fin, `/desk/approvals/${req.id}/approve`, {}, 'forged')).status, 403);
    assert.equal((await t.platform.deps.deskRequests.get(req.id))?.status, 'PENDING');
  });

  it('close: an unpaid trade is closed at the channel; a paid one is refused', async () => {
    const unpaid = await waitingTrade(t);
    assert.deepEqual(outcomeOf(await deskPost(t, sup, tradePath(t, unpaid, 'close'))), {
      m: 'closed',
      c: null,
    });
    assert.equal((await t.trade(unpaid)).status, 'TRADE_CLOSED');
    assert.deepEqual(outcomeOf(await deskPost(t, sup, tradePath(t, unpaid, 'close'))), {
      m: 'close_not_open',
      c: null,
    });
    const paid = await paidTrade(t, '10.00');
    assert.deepEqual(outcomeOf(await deskPost(t, it_, tradePath(t, paid, 'close'))), {
      m: 'close_paid',
      c: null,
    });
    assert.equal((await t.trade(paid)).status, 'TRADE_SUCCESS');
    assert.deepEqual(await refundsAtChannel(t, paid), { count: 0, sumFen: 0 });
    const audit = await t.platform.deps.audit.forTrade(t.appId, paid);
    assert.deepEqual(
      audit.map((e) => `${e.action}:${e.outcome}:${e.actor}`),
      ['trade.close:refused:it.chen'],
    );
  });

  it('query the channel now: a waiting trade the patient has paid becomes paid', async () => {
    const no = await waitingTrade(t, '01'); // paid on the 2nd query at the channel
    let status = (await t.trade(no)).status;
    for (let i = 0; i < 3 && status === 'WAIT_BUYER_PAY'; i++) {
      assert.equal(outcomeOf(await deskPost(t, it_, tradePath(t, no, 'query'))).m, 'queried');
      status = (await t.trade(no)).status;
    }
    assert.equal(status, 'TRADE_SUCCESS');
    assert.equal(outcomeOf(await deskPost(t, it_, tradePath(t, no, 'query'))).m, 'query_final');
    const audit = await t.platform.deps.audit.forTrade(t.appId, no);
    assert.ok(audit.some((e) => e.action === 'trade.query' && /"after":"TRADE_SUCCESS"/.test(e.detail)));
  });

  it('resend: the trade’s notification is due again', async () => {
    const no = await waitingTrade(t, '01');
    await t.store.db
      .updateTable('trades')
      .set({ notify_url: 'http://127.0.0.1:9/notify' })
      .where('app_id', '=', t.appId)
      .where('out_trade_no', '=', no)
      .execute();
    assert.equal(outcomeOf(await deskPost(t, it_, tradePath(t, no, 'resend'))).m, 'no_notification');
    for (let i = 0; i < 3 && (await t.trade(no)).status === 'WAIT_BUYER_PAY'; i++)
      await deskPost(t, it_, tradePath(t, no, 'query'));
    const trade = await t.trade(no);
    const [n] = await t.platform.deps.notifications.ofTrades([trade.id]);
    assert.ok(n, 'the payment wrote a notification');
    await t.store.db
      .updateTable('notifications')
      .set({ status: 'FAILED', next_attempt_at: new Date('2099-01-01T00:00:00Z') })
      .where('id', '=', n.id)
      .execute();
    assert.equal(outcomeOf(await deskPost(t, it_, tradePath(t, no, 'resend'))).m, 'resent');
    const [after] = await t.platform.deps.notifications.ofTrades([trade.id]);
    assert.equal(after?.status, 'PENDING');
    assert.ok((after?.next_attempt_at.getTime() ?? Infinity) <= t.clock.now().getTime());
    const audit = await t.platform.deps.audit.forTrade(t.appId, no);
    assert.ok(audit.some((e) => e.action === 'notify.resend' && e.outcome === 'ok'));
  });

  it('the flash after an action is a fixed text chosen by code; a crafted link puts no words on the page', async () => {
    const ok = await deskGet(t, fin, '/desk/approvals?m=refund_done&c=REFUND_AMOUNT_EXCEEDED');
    assert.match(ok.text, /id="flash"[^>]*>退款成功/);
    assert.match(ok.text, /REFUND_AMOUNT_EXCEEDED：退款金额超过可退金额/);
    const crafted = await deskGet(
      t,
      fin,
      `/desk/approvals?m=${encodeURIComponent('<script>alert(1)</script>')}&c=${encodeURIComponent('您的账户已冻结')}`,
    );
    assert.equal(crafted.status, 200);
    assert.doesNotMatch(crafted.text, /id="flash"/);
    assert.doesNotMatch(crafted.text, /alert\(1\)|账户已冻结/);
    const badCode = await deskGet(
      t,
      fin,
      `/desk/approvals?m=refund_done&c=${encodeURIComponent('请拨打 400')}`,
    );
    assert.match(badCode.text, /id="flash"/);
    assert.doesNotMatch(badCode.text, /请拨打/);
  });

  it('the action panel shows only what the role may do and the trade’s state allows', async () => {
    const { actionPanel } = await import('../../src/http/pages/desk-action-views.js');
    const viewer = (u: DeskUser, role: 'cashier_supervisor' | 'finance' | 'hospital_it', apps: string[]) => ({
      principal: { username: u.username, displayName: u.username, role, apps, via: 'session' as const },
      csrfToken: u.csrf,
    });
    const paid = await paidTrade(t, '10.00');
    const unpaid = await waitingTrade(t);
    const supPaid = await actionPanel(
      t.platform.deps,
      viewer(sup, 'cashier_supervisor', [t.appId]),
      t.appId,
      paid,
    );
    assert.match(supPaid, /id="refund-form"/);
    assert.match(supPaid, /id="cancel-form"/);
    assert.doesNotMatch(supPaid, /id="act-close"/);
    assert.match(supPaid, /second person/);
    const supUnpaid = await actionPanel(
      t.platform.deps,
      viewer(sup, 'cashier_supervisor', [t.appId]),
      t.appId,
      unpaid,
    );
    assert.match(supUnpaid, /id="act-close"/);
    assert.match(supUnpaid, /id="act-query"/);
    assert.doesNotMatch(supUnpaid, /id="refund-form"/);
    const itPaid = await actionPanel(t.platform.deps, viewer(it_, 'hospital_it', [t.appId]), t.appId, paid);
    assert.doesNotMatch(itPaid, /refund-form|cancel-form/);
    const finUnpaid = await actionPanel(t.platform.deps, viewer(fin, 'finance', [t.appId]), t.appId, unpaid);
    assert.doesNotMatch(finUnpaid, /act-close/);
    assert.equal(await actionPanel(t.platform.deps, viewer(finB, 'finance', [appB]), t.appId, paid), '');
    // Each rendering has its own one-time token.
    const tokens = [...supPaid.matchAll(/name="token" value="([A-F0-9]{20})"/g)].map((m) => m[1]);
    assert.equal(new Set(tokens).size, 2);
  });
});
