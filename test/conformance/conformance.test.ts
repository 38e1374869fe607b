/**
 * Runs the conformance suite for every target in ./targets (one file per channel adapter, exporting
 * `target: ConformanceTarget`). A registered real channel without a target fails the run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { describeConformance, type ConformanceTarget } from './suite.js';
import { CHANNEL_DEFINITIONS } from '../../src/channels/registry.js';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'targets');
const files = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.ts'))
  .sort();
const targets: ConformanceTarget[] = [];
for (const f of files) {
  const mod = (await import(path.join(dir, f))) as {
    target?: ConformanceTarget;
    targets?: ConformanceTarget[];
  };
  if (mod.target) targets.push(mod.target);
  for (const t of mod.targets ?? []) targets.push(t);
}
for (const t of targets) describeConformance(t);

describe('every registered channel to a real provider has a conformance target', () => {
  it('no channel is left out', () => {
    const covered = new Set(targets.map((t) => t.id));
    const missing = CHANNEL_DEFINITIONS.map((d) => d.id).filter(
      (id) => id !== 'simulator' && !covered.has(id),
    );
    assert.deepEqual(missing, []);
  });
});
