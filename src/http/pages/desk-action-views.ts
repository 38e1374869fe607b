import type { ServiceDeps } from '../../services/deps.js';
import type { DeskViewer } from './desk-kit.js';

/**
 * The action panel of a trade's desk page (/desk/trades/:appId/:outTradeNo): the buttons and forms the viewer's
 * role allows (query the channel now, resend the notification, close an unpaid trade, request a refund or cancel)
 * and the trade's money requests waiting for approval. Rendered by desk-trades.ts; the forms post to the routes of
 * desk-actions.ts. Empty until built.
 */
export async function actionPanel(
  _deps: ServiceDeps,
  _viewer: DeskViewer,
  _appId: string,
  _outTradeNo: string,
): Promise<string> {
  return '';
}
