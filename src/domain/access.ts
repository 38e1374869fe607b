/**
 * Who may do what at the desk, on the finance page and through the admin API (docs/operations.md, "Roles").
 * Pure: the doors turn a session, an operator token or the admin token into a Principal, then ask `can` and
 * `seesApp` before every read and every action. Nothing here knows HTTP or SQL.
 */

export const ROLES = ['platform_admin', 'hospital_it', 'finance', 'cashier_supervisor'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(text: unknown): text is Role {
  return typeof text === 'string' && (ROLES as readonly string[]).includes(text);
}

/** The role's name as operators read it (Chinese / English). */
export const ROLE_LABELS: Readonly<Record<Role, string>> = {
  platform_admin: '平台管理员 / platform admin',
  hospital_it: '医院信息科 / hospital IT',
  finance: '财务 / finance',
  cashier_supervisor: '收费主管 / cashier supervisor',
};

export const PERMISSIONS = [
  /** Search trades, open a trade's page and timeline, export the search. */
  'trades.read',
  /** Ask the channel for a trade's state now. */
  'trades.query',
  /** Close an unpaid trade (no money moves). */
  'trades.close',
  /** Resend a notification; see the notification backlog. */
  'notify.resend',
  /** Ask for a refund or cancel (a money action). */
  'money.request',
  /** Approve or reject someone else's refund or cancel. */
  'money.approve',
  /** Reconciliation: runs, differences, evidence, reports and their exports. */
  'recon.read',
  /** Re-run a day, resolve a difference, change reconciliation settings. */
  'recon.write',
  /** See channel configuration status (never secrets). */
  'channels.read',
  /** Change channel configuration, enable or disable an app. */
  'channels.write',
  /** Create apps, register keys, show an AccessToken once, change an app's settings. */
  'apps.write',
  /** Create operators, grant hospitals, manage anyone's tokens; platform-level settings. */
  'platform.admin',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

const GRANTS: Readonly<Record<Role, readonly Permission[]>> = {
  platform_admin: PERMISSIONS,
  hospital_it: ['trades.read', 'trades.query', 'trades.close', 'notify.resend', 'channels.read'],
  finance: ['trades.read', 'trades.query', 'money.request', 'money.approve', 'recon.read', 'recon.write'],
  cashier_supervisor: ['trades.read', 'trades.query', 'trades.close', 'money.request'],
};

export function permissionsOf(role: Role): readonly Permission[] {
  return GRANTS[role];
}

/** Who is asking: an operator (by session or personal token), the platform admin token, or the CLI. */
export interface Principal {
  /** The operator's username; "admin" for the admin token, "cli" for the command line. */
  username: string;
  displayName: string;
  role: Role;
  /** 'all': every hospital (app), present and future; otherwise the app ids granted. */
  apps: 'all' | readonly string[];
  via: 'session' | 'token' | 'admin-token' | 'cli';
}

/** The platform admin token (HOSPAY_ADMIN_TOKEN): a platform admin over every hospital. */
export const ADMIN_TOKEN_PRINCIPAL: Principal = Object.freeze({
  username: 'admin',
  displayName: '平台管理令牌 / admin token',
  role: 'platform_admin',
  apps: 'all',
  via: 'admin-token',
});

/** The command line on the server's own machine (it holds the database and the master key). */
export const CLI_PRINCIPAL: Principal = Object.freeze({
  username: 'cli',
  displayName: '命令行 / command line',
  role: 'platform_admin',
  apps: 'all',
  via: 'cli',
});

export function can(p: Principal, permission: Permission): boolean {
  return GRANTS[p.role].includes(permission);
}

export function seesApp(p: Principal, appId: string): boolean {
  return p.apps === 'all' || p.apps.includes(appId);
}

/** The app ids a query must be limited to; null = no limit (every hospital). */
export function appScope(p: Principal): readonly string[] | null {
  return p.apps === 'all' ? null : p.apps;
}

/** Keeps the rows of the hospitals the principal sees. */
export function visible<T>(p: Principal, rows: readonly T[], appOf: (row: T) => string): T[] {
  return rows.filter((r) => seesApp(p, appOf(r)));
}
