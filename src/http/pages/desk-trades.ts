import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import type { ReconcileDeps } from '../../reconcile/deps.js';

/** The desk's trade search, a trade's page and timeline, the CSV export (to be built). */
export async function registerDeskTradePages(
  _app: FastifyInstance,
  _deps: ServiceDeps,
  _recon: ReconcileDeps,
): Promise<void> {}
