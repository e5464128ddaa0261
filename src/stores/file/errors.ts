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

/**
 * Turns a node:sqlite error into a one-line AdapterError naming the file and SQLite's own
 * words (never a row's contents). A damaged file is tampering (exit 3); anything that is
 * not a SQLite error (our own errors, bugs) passes through.
 */
export function sqliteFailure(action: string, file: string, error: unknown): unknown {
  const { code, errcode, errstr } = (error ?? {}) as { code?: string; errcode?: number; errstr?: string };
  if (error instanceof AdapterError || code !== 'ERR_SQLITE_ERROR' || typeof errcode !== 'number') return error;
  const primary = errcode & 0xff;
  const why = errstr ?? 'error';
  if (primary === 11 || primary === 26) return fileStoreError('tampered', `store file ${file} is damaged (${why}): it was modified or truncated`, error);
  if (primary === 5 || primary === 6) return fileStoreError('locked', `cannot ${action} store file ${file}: ${why} (another process holds it)`, error);
  const kind: AdapterErrorKind = primary === 3 || primary === 8 || primary === 23 ? 'permission_denied' : 'server_error';
  return fileStoreError(kind, `cannot ${action} store file ${file}: ${why}`, error);
}
