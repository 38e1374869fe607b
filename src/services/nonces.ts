/**
 * The gateway's nonces, as the gateway door sees them. The door owns the nonce: it decides when a request's
 * nonce_str is stored (before the method runs, or with the method's first write) and stores it through
 * `deps.nonces` (store/nonces.ts); a method that writes it with its first write throws NonceReplayError for a
 * nonce used before.
 */
export { NonceReplayError, type GatewayNonce } from '../store/nonces.js';
