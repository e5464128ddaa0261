import { AdapterError, ConflictError, type AdapterErrorKind } from '../../core/errors.js';

/** Every Azure-store error goes through here, so the "[azure] " prefix and the kinds stay uniform. */
export function azureError(kind: AdapterErrorKind, message: string, cause?: unknown): AdapterError {
  return new AdapterError('azure', kind, message, cause === undefined ? undefined : { cause });
}

export function azureConflict(message: string): ConflictError {
  return new ConflictError('azure', message);
}
