import type { Db } from './db.js';
import type { DeskAuditTable } from './schema.js';
import type { Selectable } from 'kysely';
import type { Principal } from '../domain/access.js';
import { redactValue } from '../formats/redact.js';
import { REDACT_PATHS } from '../logging.js';

/** The field names the logs never show (logging.ts REDACT_PATHS "*.name"): masked in audit details too. */
const SECRET_FIELDS = new Set(REDACT_PATHS.filter((p) => p.startsWith('*.')).map((p) => p.slice(2)));

export type AuditEntry = Selectable<DeskAuditTable>;

export interface AuditInput {
  at: Date;
  actor: string;
  role: string;
  via: DeskAuditTable['via'];
  action: string;
  appId?: string | null;
  outTradeNo?: string | null;
  requestId?: number | null;
  outcome: string;
  /** Masked like the logs before it is stored (formats/redact.ts). */
  detail?: Record<string, unknown>;
}

export interface AuditFilter {
  /** Only these apps; null = every app (and the platform-level entries, app_id null). */
  apps: readonly string[] | null;
  appId?: string;
  outTradeNo?: string;
  actor?: string;
  action?: string;
  from?: Date;
  to?: Date;
  limit: number;
  /** Entries with an id below this (paging backwards). */
  beforeId?: number;
}

/** The desk's audit trail (desk_audit): every action by an operator, the admin token or the CLI. */
export class AuditRepository {
  constructor(private readonly db: Db) {}

  async record(e: AuditInput): Promise<void> {
    await this.db
      .insertInto('desk_audit')
      .values({
        at: e.at,
        actor: e.actor,
        role: e.role,
        via: e.via,
        action: e.action,
        app_id: e.appId ?? null,
        out_trade_no: e.outTradeNo ?? null,
        request_id: e.requestId ?? null,
        outcome: e.outcome,
        detail: JSON.stringify(redactValue(e.detail ?? {}, (k) => SECRET_FIELDS.has(k))),
      })
      .execute();
  }

  /** A trade's entries, oldest first. */
  forTrade(appId: string, outTradeNo: string): Promise<AuditEntry[]> {
    return this.db
      .selectFrom('desk_audit')
      .selectAll()
      .where('app_id', '=', appId)
      .where('out_trade_no', '=', outTradeNo)
      .orderBy('id')
      .execute();
  }

  /** Newest first, scoped. */
  list(f: AuditFilter): Promise<AuditEntry[]> {
    return listAudit(this.db, f);
  }

  /** An action by an operator (their username, role and door). */
  recordBy(p: Principal, at: Date, e: Omit<AuditInput, 'at' | 'actor' | 'role' | 'via'>): Promise<void> {
    return this.record({ ...e, at, actor: p.username, role: p.role, via: p.via });
  }
}

/** The audit trail, newest first, limited to the filter's apps in the SQL (on `db`: the primary or a replica). */
export async function listAudit(db: Db, f: AuditFilter): Promise<AuditEntry[]> {
  let q = db.selectFrom('desk_audit').selectAll();
  if (f.apps !== null) {
    if (f.apps.length === 0) return [];
    q = q.where('app_id', 'in', [...f.apps]);
  }
  if (f.appId !== undefined) q = q.where('app_id', '=', f.appId);
  if (f.outTradeNo !== undefined) q = q.where('out_trade_no', '=', f.outTradeNo);
  if (f.actor !== undefined) q = q.where('actor', '=', f.actor);
  if (f.action !== undefined) q = q.where('action', '=', f.action);
  if (f.from !== undefined) q = q.where('at', '>=', f.from);
  if (f.to !== undefined) q = q.where('at', '<', f.to);
  if (f.beforeId !== undefined) q = q.where('id', '<', f.beforeId);
  return q.orderBy('id', 'desc').limit(f.limit).execute();
}
