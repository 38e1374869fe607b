/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, written by `npm run bench -- --cpu-prof …`): where the server's
 * main thread spent its samples, by function (self time), by package or source area, and the inclusive time of
 * hospay's own functions. Worker threads are not in the main thread's profile.
 *
 *   npx tsx bench/profile.ts path/to/CPU.….cpuprofile [--top=25]
 */
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileLine {
  name: string;
  pct: number;
}

export interface ProfileSummary {
  file: string;
  seconds: number;
  samples: number;
  /** Share of samples where the thread was idle (waiting for I/O). */
  idlePct: number;
  bySelf: ProfileLine[];
  byArea: ProfileLine[];
  /** Inclusive time of hospay's own functions (dist/…), counted once per stack. */
  hospayInclusive: ProfileLine[];
}

/** Where a frame's code lives: a package, hospay's own source area, Node's internals, or V8's pseudo-frames. */
function area(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1] ?? 'node_modules';
  const d = /\/dist\/([^/]+)\/(?:([^/]+)\/)?/.exec(url);
  if (d) return `hospay ${d[1]}${d[2] && !d[2].endsWith('.js') ? `/${d[2]}` : ''}`;
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?([^/]+)/.exec(url);
    return `node:${m?.[1] ?? 'internal'}`;
  }
  return url.replace(/^.*\//, '');
}

function frameName(n: ProfileNode): string {
  const f = n.callFrame;
  const where = f.url
    ? `${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^file:\/\//, '')}:${f.lineNumber + 1}`
    : '';
  return `${f.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
}

export function summariseProfile(file: string, top = 25): ProfileSummary {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  // Sample counts per node (hitCount is absent in some profiles: count the samples array instead).
  const hits = new Map<number, number>();
  if (prof.samples?.length) for (const s of prof.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
  else for (const n of prof.nodes) hits.set(n.id, n.hitCount ?? 0);
  const total = [...hits.values()].reduce((a, b) => a + b, 0) || 1;
  const pct = (v: number) => Math.round((v / total) * 1000) / 10;

  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  let idle = 0;
  for (const n of prof.nodes) {
    const h = hits.get(n.id) ?? 0;
    if (!h) continue;
    if (n.callFrame.functionName === '(idle)') idle += h;
    self.set(frameName(n), (self.get(frameName(n)) ?? 0) + h);
    const a = area(n.callFrame.url, n.callFrame.functionName);
    areas.set(a, (areas.get(a) ?? 0) + h);
  }

  // Inclusive time of hospay's functions: each sample counted once per function on its stack.
  const inclusive = new Map<string, number>();
  const root = prof.nodes[0];
  const walk = (id: number, onStack: Set<string>): number => {
    const n = byId.get(id);
    if (!n) return 0;
    let sum = hits.get(id) ?? 0;
    const key = n.callFrame.url.includes('/dist/') ? frameName(n) : null;
    const fresh = key !== null && !onStack.has(key);
    if (fresh) onStack.add(key);
    for (const c of n.children ?? []) sum += walk(c, onStack);
    if (fresh) {
      onStack.delete(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + sum);
    }
    return sum;
  };
  if (root) walk(root.id, new Set());

  const sorted = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, v]) => ({ name, pct: pct(v) }));
  return {
    file,
    seconds: Math.round((prof.endTime - prof.startTime) / 1e5) / 10,
    samples: total,
    idlePct: pct(idle),
    bySelf: sorted(self, top),
    byArea: sorted(areas, top),
    hospayInclusive: sorted(inclusive, top),
  };
}

export function printProfile(s: ProfileSummary): void {
  console.log(`\nCPU profile ${s.file}: ${s.seconds} s, ${s.samples} samples, idle ${s.idlePct} %`);
  const show = (title: string, lines: ProfileLine[]) => {
    console.log(`\n  ${title}`);
    for (const l of lines) console.log(`  ${l.pct.toFixed(1).padStart(6)} %  ${l.name}`);
  };
  show('self time by area (package / hospay directory / node internals)', s.byArea);
  show('self time by function', s.bySelf);
  show("inclusive time of hospay's functions", s.hospayInclusive);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: tsx bench/profile.ts FILE.cpuprofile [--top=25]');
    process.exit(2);
  }
  const top = Number(/--top=(\d+)/.exec(process.argv.slice(3).join(' '))?.[1] ?? 25);
  printProfile(summariseProfile(file, top));
}
