import { parseArgs } from 'node:util';
import type { Config } from '../config/config.js';
import { migrate, openStore, type Store } from '../store/db.js';
import { ReconciliationRepository } from '../store/reconciliation.js';
import { acquireLock, readLock } from '../runtime/local-files.js';
import {
  HIS_SIM_BROKEN,
  startHisSimulator,
  type HisSimulator,
  type HisSimFaults,
} from '../reconcile/his/his-sim.js';
import { readHisSimRows, reviveHisSimRows, type HisSimRows } from '../reconcile/his/his-sim-source.js';
import { DEFAULT_SOAP_NAMESPACE } from '../reconcile/his/soap.js';
import { DEFAULT_RECON_SETTINGS, mergeReconSettings, ReconSettingsError } from '../reconcile/settings.js';
import { parseYuanToFen } from '../domain/money.js';
import { formatShanghai } from '../domain/clock.js';
import { parseShanghai, understandPayType } from '../reconcile/his/his-xml.js';
import { adminFetch, runningServer } from './running-server.js';
import { UsageError } from '../domain/errors.js';

export const HIS_SIM_USAGE = `  hospay his-sim [--port N] [--host H] [--from-db [--app ID]] [--access-token T]
                 [--soap [--soap-namespace URI]] [--encoding utf-8|gbk] [faults]
                                               a HIS simulator (spec chapter 7) for trying reconciliation;
                                               --from-db records the platform's trades as a HIS would, re-read
                                               at each request (through the running server's admin API when
                                               it holds the embedded database); --soap also serves the two
                                               interfaces as SOAP 1.1/1.2 operations at /HisService.asmx
                                               (WSDL at ?wsdl); --encoding gbk answers in GBK
      faults (repeatable; ORDER = OutTradeNo of a recorded payment):
        --drop ORDER          the HIS lost the record (长款 when the money was taken)
        --amount ORDER=12.34  the HIS records another amount
        --status ORDER=3      the trade list shows another OutTradeStatus
        --duplicate ORDER     the trade list shows the record twice
        --extra 12.34[@yyyy-MM-dd HH:mm:ss[@alipay]]
                              a HIS record with no payment behind it (短款)
        --delay-ms N          every answer waits N ms
        --broken malformed|http500|doctype|refused|fault
                              every answer is broken that way (fault: a SOAP Fault)`;

export class HisSimUsageError extends UsageError {}

function orderFlow(sim: HisSimulator, order: string, flag: string): string {
  const flow = sim.paymentOf(order);
  if (!flow)
    throw new HisSimUsageError(`${flag}: 模拟 HIS 中没有订单 ${order} / no recorded payment ${order}`);
  return flow.hisFlowId;
}

function pair(text: string, flag: string): [string, string] {
  const i = text.lastIndexOf('=');
  if (i <= 0) throw new HisSimUsageError(`${flag} takes ORDER=VALUE, got "${text}"`);
  return [text.slice(0, i), text.slice(i + 1)];
}

/**
 * Where `--from-db` reads the platform's trades, at each request: PostgreSQL directly (one connection pool for
 * the simulator's life); an embedded database through the server that holds it (admin API), or, while no
 * server runs, directly, again only after a server has held it (nothing else adds trades).
 */
function platformRows(
  config: Config,
  appId: string | undefined,
): {
  read: () => Promise<HisSimRows>;
  close: () => Promise<void>;
} {
  if (config.store.kind === 'postgres') {
    let store: Promise<Store> | null = null;
    const open = () =>
      (store ??= openStore(config.store).then(async (s) => {
        await migrate(s.db);
        return s;
      }));
    return {
      read: async () =>
        readHisSimRows({ reconciliation: new ReconciliationRepository((await open()).db) }, appId),
      close: async () => {
        if (store) await (await store).close();
      },
    };
  }
  const dataDir = config.dataDir;
  let cached: HisSimRows | null = null;
  const direct = async (): Promise<HisSimRows> => {
    const release = acquireLock(dataDir); // a server starting meanwhile waits for us, not the other way
    try {
      const store = await openStore(config.store);
      try {
        await migrate(store.db);
        return await readHisSimRows({ reconciliation: new ReconciliationRepository(store.db) }, appId);
      } finally {
        await store.close();
      }
    } finally {
      release();
    }
  };
  return {
    read: async () => {
      if (readLock(dataDir)) {
        const server = runningServer(config);
        if (!server) throw new Error('the embedded database is held by another process');
        const r = await adminFetch(
          server,
          'GET',
          `/admin/reconciliation/movements${appId ? `?app_id=${encodeURIComponent(appId)}` : ''}`,
        );
        if (r.status === 404) throw new HisSimUsageError(`--app: 没有这个应用 / no such app: ${appId ?? ''}`);
        if (r.status !== 200) throw new Error(`the running server answered HTTP ${r.status}`);
        cached = null; // the server may add trades: read directly again once it has stopped
        return reviveHisSimRows(r.data);
      }
      cached ??= await direct();
      return cached;
    },
    close: async () => {},
  };
}

/** `hospay his-sim`: runs until SIGINT / SIGTERM. */
export async function hisSimCommand(args: string[], loadConfig: () => Config): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'from-db': { type: 'boolean' },
      app: { type: 'string' },
      'access-token': { type: 'string' },
      soap: { type: 'boolean' },
      'soap-namespace': { type: 'string' },
      encoding: { type: 'string' },
      drop: { type: 'string', multiple: true },
      amount: { type: 'string', multiple: true },
      status: { type: 'string', multiple: true },
      duplicate: { type: 'string', multiple: true },
      extra: { type: 'string', multiple: true },
      'delay-ms': { type: 'string' },
      broken: { type: 'string' },
    },
    strict: true,
  });
  const port = values.port === undefined ? 9090 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new HisSimUsageError('--port must be a port number');
  const delayMs = values['delay-ms'] === undefined ? 0 : Number(values['delay-ms']);
  if (!Number.isInteger(delayMs) || delayMs < 0 || delayMs > 600_000)
    throw new HisSimUsageError('--delay-ms must be 0–600000');
  const broken = values.broken ?? null;
  if (broken !== null && !(HIS_SIM_BROKEN as readonly string[]).includes(broken))
    throw new HisSimUsageError(`--broken must be ${HIS_SIM_BROKEN.join(', ')}`);
  const encoding = (values.encoding ?? 'utf-8').toLowerCase();
  if (encoding !== 'utf-8' && encoding !== 'gbk')
    throw new HisSimUsageError('--encoding must be utf-8 or gbk');
  if (values['soap-namespace'] !== undefined && !values.soap)
    throw new HisSimUsageError('--soap-namespace goes with --soap');
  let namespace = DEFAULT_SOAP_NAMESPACE;
  if (values['soap-namespace'] !== undefined) {
    try {
      namespace = mergeReconSettings(DEFAULT_RECON_SETTINGS, {
        hisSoapNamespace: values['soap-namespace'],
      }).hisSoapNamespace;
    } catch (e) {
      throw new HisSimUsageError(`--soap-namespace: ${e instanceof ReconSettingsError ? e.en : String(e)}`);
    }
  }
  if (values.app !== undefined && !values['from-db']) throw new HisSimUsageError('--app goes with --from-db');

  const source = values['from-db'] ? platformRows(loadConfig(), values.app) : null;
  let sim: HisSimulator | null = null;
  let lastProblem = '';
  const refresh = async () => {
    if (!source || !sim) return;
    try {
      const rows = await source.read();
      sim.syncFromTrades(rows.trades, rows.refunds);
      lastProblem = '';
    } catch (e) {
      // Keep answering from the records last read; say so once per kind of failure.
      const problem = e instanceof Error ? e.message : String(e);
      if (problem !== lastProblem)
        console.error(
          `无法重新读取平台交易，沿用上次的记录 / cannot re-read the platform's trades: ${problem}`,
        );
      lastProblem = problem;
    }
  };
  const started = await startHisSimulator(port, values.host ?? '127.0.0.1', {
    ...(values['access-token'] !== undefined ? { accessToken: values['access-token'] } : {}),
    ...(values.soap ? { soap: { namespace } } : {}),
    encoding,
    ...(source ? { refresh } : {}),
  });
  const { url, close: closeServer } = started;
  sim = started.sim;
  const close = async () => {
    await closeServer();
    await source?.close();
  };
  try {
    if (source) {
      // The first read must work (a wrong database or app is a usage error, not a silent empty HIS).
      const rows = await source.read();
      const count = sim.syncFromTrades(rows.trades, rows.refunds);
      console.log(
        `已载入 ${count} 条 HIS 记录 / loaded ${count} HIS records from the platform's trades ` +
          '(每次请求时重新读取 / re-read at each request)',
      );
    }
    for (const order of values.drop ?? []) sim.faults.drop.add(orderFlow(sim, order, '--drop'));
    for (const order of values.duplicate ?? [])
      sim.faults.duplicate.add(orderFlow(sim, order, '--duplicate'));
    for (const text of values.amount ?? []) {
      const [order, yuan] = pair(text, '--amount');
      const fen = parseYuanToFen(yuan);
      if (fen === null || fen <= 0)
        throw new HisSimUsageError(`--amount: "${yuan}" is not an amount in yuan`);
      sim.faults.amountFen.set(orderFlow(sim, order, '--amount'), fen);
    }
    for (const text of values.status ?? []) {
      const [order, status] = pair(text, '--status');
      sim.faults.status.set(orderFlow(sim, order, '--status'), status);
    }
    for (const text of values.extra ?? []) {
      const [yuan = '', at, payType] = text.split('@');
      const fen = parseYuanToFen(yuan);
      if (fen === null || fen <= 0) throw new HisSimUsageError(`--extra: "${yuan}" is not an amount in yuan`);
      const time = at ? parseShanghai(at) : new Date();
      if (!time) throw new HisSimUsageError(`--extra: "${at ?? ''}" is not yyyy-MM-dd HH:mm:ss`);
      const hisPayType = payType ? understandPayType(payType) : null;
      if (payType && !hisPayType) throw new HisSimUsageError(`--extra: unknown pay type "${payType}"`);
      const f = sim.addExtra({
        amountFen: fen,
        time,
        ...(hisPayType ? { payType: hisPayType } : {}),
      });
      console.log(
        `无支付的 HIS 记录 / phantom HIS record: ${f.outTradeNo} ${yuan} at ${formatShanghai(time)}`,
      );
    }
    sim.faults.delayMs = delayMs;
    sim.faults.broken = broken as HisSimFaults['broken'];
  } catch (e) {
    await close();
    throw e;
  }
  console.log(`HIS 模拟器 / HIS simulator on ${url} (IF_Get_Hospital_Trade_List, HIS_IF_Query)`);
  if (sim.soap) {
    const endpoint = `${url}${sim.soap.path}`;
    console.log(
      `SOAP 1.1 / 1.2 服务 / service: ${endpoint} (WSDL ${endpoint}?wsdl, namespace ${sim.soap.namespace})\n` +
        `  配置 / configure: hospay app his --app APP_ID --url ${endpoint} --protocol soap11` +
        (sim.soap.namespace === DEFAULT_SOAP_NAMESPACE ? '' : ` --soap-namespace ${sim.soap.namespace}`),
    );
  }
  const stop = () => void close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return new Promise<number>(() => {
    /* runs until a signal */
  });
}
