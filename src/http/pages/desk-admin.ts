import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';

/** The platform admin's apps, channels and operators pages (to be built). */
export async function registerDeskAdminPages(_app: FastifyInstance, _deps: ServiceDeps): Promise<void> {}
