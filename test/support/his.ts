import assert from 'node:assert/strict';
import { HisClient, HisError } from '../../src/reconcile/his/his-client.js';
import {
  startHisSimulator,
  type HisSimulator,
  type HisSimulatorOptions,
} from '../../src/reconcile/his/his-sim.js';

type HisClientOptions = ConstructorParameters<typeof HisClient>[0];

/** Awaits `p`, which must fail with the HisError `code`; returns the error. */
export async function expectHisError(p: Promise<unknown>, code: string): Promise<HisError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HisError, `expected HisError, got ${String(e)}`);
    assert.equal(e.code, code, e.bilingual);
    return e;
  }
  assert.fail(`expected ${code}`);
}

/**
 * The HIS simulator over real HTTP on 127.0.0.1, and HIS clients for it that time out after 2 s, retry twice
 * 10 ms apart (doubling) and, instead of sleeping, write their back-off into `sleeps`.
 */
export class SimulatedHis {
  sim!: HisSimulator;
  url = '';
  /** The clients' back-off sleeps since the last reset(), in ms. */
  readonly sleeps: number[] = [];
  private closeSim: () => Promise<void> = async () => {};

  /**
   * `path`: where the clients find the HIS below the simulator's address (the SOAP service's, for instance);
   * `client`: the clients' settings besides the defaults above.
   */
  constructor(
    private readonly o: {
      options: HisSimulatorOptions & { accessToken: string };
      path?: string;
      client?: Partial<HisClientOptions>;
    },
  ) {}

  async start(): Promise<void> {
    const started = await startHisSimulator(0, '127.0.0.1', this.o.options);
    this.sim = started.sim;
    this.url = started.url;
    this.closeSim = started.close;
  }

  /** Forgets the simulator's records, faults and counts, and the sleeps (before each test). */
  reset(): void {
    this.sim.reset();
    this.sleeps.length = 0;
  }

  client(over: Partial<HisClientOptions> = {}): HisClient {
    return new HisClient({
      baseUrl: `${this.url}${this.o.path ?? ''}`,
      accessToken: this.o.options.accessToken,
      timeoutMs: 2000,
      retries: 2,
      backoffMs: 10,
      sleep: async (ms) => {
        this.sleeps.push(ms);
      },
      ...this.o.client,
      ...over,
    });
  }

  close(): Promise<void> {
    return this.closeSim();
  }
}
