import { AdapterError, type AdapterErrorKind } from '../../core/errors.js';

/** Every file-store error goes through here so the "[file] " prefix and kinds stay uniform. */
export function fileStoreError(kind: AdapterErrorKind, message: string, cause?: unknown): AdapterError {
  return new AdapterError('file', kind, message, cause === undefined ? undefined : { cause });
}

/**
 * Turns a system error (ENOENT, EACCES, ENOSPC…) into a one-line AdapterError naming the file
 * and the code: never the file's contents. Anything else (our own errors, bugs) passes through.
 */
export function fsFailure(action: string, file: string, error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (error instanceof AdapterError || typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return error;
  const kind: AdapterErrorKind = code === 'EACCES' || code === 'EPERM' ? 'permission_denied' : 'server_error';
  return fileStoreError(kind, `cannot ${action} ${file}: ${code}`, error);
}
