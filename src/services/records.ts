/**
 * The records the use cases take and return, as the doors see them. They are the store's rows (store/schema.ts
 * and the repositories); the doors import them from here, never from the store.
 */
export type { App, Trade, Refund, Notification } from '../store/schema.js';
export type { NotifyRejectionRow } from '../store/channel-calls.js';
export type { FinanceSession, OperatorView } from '../store/operators.js';
export type { PendingAuthorisation } from '../store/medicare.js';
export type { AuditEntry } from '../store/audit.js';
export type { TradeSearch, TradeSearchRow, DeskStatusFilter } from '../store/desk.js';
export type { OperatorTokenView } from '../store/operator-tokens.js';
export type { DeskRequest } from '../store/desk-requests.js';
