import { PAY_TYPES } from '../domain/trade.js';
import { InvalidInputError } from '../domain/errors.js';

/**
 * Which channel serves an app's pay type, and when the built-in simulator may be that channel.
 *
 * The simulator is chosen explicitly, never by default, for an app that takes real money: an app "takes real
 * money" when any of its pay types (alipay, weixin, unionpay, or medicare for the medical-insurance side) maps to
 * a channel other than the simulator. Such an app's unmapped pay types are not enabled (PAY_TYPE_NOT_ENABLED);
 * only an app with no real channel at all (the demo, an empty map) uses the simulator for everything. An app
 * mapping some pay types to the simulator beside a real channel ("mixed") is refused unless
 * HOSPAY_ALLOW_MIXED_SIMULATOR=1; with HOSPAY_SIMULATOR=off the simulator serves nothing at all.
 */

/** The simulator's id, as a payment channel and as a medical-insurance side. */
export const SIMULATOR = 'simulator';

/** The channel given to `hospay channel use` / PUT channel-map to remove a pay type from an app's map. */
export const NO_CHANNEL = 'none';

/** The keys of an app's channel map: the payment pay types and the medical-insurance side. */
export const MAP_KEYS: readonly string[] = [...PAY_TYPES, 'medicare'];

/** The simulator settings (Config.simulator). */
export interface SimulatorPolicy {
  /** HOSPAY_SIMULATOR (default on): the simulator channel and simulated medicare are registered and served. */
  enabled: boolean;
  /** HOSPAY_ALLOW_MIXED_SIMULATOR=1: an app taking real money may map some pay types to the simulator. */
  allowMixed: boolean;
}

function entries(map: Readonly<Record<string, string>>): Array<[string, string]> {
  return Object.entries(map).filter(([k]) => MAP_KEYS.includes(k));
}

/** Some pay type (incl. medicare) maps to a channel other than the simulator. */
export function takesRealMoney(map: Readonly<Record<string, string>>): boolean {
  return entries(map).some(([, id]) => id !== SIMULATOR);
}

/** The pay types mapped to the simulator in an app that takes real money (empty when the app does not mix). */
export function mixedSimulatorPayTypes(map: Readonly<Record<string, string>>): string[] {
  if (!takesRealMoney(map)) return [];
  return entries(map)
    .filter(([, id]) => id === SIMULATOR)
    .map(([k]) => k);
}

/**
 * The channel id serving `payType` (or 'medicare') for an app with this map, or null when the pay type is not
 * enabled: an explicit entry is used as it is, except the simulator while it is off or when it stands beside a
 * real channel without HOSPAY_ALLOW_MIXED_SIMULATOR; an unmapped pay type goes to the simulator only in an app
 * that takes no real money, while the simulator is on.
 */
export function chosenChannel(
  map: Readonly<Record<string, string>>,
  payType: string,
  policy: SimulatorPolicy,
): string | null {
  const explicit = Object.hasOwn(map, payType) ? map[payType] : undefined;
  const real = takesRealMoney(map);
  if (explicit !== undefined && explicit !== SIMULATOR) return explicit;
  if (!policy.enabled) return null;
  if (explicit === SIMULATOR) return real && !policy.allowMixed ? null : SIMULATOR;
  return real ? null : SIMULATOR;
}

/**
 * An app's map as stored: in an app that takes no real money an explicit 'simulator' is the same as no entry,
 * so such entries are dropped (the demo's map stays empty).
 */
export function normaliseChannelMap(map: Readonly<Record<string, string>>): Record<string, string> {
  if (takesRealMoney(map)) return { ...map };
  return Object.fromEntries(Object.entries(map).filter(([, id]) => id !== SIMULATOR));
}

/** One reason an app's map cannot be served under the simulator settings, in Chinese and English. */
export interface SimulatorMapProblem {
  appId: string;
  payType: string;
  zh: string;
  en: string;
}

/**
 * What is wrong with an app's map under the simulator settings (start-up check): a pay type mapped to the
 * simulator while it is off, or the simulator beside a real channel without HOSPAY_ALLOW_MIXED_SIMULATOR.
 */
export function simulatorMapProblems(
  appId: string,
  map: Readonly<Record<string, string>>,
  policy: SimulatorPolicy,
): SimulatorMapProblem[] {
  const simulated = entries(map)
    .filter(([, id]) => id === SIMULATOR)
    .map(([k]) => k);
  if (!policy.enabled)
    return simulated.map((payType) => ({
      appId,
      payType,
      zh: `应用 ${appId} 的支付方式 ${payType} 指向模拟器，但模拟器已关闭（HOSPAY_SIMULATOR=off）`,
      en: `app ${appId}: pay type ${payType} is mapped to the simulator, but the simulator is off (HOSPAY_SIMULATOR=off)`,
    }));
  if (policy.allowMixed) return [];
  const mixed = mixedSimulatorPayTypes(map);
  if (mixed.length === 0) return [];
  const real = entries(map)
    .filter(([, id]) => id !== SIMULATOR)
    .map(([k, id]) => `${k} → ${id}`)
    .join(', ');
  return mixed.map((payType) => ({
    appId,
    payType,
    zh: `应用 ${appId} 同时使用真实渠道（${real}）与模拟器（${payType} → simulator），模拟支付不收钱；如确需混用请设置 HOSPAY_ALLOW_MIXED_SIMULATOR=1`,
    en: `app ${appId} mixes real channels (${real}) with the simulator (${payType} → simulator), which takes no money; set HOSPAY_ALLOW_MIXED_SIMULATOR=1 if this is really wanted`,
  }));
}

/** Start-up refused: an app's map uses the simulator where it may not. */
export class SimulatorStartupError extends InvalidInputError {
  constructor(readonly problems: SimulatorMapProblem[]) {
    super(
      '模拟器设置有误，服务未启动 / the simulator is used where it may not be, not starting:\n' +
        problems.map((p) => `  ${p.zh}\n  ${p.en}`).join('\n') +
        '\n(fix with: hospay channel use --app APP --pay-type PAY_TYPE --channel REAL_CHANNEL, or --channel none' +
        ' to remove the pay type)',
    );
    this.name = 'SimulatorStartupError';
  }
}
