import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';

/** The desk's actions on a trade and the maker–checker approvals (to be built). */
export async function registerDeskActionPages(_app: FastifyInstance, _deps: ServiceDeps): Promise<void> {}
