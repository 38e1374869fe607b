import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher, type BatcherOptions } from '../../src/store/batcher.js';

/**
 * Natural batching (src/store/batcher.ts), with fake statements whose answers the test gives by hand: which items
 * go alone, which go together, in what order, and that every caller gets its own outcome exactly once.
 */

interface Item {
  id: string;
  keys: string | readonly string[];
}

/** A statement the fake database is running: its items, and the hand that answers it. */
interface Call {
  kind: 'one' | 'many';
  items: Item[];
  resolve: (out: unknown) => void;
  reject: (e: unknown) => void;
}

/** A Batcher over fake `one` / `many` that wait until the test answers them (calls[i].resolve / reject). */
function harness(opts: Partial<Pick<BatcherOptions<Item, string>, 'max' | 'inFlight'>> = {}) {
  const calls: Call[] = [];
  const b = new Batcher<Item, string>({
    name: 'test',
    ...opts,
    key: (item) => item.keys,
    one: (item) =>
      new Promise<string>((resolve, reject) => {
        calls.push({ kind: 'one', items: [item], resolve: (o) => resolve(o as string), reject });
      }),
    many: (items) =>
      new Promise<string[]>((resolve, reject) => {
        calls.push({ kind: 'many', items: [...items], resolve: (o) => resolve(o as string[]), reject });
      }),
  });
  const answerOne = (c: Call, out = `one:${(c.items[0] as Item).id}`) => c.resolve(out);
  const answerMany = (c: Call, out = c.items.map((i) => `many:${i.id}`)) => c.resolve(out);
  const fail = (c: Call, e: unknown) => c.reject(e);
  return { b, calls, answerOne, answerMany, fail };
}

/** Lets every pending promise callback run (the batcher's bookkeeping after an answer). */
const settle = () => new Promise<void>((r) => setImmediate(r));

const ids = (c: Call | undefined) => c?.items.map((i) => i.id);

/** A promise's outcome, recorded as it happens (to see that nothing has answered yet). */
function watch<T>(p: Promise<T>) {
  const s: { done: boolean; value?: T; error?: unknown; times: number } = { done: false, times: 0 };
  p.then(
    (v) => {
      s.done = true;
      s.value = v;
      s.times++;
    },
    (e: unknown) => {
      s.done = true;
      s.error = e;
      s.times++;
    },
  );
  return s;
}

describe('Batcher', () => {
  it('a lone item goes at once through the one-row statement', async () => {
    const h = harness();
    const p = h.b.run({ id: 'a', keys: 'a' });
    // Nothing waits on purpose: the statement is on its way before run() returns.
    assert.equal(h.calls.length, 1);
    assert.equal(h.calls[0]?.kind, 'one');
    assert.deepEqual(ids(h.calls[0]), ['a']);
    h.answerOne(h.calls[0] as Call);
    assert.equal(await p, 'one:a');
    assert.deepEqual(h.b.stats, { statements: 1, items: 1, retried: 0 });
  });

  it('with the default inFlight (2), two items go alone at once and the rest wait for one of them', async () => {
    const h = harness();
    const a = h.b.run({ id: 'a', keys: 'a' });
    const b = h.b.run({ id: 'b', keys: 'b' });
    const c = watch(h.b.run({ id: 'c', keys: 'c' }));
    const d = watch(h.b.run({ id: 'd', keys: 'd' }));
    assert.deepEqual(
      h.calls.map((x) => [x.kind, ids(x)]),
      [
        ['one', ['a']],
        ['one', ['b']],
      ],
    );
    await settle();
    assert.equal(c.done || d.done, false);
    h.answerOne(h.calls[1] as Call);
    assert.equal(await b, 'one:b');
    await settle();
    assert.equal(h.calls.length, 3);
    assert.equal(h.calls[2]?.kind, 'many');
    assert.deepEqual(ids(h.calls[2]), ['c', 'd']);
    h.answerMany(h.calls[2] as Call);
    h.answerOne(h.calls[0] as Call);
    assert.equal(await a, 'one:a');
    await settle();
    assert.equal(c.value, 'many:c');
    assert.equal(d.value, 'many:d');
    assert.equal(h.calls.length, 3);
    assert.deepEqual(h.b.stats, { statements: 3, items: 4, retried: 0 });
  });

  it('with inFlight 1, items arriving while one runs go together through many, in order, each with its own result', async () => {
    const h = harness({ inFlight: 1 });
    const first = h.b.run({ id: 'x', keys: 'x' });
    const later = ['b', 'c', 'd', 'e'].map((id) => watch(h.b.run({ id, keys: id })));
    assert.equal(h.calls.length, 1);
    await settle();
    // Nothing else is sent while the one statement allowed is running.
    assert.equal(h.calls.length, 1);
    assert.ok(later.every((w) => !w.done));
    h.answerOne(h.calls[0] as Call);
    assert.equal(await first, 'one:x');
    await settle();
    assert.equal(h.calls.length, 2);
    assert.equal(h.calls[1]?.kind, 'many');
    assert.deepEqual(ids(h.calls[1]), ['b', 'c', 'd', 'e']);
    // No caller learns anything before the batch statement answers.
    assert.ok(later.every((w) => !w.done));
    // Each caller gets the outcome at its own position (answers made distinct on purpose).
    (h.calls[1] as Call).resolve(['B!', 'C!', 'D!', 'E!']);
    await settle();
    assert.deepEqual(
      later.map((w) => w.value),
      ['B!', 'C!', 'D!', 'E!'],
    );
    assert.deepEqual(h.b.stats, { statements: 2, items: 5, retried: 0 });
  });

  it('two items with the same key never share a batch, and both complete', async () => {
    const h = harness({ inFlight: 1 });
    const first = watch(h.b.run({ id: 'first', keys: 'z' }));
    const k1 = watch(h.b.run({ id: 'k1', keys: 'K' }));
    const o1 = watch(h.b.run({ id: 'o1', keys: 'O1' }));
    const k2 = watch(h.b.run({ id: 'k2', keys: 'K' }));
    const o2 = watch(h.b.run({ id: 'o2', keys: 'O2' }));
    h.answerOne(h.calls[0] as Call);
    await settle();
    assert.equal(h.calls[1]?.kind, 'many');
    assert.deepEqual(ids(h.calls[1]), ['k1', 'o1', 'o2']);
    h.answerMany(h.calls[1] as Call);
    await settle();
    // The one left behind goes next, alone.
    assert.equal(h.calls[2]?.kind, 'one');
    assert.deepEqual(ids(h.calls[2]), ['k2']);
    assert.equal(k2.done, false);
    h.answerOne(h.calls[2] as Call);
    await settle();
    assert.deepEqual(
      [first, k1, o1, k2, o2].map((w) => w.value),
      ['one:first', 'many:k1', 'many:o1', 'one:k2', 'many:o2'],
    );
    for (const c of h.calls) {
      const keys = c.items.flatMap((i) => (typeof i.keys === 'string' ? [i.keys] : i.keys));
      assert.equal(new Set(keys).size, keys.length, `a batch with a repeated key: ${ids(c)?.join(',')}`);
    }
  });

  it('items with one of several keys in common are split', async () => {
    const h = harness({ inFlight: 1 });
    h.b.run({ id: 'first', keys: ['o0', 'n0'] }).catch(() => {});
    const ws = [
      { id: 'a', keys: ['o1', 'n1'] },
      { id: 'b', keys: ['o2', 'n1'] }, // the nonce of a
      { id: 'c', keys: ['o1', 'n2'] }, // the order of a
      { id: 'd', keys: ['o3', 'n3'] },
      { id: 'e', keys: ['o3', 'n4'] }, // the order of d
    ].map((i) => watch(h.b.run(i)));
    h.answerOne(h.calls[0] as Call);
    await settle();
    assert.deepEqual(ids(h.calls[1]), ['a', 'd']);
    h.answerMany(h.calls[1] as Call);
    await settle();
    // b and c share no key with each other (o2/n1 against o1/n2), e none with them; in their first keys' order.
    assert.deepEqual(ids(h.calls[2]), ['c', 'b', 'e']);
    h.answerMany(h.calls[2] as Call);
    await settle();
    assert.deepEqual(
      ws.map((w) => w.value),
      ['many:a', 'many:b', 'many:c', 'many:d', 'many:e'],
    );
    assert.equal(h.calls.length, 3);
  });

  it("a batch goes to the statement sorted by its items' first keys (one lock order for every process), each caller still getting its own outcome", async () => {
    const h = harness({ inFlight: 1 });
    h.b.run({ id: 'first', keys: 'first' }).catch(() => {});
    // Arriving in another order than their keys'; one with two keys (sorted by its first).
    const ws = [
      { id: 'c', keys: 'k3' },
      { id: 'a', keys: ['k1', 'z9'] },
      { id: 'd', keys: 'k4' },
      { id: 'b', keys: 'k2' },
    ].map((item) => watch(h.b.run(item)));
    h.answerOne(h.calls[0] as Call);
    await settle();
    assert.equal(h.calls[1]?.kind, 'many');
    assert.deepEqual(ids(h.calls[1]), ['a', 'b', 'c', 'd']);
    (h.calls[1] as Call).resolve(['A!', 'B!', 'C!', 'D!']);
    await settle();
    assert.deepEqual(
      ws.map((w) => w.value),
      ['C!', 'A!', 'D!', 'B!'],
    );
  });

  it('max caps a batch; the rest keep their order for the next ones', async () => {
    const h = harness({ inFlight: 1, max: 3 });
    h.b.run({ id: 'first', keys: 'first' }).catch(() => {});
    const ws = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((id) => watch(h.b.run({ id, keys: id })));
    h.answerOne(h.calls[0] as Call);
    await settle();
    assert.deepEqual(ids(h.calls[1]), ['a', 'b', 'c']);
    h.answerMany(h.calls[1] as Call);
    await settle();
    assert.deepEqual(ids(h.calls[2]), ['d', 'e', 'f']);
    h.answerMany(h.calls[2] as Call);
    await settle();
    assert.equal(h.calls[3]?.kind, 'one');
    assert.deepEqual(ids(h.calls[3]), ['g']);
    h.answerOne(h.calls[3] as Call);
    await settle();
    assert.deepEqual(
      ws.map((w) => w.value),
      ['many:a', 'many:b', 'many:c', 'many:d', 'many:e', 'many:f', 'one:g'],
    );
    assert.deepEqual(h.b.stats, { statements: 4, items: 8, retried: 0 });
  });

  it('when many throws, each item is run again alone; a failing item rejects only its own caller', async () => {
    const h = harness({ inFlight: 1 });
    h.b.run({ id: 'first', keys: 'first' }).catch(() => {});
    const ws = ['a', 'b', 'c'].map((id) => watch(h.b.run({ id, keys: id })));
    h.answerOne(h.calls[0] as Call);
    await settle();
    assert.equal(h.calls[1]?.kind, 'many');
    h.fail(h.calls[1] as Call, new Error('check constraint violated by b'));
    await settle();
    // The three retries go together, each through the one-row statement, none answered yet.
    assert.deepEqual(
      h.calls.slice(2).map((c) => [c.kind, ids(c)]),
      [
        ['one', ['a']],
        ['one', ['b']],
        ['one', ['c']],
      ],
    );
    assert.ok(ws.every((w) => !w.done));
    const own = new Error('b: its own error');
    h.answerOne(h.calls[2] as Call);
    h.fail(h.calls[3] as Call, own);
    h.answerOne(h.calls[4] as Call);
    await settle();
    assert.equal(ws[0]?.value, 'one:a');
    assert.equal(ws[1]?.error, own);
    assert.equal(ws[1]?.value, undefined);
    assert.equal(ws[2]?.value, 'one:c');
    assert.ok(ws.every((w) => w.times === 1));
    assert.deepEqual(h.b.stats, { statements: 2, items: 4, retried: 3 });
    // The batcher is free again: a new item goes at once.
    const next = h.b.run({ id: 'n', keys: 'n' });
    assert.equal(h.calls[5]?.kind, 'one');
    h.answerOne(h.calls[5] as Call);
    assert.equal(await next, 'one:n');
  });

  it('a batch answered with the wrong number of outcomes is a failure: each item again alone', async () => {
    for (const wrong of [['many:a', 'many:b'], ['many:a', 'many:b', 'many:c', 'many:d'], []]) {
      const h = harness({ inFlight: 1 });
      h.b.run({ id: 'first', keys: 'first' }).catch(() => {});
      const ws = ['a', 'b', 'c'].map((id) => watch(h.b.run({ id, keys: id })));
      h.answerOne(h.calls[0] as Call);
      await settle();
      h.answerMany(h.calls[1] as Call, wrong);
      await settle();
      assert.deepEqual(
        h.calls.slice(2).map((c) => [c.kind, ids(c)]),
        [
          ['one', ['a']],
          ['one', ['b']],
          ['one', ['c']],
        ],
        `answer of ${wrong.length}`,
      );
      for (const c of h.calls.slice(2)) h.answerOne(c);
      await settle();
      assert.deepEqual(
        ws.map((w) => w.value),
        ['one:a', 'one:b', 'one:c'],
      );
      assert.equal(h.b.stats.retried, 3);
    }
  });

  it('a failing lone item rejects its caller and is not retried', async () => {
    const h = harness();
    const e = new Error('alone');
    const p = h.b.run({ id: 'a', keys: 'a' });
    h.fail(h.calls[0] as Call, e);
    await assert.rejects(p, (x) => x === e);
    assert.equal(h.calls.length, 1);
    assert.deepEqual(h.b.stats, { statements: 1, items: 1, retried: 0 });
  });

  it('nothing is lost or answered twice under 500 random concurrent runs', async () => {
    // A small seeded generator: the same run every time.
    let seed = 0x2545f491;
    const rand = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 0x1_0000_0000;
    };
    const later = () =>
      new Promise<void>((r) => {
        const how = rand();
        if (how < 0.3) queueMicrotask(r);
        else if (how < 0.7) setImmediate(r);
        else setTimeout(r, Math.floor(rand() * 3));
      });

    for (const [inFlight, max] of [
      [1, 64],
      [2, 64],
      [3, 5],
      [2, 2],
    ] as const) {
      interface R {
        id: number;
        keys: string[];
        bad: boolean;
      }
      // Items written (as a database would: a failed statement writes nothing), and the batches seen.
      const written = new Map<number, number>();
      const batches: R[][] = [];
      let manyFailedItems = 0;
      const write = (r: R) => written.set(r.id, (written.get(r.id) ?? 0) + 1);
      // Statements of the batcher on their way: a failed batch keeps its place until its last retry is done.
      let slots = 0;
      let mostSlots = 0;
      const retryOf = new Map<number, { left: number }>();
      const enter = () => {
        slots++;
        mostSlots = Math.max(mostSlots, slots);
      };
      const b = new Batcher<R, string>({
        name: 'test_random',
        inFlight,
        max,
        key: (r) => r.keys,
        one: async (r) => {
          const retry = retryOf.get(r.id);
          retryOf.delete(r.id);
          if (!retry) enter();
          try {
            await later();
            if (r.bad) throw new Error(`bad ${r.id}`);
            write(r);
            return `v${r.id}`;
          } finally {
            if (!retry || --retry.left === 0) slots--;
          }
        },
        many: async (rs) => {
          enter();
          batches.push([...rs]);
          await later();
          const failed = () => {
            manyFailedItems += rs.length;
            const token = { left: rs.length };
            for (const r of rs) retryOf.set(r.id, token);
          };
          // A bad item fails the whole statement, and so, now and then, does a deadlock.
          if (rs.some((r) => r.bad) || rand() < 0.1) {
            failed();
            throw new Error('batch failed');
          }
          // Now and then an answer of the wrong length (nothing written: the statement is undone).
          if (rand() < 0.05) {
            failed();
            return rs.slice(1).map((r) => `v${r.id}`);
          }
          for (const r of rs) write(r);
          slots--;
          return rs.map((r) => `v${r.id}`);
        },
      });

      const items: R[] = [];
      const outcomes: Array<{ times: number; value?: string; error?: unknown }> = [];
      const all: Array<Promise<void>> = [];
      // Bursts: some items issued in the same synchronous loop, with pauses between bursts.
      for (let i = 0; i < 500;) {
        const burst = 1 + Math.floor(rand() * 40);
        for (let j = 0; j < burst && i < 500; j++, i++) {
          const r: R = {
            id: i,
            keys:
              rand() < 0.5 ? [`o${Math.floor(rand() * 60)}`] : [`o${i}-own`, `n${Math.floor(rand() * 30)}`],
            bad: rand() < 0.03,
          };
          items.push(r);
          const o: { times: number; value?: string; error?: unknown } = { times: 0 };
          outcomes.push(o);
          all.push(
            b.run(r).then(
              (v) => {
                o.times++;
                o.value = v;
              },
              (e: unknown) => {
                o.times++;
                o.error = e;
              },
            ),
          );
        }
        await later();
      }
      await Promise.all(all);
      await settle();

      const label = `inFlight ${inFlight}, max ${max}`;
      for (const r of items) {
        const o = outcomes[r.id] as (typeof outcomes)[number];
        assert.equal(o.times, 1, `${label}: item ${r.id} answered ${o.times} times`);
        if (r.bad) {
          assert.match(String(o.error), new RegExp(`bad ${r.id}$`), `${label}: item ${r.id}`);
          assert.equal(written.get(r.id), undefined, `${label}: bad item ${r.id} written`);
        } else {
          assert.equal(o.error, undefined, `${label}: item ${r.id} failed`);
          assert.equal(o.value, `v${r.id}`, `${label}: item ${r.id} got another's answer`);
          assert.equal(written.get(r.id), 1, `${label}: item ${r.id} written ${written.get(r.id)} times`);
        }
      }
      assert.ok(mostSlots <= inFlight, `${label}: ${mostSlots} statements on their way at once`);
      assert.equal(retryOf.size, 0, `${label}: an item of a failed batch not retried`);
      for (const batch of batches) {
        assert.ok(batch.length >= 2 && batch.length <= max, `${label}: a batch of ${batch.length}`);
        const keys = batch.flatMap((r) => r.keys);
        assert.equal(new Set(keys).size, keys.length, `${label}: a batch with a repeated key`);
        const order = batch.map((r) => r.keys[0] ?? '');
        assert.deepEqual(order, [...order].sort(), `${label}: a batch not in its first keys' order`);
      }
      assert.equal(b.stats.items, 500, label);
      assert.equal(b.stats.retried, manyFailedItems, label);
      assert.ok(batches.length > 0, `${label}: no batch formed`);
      if (max > 2)
        assert.ok(
          batches.some((x) => x.length > 2),
          `${label}: no batch of more than 2`,
        );
    }
  });
});
