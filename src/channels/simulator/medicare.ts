import { randomBytes, randomInt } from 'node:crypto';
import type { ChannelContext, MedicareChannel } from '../channel.js';
import type { Clock } from '../../domain/clock.js';
import { compactShanghai } from '../../domain/clock.js';

/**
 * The simulated national medical-insurance platform, as a medical-insurance side (it keeps no books: a token,
 * a settlement and a reversal are answered by rule). Its rules (docs/simulator.md):
 * - the consent page has 同意授权 (grant) and 拒绝 (decline); a decline comes back as error=access_denied;
 * - lc.ssc.user.token: a patient_card_no ending in "0000" has no insurance (token refused, NO_INSURANCE);
 * - lc.ssc.trade.pay: ssc_serial_no "SIM_INSURANCE_FAIL" makes the insurance settlement fail (INSURANCE_SETTLE_FAILED);
 * - lc.ssc.insurance.refund: the insurance part (whole or partial) is refunded at once; out_request_no
 *   "SIM_INSURANCE_REFUND_FAIL" is refused (INSURANCE_REFUND_FAILED).
 */
export const MEDICARE_RULES = {
  NO_INSURANCE_CARD_SUFFIX: '0000',
  SETTLEMENT_FAILS_SERIAL: 'SIM_INSURANCE_FAIL',
  REFUND_FAILS_REQUEST: 'SIM_INSURANCE_REFUND_FAIL',
} as const;

export class SimulatorMedicare implements MedicareChannel {
  readonly id = 'simulator';

  constructor(
    private readonly clock: Clock,
    private readonly publicBaseUrl: () => string,
  ) {}

  authorisationUrl(authId: string): string {
    return `${this.publicBaseUrl()}/simulator/medicare/consent/${authId}`;
  }

  async issueToken(
    _ctx: ChannelContext,
    input: Parameters<MedicareChannel['issueToken']>[1],
  ): ReturnType<MedicareChannel['issueToken']> {
    if (input.patientCardNo?.endsWith(MEDICARE_RULES.NO_INSURANCE_CARD_SUFFIX)) {
      return {
        kind: 'failed',
        code: 'NO_INSURANCE',
        zh: '未查询到参保信息（模拟）',
        en: 'no insurance found for this person (simulated)',
      };
    }
    const day = compactShanghai(this.clock.now());
    const payAuthNo = `AUTH${input.cityCode ?? '440100'}${day}${String(randomInt(1e6)).padStart(6, '0')}`;
    const cityCode = input.cityCode ?? '440100';
    const cardInfo = randomBytes(24).toString('base64');
    return {
      kind: 'issued',
      payAuthNo,
      qrCode: `${this.publicBaseUrl()}/simulator/medicare/qr/${payAuthNo}`,
      cityCode,
      cardInfo,
    };
  }

  async preSettle(
    _ctx: ChannelContext,
    input: Parameters<MedicareChannel['preSettle']>[1],
  ): ReturnType<MedicareChannel['preSettle']> {
    if (input.serialNo === MEDICARE_RULES.SETTLEMENT_FAILS_SERIAL) {
      return {
        kind: 'failed',
        code: 'INSURANCE_SETTLE_FAILED',
        zh: '医保结算失败（模拟）',
        en: 'the insurance settlement failed (simulated)',
      };
    }
    return {
      kind: 'settled',
      settlementNo: `SET${compactShanghai(this.clock.now())}${String(randomInt(1e8)).padStart(8, '0')}`,
    };
  }

  async reverseSettlement(): ReturnType<MedicareChannel['reverseSettlement']> {
    return { kind: 'reversed' };
  }

  async refundInsurance(
    _ctx: ChannelContext,
    input: Parameters<MedicareChannel['refundInsurance']>[1],
  ): ReturnType<MedicareChannel['refundInsurance']> {
    if (input.outRequestNo === MEDICARE_RULES.REFUND_FAILS_REQUEST)
      return {
        kind: 'failed',
        code: 'INSURANCE_REFUND_FAILED',
        zh: '医保退费失败（模拟）',
        en: 'the insurance refund failed (simulated)',
      };
    return {
      kind: 'refunded',
      refundNo: `SIMRF${compactShanghai(this.clock.now())}${String(randomInt(1e8)).padStart(8, '0')}`,
    };
  }
}
