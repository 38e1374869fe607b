import { createHash } from 'node:crypto';
import type pg from 'pg';

/**
 * Named prepared statements on a node-postgres client. Kysely sends every query as text with parameters; with a
 * name, PostgreSQL parses and plans a statement once per connection instead of on every execution, which
 * roughly halves the database's CPU per request on the hot paths (docs/performance.md). The name is a hash of
 * the SQL text, so the same query shape reuses its statement whatever its parameters.
 *
 * Limits and recoveries:
 * - Only parameterised statements are named (BEGIN, COMMIT and the like are not), and at most `maxStatements`
 *   per connection, each at most `maxTextLength` characters long (batch inserts of varying size are many
 *   distinct texts); beyond that a statement runs unnamed, as before.
 * - A table changed under a prepared statement (a migration run by another server) makes PostgreSQL refuse it
 *   ("cached plan must not change result type", 0A000), and a connection reset by a pooler loses its statements
 *   (26000). Outside a transaction the statement is then run again unnamed, and the connection starts afresh
 *   with new names; inside one the error is the transaction's, as any other.
 * - Behind PgBouncer in transaction mode (before 1.21's max_prepared_statements), turn this off:
 *   HOSPAY_DB_PREPARE=off.
 */
export function usePreparedStatements(
  client: pg.PoolClient,
  opts: { maxStatements?: number; maxTextLength?: number } = {},
): void {
  const maxStatements = opts.maxStatements ?? 500;
  const maxTextLength = opts.maxTextLength ?? 16_384;
  const names = new Map<string, string>();
  let generation = 0;
  let inTransaction = false;
  const original = client.query.bind(client) as (...a: unknown[]) => Promise<unknown>;

  const nameOf = (text: string): string | undefined => {
    const known = names.get(text);
    if (known !== undefined || names.size >= maxStatements || text.length > maxTextLength) return known;
    const name = `hp${generation}_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
    names.set(text, name);
    return name;
  };

  const query = (...a: unknown[]): unknown => {
    const [text, values] = a;
    if (typeof text !== 'string' || !Array.isArray(values) || a.length !== 2) return original(...a);
    if (values.length === 0) {
      const head = text.trimStart().slice(0, 17).toLowerCase();
      if (head.startsWith('begin') || head.startsWith('start transaction')) inTransaction = true;
      else if (head.startsWith('commit') || head.startsWith('rollback') || head.startsWith('end'))
        inTransaction = false;
      return original(text, values);
    }
    const name = nameOf(text);
    if (name === undefined) return original(text, values);
    const startedInTransaction = inTransaction;
    return original({ name, text, values }).catch((err: unknown) => {
      const code = (err as { code?: unknown }).code;
      if ((code !== '0A000' && code !== '26000') || startedInTransaction) throw err;
      // The connection's statements are stale: forget them all and run this one unnamed.
      names.clear();
      generation++;
      return original(text, values);
    });
  };
  (client as unknown as { query: typeof query }).query = query;
}
