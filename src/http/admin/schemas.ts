import type { RouteOptions } from 'fastify';

/**
 * The admin API's request and answer schemas, keyed by "METHOD /path" as registered (e.g. "POST /admin/apps").
 * The same objects validate the requests (attached to each route by applyAdminSchema) and make the OpenAPI
 * document (/openapi.json): one source.
 */
export const ADMIN_SCHEMAS: Readonly<Record<string, NonNullable<RouteOptions['schema']>>> = {};

/** An onRoute hook of the admin scope: gives each route its schema from ADMIN_SCHEMAS, when there is one. */
export function applyAdminSchema(route: RouteOptions): void {
  const methods = Array.isArray(route.method) ? route.method : [route.method];
  for (const m of methods) {
    const schema = ADMIN_SCHEMAS[`${m} ${route.url}`];
    if (schema && !route.schema) route.schema = schema;
  }
}
