import fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { Config } from '../config/config.js';
import { migrate, openStore } from '../store/db.js';
import { systemClock } from '../domain/clock.js';
import { adminFetch, runningServer } from './running-server.js';
import {
  displayNameProblem,
  generatePassword,
  OperatorExistsError,
  OperatorRepository,
  passwordProblem,
  USERNAME_PATTERN,
  type OperatorView,
} from '../store/operators.js';
import { OperatorTokenRepository, type OperatorTokenView } from '../store/operator-tokens.js';
import { AuditRepository } from '../store/audit.js';
import { CLI_PRINCIPAL, isRole, ROLES, type Role } from '../domain/access.js';
import { helpPointer } from './usage.js';
import { ConflictError, UsageError } from '../domain/errors.js';

export const OPERATOR_USAGE = `Usage:
  hospay operator create --username U --name 显示名 [--role R] [--apps A,B | --all-apps]
                         [--password-stdin] [--json]
                                               an operator for /finance and /desk; role platform_admin,
                                               hospital_it, finance (default) or cashier_supervisor; the
                                               hospitals (app ids) granted, default every one; without
                                               --password-stdin a strong password is made and shown once
  hospay operator list [--json]                operators, their roles and hospitals (never passwords)
  hospay operator role --username U --role R   change the role (ends the operator's sessions)
  hospay operator apps --username U (--apps A,B | --all-apps)
                                               replace the hospitals granted
  hospay operator grant --username U --apps A,B | operator revoke --username U --apps A,B
                                               add / remove hospitals
  hospay operator token create --username U --label L [--days N] [--json]
                                               a personal API token for the admin API (shown once;
                                               Authorization: Bearer hpo_…), expiring after N days if given
  hospay operator token list --username U [--json] | operator token revoke --username U --id ID
  hospay operator passwd --username U [--password-stdin]
                                               a new password (made and shown once, or read from stdin);
                                               unlocks the account and ends its sessions
  hospay operator disable --username U | operator enable --username U
                                               refuse / accept an operator's logins (disable ends sessions)`;

class OperatorUsageError extends UsageError {}

class OperatorFailure extends ConflictError {}

interface OperatorAdmin {
  create(
    username: string,
    displayName: string,
    password: string,
    role: Role,
    apps: 'all' | string[],
  ): Promise<OperatorView>;
  list(): Promise<OperatorView[]>;
  setPassword(username: string, password: string): Promise<boolean>;
  setStatus(username: string, status: 'active' | 'disabled'): Promise<boolean>;
  setRole(username: string, role: Role): Promise<OperatorView | undefined>;
  setApps(username: string, apps: 'all' | string[]): Promise<OperatorView | undefined>;
  createToken(
    username: string,
    label: string,
    days: number | null,
  ): Promise<{ id: string; token: string; expires_at: string | null } | undefined>;
  listTokens(username: string): Promise<OperatorTokenView[] | undefined>;
  revokeToken(username: string, id: string): Promise<boolean>;
}

const SUBCOMMANDS = [
  'create',
  'list',
  'passwd',
  'disable',
  'enable',
  'role',
  'apps',
  'grant',
  'revoke',
  'token',
];

/**
 * `hospay operator …`: straight on the database, or through the running server's admin API when it holds the
 * embedded database. Prints its own errors: 2 for a wrong command line, 1 for a refusal.
 */
export async function operatorCommand(args: string[], config: Config): Promise<number> {
  try {
    return await run(args, config);
  } catch (e) {
    if (e instanceof OperatorUsageError) {
      console.error(`hospay: ${e.message}\n${helpPointer('operator')}`);
      return 2;
    }
    if (e instanceof OperatorFailure || e instanceof OperatorExistsError) {
      console.error(`hospay: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

/** The password from standard input: everything up to EOF, one trailing newline dropped. */
function readPasswordFromStdin(): string {
  const text = fs.readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  const problem = passwordProblem(text);
  if (problem) throw new OperatorUsageError(`--password-stdin: ${problem}`);
  return text;
}

async function run(args: string[], config: Config): Promise<number> {
  const [sub, ...afterSub] = args;
  if (!SUBCOMMANDS.includes(sub ?? ''))
    throw new OperatorUsageError(`unknown operator command "${sub ?? ''}" (${SUBCOMMANDS.join(', ')})`);
  const tokenSub = sub === 'token' ? afterSub[0] : undefined;
  if (sub === 'token' && !['create', 'list', 'revoke'].includes(tokenSub ?? ''))
    throw new OperatorUsageError(`unknown token command "${tokenSub ?? ''}" (create, list, revoke)`);
  const rest = sub === 'token' ? afterSub.slice(1) : afterSub;
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      username: { type: 'string' },
      name: { type: 'string' },
      'password-stdin': { type: 'boolean' },
      json: { type: 'boolean' },
      role: { type: 'string' },
      apps: { type: 'string' },
      'all-apps': { type: 'boolean' },
      label: { type: 'string' },
      days: { type: 'string' },
      id: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length) throw new OperatorUsageError(`unexpected argument "${positionals[0] ?? ''}"`);
  const role = values.role;
  if (role !== undefined && !isRole(role))
    throw new OperatorUsageError(`--role must be one of ${ROLES.join(', ')}`);
  if ((sub === 'role') !== (role !== undefined) && !(sub === 'create'))
    throw new OperatorUsageError(
      sub === 'role' ? '--role is required' : '--role is only for create and role',
    );
  if (values.apps !== undefined && values['all-apps'])
    throw new OperatorUsageError('give --apps or --all-apps, not both');
  const appList =
    values.apps === undefined
      ? undefined
      : values.apps
          .split(',')
          .map((a) => a.trim())
          .filter((a) => a !== '');
  if (['apps', 'grant', 'revoke'].includes(sub ?? '')) {
    if (appList === undefined && !(sub === 'apps' && values['all-apps']))
      throw new OperatorUsageError(
        sub === 'apps' ? '--apps A,B or --all-apps is required' : '--apps A,B is required',
      );
    if (sub !== 'apps' && values['all-apps'])
      throw new OperatorUsageError(`--all-apps is for create and apps`);
  } else if (sub !== 'create' && (appList !== undefined || values['all-apps']))
    throw new OperatorUsageError('--apps and --all-apps are for create, apps, grant and revoke');
  let days: number | null = null;
  if (values.days !== undefined) {
    if (!/^[0-9]{1,4}$/.test(values.days) || Number(values.days) < 1 || Number(values.days) > 3660)
      throw new OperatorUsageError('--days must be a whole number 1 to 3660');
    days = Number(values.days);
  }
  if (tokenSub === 'create' && !values.label) throw new OperatorUsageError('--label is required');
  if (tokenSub === 'revoke' && !values.id) throw new OperatorUsageError('--id is required');
  const username = values.username ?? '';
  if (sub !== 'list') {
    if (!values.username) throw new OperatorUsageError('--username is required');
    if (!USERNAME_PATTERN.test(username))
      throw new OperatorUsageError('--username must be 2 to 32 of A-Z a-z 0-9 . _ -');
  }
  let password = '';
  let generated = false;
  if (sub === 'create' || sub === 'passwd') {
    if (values['password-stdin']) password = readPasswordFromStdin();
    else {
      password = generatePassword();
      generated = true;
    }
  }
  const name = values.name?.trim() ?? '';
  if (sub === 'create') {
    if (!name) throw new OperatorUsageError('--name 显示名 is required');
    // Fails closed: an operator given a role other than platform admin must be given their hospitals by name
    // (or --all-apps on purpose); without --role the command keeps its old meaning (finance, every hospital).
    if (role !== undefined && role !== 'platform_admin' && appList === undefined && !values['all-apps'])
      throw new OperatorUsageError('--role needs --apps A,B (the hospitals granted) or --all-apps');
    const problem = displayNameProblem(name);
    if (problem) throw new OperatorUsageError(`--name: ${problem}`);
  }

  const { admin, close } = await operatorAdmin(config);
  try {
    switch (sub) {
      case 'create': {
        const created = await admin.create(
          username,
          name,
          password,
          (role as Role | undefined) ?? 'finance',
          values['all-apps'] ? 'all' : (appList ?? 'all'),
        );
        if (values.json) console.log(JSON.stringify({ ...created, ...(generated ? { password } : {}) }));
        else {
          console.log(`操作员已创建 / operator created: ${created.username} (${created.display_name})`);
          console.log(`  角色 / role: ${created.role}; 医院 / hospitals: ${appsText(created.apps)}`);
          if (generated) {
            console.log(`  密码 / password: ${password}`);
            console.log(
              '  密码只显示这一次，请当面或经安全渠道交给本人 / shown only this once: hand it over safely',
            );
          }
          console.log(`  登录 / log in at: ${financeUrl(config)}`);
        }
        return 0;
      }
      case 'list': {
        const list = await admin.list();
        if (values.json) console.log(JSON.stringify(list));
        else if (list.length === 0) console.log('没有操作员 / no operators');
        else
          for (const o of list) {
            const locked =
              o.locked_until && new Date(o.locked_until) > systemClock.now()
                ? `  new addresses wait until ${o.locked_until}`
                : '';
            console.log(
              `${o.username}  ${o.status}  ${o.display_name}  ${o.role}  ${appsText(o.apps)}${locked}`,
            );
          }
        return 0;
      }
      case 'role': {
        const changed = await admin.setRole(username, role as Role);
        if (!changed) throw notFound(username);
        if (values.json) console.log(JSON.stringify(changed));
        else console.log(`${username}: ${changed.role}（原有登录已失效 / sessions ended）`);
        return 0;
      }
      case 'apps':
      case 'grant':
      case 'revoke': {
        let apps: 'all' | string[] = values['all-apps'] ? 'all' : (appList ?? []);
        if (sub !== 'apps') {
          const current = (await admin.list()).find((o) => o.username === username);
          if (!current) throw notFound(username);
          const given = new Set(appList ?? []);
          if (sub === 'revoke' && current.apps === 'all')
            throw new OperatorFailure(
              `${username} sees every hospital: use "operator apps --apps …" to name the ones to keep`,
            );
          apps =
            current.apps === 'all'
              ? 'all'
              : sub === 'grant'
                ? [...new Set([...current.apps, ...given])]
                : current.apps.filter((a) => !given.has(a));
        }
        const changed = await admin.setApps(username, apps);
        if (!changed) throw notFound(username);
        if (values.json) console.log(JSON.stringify(changed));
        else console.log(`${username}: ${appsText(changed.apps)}`);
        return 0;
      }
      case 'token':
        return await tokenCommand(
          admin,
          tokenSub ?? '',
          username,
          values.label ?? '',
          days,
          values.id ?? '',
          values.json === true,
        );
      case 'passwd': {
        if (!(await admin.setPassword(username, password))) throw notFound(username);
        console.log(`${username}: 密码已更改，原有登录已失效 / password changed; its sessions are ended`);
        if (generated) {
          console.log(`  密码 / password: ${password}`);
          console.log('  密码只显示这一次 / shown only this once');
        }
        return 0;
      }
      default: {
        const status = sub === 'disable' ? 'disabled' : 'active';
        if (!(await admin.setStatus(username, status))) throw notFound(username);
        console.log(`${username}: ${status === 'disabled' ? 'disabled 已停用' : 'active 已启用'}`);
        return 0;
      }
    }
  } finally {
    await close();
  }
}

function appsText(apps: 'all' | readonly string[]): string {
  return apps === 'all' ? 'all 全部医院' : apps.length === 0 ? 'none 未授权' : apps.join(',');
}

async function tokenCommand(
  admin: OperatorAdmin,
  sub: string,
  username: string,
  label: string,
  days: number | null,
  id: string,
  json: boolean,
): Promise<number> {
  if (sub === 'create') {
    const created = await admin.createToken(username, label, days);
    if (!created) throw notFound(username);
    if (json) console.log(JSON.stringify({ username, label, ...created }));
    else {
      console.log(`令牌已创建 / token created: ${created.id} for ${username} (${label})`);
      console.log(`  令牌 / token: ${created.token}`);
      console.log(`  到期 / expires: ${created.expires_at ?? 'never 不过期'}`);
      console.log('  令牌只显示这一次，请妥善保管 / shown only this once: keep it like a password');
      console.log('  使用 / use: curl -H "Authorization: Bearer <token>" <server>/admin/whoami');
    }
    return 0;
  }
  if (sub === 'list') {
    const list = await admin.listTokens(username);
    if (!list) throw notFound(username);
    if (json) console.log(JSON.stringify(list));
    else if (list.length === 0) console.log(`${username}: 没有令牌 / no tokens`);
    else
      for (const t of list)
        console.log(
          `${t.id}  ${t.state}  ${t.label}  created ${t.created_at}  expires ${t.expires_at ?? 'never'}  last used ${t.last_used_at ?? 'never'}`,
        );
    return 0;
  }
  if (!(await admin.revokeToken(username, id)))
    throw new OperatorFailure(`没有这个令牌或已吊销 / no such token (or already revoked): ${id}`);
  console.log(`${id}: 已吊销 / revoked`);
  return 0;
}

function notFound(username: string): OperatorFailure {
  return new OperatorFailure(`没有这个操作员 / no such operator: ${username}`);
}

/**
 * Where the finance page is served: on the admin address with HOSPAY_ADMIN_LISTEN (the public port does not
 * serve it then), else under PUBLIC_BASE_URL.
 */
export function financeUrl(config: Pick<Config, 'publicBaseUrl' | 'adminListen'>): string {
  const admin = config.adminListen;
  if (!admin) return `${config.publicBaseUrl}/finance`;
  const host = admin.host.includes(':') ? `[${admin.host}]` : admin.host;
  return `http://${host}:${admin.port}/finance`;
}

async function operatorAdmin(config: Config): Promise<{ admin: OperatorAdmin; close: () => Promise<void> }> {
  const server = runningServer(config);
  if (server) return { admin: new RemoteOperatorAdmin(server.base, server.token), close: async () => {} };
  const store = await openStore(config.store);
  try {
    await migrate(store.db);
  } catch (e) {
    await store.close();
    throw e;
  }
  const repo = new OperatorRepository(store.db, systemClock);
  const tokens = new OperatorTokenRepository(store.db, systemClock);
  const auditLog = new AuditRepository(store.db);
  /** The audit entry of a write on the command line (actor "cli"); never a secret. */
  const audited = async <T>(action: string, detail: Record<string, unknown>, work: () => Promise<T>) => {
    const result = await work();
    await auditLog.record({
      at: systemClock.now(),
      actor: CLI_PRINCIPAL.username,
      role: CLI_PRINCIPAL.role,
      via: 'cli',
      action,
      outcome: result === false || result === undefined ? 'not found' : 'ok',
      detail,
    });
    return result;
  };
  return {
    admin: {
      create: (username, displayName, password, role, apps) =>
        audited('operator.create', { username, role, apps }, () =>
          repo.create({ username, displayName, password, role, apps }),
        ),
      list: () => repo.list(),
      setPassword: (username, password) =>
        audited('operator.password', { username }, () => repo.setPassword(username, password)),
      setStatus: (username, status) =>
        audited('operator.status', { username, status }, () => repo.setStatus(username, status)),
      setRole: (username, role) =>
        audited('operator.role', { username, role }, async () =>
          (await repo.setRole(username, role)) ? repo.get(username) : undefined,
        ),
      setApps: (username, apps) =>
        audited('operator.apps', { username, apps }, async () =>
          (await repo.setApps(username, apps)) ? repo.get(username) : undefined,
        ),
      createToken: async (username, label, days) => {
        const expiresAt = days === null ? null : new Date(systemClock.now().getTime() + days * 86_400_000);
        const created = await tokens.create(username, label, expiresAt);
        await auditLog.record({
          at: systemClock.now(),
          actor: CLI_PRINCIPAL.username,
          role: CLI_PRINCIPAL.role,
          via: 'cli',
          action: 'token.create',
          outcome: created ? 'ok' : 'not found',
          detail: { username, label, ...(created ? { token_id: created.id } : {}) },
        });
        return created && { ...created, expires_at: expiresAt?.toISOString() ?? null };
      },
      listTokens: async (username) => ((await repo.get(username)) ? tokens.list(username) : undefined),
      revokeToken: (username, id) =>
        audited('token.revoke', { username, token_id: id }, async () =>
          (await tokens.ownerOf(id)) === username ? tokens.revoke(id) : false,
        ),
    },
    close: () => store.close(),
  };
}

class RemoteOperatorAdmin implements OperatorAdmin {
  constructor(
    private readonly base: string,
    private readonly token: string,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; data: T }> {
    const res = await adminFetch({ base: this.base, token: this.token }, method, path, body);
    const { text, data } = res;
    const message = (data as { message?: unknown } | null)?.message;
    if (res.status === 409) throw new OperatorFailure(String(message ?? 'the username is taken'));
    if (res.status === 400) throw new OperatorUsageError(String(message ?? text));
    if (res.status === 404 && !text.includes('OPERATOR_NOT_FOUND'))
      throw new OperatorFailure('the running server has no operator API (is it an older version?)');
    if (res.status >= 400 && res.status !== 404)
      throw new OperatorFailure(`the running server refused: HTTP ${res.status} ${text}`);
    return { status: res.status, data: data as T };
  }

  async create(
    username: string,
    displayName: string,
    password: string,
    role: Role,
    apps: 'all' | string[],
  ): Promise<OperatorView> {
    return (
      await this.call<OperatorView>('POST', '/admin/operators', {
        username,
        display_name: displayName,
        password,
        role,
        apps,
      })
    ).data;
  }

  async setRole(username: string, role: Role): Promise<OperatorView | undefined> {
    const r = await this.call<OperatorView>('PUT', `/admin/operators/${encodeURIComponent(username)}/role`, {
      role,
    });
    return r.status === 200 ? r.data : undefined;
  }

  async setApps(username: string, apps: 'all' | string[]): Promise<OperatorView | undefined> {
    const r = await this.call<OperatorView>('PUT', `/admin/operators/${encodeURIComponent(username)}/apps`, {
      apps,
    });
    return r.status === 200 ? r.data : undefined;
  }

  async createToken(
    username: string,
    label: string,
    days: number | null,
  ): Promise<{ id: string; token: string; expires_at: string | null } | undefined> {
    const r = await this.call<{ id: string; token: string; expires_at: string | null }>(
      'POST',
      `/admin/operators/${encodeURIComponent(username)}/tokens`,
      { label, ...(days === null ? {} : { expires_in_days: days }) },
    );
    return r.status === 201 ? r.data : undefined;
  }

  async listTokens(username: string): Promise<OperatorTokenView[] | undefined> {
    const r = await this.call<{ tokens: OperatorTokenView[] }>(
      'GET',
      `/admin/operators/${encodeURIComponent(username)}/tokens`,
    );
    return r.status === 200 ? r.data.tokens : undefined;
  }

  async revokeToken(username: string, id: string): Promise<boolean> {
    const res = await adminFetch(
      { base: this.base, token: this.token },
      'DELETE',
      `/admin/operators/${encodeURIComponent(username)}/tokens/${encodeURIComponent(id)}`,
    );
    if (res.status >= 500 || res.status === 401 || res.status === 403)
      throw new OperatorFailure(`the running server refused: HTTP ${res.status} ${res.text}`);
    return res.status === 200 && (res.data as { revoked?: unknown } | null)?.revoked === true;
  }

  async list(): Promise<OperatorView[]> {
    return (await this.call<OperatorView[]>('GET', '/admin/operators')).data;
  }

  async setPassword(username: string, password: string): Promise<boolean> {
    const r = await this.call('PUT', `/admin/operators/${encodeURIComponent(username)}/password`, {
      password,
    });
    return r.status === 200;
  }

  async setStatus(username: string, status: 'active' | 'disabled'): Promise<boolean> {
    const r = await this.call('PUT', `/admin/operators/${encodeURIComponent(username)}/status`, { status });
    return r.status === 200;
  }
}
