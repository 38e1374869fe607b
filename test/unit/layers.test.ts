import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ESLint } from 'eslint';

/**
 * The layer rules of docs/ARCHITECTURE.md are lint rules (eslint.config.js, LAYERS): these deliberate breaks
 * must fail `npm run lint`, and the allowed arrows must pass. The fixture code is linted as if it stood at the
 * given path; it imports real modules of the tree.
 */
const root = path.resolve(import.meta.dirname, '../..');
const eslint = new ESLint({ cwd: root });

async function layerErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(root, filePath) });
  assert.ok(result, 'eslint returned no result');
  return result.messages
    .filter((m) => m.ruleId?.startsWith('boundaries/'))
    .map((m) => `${m.ruleId}: ${m.message}`);
}

const breaks: Array<[string, string, RegExp]> = [
  [
    'src/http/offline/fixture.ts',
    "import { TradeRepository } from '../../store/trades.js';",
    /http\/ may not import store\//,
  ],
  ['src/jobs/fixture.ts', "import { openStore } from '../store/db.js';", /jobs\/ may not import store\//],
  [
    'src/channels/fixture.ts',
    "import { openStore } from '../store/db.js';",
    /channels\/ may not import store\//,
  ],
  [
    'src/channels/alipay/fixture.ts',
    "import { ReconcileError } from '../../reconcile/run.js';",
    /channels\/ may not import reconcile\//,
  ],
  [
    'src/domain/fixture.ts',
    "import { formatFen } from '../formats/xml.js';",
    /domain\/ may not import formats\//,
  ],
  [
    'src/domain/fixture.ts',
    "import { createLogger } from '../logging.js';",
    /domain\/ may not import logging\//,
  ],
  [
    'src/store/fixture.ts',
    "import { httpRequest } from '../channels/http.js';",
    /store\/ may not import channels\//,
  ],
  ['src/config/fixture.ts', "import { openStore } from '../store/db.js';", /config\/ may not import store\//],
  [
    'src/reconcile/fixture.ts',
    "import { newTradeNo } from '../services/deps.js';",
    /reconcile\/ may not import services\//,
  ],
  [
    'src/services/fixture.ts',
    "import { runReconciliation } from '../reconcile/run.js';",
    /services\/ may not import reconcile\//,
  ],
  [
    'src/simulator/fixture.ts',
    "import { page } from '../http/server.js';",
    /simulator\/ may not import http\//,
  ],
  [
    'src/formats/fixture.ts',
    "import { Config } from '../config/config.js';",
    /formats\/ may not import config\//,
  ],
  ['src/newlayer/fixture.ts', 'export const x = 1;', /does not belong to any known element/],
];

for (const [at, code, expected] of breaks) {
  test(`lint refuses ${at}: ${code}`, async () => {
    const errors = await layerErrors(at, `${code}\nexport const used = 1;\n`);
    assert.ok(
      errors.some((e) => expected.test(e)),
      `expected ${expected} from lint, got: ${errors.join(' | ') || 'nothing'}`,
    );
  });
}

const allowed: Array<[string, string]> = [
  ['src/http/offline/fixture.ts', "import { newTradeNo } from '../../services/deps.js';"],
  ['src/services/fixture.ts', "import { TradeRepository } from '../store/trades.js';"],
  ['src/channels/fixture.ts', "import { formatFen } from '../domain/money.js';"],
  ['src/reconcile/fixture.ts', "import { openStore } from '../store/db.js';"],
  ['src/cli/fixture.ts', "import { openStore } from '../store/db.js';"],
];

for (const [at, code] of allowed) {
  test(`lint allows ${at}: ${code}`, async () => {
    assert.deepEqual(await layerErrors(at, `${code}\nexport const used = 1;\n`), []);
  });
}
