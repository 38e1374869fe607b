#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError, type Config } from '../config/config.js';
import { startPlatform } from '../main.js';
import { migrate, openStore } from '../store/db.js';
import { AppRepository } from '../store/apps.js';
import { systemClock } from '../domain/clock.js';
import { DataDirBusyError, readAdminToken, readLock } from '../runtime/local-files.js';

const HELP = `hospay — 医院支付平台 / hospital payment platform

Usage:
  hospay serve [--port N]                      start the platform (PORT, HOST, DATABASE_URL, HOSPAY_DATA_DIR ...)
  hospay app create --name NAME [--hospital-id ID] [--json]
                                               create a hospital app and print its AccessToken (shown once)
  hospay app list [--json]                     list apps
  hospay migrate                               apply database migrations
  hospay help

Without DATABASE_URL the embedded database in ./data (HOSPAY_DATA_DIR) is used.`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve':
      return serve(rest);
    case 'app':
      return appCommand(rest);
    case 'migrate':
      return migrateCommand();
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(HELP);
      return 0;
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { port: { type: 'string' } }, strict: true });
  let port: number | undefined;
  if (values.port !== undefined) {
    if (!/^[0-9]{1,5}$/.test(values.port) || Number(values.port) > 65535)
      throw new UsageError('--port must be a port number');
    port = Number(values.port);
  }
  const config = loadConfig(process.env, port === undefined ? {} : { port });
  const platform = await startPlatform({ config });
  const where = config.store.kind === 'postgres' ? 'PostgreSQL' : `embedded database in ${config.dataDir}`;
  const lines: string[] = [];
  if (platform.demo) {
    lines.push(
      '',
      '  首次启动：已创建演示应用 / first start: a demo app was created',
      `  app_id:      ${platform.demo.appId}`,
      `  AccessToken: ${platform.demo.accessToken}`,
      '  (只显示这一次 / shown only this once)',
      `  Landing page with a first call: ${config.publicBaseUrl}/`,
      '',
    );
  }
  lines.push(`hospay is serving on ${platform.url} (${where}); public base URL ${config.publicBaseUrl}`);
  // Straight to the terminal, never to the log: the demo token is shown once, here.
  process.stdout.write(`${lines.join('\n')}\n`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping`);
    await platform.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  return new Promise<number>(() => {
    /* runs until a signal */
  });
}

interface AppView {
  app_id: string;
  name: string;
  hospital_id: string | null;
  access_token?: string;
  status?: string;
}

/** With the embedded database held by a running server, app commands go through its admin API. */
async function viaServer(config: Config): Promise<{ base: string; token: string } | null> {
  if (config.store.kind !== 'embedded') return null;
  const holder = readLock(config.dataDir);
  if (!holder) return null;
  const token = process.env['HOSPAY_ADMIN_TOKEN'] || readAdminToken(config.dataDir);
  if (!holder.port || !token) throw new DataDirBusyError(config.dataDir, holder);
  const host = !holder.host || holder.host === '0.0.0.0' || holder.host === '::' ? '127.0.0.1' : holder.host;
  return { base: `http://${host.includes(':') ? `[${host}]` : host}:${holder.port}`, token };
}

async function appCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const config = loadConfig();
  if (sub === 'create') {
    const { values } = parseArgs({
      args: rest,
      options: { name: { type: 'string' }, 'hospital-id': { type: 'string' }, json: { type: 'boolean' } },
      strict: true,
    });
    const name = values.name?.trim();
    if (!name) throw new UsageError('--name is required');
    if (name.length > 64) throw new UsageError('--name is at most 64 characters');
    const hospitalId = values['hospital-id'] ?? null;
    let created: AppView;
    const remote = await viaServer(config);
    if (remote) {
      const res = await fetch(`${remote.base}/admin/apps`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${remote.token}` },
        body: JSON.stringify({ name, hospital_id: hospitalId }),
      });
      if (res.status !== 201)
        throw new Error(`the running server refused: HTTP ${res.status} ${await res.text()}`);
      created = (await res.json()) as AppView;
    } else {
      const store = await openStore(config.store);
      try {
        await migrate(store.db);
        const c = await new AppRepository(store.db, systemClock).create({ name, hospitalId });
        created = { app_id: c.appId, name: c.name, hospital_id: c.hospitalId, access_token: c.accessToken };
      } finally {
        await store.close();
      }
    }
    if (values.json) console.log(JSON.stringify(created));
    else {
      console.log(`应用已创建 / app created: ${created.name}`);
      console.log(`  app_id:      ${created.app_id}`);
      if (created.hospital_id) console.log(`  hospital_id: ${created.hospital_id}`);
      console.log(`  AccessToken: ${created.access_token}`);
      console.log('  请妥善保存，AccessToken 只显示这一次 / keep it safe: it is shown only once');
    }
    return 0;
  }
  if (sub === 'list') {
    const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean' } }, strict: true });
    let apps: AppView[];
    const remote = await viaServer(config);
    if (remote) {
      const res = await fetch(`${remote.base}/admin/apps`, {
        headers: { authorization: `Bearer ${remote.token}` },
      });
      if (res.status !== 200) throw new Error(`the running server refused: HTTP ${res.status}`);
      apps = (await res.json()) as AppView[];
    } else {
      const store = await openStore(config.store);
      try {
        await migrate(store.db);
        apps = (await new AppRepository(store.db, systemClock).list()).map((a) => ({
          app_id: a.id,
          name: a.name,
          hospital_id: a.hospital_id,
          status: a.status,
        }));
      } finally {
        await store.close();
      }
    }
    if (values.json) console.log(JSON.stringify(apps));
    else
      for (const a of apps) console.log(`${a.app_id}  ${a.status ?? ''}  ${a.hospital_id ?? '-'}  ${a.name}`);
    return 0;
  }
  throw new UsageError(`unknown app command "${sub ?? ''}" (create, list)`);
}

async function migrateCommand(): Promise<number> {
  const config = loadConfig();
  if (config.store.kind === 'embedded') {
    const holder = readLock(config.dataDir);
    if (holder) throw new DataDirBusyError(config.dataDir, holder);
  }
  const store = await openStore(config.store);
  try {
    const applied = await migrate(store.db);
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'already up to date');
  } finally {
    await store.close();
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exit(code);
  },
  (err: unknown) => {
    if (
      err instanceof UsageError ||
      (err instanceof Error &&
        err.name === 'TypeError' &&
        'code' in err &&
        String((err as { code: unknown }).code).startsWith('ERR_PARSE_ARGS'))
    ) {
      console.error(`hospay: ${err.message}\n\n${HELP}`);
      process.exit(2);
    }
    if (err instanceof ConfigError || err instanceof DataDirBusyError) {
      console.error(`hospay: ${err.message}`);
      process.exit(1);
    }
    console.error(`hospay: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
