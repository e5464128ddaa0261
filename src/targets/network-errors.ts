/**
 * Node socket and DNS error codes that mean "the server could not be reached" (as opposed to
 * "it answered and said no"). Shared by every target so they agree on what `unreachable` is.
 */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'ETIMEDOUT',
  'EPIPE',
]);

export function isUnreachableCode(code: string): boolean {
  return UNREACHABLE_CODES.has(code);
}

/**
 * Node's codes for a certificate that did not verify or a TLS handshake that failed: the
 * server provkey meant to talk to was not reached (an impostor, or a missing caFile), so this
 * is "unreachable" too, never a verdict on the credential.
 */
export function isTlsErrorCode(code: string): boolean {
  return code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || /CERT|_SIGNATURE|ISSUER/.test(code);
}
