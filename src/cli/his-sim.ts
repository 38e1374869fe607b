import { parseArgs } from 'node:util';
import type { Config } from '../config/config.js';
import { migrate, openStore } from '../store/db.js';
import { DataDirBusyError, readLock } from '../runtime/local-files.js';
import { startHisSimulator, type HisSimulator } from '../reconcile/his/his-sim.js';
import { parseYuanToFen } from '../domain/money.js';
import { formatShanghai } from '../domain/clock.js';
import { parseShanghai } from '../reconcile/his/his-xml.js';

export const HIS_SIM_USAGE = `  hospay his-sim [--port N] [--host H] [--from-db [--app ID]] [--access-token T] [faults]
                                               a HIS simulator (spec chapter 7) for trying reconciliation;
                                               --from-db records the platform's trades as a HIS would
      faults (repeatable; ORDER = OutTradeNo of a recorded payment):
        --drop ORDER          the HIS lost the record (长款 when the money was taken)
        --amount ORDER=12.34  the HIS records another amount
        --status ORDER=3      the trade list shows another OutTradeStatus
        --duplicate ORDER     the trade list shows the record twice
        --extra 12.34[@yyyy-MM-dd HH:mm:ss[@alipay]]
                              a HIS record with no payment behind it (短款)
        --delay-ms N          every answer waits N ms
        --broken malformed|http500|doctype|refused
                              every answer is broken that way`;

export class HisSimUsageError extends Error {}

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
  if (broken !== null && !['malformed', 'http500', 'doctype', 'refused'].includes(broken))
    throw new HisSimUsageError('--broken must be malformed, http500, doctype or refused');

  const { url, sim, close } = await startHisSimulator(port, values.host ?? '127.0.0.1', {
    ...(values['access-token'] !== undefined ? { accessToken: values['access-token'] } : {}),
  });
  try {
    if (values['from-db']) {
      const config = loadConfig();
      if (config.store.kind === 'embedded') {
        const holder = readLock(config.dataDir);
        if (holder) throw new DataDirBusyError(config.dataDir, holder);
      }
      const store = await openStore(config.store);
      try {
        await migrate(store.db);
        let tq = store.db.selectFrom('trades').selectAll().where('kind', '!=', 'void');
        let rq = store.db.selectFrom('refunds').selectAll();
        if (values.app) {
          tq = tq.where('app_id', '=', values.app);
          rq = rq.where('app_id', '=', values.app);
        }
        const flows = sim.loadFromTrades(await tq.execute(), await rq.execute());
        console.log(
          `已载入 ${flows.length} 条 HIS 记录 / loaded ${flows.length} HIS records from the platform's trades`,
        );
      } finally {
        await store.close();
      }
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
      if (payType && !['alipay', 'weixin', 'unionpay'].includes(payType))
        throw new HisSimUsageError(`--extra: unknown pay type "${payType}"`);
      const f = sim.addExtra({
        amountFen: fen,
        time,
        ...(payType ? { payType: payType as 'alipay' | 'weixin' | 'unionpay' } : {}),
      });
      console.log(
        `无支付的 HIS 记录 / phantom HIS record: ${f.outTradeNo} ${yuan} at ${formatShanghai(time)}`,
      );
    }
    sim.faults.delayMs = delayMs;
    sim.faults.broken = broken as typeof sim.faults.broken;
  } catch (e) {
    await close();
    throw e;
  }
  console.log(`HIS 模拟器 / HIS simulator on ${url} (IF_Get_Hospital_Trade_List, HIS_IF_Query)`);
  const stop = () => void close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return new Promise<number>(() => {
    /* runs until a signal */
  });
}
