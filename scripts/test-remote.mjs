#!/usr/bin/env node
// Live sandbox tests against the real providers (Alipay, WeChat Pay, UnionPay, the medical-insurance centre).
// Each file skips itself, saying which environment variables are missing, when it has no credentials.
// Not part of `npm test`: they need the network and a provider's sandbox account.
//   npm run test:remote
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const dir = 'test/remote';
const files = fs.existsSync(dir)
  ? fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.test.ts'))
      .map((f) => path.join(dir, f))
  : [];
if (files.length === 0) {
  console.log('no remote tests');
  process.exit(0);
}
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
