import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { Db } from './db.js';
import { isUniqueViolation } from './db.js';
import type { Clock } from '../domain/clock.js';
import { isRole, type Role } from '../domain/access.js';
import { sha256Hex } from '../crypto/tokens.js';
import { passwordHashGate, type HashLane } from '../crypto/hash-gate.js';
import { LOGIN_BACKOFF, liveFailures, waitMs } from '../domain/login-backoff.js';
import { LoginAttemptRepository } from './login-attempts.js';
import { ConflictError, InvalidInputError } from '../domain/errors.js';

/** A finance operator's login name: 2–32 of A–Z a–z 0–9 . _ - (the table checks it too). */
export const USERNAME_PATTERN = /^[A-Za-z0-9._-]{2,32}$/;
export const MIN_PASSWORD_LENGTH = 10;
export const MAX_PASSWORD_LENGTH = 256;
export const MAX_DISPLAY_NAME_LENGTH = 64;

/** A session ends after 8 hours without a request, and 12 hours after login at the latest. */
export const SESSION_IDLE_MS = 8 * 3_600_000;
export const SESSION_ABSOLUTE_MS = 12 * 3_600_000;

// scrypt cost: N = 2^15, r = 8, p = 1 (32 MiB, a few tens of milliseconds). Stored with each hash, so it can
// be raised later without invalidating existing passwords. Every scrypt goes through passwordHashGate (one at
// a time, a short queue): login attempts must never fill the thread pool that signature checks use.
const SCRYPT_N = 32_768;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
const KEY_LENGTH = 32;

function scrypt(
  password: string,
  salt: Buffer,
  n: number,
  r: number,
  p: number,
  lane: HashLane,
): Promise<Buffer> {
  const options: ScryptOptions = { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 };
  return passwordHashGate.run(
    lane,
    () =>
      new Promise<Buffer>((resolve, reject) =>
        scryptCb(password.normalize('NFC'), salt, KEY_LENGTH, options, (err, key) =>
          err ? reject(err) : resolve(key),
        ),
      ),
  );
}

/** `scrypt$N$r$p$salt$hash`, salt and hash in base64url. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, 'admin');
  return `scrypt$${SCRYPT_N}$${SCRYPT_R}$${SCRYPT_P}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/**
 * Checks a password against a stored hash, in constant time. A malformed hash never matches. Throws
 * HashBusyError when the lane's queue is full (never for `admin`).
 */
export async function checkPassword(
  password: string,
  stored: string,
  lane: HashLane = 'admin',
): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![n, r, p].every((x) => Number.isInteger(x) && x > 0) || n > 1 << 20 || r > 32 || p > 16) return false;
  const salt = Buffer.from(parts[4] ?? '', 'base64url');
  const expected = Buffer.from(parts[5] ?? '', 'base64url');
  if (salt.length < 8 || expected.length !== KEY_LENGTH) return false;
  const actual = await scrypt(password, salt, n, r, p, lane);
  return timingSafeEqual(actual, expected);
}

/** A strong random password for `operator create` without --password-stdin: 24 base64url characters. */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

/** Null when acceptable, otherwise why not (Chinese / English). */
export function passwordProblem(password: string): string | null {
  const length = [...password].length;
  if (length < MIN_PASSWORD_LENGTH)
    return `密码至少 ${MIN_PASSWORD_LENGTH} 个字符 / the password needs at least ${MIN_PASSWORD_LENGTH} characters`;
  if (length > MAX_PASSWORD_LENGTH)
    return `密码至多 ${MAX_PASSWORD_LENGTH} 个字符 / the password is at most ${MAX_PASSWORD_LENGTH} characters`;
  return null;
}

export function displayNameProblem(name: string): string | null {
  const length = [...name.trim()].length;
  if (
    length < 1 ||
    length > MAX_DISPLAY_NAME_LENGTH ||
    [...name].some((ch) => (ch.codePointAt(0) ?? 0) < 0x20 || ch === '\u007f')
  )
    return `显示名须为 1～${MAX_DISPLAY_NAME_LENGTH} 个字符 / the display name must be 1 to ${MAX_DISPLAY_NAME_LENGTH} characters`;
  return null;
}

export interface OperatorView {
  username: string;
  display_name: string;
  status: 'active' | 'disabled';
  /** Failed logins under this username (any source) in the last hour of failures. */
  failed_logins: number;
  /**
   * ISO time until which sources the account has not logged in from must wait (too many failed logins),
   * else null. Known sources are not slowed down; nothing locks the account itself.
   */
  locked_until: string | null;
  created_at: string;
  /** What the operator may do (domain/access.ts). */
  role: Role;
  /** 'all': every hospital (app), present and future; otherwise the app ids granted, sorted. */
  apps: 'all' | string[];
}

export type VerifyResult =
  | { ok: true; username: string; displayName: string }
  | { ok: false; reason: 'unknown' | 'invalid' | 'disabled' };

export interface FinanceSession {
  username: string;
  displayName: string;
  csrfToken: string;
  createdAt: Date;
  expiresAt: Date;
  role: Role;
  /** 'all' or the app ids granted (domain/access.ts Principal.apps). */
  apps: 'all' | readonly string[];
}

export class OperatorExistsError extends ConflictError {
  constructor(username: string) {
    super(`用户名已存在 / the username is taken: ${username}`);
    this.name = 'OperatorExistsError';
  }
}

export class OperatorInputError extends InvalidInputError {
  constructor(
    readonly field: 'username' | 'display_name' | 'password' | 'role' | 'apps',
    message: string,
  ) {
    super(message);
    this.name = 'OperatorInputError';
  }
}

// A hash (same cost) of a random password nobody kept, checked when the username is unknown so that the answer
// takes as long and runs the same one scrypt. Its match would not matter: an unknown user is refused anyway.
const DUMMY_HASH = 'scrypt$32768$8$1$nm3gZHKeHULKpp91tGsaDQ$gnGTqLWkAjP0ROzr8y7_1glcl8MhZu4vDGpfaf-odqE';

/** The finance operators and their sessions. */
export class OperatorRepository {
  private readonly attempts: LoginAttemptRepository;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
  ) {
    this.attempts = new LoginAttemptRepository(db);
  }

  /**
   * Creates an active operator with a role (default finance) and the hospitals (apps) granted: 'all' or app ids
   * (default 'all', as operators were before roles: pass the grants explicitly). A platform admin always sees every app. Throws OperatorInputError (also for an unknown app
   * id) or OperatorExistsError.
   */
  async create(input: {
    username: string;
    displayName: string;
    password: string;
    role?: Role;
    apps?: 'all' | readonly string[];
  }): Promise<OperatorView> {
    if (!USERNAME_PATTERN.test(input.username))
      throw new OperatorInputError(
        'username',
        '用户名须为 2～32 位字母、数字或 . _ - / the username must be 2 to 32 of A-Z a-z 0-9 . _ -',
      );
    const nameProblem = displayNameProblem(input.displayName);
    if (nameProblem) throw new OperatorInputError('display_name', nameProblem);
    const pwProblem = passwordProblem(input.password);
    if (pwProblem) throw new OperatorInputError('password', pwProblem);
    const role = input.role ?? 'finance';
    if (!isRole(role)) throw roleError();
    const apps = role === 'platform_admin' ? 'all' : (input.apps ?? 'all');
    const grants = apps === 'all' ? [] : await this.checkApps(this.db, apps);
    const row = {
      username: input.username,
      display_name: input.displayName.trim(),
      password_hash: await hashPassword(input.password),
      status: 'active' as const,
      created_at: this.clock.now(),
      role,
      all_apps: apps === 'all',
    };
    try {
      await this.db.transaction().execute(async (tx) => {
        await tx.insertInto('finance_operators').values(row).execute();
        if (grants.length > 0)
          await tx
            .insertInto('operator_apps')
            .values(grants.map((app_id) => ({ username: row.username, app_id, granted_at: row.created_at })))
            .execute();
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw new OperatorExistsError(input.username);
      throw e;
    }
    return toView(
      row,
      apps === 'all' ? 'all' : grants,
      { failures: 0, lastFailureAt: null, lastAttemptAt: null },
      this.clock.now(),
    );
  }

  /** The distinct, sorted app ids, every one existing; OperatorInputError('apps') otherwise. */
  private async checkApps(db: Db, apps: readonly string[]): Promise<string[]> {
    if (!Array.isArray(apps) || !apps.every((a) => typeof a === 'string' && a.length > 0 && a.length <= 64))
      throw appsError();
    const wanted = [...new Set(apps)].sort();
    if (wanted.length === 0) return [];
    if (wanted.length > 1000) throw appsError();
    const found = new Set(
      (await db.selectFrom('apps').select('id').where('id', 'in', wanted).execute()).map((r) => r.id),
    );
    const unknown = wanted.filter((a) => !found.has(a));
    if (unknown.length > 0)
      throw new OperatorInputError(
        'apps',
        `没有这些应用 / unknown app ids: ${unknown.slice(0, 10).join(', ')}`,
      );
    return wanted;
  }

  /**
   * Changes an operator's role; a platform admin gets every app. Ends the operator's sessions (their pages
   * must be drawn again for the new role). False if there is no such operator.
   */
  async setRole(username: string, role: Role): Promise<boolean> {
    if (!isRole(role)) throw roleError();
    return this.db.transaction().execute(async (tx) => {
      const r = await tx
        .updateTable('finance_operators')
        .set(role === 'platform_admin' ? { role, all_apps: true } : { role })
        .where('username', '=', username)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) return false;
      if (role === 'platform_admin')
        await tx.deleteFrom('operator_apps').where('username', '=', username).execute();
      await tx.deleteFrom('finance_sessions').where('username', '=', username).execute();
      return true;
    });
  }

  /**
   * Replaces an operator's grants: 'all' (every app, present and future) or exactly these app ids (unknown ids
   * refused). A platform admin is always 'all' (OperatorInputError otherwise). False if there is no such operator.
   */
  async setApps(username: string, apps: 'all' | readonly string[]): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const row = await tx
        .selectFrom('finance_operators')
        .select(['role'])
        .where('username', '=', username)
        .forUpdate()
        .executeTakeFirst();
      if (!row) return false;
      if (row.role === 'platform_admin' && apps !== 'all')
        throw new OperatorInputError(
          'apps',
          '平台管理员总是可见全部医院 / a platform admin always sees every hospital (apps must be "all")',
        );
      const grants = apps === 'all' ? [] : await this.checkApps(tx, apps);
      const now = this.clock.now();
      await tx
        .updateTable('finance_operators')
        .set({ all_apps: apps === 'all' })
        .where('username', '=', username)
        .execute();
      await tx.deleteFrom('operator_apps').where('username', '=', username).execute();
      if (grants.length > 0)
        await tx
          .insertInto('operator_apps')
          .values(grants.map((app_id) => ({ username, app_id, granted_at: now })))
          .execute();
      return true;
    });
  }

  async list(): Promise<OperatorView[]> {
    const rows = await this.db.selectFrom('finance_operators').selectAll().orderBy('username').execute();
    return this.views(rows);
  }

  async get(username: string): Promise<OperatorView | undefined> {
    const row = await this.db
      .selectFrom('finance_operators')
      .selectAll()
      .where('username', '=', username)
      .executeTakeFirst();
    return row ? (await this.views([row]))[0] : undefined;
  }

  private async views(rows: OperatorRow[]): Promise<OperatorView[]> {
    const now = this.clock.now();
    const counts = await this.attempts.accounts(rows.map((r) => r.username));
    const scoped = rows.filter((r) => !r.all_apps).map((r) => r.username);
    const grants = new Map<string, string[]>();
    if (scoped.length > 0) {
      const granted = await this.db
        .selectFrom('operator_apps')
        .select(['username', 'app_id'])
        .where('username', 'in', scoped)
        .orderBy('app_id')
        .execute();
      for (const g of granted) grants.set(g.username, [...(grants.get(g.username) ?? []), g.app_id]);
    }
    const none = { failures: 0, lastFailureAt: null, lastAttemptAt: null };
    return rows.map((r) =>
      toView(r, r.all_apps ? 'all' : (grants.get(r.username) ?? []), counts.get(r.username) ?? none, now),
    );
  }

  /** Display names of the given usernames (for audit trails). */
  async displayNames(usernames: readonly string[]): Promise<Map<string, string>> {
    if (usernames.length === 0) return new Map();
    const rows = await this.db
      .selectFrom('finance_operators')
      .select(['username', 'display_name'])
      .where('username', 'in', [...new Set(usernames)])
      .execute();
    return new Map(rows.map((r) => [r.username, r.display_name]));
  }

  /** Sets a new password, unlocks the account and ends its sessions. False if there is no such operator. */
  async setPassword(username: string, password: string): Promise<boolean> {
    const problem = passwordProblem(password);
    if (problem) throw new OperatorInputError('password', problem);
    const passwordHash = await hashPassword(password);
    return this.db.transaction().execute(async (tx) => {
      const r = await tx
        .updateTable('finance_operators')
        .set({ password_hash: passwordHash })
        .where('username', '=', username)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) return false;
      await tx.deleteFrom('finance_sessions').where('username', '=', username).execute();
      await new LoginAttemptRepository(tx).clear(username);
      return true;
    });
  }

  /**
   * Disables (ends every session) or enables (also clears the login back-off) an operator. False if there is
   * no such operator.
   */
  async setStatus(username: string, status: 'active' | 'disabled'): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const r = await tx
        .updateTable('finance_operators')
        .set({ status })
        .where('username', '=', username)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) return false;
      if (status === 'disabled')
        await tx.deleteFrom('finance_sessions').where('username', '=', username).execute();
      else await new LoginAttemptRepository(tx).clear(username);
      return true;
    });
  }

  /**
   * Checks a username and password: one scrypt whatever the case (a dummy hash for an unknown username), on
   * the given hashing lane (HashBusyError when its queue is full). Counts nothing: the back-off is
   * services/finance-login.ts's. The reason is for the log only; every refusal looks the same to the user.
   */
  async verify(username: string, password: string, lane: HashLane = 'login'): Promise<VerifyResult> {
    const row = USERNAME_PATTERN.test(username)
      ? await this.db
          .selectFrom('finance_operators')
          .selectAll()
          .where('username', '=', username)
          .executeTakeFirst()
      : undefined;
    const good = await checkPassword(password, row?.password_hash ?? DUMMY_HASH, lane);
    if (!row) return { ok: false, reason: 'unknown' };
    if (!good) return { ok: false, reason: 'invalid' };
    if (row.status !== 'active') return { ok: false, reason: 'disabled' };
    return { ok: true, username: row.username, displayName: row.display_name };
  }

  /** A new session: the cookie's token (returned once; only its hash is stored) and the CSRF token. */
  async createSession(username: string): Promise<{ token: string; csrfToken: string; expiresAt: Date }> {
    const now = this.clock.now();
    const token = randomBytes(32).toString('base64url');
    const csrfToken = randomBytes(32).toString('base64url');
    const expiresAt = new Date(now.getTime() + Math.min(SESSION_IDLE_MS, SESSION_ABSOLUTE_MS));
    // Ended sessions are swept here, so the table stays small.
    await this.db.deleteFrom('finance_sessions').where('expires_at', '<=', now).execute();
    await this.db
      .insertInto('finance_sessions')
      .values({
        token_hash: sha256Hex(token),
        username,
        csrf_token: csrfToken,
        created_at: now,
        expires_at: expiresAt,
        last_seen_at: now,
      })
      .execute();
    return { token, csrfToken, expiresAt };
  }

  /**
   * The live session of a cookie token, its idle expiry moved on (8 hours from now, never past 12 hours
   * from login). Undefined when unknown, ended, or its operator is disabled.
   */
  async lookupSession(token: string): Promise<FinanceSession | undefined> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return undefined;
    const now = this.clock.now();
    const tokenHash = sha256Hex(token);
    const row = await this.db
      .selectFrom('finance_sessions')
      .innerJoin('finance_operators', 'finance_operators.username', 'finance_sessions.username')
      .select([
        'finance_sessions.username',
        'finance_sessions.csrf_token',
        'finance_sessions.created_at',
        'finance_sessions.expires_at',
        'finance_sessions.last_seen_at',
        'finance_operators.display_name',
        'finance_operators.status',
        'finance_operators.role',
        'finance_operators.all_apps',
      ])
      .where('finance_sessions.token_hash', '=', tokenHash)
      .executeTakeFirst();
    if (!row) return undefined;
    const idleEnd = row.last_seen_at.getTime() + SESSION_IDLE_MS;
    const absoluteEnd = row.created_at.getTime() + SESSION_ABSOLUTE_MS;
    if (
      row.status !== 'active' ||
      now.getTime() >= Math.min(idleEnd, absoluteEnd, row.expires_at.getTime())
    ) {
      await this.db.deleteFrom('finance_sessions').where('token_hash', '=', tokenHash).execute();
      return undefined;
    }
    const expiresAt = new Date(Math.min(now.getTime() + SESSION_IDLE_MS, absoluteEnd));
    await this.db
      .updateTable('finance_sessions')
      .set({ last_seen_at: now, expires_at: expiresAt })
      .where('token_hash', '=', tokenHash)
      .execute();
    return {
      username: row.username,
      displayName: row.display_name,
      csrfToken: row.csrf_token,
      createdAt: row.created_at,
      expiresAt,
      role: row.role,
      apps: row.all_apps ? 'all' : await this.grantedApps(row.username),
    };
  }

  /** The app ids granted to an operator without all_apps, sorted. */
  async grantedApps(username: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('operator_apps')
      .select('app_id')
      .where('username', '=', username)
      .orderBy('app_id')
      .execute();
    return rows.map((r) => r.app_id);
  }

  async deleteSession(token: string): Promise<void> {
    await this.db.deleteFrom('finance_sessions').where('token_hash', '=', sha256Hex(token)).execute();
  }
}

interface OperatorRow {
  username: string;
  display_name: string;
  status: 'active' | 'disabled';
  created_at: Date;
  role: Role;
  all_apps: boolean;
}

function roleError(): OperatorInputError {
  return new OperatorInputError(
    'role',
    'role 须为 platform_admin、hospital_it、finance 或 cashier_supervisor / role must be platform_admin, hospital_it, finance or cashier_supervisor',
  );
}

function appsError(): OperatorInputError {
  return new OperatorInputError(
    'apps',
    'apps 须为 "all" 或应用编号数组 / apps must be "all" or an array of app ids',
  );
}

function toView(
  row: OperatorRow,
  apps: 'all' | string[],
  account: { failures: number; lastFailureAt: Date | null; lastAttemptAt: Date | null },
  now: Date,
): OperatorView {
  const wait = waitMs(LOGIN_BACKOFF.account, account, now);
  return {
    username: row.username,
    display_name: row.display_name,
    status: row.status,
    failed_logins: liveFailures(account.failures, account.lastFailureAt, now),
    locked_until: wait > 0 ? new Date(now.getTime() + wait).toISOString() : null,
    created_at: row.created_at.toISOString(),
    role: row.role,
    apps,
  };
}
