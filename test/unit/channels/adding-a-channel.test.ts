/**
 * Adding a channel is one folder plus one registry line (docs/ARCHITECTURE.md, "Adding a channel"). The Echo
 * fixture channel (test/fixtures/channels/echo) is such a folder: the registry takes it through its
 * `definitions` option, and the conformance suite runs it (test/conformance/targets/echo.ts). Here: the folder
 * reaches nothing of the platform beyond the channel port and the shared exchange, and the registry serves it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHANNEL_DEFINITIONS, ChannelRegistry } from '../../../src/channels/registry.js';
import { checkChannelConfig } from '../../../src/channels/definition.js';
import { httpRequest } from '../../../src/channels/http.js';
import { systemClock } from '../../../src/domain/clock.js';
import { echoDefinition } from '../../fixtures/channels/echo/definition.js';

const folder = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/channels/echo');

/** What a channel folder may import: the port, the definition types, the shared exchange and transport. */
const ALLOWED = [
  /^node:/,
  /^\.\/[a-z-]+\.js$/,
  /^(\.\.\/)+src\/channels\/(channel|definition|exchange|http)\.js$/,
  /^(\.\.\/)+src\/(formats|domain)\/[a-z-]+\.js$/,
];

describe('adding a channel: one folder plus one registry line', () => {
  it('the folder holds channel.ts, wire.ts, keys.ts and definition.ts, and imports only the channel layer', () => {
    const files = fs.readdirSync(folder).sort();
    assert.deepEqual(files, ['channel.ts', 'definition.ts', 'keys.ts', 'wire.ts']);
    for (const f of files) {
      const text = fs.readFileSync(path.join(folder, f), 'utf8');
      for (const m of text.matchAll(/^import[^'"]*['"]([^'"]+)['"]/gm)) {
        const spec = m[1] ?? '';
        assert.ok(
          ALLOWED.some((re) => re.test(spec)),
          `${f} imports ${spec}`,
        );
      }
    }
  });

  it('the registry serves a channel given through its definitions, and only then', () => {
    const deps = {
      http: httpRequest,
      clock: systemClock,
      publicBaseUrl: () => 'https://hospay.example',
      withSimulator: false,
    };
    const plain = new ChannelRegistry(deps);
    assert.equal(plain.get('echo'), undefined);
    const withEcho = new ChannelRegistry({ ...deps, definitions: [...CHANNEL_DEFINITIONS, echoDefinition] });
    assert.equal(withEcho.get('echo')?.id, 'echo');
    assert.ok(withEcho.ids().includes('echo') && withEcho.ids().includes('alipay'));
    assert.equal(withEcho.definition('echo'), echoDefinition);
    assert.equal(withEcho.definition('simulator'), undefined, 'the simulator is off');
  });

  it('its configuration is checked by its own fields', () => {
    const problems = (v: Record<string, string>) =>
      checkChannelConfig(echoDefinition.fields, v).map((p) => p.field);
    assert.deepEqual(
      problems({ merchant_id: 'M1', secret: 'x'.repeat(16), gateway_url: 'https://e.example' }),
      [],
    );
    assert.deepEqual(problems({ merchant_id: 'M1', secret: 'short', gateway_url: 'ftp:x', other: '1' }), [
      'other',
      'secret',
      'gateway_url',
    ]);
  });
});
