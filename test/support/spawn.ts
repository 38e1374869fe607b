import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { StoreConfig } from '../../src/store/db.js';
import { freshDatabase, type TestDatabase } from './db.js';

/** `hospay` as the tests run it: this Node, with tsx, on the source. */
export const HOSPAY_CLI = ['--import', 'tsx', path.resolve('src/cli/index.ts')];

/** The master key the tests give a child that needs one (with PostgreSQL the platform key is sealed with it). */
export const TEST_MASTER_KEY = '5f'.repeat(32);

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A port for a child server, picked at random in [from, from + span). */
export function randomPort(from = 20000, span = 20000): number {
  return from + Math.floor(Math.random() * span);
}

/** Settings a test gives its children itself: never inherited from the environment the tests run in. */
const DECIDED_BY_THE_TEST = [
  'DATABASE_URL',
  'HOSPAY_MASTER_KEY',
  'PUBLIC_BASE_URL',
  'HOST',
  'PORT',
  'HOSPAY_SIMULATOR',
  'HOSPAY_ALLOW_MIXED_SIMULATOR',
  'HOSPAY_ADMIN_TOKEN',
];

/**
 * The environment of a `hospay` child: this process's, less the settings above, with the data directory and the
 * database: with PostgreSQL its URL and the master key (`masterKey`, TEST_MASTER_KEY unless given; null: none).
 * `env` comes last and wins.
 */
export function hospayEnv(o: {
  dataDir: string;
  store?: StoreConfig;
  masterKey?: string | null;
  env?: NodeJS.ProcessEnv;
}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOSPAY_DATA_DIR: o.dataDir };
  for (const k of DECIDED_BY_THE_TEST) delete env[k];
  if (o.store?.kind === 'postgres') {
    env['DATABASE_URL'] = o.store.url;
    if (o.masterKey !== null) env['HOSPAY_MASTER_KEY'] = o.masterKey ?? TEST_MASTER_KEY;
  }
  return { ...env, ...o.env };
}

export interface HospayResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `hospay …args` to its end. It blocks this process: not for a command talking to a server in this one. */
export function runHospay(
  args: string[],
  env: NodeJS.ProcessEnv,
  o: { input?: string; timeout?: number } = {},
): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [...HOSPAY_CLI, ...args], {
    env,
    encoding: 'utf8',
    timeout: o.timeout ?? 60_000,
    ...(o.input === undefined ? {} : { input: o.input }),
  });
}

/** Runs `hospay …args` to its end without blocking this process (the server it talks to may run in this one). */
export function runHospayAsync(
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 60_000,
): Promise<HospayResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...HOSPAY_CLI, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** A `hospay` command running as a child process (`serve`, `his-sim`). */
export class HospayProcess {
  private text = '';

  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => (this.text += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.text += d.toString()));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Everything it printed so far, standard output and standard error together. */
  out(): string {
    return this.text;
  }

  /** Not (yet) exited. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Sends `signal` (SIGTERM: a clean stop; SIGKILL: a crash) and waits until the process has gone; its exit code
   * (null when a signal ended it).
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const c = this.child;
    if (!this.running) return c.exitCode;
    const exited = new Promise<number | null>((r) => c.once('exit', (code) => r(code)));
    c.kill(signal);
    return exited;
  }
}

export interface StartOptions {
  /** What it prints once ready (default: the server's start-up line). */
  ready?: RegExp;
  timeoutMs?: number;
  pollMs?: number;
}

/** Starts `hospay …args` and waits until it says it is ready; throws (and kills it) if it exits or takes too long. */
export async function startHospay(
  args: string[],
  env: NodeJS.ProcessEnv,
  o: StartOptions = {},
): Promise<HospayProcess> {
  const ready = o.ready ?? /hospay is serving/;
  const p = new HospayProcess(
    spawn(process.execPath, [...HOSPAY_CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  const deadline = Date.now() + (o.timeoutMs ?? 60_000);
  while (!ready.test(p.out())) {
    if (Date.now() > deadline || !p.running) {
      await p.stop('SIGKILL');
      throw new Error(`hospay ${args[0] ?? ''} did not start:\n${p.out()}`);
    }
    await sleep(o.pollMs ?? 100);
  }
  return p;
}

/**
 * A data directory and a database (a fresh one unless given) for `hospay` child processes, with their
 * environment (hospayEnv). close() kills the children it started and removes the directory and the database.
 */
export class HospayHome {
  private readonly children: HospayProcess[] = [];

  private constructor(
    readonly db: TestDatabase,
    readonly dataDir: string,
    /** The children's environment; a test may change it between commands. */
    public env: NodeJS.ProcessEnv,
  ) {}

  static async create(
    prefix: string,
    o: { database?: TestDatabase; masterKey?: string | null; env?: NodeJS.ProcessEnv } = {},
  ): Promise<HospayHome> {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
    const db = o.database ?? (await freshDatabase());
    const env = hospayEnv({
      dataDir,
      store: db.store,
      ...(o.masterKey === undefined ? {} : { masterKey: o.masterKey }),
      ...(o.env ? { env: o.env } : {}),
    });
    return new HospayHome(db, dataDir, env);
  }

  /** The database as the children see it: PostgreSQL's, or the embedded one in the data directory. */
  get store(): StoreConfig {
    return this.db.store.kind === 'postgres' ? this.db.store : { kind: 'embedded', dataDir: this.dataDir };
  }

  /** Runs `hospay …args` to its end (blocking this process), with `env` added to the home's. */
  run(args: string[], o: { input?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}) {
    return runHospay(args, o.env ? { ...this.env, ...o.env } : this.env, o);
  }

  /** Starts `hospay …args` (a server by default) and waits until it is ready; close() ends it if nothing else did. */
  async start(args: string[] = ['serve'], o: StartOptions & { env?: NodeJS.ProcessEnv } = {}) {
    const p = await startHospay(args, o.env ? { ...this.env, ...o.env } : this.env, o);
    this.children.push(p);
    return p;
  }

  async close(): Promise<void> {
    for (const c of this.children) await c.stop('SIGKILL');
    await this.db.drop();
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}
