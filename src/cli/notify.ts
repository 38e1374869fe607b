import { parseArgs } from 'node:util';
import type { Config } from '../config/config.js';
import { migrate, openStore } from '../store/db.js';
import { NotificationRepository } from '../store/notifications.js';
import { formatShanghai, systemClock } from '../domain/clock.js';
import { adminFetch, runningServer } from './running-server.js';
import {
  listNotifications,
  MAX_LIST_LIMIT,
  parseNotifyStatus,
  resendNotification,
  type NotificationFilter,
  type NotificationView,
} from '../services/notify.js';
import { NotFoundError, UsageError } from '../domain/errors.js';

export const NOTIFY_USAGE = `Usage:
  hospay notify list [--app ID] [--status PENDING|DELIVERED|FAILED] [--out-trade-no NO] [--limit N] [--json]
                                               notifications (lc.trade.notify) with their attempts, newest first
  hospay notify resend NOTIFY_ID               deliver a notification again now, whatever its state`;

/** A mistake in the command line (the caller shows the usage, NOTIFY_USAGE is part of it, and exits with 2). */
export class NotifyUsageError extends UsageError {
  constructor(message: string) {
    super(message);
    this.name = 'NotifyUsageError';
  }
}

export class NotificationNotFoundError extends NotFoundError {
  constructor(notifyId: string) {
    super(`没有这个通知 / no such notification: ${notifyId}`);
    this.name = 'NotificationNotFoundError';
  }
}

interface NotifyAdmin {
  list(filter: NotificationFilter): Promise<NotificationView[]>;
  resend(notifyId: string): Promise<boolean>;
}

/** `hospay notify …`: straight on the database, or through the running server when it holds the embedded one. */
export async function notifyCommand(args: string[], config: Config): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'list') {
    const { values, positionals } = parseArgs({
      args: rest,
      options: {
        app: { type: 'string' },
        status: { type: 'string' },
        'out-trade-no': { type: 'string' },
        limit: { type: 'string' },
        json: { type: 'boolean' },
      },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length) throw new NotifyUsageError(`unexpected argument "${positionals[0] ?? ''}"`);
    const filter: NotificationFilter = { limit: 50 };
    if (values.app !== undefined) {
      if (!values.app) throw new NotifyUsageError('--app needs an app id');
      filter.appId = values.app;
    }
    if (values.status !== undefined) {
      const status = parseNotifyStatus(values.status);
      if (!status) throw new NotifyUsageError('--status must be PENDING, DELIVERED or FAILED');
      filter.status = status;
    }
    if (values['out-trade-no'] !== undefined) {
      if (!values['out-trade-no']) throw new NotifyUsageError('--out-trade-no needs an order number');
      filter.outTradeNo = values['out-trade-no'];
    }
    if (values.limit !== undefined) {
      const n = /^[0-9]{1,4}$/.test(values.limit) ? Number(values.limit) : NaN;
      if (!(n >= 1 && n <= MAX_LIST_LIMIT))
        throw new NotifyUsageError(`--limit must be a number from 1 to ${MAX_LIST_LIMIT}`);
      filter.limit = n;
    }
    const { admin, close } = await notifyAdmin(config);
    try {
      const list = await admin.list(filter);
      if (values.json) console.log(JSON.stringify(list));
      else printList(list);
      return 0;
    } finally {
      await close();
    }
  }
  if (sub === 'resend') {
    const { positionals } = parseArgs({ args: rest, options: {}, allowPositionals: true, strict: true });
    const [notifyId, extra] = positionals;
    if (!notifyId) throw new NotifyUsageError('notify resend needs a NOTIFY_ID');
    if (extra !== undefined) throw new NotifyUsageError(`unexpected argument "${extra}"`);
    const { admin, close } = await notifyAdmin(config);
    try {
      if (!(await admin.resend(notifyId))) throw new NotificationNotFoundError(notifyId);
      console.log(`${notifyId}: 已重新排队 / queued again: a running hospay delivers it on its next pass`);
      return 0;
    } finally {
      await close();
    }
  }
  throw new NotifyUsageError(`unknown notify command "${sub ?? ''}" (list, resend)`);
}

function shanghai(iso: string | null): string {
  return iso ? formatShanghai(new Date(iso)) : '-';
}

function printList(list: NotificationView[]): void {
  if (list.length === 0) {
    console.log('没有通知 / no notifications');
    return;
  }
  for (const n of list) {
    const when =
      n.status === 'PENDING'
        ? `next ${shanghai(n.next_attempt_at)}`
        : n.status === 'DELIVERED'
          ? `delivered ${shanghai(n.delivered_at)}`
          : 'failed';
    console.log(
      `${n.notify_id}  ${n.status.padEnd(9)}  ${n.trade_status.padEnd(13)}  ${n.out_trade_no}  attempts ${n.attempts}  ${when}`,
    );
    for (const a of n.attempt_log) {
      const answer =
        a.error ??
        `HTTP ${a.http_status ?? '-'} ${JSON.stringify(a.body_excerpt ?? '')}${a.body_excerpt?.length === 200 ? '…' : ''}`;
      console.log(`    #${a.attempt}  ${shanghai(a.started_at)}  ${a.latency_ms} ms  ${answer}`);
    }
  }
}

/** Chooses how to reach the notifications, as appAdmin does for apps. */
async function notifyAdmin(config: Config): Promise<{ admin: NotifyAdmin; close: () => Promise<void> }> {
  const server = runningServer(config);
  if (server) return { admin: new RemoteNotifyAdmin(server.base, server.token), close: async () => {} };
  const store = await openStore(config.store);
  try {
    await migrate(store.db);
  } catch (e) {
    await store.close();
    throw e;
  }
  const deps = { notifications: new NotificationRepository(store.db), clock: systemClock };
  return {
    admin: {
      list: (filter) => listNotifications(deps, filter),
      resend: (notifyId) => resendNotification(deps, notifyId),
    },
    close: () => store.close(),
  };
}

class RemoteNotifyAdmin implements NotifyAdmin {
  constructor(
    private readonly base: string,
    private readonly token: string,
  ) {}

  private async call<T>(method: string, path: string): Promise<{ status: number; data: T }> {
    const res = await adminFetch({ base: this.base, token: this.token }, method, path);
    const text = res.text;
    if (res.status >= 400 && res.status !== 404)
      throw new Error(`the running server refused: HTTP ${res.status} ${text}`);
    if (res.status === 404 && !text.includes('NOTIFY_NOT_FOUND'))
      throw new Error('the running server has no notification API (is it an older version?)');
    return { status: res.status, data: res.data as T };
  }

  async list(filter: NotificationFilter): Promise<NotificationView[]> {
    const q = new URLSearchParams({ limit: String(filter.limit) });
    if (filter.appId !== undefined) q.set('app_id', filter.appId);
    if (filter.status !== undefined) q.set('status', filter.status);
    if (filter.outTradeNo !== undefined) q.set('out_trade_no', filter.outTradeNo);
    return (await this.call<NotificationView[]>('GET', `/admin/notifications?${q.toString()}`)).data;
  }

  async resend(notifyId: string): Promise<boolean> {
    const r = await this.call('POST', `/admin/notifications/${encodeURIComponent(notifyId)}/resend`);
    return r.status === 200;
  }
}
