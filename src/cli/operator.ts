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
import { helpPointer } from './usage.js';
import { ConflictError, UsageError } from '../domain/errors.js';

export const OPERATOR_USAGE = `Usage:
  hospay operator create --username U --name 显示名 [--password-stdin] [--json]
                                               a finance operator for the /finance page; without
                                               --password-stdin a strong password is made and shown once
  hospay operator list [--json]                finance operators (never their passwords)
  hospay operator passwd --username U [--password-stdin]
                                               a new password (made and shown once, or read from stdin);
                                               unlocks the account and ends its sessions
  hospay operator disable --username U | operator enable --username U
                                               refuse / accept an operator's logins (disable ends sessions)`;

class OperatorUsageError extends UsageError {}

class OperatorFailure extends ConflictError {}

interface OperatorAdmin {
  create(username: string, displayName: string, password: string): Promise<OperatorView>;
  list(): Promise<OperatorView[]>;
  setPassword(username: string, password: string): Promise<boolean>;
  setStatus(username: string, status: 'active' | 'disabled'): Promise<boolean>;
}

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
  const [sub, ...rest] = args;
  if (!['create', 'list', 'passwd', 'disable', 'enable'].includes(sub ?? ''))
    throw new OperatorUsageError(
      `unknown operator command "${sub ?? ''}" (create, list, passwd, disable, enable)`,
    );
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      username: { type: 'string' },
      name: { type: 'string' },
      'password-stdin': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length) throw new OperatorUsageError(`unexpected argument "${positionals[0] ?? ''}"`);
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
    const problem = displayNameProblem(name);
    if (problem) throw new OperatorUsageError(`--name: ${problem}`);
  }

  const { admin, close } = await operatorAdmin(config);
  try {
    switch (sub) {
      case 'create': {
        const created = await admin.create(username, name, password);
        if (values.json) console.log(JSON.stringify({ ...created, ...(generated ? { password } : {}) }));
        else {
          console.log(`操作员已创建 / operator created: ${created.username} (${created.display_name})`);
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
            console.log(`${o.username}  ${o.status}  ${o.display_name}${locked}`);
          }
        return 0;
      }
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
  return {
    admin: {
      create: (username, displayName, password) => repo.create({ username, displayName, password }),
      list: () => repo.list(),
      setPassword: (username, password) => repo.setPassword(username, password),
      setStatus: (username, status) => repo.setStatus(username, status),
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

  async create(username: string, displayName: string, password: string): Promise<OperatorView> {
    return (
      await this.call<OperatorView>('POST', '/admin/operators', {
        username,
        display_name: displayName,
        password,
      })
    ).data;
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
