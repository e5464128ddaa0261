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
