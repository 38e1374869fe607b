import type { Channel, MedicareChannel } from './channel.js';
import type { ChannelDefinition, ChannelDeps, MedicareDefinition } from './definition.js';
import { SimulatorChannel } from './simulator/simulator-channel.js';
import { recordedChannel } from './recorded.js';
import { SimulatorMedicare } from './simulator/medicare.js';
import { nhsaDefinition } from './nhsa/definition.js';
import { alipayDefinition } from './alipay/definition.js';
import { unionpayDefinition } from './unionpay/definition.js';
import { wechatDefinition } from './wechat/definition.js';
import { SIMULATOR } from './choice.js';
import { PAY_TYPES } from '../domain/trade.js';

export type { ChannelDeps } from './definition.js';

const simulator: ChannelDefinition = {
  id: 'simulator',
  zh: '内置模拟器',
  payTypes: PAY_TYPES,
  fields: [
    {
      name: 'merchant_id',
      secret: false,
      required: false,
      zh: '模拟商户号（默认为应用号）',
      en: "simulated merchant id (default: the app's id)",
    },
  ],
  create: (deps) => {
    if (!deps.simulator)
      throw new Error('the simulator channel needs the simulated provider (ChannelDeps.simulator)');
    return recordedChannel(new SimulatorChannel(deps.simulator));
  },
};

/** The one list of channels. Adding a channel is one line here and one folder beside this file. */
export const CHANNEL_DEFINITIONS: readonly ChannelDefinition[] = [
  simulator,
  unionpayDefinition,
  alipayDefinition,
  wechatDefinition,
];

const simulatorMedicare: MedicareDefinition = {
  id: 'simulator',
  zh: '内置医保模拟器',
  fields: [],
  create: (deps) => new SimulatorMedicare(deps.clock, deps.publicBaseUrl),
};

/** The medical-insurance sides (national mobile payment), chosen per app with the pay type "medicare". */
export const MEDICARE_DEFINITIONS: readonly MedicareDefinition[] = [simulatorMedicare, nhsaDefinition];

/** How a registry is built besides the channels' dependencies. */
export interface RegistryOptions {
  publicBaseUrl: () => string;
  /** false (HOSPAY_SIMULATOR=off): the simulator is not registered at all. */
  withSimulator?: boolean;
  /** The payment channels to register (default CHANNEL_DEFINITIONS); a test adds a fixture channel here. */
  definitions?: readonly ChannelDefinition[];
}

/**
 * The registered channels and medical-insurance sides. With `withSimulator: false` (HOSPAY_SIMULATOR=off) the
 * simulator is not registered at all, as a payment channel or as a medical-insurance side.
 */
export class ChannelRegistry {
  private readonly channels = new Map<string, Channel>();
  private readonly medicares = new Map<string, MedicareChannel>();
  private readonly definitions: readonly ChannelDefinition[];

  constructor(
    deps: ChannelDeps & RegistryOptions,
    only?: Record<string, Channel>,
    onlyMedicare?: MedicareChannel,
  ) {
    const wanted = (id: string) => deps.withSimulator !== false || id !== SIMULATOR;
    this.definitions = deps.definitions ?? CHANNEL_DEFINITIONS;
    if (only) {
      for (const [id, c] of Object.entries(only)) if (wanted(id)) this.channels.set(id, c);
    } else for (const d of this.definitions) if (wanted(d.id)) this.channels.set(d.id, d.create(deps));
    if (onlyMedicare) {
      if (wanted(SIMULATOR)) this.medicares.set(SIMULATOR, onlyMedicare);
    } else for (const d of MEDICARE_DEFINITIONS) if (wanted(d.id)) this.medicares.set(d.id, d.create(deps));
  }

  get(id: string): Channel | undefined {
    return this.channels.get(id);
  }

  medicare(id: string): MedicareChannel | undefined {
    return this.medicares.get(id);
  }

  ids(): string[] {
    return [...this.channels.keys()];
  }

  /** The definition (configuration fields, pay types) of a registered payment channel. */
  definition(id: string): ChannelDefinition | undefined {
    return this.channels.has(id) ? this.definitions.find((d) => d.id === id) : undefined;
  }
}

export function channelDefinition(id: string): ChannelDefinition | undefined {
  return CHANNEL_DEFINITIONS.find((d) => d.id === id);
}

export function medicareDefinition(id: string): MedicareDefinition | undefined {
  return MEDICARE_DEFINITIONS.find((d) => d.id === id);
}
