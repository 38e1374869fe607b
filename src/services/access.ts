import { createHash, timingSafeEqual } from 'node:crypto';
import { ADMIN_TOKEN_PRINCIPAL, type Principal } from '../domain/access.js';
import type { ServiceDeps } from './deps.js';
import { OPERATOR_TOKEN_PATTERN } from '../store/operator-tokens.js';

export {
  OperatorTokenInputError,
  OPERATOR_TOKEN_PATTERN,
  tokenLabelProblem,
  type OperatorTokenView,
} from '../store/operator-tokens.js';

/** Compares two secrets in constant time (their sha256, so lengths do not show); an empty one never matches. */
function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length > 0 && b.length > 0;
}

/**
 * Who an `Authorization` header speaks for: the platform admin token (HOSPAY_ADMIN_TOKEN) is the platform admin
 * over every hospital; an operator's personal token (`hpo_<id>_<secret>`) is that operator, with their role and
 * granted hospitals, while it is neither revoked nor expired and the operator is active. Null otherwise (no
 * header, another scheme, an unknown token).
 */
export async function authenticateBearer(
  deps: Pick<ServiceDeps, 'operatorTokens'>,
  adminToken: string,
  authorizationHeader: string | undefined,
): Promise<Principal | null> {
  const header = authorizationHeader ?? '';
  if (!header.startsWith('Bearer ')) return null;
  const token = header.slice(7).trim();
  if (token.length === 0 || token.length > 512) return null;
  if (OPERATOR_TOKEN_PATTERN.test(token)) return deps.operatorTokens.principalOf(token);
  return sameSecret(token, adminToken) ? ADMIN_TOKEN_PRINCIPAL : null;
}
