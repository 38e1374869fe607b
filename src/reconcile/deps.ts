import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Clock } from '../domain/clock.js';
import type { PayType } from '../domain/trade.js';
import type { Channel, ChannelContext } from '../channels/channel.js';
import type { AppRepository } from '../store/apps.js';
import type { App } from '../store/schema.js';
import type { ReconciliationRepository } from '../store/reconciliation.js';
import type { ReportRepository } from '../store/reports.js';
import type { JobClaimRepository } from '../store/job-claims.js';

/**
 * Everything the reconciliation needs (runs, differences, reports, the daily job), wired once in main.ts. Which
 * channel serves an app's pay type, and the context of a call to it, are the services' rules
 * (services/deps.ts), passed in as functions: the reconciliation asks the channel for its bill exactly as a
 * payment would reach it.
 */
export interface ReconcileDeps {
  apps: AppRepository;
  reconciliation: ReconciliationRepository;
  reports: ReportRepository;
  /** The daily job's claims (jobs/reconciler.ts). */
  jobClaims: JobClaimRepository;
  clock: Clock;
  config: Config;
  /** Opens the sealed HIS AccessToken; seals a new one. */
  secrets: SecretBox;
  log: Logger;
  /** The channel serving the app's pay type; throws PAY_TYPE_NOT_ENABLED when there is none. */
  channelFor(app: App, payType: PayType): { id: string; channel: Channel };
  /** The context of a call to a channel for an app (its configuration, the recorder of the exchange). */
  channelContext(appId: string, channelId: string): Promise<ChannelContext>;
}
