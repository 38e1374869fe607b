/**
 * How an app's channel configuration and the platform-level one merge (services/channel-config.ts), by each
 * field's scope: 'app' the app's value only, 'platform' the platform's only, 'either' the app's when it has one.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mergeChannelConfig } from '../../src/services/channel-config.js';
import type { ConfigField } from '../../src/channels/definition.js';

const field = (name: string, scope?: ConfigField['scope']): ConfigField => ({
  name,
  secret: false,
  required: true,
  zh: name,
  en: name,
  ...(scope ? { scope } : {}),
});
const FIELDS = [
  field('sub_mchid'),
  field('sp_mchid', 'platform'),
  field('app_id', 'either'),
  field('key', 'either'),
];

describe('platform-level channel configuration: the merge by scope', () => {
  it("either: the app's value wins, else the platform's; platform: only the platform's; app: only the app's", () => {
    const platform = { sp_mchid: 'SP1', app_id: 'P-APP', key: 'P-KEY', sub_mchid: 'ignored' };
    const app = { sub_mchid: 'SUB1', app_id: 'A-APP', sp_mchid: 'ignored too' };
    assert.deepEqual(mergeChannelConfig(FIELDS, platform, app), {
      sub_mchid: 'SUB1',
      sp_mchid: 'SP1',
      app_id: 'A-APP',
      key: 'P-KEY',
    });
  });

  it('an empty app value does not hide the platform value; names no field knows stay (the check names them)', () => {
    assert.deepEqual(mergeChannelConfig(FIELDS, { key: 'P' }, { key: '', typo: 'x' }), {
      key: 'P',
      typo: 'x',
    });
  });

  it('no platform configuration: the app configuration as it is (direct mode unchanged)', () => {
    const app = { sub_mchid: 'S', app_id: 'A', key: 'K' };
    assert.deepEqual(mergeChannelConfig(FIELDS, {}, app), app);
  });
});
