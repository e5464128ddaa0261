import { AdapterError, ConflictError, type AdapterErrorKind } from '../../core/errors.js';

/** Every Vault-store error goes through here, so the "[vault] " prefix and the kinds stay uniform. */
export function vaultError(kind: AdapterErrorKind, message: string, cause?: Error): AdapterError {
  return new AdapterError('vault', kind, message, cause === undefined ? undefined : { cause });
}

export function vaultConflict(message: string): ConflictError {
  return new ConflictError('vault', message);
}

/**
 * The first error text of a Vault answer, on one line and bounded. Vault's messages name
 * paths and reasons, never request data or tokens; the body is never echoed whole.
 */
export function vaultMessage(body: unknown): string {
  const errors = (body as { errors?: unknown } | null | undefined)?.errors;
  const raw = Array.isArray(errors) ? errors.filter((e) => typeof e === 'string').join('; ') : '';
  const text = raw
    // Go's multierror: "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
    .replace(/^\d+ errors? occurred:\s*/i, '')
    .replace(/\s*\n\t?\*\s*/g, '; ')
    .replace(/\s+/g, ' ')
    .replace(/^[;\s]+|[;\s]+$/g, '')
    .trim();
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

/** A transport failure (no HTTP answer) as a safe, token-free Error for `cause`. */
export function transportCause(code: string, message: string): Error {
  const error = new Error(`${code}: ${message}`);
  error.name = 'VaultTransportError';
  return error;
}
