import type { FastifyInstance } from 'fastify';
import type { ReconcileDeps } from '../../reconcile/deps.js';
import { buildDayReport, isReportDate, ReportAppNotFoundError } from '../../reconcile/report.js';
import { reportToCsv, reportToXlsx } from '../../reconcile/export.js';
import { oneAppOf } from './access.js';

const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

/** `attachment` with an ASCII filename and the full one as RFC 5987 filename* (UTF-8, percent-encoded). */
export function contentDisposition(asciiName: string, fullName: string): string {
  const ascii = asciiName.replace(/[^A-Za-z0-9._-]/g, '_');
  const star = encodeURIComponent(fullName).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${ascii}"; filename*=UTF-8''${star}`;
}

/**
 * The finance day report, registered inside the admin scope (Bearer token, recon.read):
 *   GET /admin/reports/day?date=yyyy-MM-dd&app=APP_ID&format=json|csv|xlsx
 * Without app: all apps together (a caller of some hospitals only: their one hospital, else app is required). json (default) is the DayReport; csv and xlsx are downloads.
 */
export function registerReportAdminRoutes(scope: FastifyInstance, deps: ReconcileDeps): void {
  scope.get('/admin/reports/day', async (req, reply) => {
    const query = (req.query ?? {}) as Record<string, unknown>;
    const date = query['date'];
    if (typeof date !== 'string' || !isReportDate(date)) {
      return reply.code(400).send({
        code: 'INVALID_FIELD.date',
        message: 'date 须为 yyyy-MM-dd 格式的日期 / date must be a date written yyyy-MM-dd',
      });
    }
    const format = query['format'] ?? 'json';
    if (format !== 'json' && format !== 'csv' && format !== 'xlsx') {
      return reply.code(400).send({
        code: 'INVALID_FIELD.format',
        message: 'format 须为 json、csv 或 xlsx / format must be json, csv or xlsx',
      });
    }
    const app = query['app'];
    if (app !== undefined && (typeof app !== 'string' || app === '' || app.length > 64)) {
      return reply.code(400).send({
        code: 'INVALID_FIELD.app',
        message: 'app 须为一个应用编号 / app must be one app id',
      });
    }
    const one = oneAppOf(req, reply, app, 'app');
    if (one.answered) return reply;
    let report;
    try {
      report = await buildDayReport(deps, {
        date,
        ...(one.appId !== undefined ? { appId: one.appId } : {}),
        now: deps.clock.now(),
      });
    } catch (e) {
      if (e instanceof ReportAppNotFoundError)
        return reply.code(404).send({ code: 'APP_NOT_FOUND', message: '没有这个应用 / no such app' });
      throw e;
    }
    reply.header('cache-control', 'no-store');
    if (format === 'json') return report;
    const ascii = `hospay-report-${date}${report.app ? `-${report.app.id}` : ''}.${format}`;
    const full = `hospay-report-${date}${report.app ? `-${report.app.name.replace(/[\\/:*?"<>|\p{Cc}]/gu, '_')}` : ''}.${format}`;
    reply.header('content-disposition', contentDisposition(ascii, full));
    if (format === 'csv') {
      return reply
        .header('content-type', 'text/csv; charset=utf-8')
        .send(Buffer.from(reportToCsv(report), 'utf8'));
    }
    return reply.header('content-type', XLSX_TYPE).send(await reportToXlsx(report));
  });
}
