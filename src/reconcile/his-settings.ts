/**
 * Reading and changing an app's HIS connection and reconciliation settings, for the CLI and the admin API.
 * The HIS's AccessToken is sealed with the master key before it is stored and is never shown again: views say
 * only whether one is set.
 */
import type { AppRepository } from '../store/apps.js';
import type { App } from '../store/schema.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { ReconSettingsError, mergeReconSettings, readReconSettings, type ReconSettings } from './settings.js';
import { hisTokenContext } from './run.js';

export interface ReconSettingsView {
  app_id: string;
  his_base_url: string | null;
  /** Whether a HIS AccessToken is stored (its value is never shown). */
  his_access_token: 'set' | 'none';
  settings: ReconSettings;
}

export interface ReconSettingsPatch {
  /** null: no HIS comparison. */
  his_base_url?: string | null;
  /** null: send an empty AccessToken. */
  his_access_token?: string | null;
  /** A partial ReconSettings; see mergeReconSettings. */
  settings?: unknown;
}

export function reconSettingsView(app: App): ReconSettingsView {
  return {
    app_id: app.id,
    his_base_url: app.his_base_url,
    his_access_token: app.his_token_sealed ? 'set' : 'none',
    settings: readReconSettings(app.recon_settings),
  };
}

function checkHisUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ReconSettingsError('his_base_url', '不是有效的地址', 'is not a valid URL');
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || url.length > 512)
    throw new ReconSettingsError('his_base_url', '须为 http(s) 地址', 'must be an http(s) URL');
  if (u.username || u.password)
    throw new ReconSettingsError(
      'his_base_url',
      '地址中不可含用户名密码，请用 AccessToken',
      'must not carry credentials; use the AccessToken',
    );
  if (u.search || u.hash)
    throw new ReconSettingsError('his_base_url', '地址不可含查询串', 'must not have a query or fragment');
  return url.replace(/\/+$/, '');
}

/** Validates and applies a patch; returns the new view, or null when the app does not exist. */
export async function updateReconSettings(
  deps: { apps: AppRepository; secrets: SecretBox },
  appId: string,
  patch: ReconSettingsPatch,
): Promise<ReconSettingsView | null> {
  const app = await deps.apps.get(appId);
  if (!app) return null;
  const change: Parameters<AppRepository['setReconciliation']>[1] = {};
  if (patch.his_base_url !== undefined)
    change.hisBaseUrl = patch.his_base_url === null ? null : checkHisUrl(patch.his_base_url);
  if (patch.his_access_token !== undefined) {
    const t = patch.his_access_token;
    if (t !== null && (typeof t !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(t)))
      throw new ReconSettingsError(
        'his_access_token',
        'AccessToken 须为 1～256 个可见 ASCII 字符',
        'must be 1–256 visible ASCII characters',
      );
    change.hisTokenSealed = t === null ? null : deps.secrets.seal(t, hisTokenContext(appId));
  }
  if (patch.settings !== undefined)
    change.settings = JSON.stringify(
      mergeReconSettings(readReconSettings(app.recon_settings), patch.settings),
    );
  if (!(await deps.apps.setReconciliation(appId, change))) return null;
  const updated = await deps.apps.get(appId);
  return updated ? reconSettingsView(updated) : null;
}
