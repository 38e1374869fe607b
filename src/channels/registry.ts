import type { Channel } from './channel.js';
import { SimulatorChannel } from './simulator/simulator-channel.js';
import type { SimulatorProvider } from '../simulator/provider.js';

/** What a channel factory may be given. Real adapters will take an HTTP transport and config from here. */
export interface ChannelDeps {
  simulator: SimulatorProvider;
}

/** The one list of channels. Adding a channel is one line here and one folder beside this file. */
const FACTORIES: Record<string, (deps: ChannelDeps) => Channel> = {
  simulator: (deps) => new SimulatorChannel(deps.simulator),
};

export const DEFAULT_CHANNEL = 'simulator';

export class ChannelRegistry {
  private readonly channels = new Map<string, Channel>();

  constructor(deps: ChannelDeps, only?: Record<string, Channel>) {
    if (only) for (const [id, c] of Object.entries(only)) this.channels.set(id, c);
    else for (const [id, make] of Object.entries(FACTORIES)) this.channels.set(id, make(deps));
  }

  get(id: string): Channel | undefined {
    return this.channels.get(id);
  }

  ids(): string[] {
    return [...this.channels.keys()];
  }
}
