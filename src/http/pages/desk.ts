import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import type { ReconcileDeps } from '../../reconcile/deps.js';
import { registerDeskTradePages } from './desk-trades.js';
import { registerDeskActionPages } from './desk-actions.js';
import { registerDeskAdminPages } from './desk-admin.js';

/** The operators' desk (/desk): trades, money actions and approvals, the platform admin's pages. */
export async function registerDeskPages(
  app: FastifyInstance,
  deps: ServiceDeps,
  recon: ReconcileDeps,
): Promise<void> {
  await registerDeskTradePages(app, deps, recon);
  await registerDeskActionPages(app, deps);
  await registerDeskAdminPages(app, deps);
}
