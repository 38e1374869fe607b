/** Request storms (all at once) and load (workers in a loop) for the reliability tests. */

/** A copy of `list` in random order (Fisher–Yates). */
export function shuffle<T>(list: readonly T[]): T[] {
  const a = [...list];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a;
}

/** Sends one request per item, all at once; the answers in the items' order and how long the storm took. */
export async function storm<T, R>(
  items: readonly T[],
  send: (item: T, index: number) => Promise<R>,
): Promise<{ answers: R[]; ms: number }> {
  const started = performance.now();
  const answers = await Promise.all(items.map((item, i) => send(item, i)));
  return { answers, ms: Math.round(performance.now() - started) };
}

export interface Load {
  /** Lets every worker finish the step it is in, and waits for them. */
  stop(): Promise<void>;
}

/**
 * Load: `workers` loops each calling `step` again and again until stop(). A worker whose step throws stops there
 * (its server is gone).
 */
export function load(workers: number, step: () => Promise<void>): Load {
  let running = true;
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      try {
        await step();
      } catch {
        return;
      }
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}
