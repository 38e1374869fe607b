/**
 * A cap on concurrent password hashing. scrypt runs on libuv's thread pool (UV_THREADPOOL_SIZE, 4 by default),
 * which the gateway's and the channels' asynchronous crypto use too; unbounded login attempts would fill it
 * and make payments wait. So at most `maxRunning` hashes run at once in this process, a few more wait in a
 * short queue, and the rest are refused at once (HashBusyError: "try again later").
 *
 * Lanes: `login` (an ordinary login attempt: its own small queue), `trusted` (a login from a source the
 * account logged in from before: a separate small queue served first, so a flood of strangers does not crowd
 * out the clerk), `admin` (creating an operator or setting a password through the admin API or the CLI: waits,
 * never refused, served first).
 */

export type HashLane = 'login' | 'trusted' | 'admin';

export class HashBusyError extends Error {
  constructor() {
    super('password hashing is busy: try again later');
    this.name = 'HashBusyError';
  }
}

interface Waiter {
  lane: HashLane;
  start: () => void;
}

export class HashGate {
  private running = 0;
  private readonly waiting: Waiter[] = [];
  /** The most hashes that ran at once (for monitoring and tests). */
  peak = 0;
  /** Attempts refused because the queue was full. */
  refused = 0;

  constructor(
    readonly maxRunning: number,
    /** How many may wait per lane (`admin` waits without limit). */
    readonly maxWaiting: { login: number; trusted: number },
  ) {}

  /** Runs fn when a place is free; throws HashBusyError at once when its lane's queue is full. */
  async run<T>(lane: HashLane, fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxRunning) {
      if (lane !== 'admin' && this.waiting.filter((w) => w.lane === lane).length >= this.maxWaiting[lane]) {
        this.refused++;
        throw new HashBusyError();
      }
      await new Promise<void>((resolve) => {
        const waiter: Waiter = { lane, start: resolve };
        // admin and trusted go before every waiting ordinary login (FIFO within a lane).
        const firstLogin = lane === 'login' ? -1 : this.waiting.findIndex((w) => w.lane === 'login');
        if (firstLogin < 0) this.waiting.push(waiter);
        else this.waiting.splice(firstLogin, 0, waiter);
      });
    } else {
      this.running++;
    }
    this.peak = Math.max(this.peak, this.running);
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      // The place passes straight to the next waiter (running stays the same), or is freed.
      if (next) next.start();
      else this.running--;
    }
  }

  stats(): { running: number; waiting: number; peak: number; refused: number } {
    return { running: this.running, waiting: this.waiting.length, peak: this.peak, refused: this.refused };
  }
}

/**
 * The process's one gate for password hashes: one scrypt at a time (32 MiB, tens of milliseconds each), four
 * ordinary and four trusted logins waiting at most, so three of libuv's four threads stay free for signatures.
 */
export const passwordHashGate = new HashGate(1, { login: 4, trusted: 4 });
