#!/usr/bin/env node
import cluster from 'node:cluster';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { isPrivateKeyText, newRsaKeyPair, publicKeyBase64, readPublicKey } from '../crypto/signing.js';
import { loadConfig, type Config } from '../config/config.js';
import { UsageError } from '../domain/errors.js';
import { startPlatform } from '../main.js';
import { migrate, openStore } from '../store/db.js';
import { validateCategories, type Category } from '../domain/categories.js';
import { DataDirBusyError, masterKeyLoader, readLock } from '../runtime/local-files.js';
import { SecretBox } from '../crypto/secret-box.js';
import { PlatformKeyRepository } from '../store/keys.js';
import { systemClock } from '../domain/clock.js';
import { AppNotFoundError, appAdmin } from './app-admin.js';
import { CHANNEL_USAGE, channelCommand } from './channel.js';
import { HIS_SIM_USAGE, hisSimCommand } from './his-sim.js';
import { RECONCILE_USAGE, appHisCommand, reconcileCommand } from './reconcile.js';
import { differencesCommand } from './differences.js';
import { NOTIFY_USAGE, notifyCommand } from './notify.js';
import { REPORT_USAGE, reportCommand } from './report.js';
import { OPERATOR_USAGE, operatorCommand } from './operator.js';
import { BACKUP_USAGE, backupCommand, restoreCommand } from './backup.js';
import { publicAddressLines } from './serve-banner.js';
import { COMMANDS, helpPointer } from './usage.js';
import { resolveWorkers, servePrimary, serveWorker } from './cluster.js';
import { normaliseRegisteredRedirect } from '../services/medicare.js';
import { parseAllowList } from '../services/notify-target.js';

const HELP = `hospay — 医院支付平台 / hospital payment platform

Usage:
  hospay serve [--port N] [--workers N]        start the platform (PORT, HOST, DATABASE_URL, HOSPAY_DATA_DIR ...);
                                               --workers (HOSPAY_WORKERS): processes behind the port, PostgreSQL
                                               only (default: one per core; embedded: 1); SIGHUP restarts them
  hospay app create --name NAME [--hospital-id ID] [--json]
                                               create a hospital app and print its AccessToken (shown once)
  hospay app list [--json]                     list apps
  hospay app disable --app ID | app enable --app ID
                                               refuse / accept an app's AccessToken
  hospay app categories --app ID [--set "MZ=门诊,ZY=住院" | --reset] [--json]
                                               show or set the order-number categories (spec 4.1)
  hospay app key --app ID --public-key FILE [--legacy-sign]
                                               register an app's RSA public key for the gateway (- = stdin);
                                               --legacy-sign also allows sign_type RSA (SHA-1) and keys under
                                               2048 bits (the spec's legacy samples), off by default
  hospay app create ... --generate-key         also make the app a gateway key pair; prints the private key once
  hospay app redirect-uris --app ID --set "https://his.example/cb,..."
                                               allowed redirect URIs for medical-insurance authorisation (same
                                               scheme, host and port; the path at or below, on a / boundary)
  hospay app notify-allowlist --app ID [--set "10.8.0.0/16,fd12::/48" | --reset] [--json]
                                               show or set the private address ranges the app's notify_url may
                                               reach (its HIS on the intranet); loopback and metadata: never
  hospay keys platform [--base64]              the platform's public key, to verify answers and notifications
  hospay keys rotate                           make a new platform key pair
${NOTIFY_USAGE.replace(/^Usage:\n/, '')}
${CHANNEL_USAGE}
${HIS_SIM_USAGE}
${RECONCILE_USAGE}
${REPORT_USAGE}
  hospay operator create --username U --name 显示名 [--role R] [--apps A,B | --all-apps] [--password-stdin]
                                               an operator for /finance and /desk (password shown once)
  hospay operator list [--json] | operator passwd --username U [--password-stdin]
  hospay operator disable --username U | operator enable --username U
  hospay operator role --username U --role R | operator apps|grant|revoke --username U --apps A,B
  hospay operator token create|list|revoke --username U [--label L] [--days N] [--id ID]
                                               personal API tokens (shown once) instead of the admin token
${BACKUP_USAGE}
  hospay migrate                               apply database migrations
  hospay help

Without DATABASE_URL the embedded database in ./data (HOSPAY_DATA_DIR) is used.`;

/** The help of one command (its own usage where it has one), or of all. */
function helpFor(cmd: string | undefined): string {
  switch (cmd) {
    case 'notify':
      return NOTIFY_USAGE;
    case 'operator':
      return OPERATOR_USAGE;
    case 'channel':
      return `Usage:\n${CHANNEL_USAGE}`;
    case 'his-sim':
      return `Usage:\n${HIS_SIM_USAGE}`;
    case 'reconcile':
      return `Usage:\n${RECONCILE_USAGE}`;
    case 'report':
      return `Usage:\n${REPORT_USAGE}`;
    case 'backup':
    case 'restore':
      return `Usage:\n${BACKUP_USAGE}`;
    default:
      return HELP;
  }
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (COMMANDS.includes(cmd ?? '') && (rest.includes('--help') || rest.includes('-h'))) {
    console.log(helpFor(cmd));
    return 0;
  }
  switch (cmd) {
    case 'serve':
      return serve(rest);
    case 'app':
      return appCommand(rest);
    case 'migrate':
      return migrateCommand();
    case 'keys':
      return keysCommand(rest);
    case 'notify':
      return notifyCommand(rest, loadConfig());
    case 'channel':
      return channelCommand(rest, loadConfig());
    case 'his-sim':
      return hisSimCommand(rest, () => loadConfig());
    case 'reconcile':
      return rest[0] === 'differences' || rest[0] === 'resolve'
        ? differencesCommand(rest, loadConfig())
        : reconcileCommand(rest, loadConfig());
    case 'report':
      return reportCommand(rest, loadConfig());
    case 'operator':
      return operatorCommand(rest, loadConfig());
    case 'backup':
      return backupCommand(rest, loadConfig());
    case 'restore':
      return restoreCommand(rest, loadConfig());
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
  const { values } = parseArgs({
    args,
    options: { port: { type: 'string' }, workers: { type: 'string' } },
    strict: true,
  });
  let port: number | undefined;
  if (values.port !== undefined) {
    if (!/^[0-9]{1,5}$/.test(values.port) || Number(values.port) > 65535)
      throw new UsageError('--port must be a port number');
    port = Number(values.port);
  }
  const config = loadConfig(process.env, port === undefined ? {} : { port });
  // `serve --workers N` (src/cli/cluster.ts): a worker serves; the primary of N > 1 starts them. One worker:
  // the single process below, as it has always been.
  if (cluster.isWorker) return serveWorker(config);
  const workers = resolveWorkers(values.workers, config);
  if (workers > 1) return servePrimary(config, workers, process.env);
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
  lines.push(
    `hospay is serving on ${platform.url} (${where}); ` +
      (config.simulator.enabled ? 'simulator on' : 'simulator off (HOSPAY_SIMULATOR=off)'),
    ...publicAddressLines({
      publicBaseUrl: config.publicBaseUrl,
      host: config.host,
      port: config.port,
      fromEnv: Boolean(process.env['PUBLIC_BASE_URL']),
    }),
  );
  if (platform.adminServer)
    lines.push(`admin API and finance pages (only) on ${platform.adminUrl} (HOSPAY_ADMIN_LISTEN)`);
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

async function appCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const config = loadConfig();
  if (sub === 'his') return appHisCommand(rest, config);
  const { values } = parseArgs({
    args: rest,
    options: {
      name: { type: 'string' },
      'hospital-id': { type: 'string' },
      app: { type: 'string' },
      set: { type: 'string' },
      reset: { type: 'boolean' },
      json: { type: 'boolean' },
      'generate-key': { type: 'boolean' },
      'public-key': { type: 'string' },
      'legacy-sign': { type: 'boolean' },
    },
    strict: true,
  });
  const subs = [
    'create',
    'list',
    'disable',
    'enable',
    'categories',
    'key',
    'redirect-uris',
    'notify-allowlist',
  ];
  if (!subs.includes(sub ?? '')) {
    throw new UsageError(
      `unknown app command "${sub ?? ''}" (create, list, disable, enable, categories, key, redirect-uris, notify-allowlist, his)`,
    );
  }
  // Validate before touching the database.
  let name = '';
  let categories: Category[] | null | undefined;
  if (sub === 'create') {
    name = values.name?.trim() ?? '';
    if (!name) throw new UsageError('--name is required');
    if (name.length > 64) throw new UsageError('--name is at most 64 characters');
  }
  if (
    sub === 'disable' ||
    sub === 'enable' ||
    sub === 'categories' ||
    sub === 'key' ||
    sub === 'redirect-uris' ||
    sub === 'notify-allowlist'
  ) {
    if (!values.app) throw new UsageError('--app APP_ID is required');
  }
  let allowlist: string[] | undefined;
  if (sub === 'notify-allowlist') {
    if (values.set !== undefined && values.reset) throw new UsageError('use either --set or --reset');
    if (values.reset) allowlist = [];
    else if (values.set !== undefined) {
      const parsed = parseAllowList(
        values.set
          .split(',')
          .map((c) => c.trim())
          .filter(Boolean),
      );
      if ('why' in parsed) throw new UsageError(`--set: ${parsed.why} / ${parsed.zh}`);
      allowlist = parsed.cidrs;
    }
  }
  let publicPem: string | null = null;
  if (sub === 'key') {
    if (!values['public-key'])
      throw new UsageError('--public-key FILE is required (PEM or Base64; - reads standard input)');
    const text =
      values['public-key'] === '-'
        ? fs.readFileSync(0, 'utf8')
        : fs.readFileSync(values['public-key'], 'utf8');
    if (isPrivateKeyText(text))
      throw new UsageError(
        '--public-key: this is a PRIVATE key; give the public key only, and keep the private key to yourselves (replace the pair if it has been exposed)',
      );
    const key = readPublicKey(text);
    if (!key)
      throw new UsageError('--public-key: not an RSA public key of 1024 bits or more (PEM or Base64 DER)');
    if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048 && !values['legacy-sign'])
      throw new UsageError(
        '--public-key: the key is shorter than 2048 bits; register a 2048-bit key, or add --legacy-sign for a legacy HIS that cannot (密钥短于 2048 位)',
      );
    publicPem = key.export({ type: 'spki', format: 'pem' }).toString();
  }
  let redirectUris: string[] = [];
  if (sub === 'redirect-uris') {
    const given = (values.set ?? '')
      .split(',')
      .map((u) => u.trim())
      .filter(Boolean);
    redirectUris = given.map((u) => normaliseRegisteredRedirect(u) ?? '');
    const bad = given.find((u) => normaliseRegisteredRedirect(u) === null);
    if (bad !== undefined)
      throw new UsageError(
        `--set takes comma-separated absolute http(s) URLs without userinfo, query or fragment; not: ${bad}`,
      );
  }
  if (sub === 'categories') {
    if (values.set !== undefined && values.reset) throw new UsageError('use either --set or --reset');
    if (values.reset) categories = null;
    else if (values.set !== undefined) {
      const parsed = validateCategories(
        values.set.split(',').map((pair) => {
          const [prefix, ...rest] = pair.split('=');
          return { prefix: prefix?.trim(), name: rest.join('=').trim() };
        }),
      );
      if (!parsed)
        throw new UsageError(
          '--set takes PREFIX=名称 pairs, e.g. "MZ=门诊,ZY=住院" (unique alphanumeric prefixes)',
        );
      categories = parsed;
    }
  }

  const { admin, close } = await appAdmin(config);
  try {
    switch (sub) {
      case 'create': {
        const created = await admin.create(name, values['hospital-id'] ?? null);
        if (values['generate-key']) {
          const pair = newRsaKeyPair(2048);
          await admin.setPublicKey(created.app_id, pair.publicPem);
          created.private_key = pair.privatePem;
          created.public_key = pair.publicPem;
        }
        if (values.json) console.log(JSON.stringify(created));
        else {
          console.log(`应用已创建 / app created: ${created.name}`);
          console.log(`  app_id:      ${created.app_id}`);
          if (created.hospital_id) console.log(`  hospital_id: ${created.hospital_id}`);
          console.log(`  AccessToken: ${created.access_token}`);
          console.log('  请妥善保存，AccessToken 只显示这一次 / keep it safe: it is shown only once');
          for (const line of whatTheAppCanDo(created.app_id, Boolean(created.private_key), config))
            console.log(line);
          if (created.private_key) {
            console.log(
              '  网关签名私钥（只显示这一次，平台不保存） / gateway private key (shown once; hospay keeps no copy):',
            );
            console.log(created.private_key.trim());
          }
        }
        return 0;
      }
      case 'key': {
        const appId = values.app ?? '';
        const legacy = values['legacy-sign'] === true;
        if (!(await admin.setPublicKey(appId, publicPem ?? '', legacy))) throw new AppNotFoundError(appId);
        console.log(`${appId}: 公钥已登记 / public key registered`);
        console.log(
          legacy
            ? '  旧式签名已开启：接受 sign_type RSA（SHA1）与短于 2048 位的密钥 / legacy signing on: sign_type RSA (SHA-1) and keys under 2048 bits accepted'
            : '  仅接受 sign_type RSA2 / sign_type RSA2 only (add --legacy-sign for a legacy HIS that signs RSA)',
        );
        return 0;
      }
      case 'redirect-uris': {
        const appId = values.app ?? '';
        if (!(await admin.setRedirectUris(appId, redirectUris))) throw new AppNotFoundError(appId);
        console.log(`${appId}: ${redirectUris.join(', ') || '(none)'}`);
        return 0;
      }
      case 'notify-allowlist': {
        const appId = values.app ?? '';
        const now = await admin.notifyAllowlist(appId, allowlist);
        if (!now) throw new AppNotFoundError(appId);
        if (values.json) console.log(JSON.stringify(now));
        else console.log(`${appId}: ${now.join(', ') || '(none 无)'}`);
        return 0;
      }
      case 'list': {
        const apps = await admin.list();
        if (values.json) console.log(JSON.stringify(apps));
        else
          for (const a of apps) {
            const allowed = a.notify_private_cidrs?.length
              ? `  notify-allowlist: ${a.notify_private_cidrs.join(',')}`
              : '';
            console.log(`${a.app_id}  ${a.status ?? ''}  ${a.hospital_id ?? '-'}  ${a.name}${allowed}`);
          }
        return 0;
      }
      case 'disable':
      case 'enable': {
        const appId = values.app ?? '';
        if (!(await admin.setStatus(appId, sub === 'disable' ? 'disabled' : 'active')))
          throw new AppNotFoundError(appId);
        console.log(`${appId}: ${sub === 'disable' ? 'disabled 已停用' : 'active 已启用'}`);
        return 0;
      }
      default: {
        const appId = values.app ?? '';
        const now = await admin.setCategories(appId, categories);
        if (!now) throw new AppNotFoundError(appId);
        if (values.json) console.log(JSON.stringify(now));
        else for (const c of now) console.log(`${c.prefix}\t${c.name}`);
        return 0;
      }
    }
  } finally {
    await close();
  }
}

/**
 * What a new app can do at once and what it still needs: the offline door works with its AccessToken; the
 * gateway refuses it (isv.missing-app-public-key) until a public key is registered; it takes simulated payments
 * until a real channel is configured (none at all with the simulator off).
 */
function whatTheAppCanDo(appId: string, hasKey: boolean, config: Config): string[] {
  const lines = [
    '  线下 XML 接口 (FWC_IF_*)：可用上面的 AccessToken 调用 / offline XML door (FWC_IF_*): ready, with the AccessToken above',
  ];
  if (hasKey) {
    lines.push(
      '  网关 (lc.*)：公钥已登记，用下面的私钥签名 / gateway (lc.*): public key registered; sign with the private key below',
    );
  } else {
    lines.push(
      '  网关 (lc.*)：尚未登记公钥，请求会被拒绝 (isv.missing-app-public-key) / gateway (lc.*): no public key yet, its requests are refused (isv.missing-app-public-key)',
      `    登记公钥 / to add one: hospay app key --app ${appId} --public-key app-public.pem`,
      '    (HIS 自己生成密钥对、只交公钥；或建应用时加 --generate-key / the HIS makes the pair and gives only the public key; or create the app with --generate-key)',
    );
  }
  lines.push(
    config.simulator.enabled
      ? `  支付渠道：尚未配置真实渠道，收款走内置模拟器 / channels: no real channel yet, payments go to the built-in simulator (hospay channel set --app ${appId} …)`
      : `  支付渠道：尚未配置，暂不能收款 / channels: none configured, no payment can be taken yet (hospay channel set --app ${appId} …)`,
  );
  return lines;
}

async function keysCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseArgs({ args: rest, options: { base64: { type: 'boolean' } }, strict: true });
  if (sub !== 'platform' && sub !== 'rotate')
    throw new UsageError(`unknown keys command "${sub ?? ''}" (platform, rotate)`);
  const { admin, close } = await appAdmin(loadConfig());
  try {
    const pem = sub === 'rotate' ? await admin.rotatePlatformKey() : await admin.platformKey();
    const key = readPublicKey(pem);
    if (values.base64 && key) console.log(publicKeyBase64(key));
    else console.log(pem.trim());
    if (sub === 'rotate')
      console.error(
        '新的平台公钥已启用，请发给各接入方 / the new platform key is active: give it to every integrator',
      );
    return 0;
  } finally {
    await close();
  }
}

/** A HIS simulator serving spec chapter 7, optionally fed from the platform's trades as a HIS would have them. */
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
    // A platform key stored unsealed by an older version is sealed now if the master key is at hand, else at
    // the first start (which needs HOSPAY_MASTER_KEY with PostgreSQL).
    if (config.store.kind === 'embedded' || config.masterKey) {
      const secrets = new SecretBox(
        masterKeyLoader({
          fromEnv: config.masterKey,
          embedded: config.store.kind === 'embedded',
          dataDir: config.dataDir,
        }),
      );
      const keys = new PlatformKeyRepository(store.db, systemClock, secrets, {
        kind: store.kind,
        onWarning: (problem) => console.error(problem),
      });
      const sealed = await keys.sealLegacy();
      if (sealed) console.log(`sealed ${sealed} platform key(s) with the master key`);
    }
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
    // One place chooses what an error does at the console (domain/errors.ts, OperatorError): a usage error
    // exits 2 with a pointer to the help; every other error exits 1 with its one-line message.
    if (
      err instanceof UsageError ||
      (err instanceof Error &&
        err.name === 'TypeError' &&
        'code' in err &&
        String((err as { code: unknown }).code).startsWith('ERR_PARSE_ARGS'))
    ) {
      console.error(`hospay: ${err.message}\n${helpPointer(process.argv[2])}`);
      process.exit(2);
    }
    console.error(`hospay: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
