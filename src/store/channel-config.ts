import type { Selectable } from 'kysely';
import type { Db } from './db.js';
import type { App, ChannelConfigsTable, PlatformChannelConfigsTable } from './schema.js';

/**
 * Channel configuration rows: per app (channel_configs) and per platform (platform_channel_configs), plain fields
 * as JSON text, secret ones sealed as they come (sealing, opening, merging and validation are
 * services/channel-config.ts's).
 */

export type ChannelConfigRow = Selectable<ChannelConfigsTable>;
export type PlatformChannelConfigRow = Selectable<PlatformChannelConfigsTable>;

export class ChannelConfigRepository {
  constructor(private readonly db: Db) {}

  /** An app's configuration of one channel, as stored. */
  async get(appId: string, channelId: string): Promise<ChannelConfigRow | undefined> {
    return this.db
      .selectFrom('channel_configs')
      .selectAll()
      .where('app_id', '=', appId)
      .where('channel_id', '=', channelId)
      .executeTakeFirst();
  }

  /** Writes an app's configuration of one channel (inserted, or replaced). */
  async put(
    appId: string,
    channelId: string,
    row: { settings: string; secretsSealed: string | null; now: Date },
  ): Promise<void> {
    await this.db
      .insertInto('channel_configs')
      .values({
        app_id: appId,
        channel_id: channelId,
        settings: row.settings,
        secrets_sealed: row.secretsSealed,
        updated_at: row.now,
      })
      .onConflict((oc) =>
        oc
          .columns(['app_id', 'channel_id'])
          .doUpdateSet({ settings: row.settings, secrets_sealed: row.secretsSealed, updated_at: row.now }),
      )
      .execute();
  }

  /** The channels an app has a configuration of, by id. */
  async channelsOf(appId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('channel_configs')
      .select('channel_id')
      .where('app_id', '=', appId)
      .orderBy('channel_id')
      .execute();
    return rows.map((r) => r.channel_id);
  }

  /** Every (app, channel) that has a configuration. */
  async all(): Promise<Array<{ app_id: string; channel_id: string }>> {
    return this.db.selectFrom('channel_configs').select(['app_id', 'channel_id']).execute();
  }

  /** Every app's id, channel map and status (the start-up check). */
  async appMaps(): Promise<Array<Pick<App, 'id' | 'channel_map' | 'status'>>> {
    return this.db.selectFrom('apps').select(['id', 'channel_map', 'status']).execute();
  }

  /** The platform-level configuration of one channel (platform_channel_configs), as stored. */
  async getPlatform(channelId: string): Promise<PlatformChannelConfigRow | undefined> {
    return this.db
      .selectFrom('platform_channel_configs')
      .selectAll()
      .where('channel_id', '=', channelId)
      .executeTakeFirst();
  }

  /** Writes the platform-level configuration of one channel (inserted, or replaced). */
  async putPlatform(
    channelId: string,
    row: { settings: string; secretsSealed: string | null; now: Date },
  ): Promise<void> {
    await this.db
      .insertInto('platform_channel_configs')
      .values({
        channel_id: channelId,
        settings: row.settings,
        secrets_sealed: row.secretsSealed,
        updated_at: row.now,
      })
      .onConflict((oc) =>
        oc
          .column('channel_id')
          .doUpdateSet({ settings: row.settings, secrets_sealed: row.secretsSealed, updated_at: row.now }),
      )
      .execute();
  }

  /** The channels with a platform-level configuration, by id. */
  async platformChannels(): Promise<string[]> {
    const rows = await this.db
      .selectFrom('platform_channel_configs')
      .select('channel_id')
      .orderBy('channel_id')
      .execute();
    return rows.map((r) => r.channel_id);
  }

  /** The apps with their own configuration of one channel. */
  async appsWith(channelId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('channel_configs')
      .select('app_id')
      .where('channel_id', '=', channelId)
      .orderBy('app_id')
      .execute();
    return rows.map((r) => r.app_id);
  }
}
