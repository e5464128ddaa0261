/**
 * The only error classes provkey throws on purpose. Each carries the exit code the CLI
 * returns, so the entry module can render any of them without knowing where it came from.
 * Messages are one line and never contain a secret value.
 */

export const ExitCode = {
  ok: 0,
  /** An operation failed and was rolled back, or a connection test failed. */
  failed: 1,
  /** Usage, config or input error: nothing was touched. */
  usage: 2,
  /** Lockout, or a state that needs a human (e.g. a revoked key the target still accepts). */
  needsHuman: 3,
  /** The user answered "no" at a confirmation prompt. */
  cancelled: 4,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class ProvkeyError extends Error {
  readonly exitCode: ExitCode;
  /** A machine-readable code for --json output, e.g. "config.invalid". */
  readonly code: string;
  constructor(code: string, message: string, exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** Bad flags, names, config or stdin. Nothing was changed. */
export class UsageError extends ProvkeyError {
  constructor(message: string, code = 'usage') {
    super(code, message, ExitCode.usage);
  }
}

export class ConfigError extends ProvkeyError {
  constructor(message: string, code = 'config.invalid') {
    super(code, message, ExitCode.usage);
  }
}


/** Neither version works, or the target disagrees with the store: a human must look. */
export class NeedsHumanError extends ProvkeyError {
  constructor(message: string, code = 'state.needs_human') {
    super(code, message, ExitCode.needsHuman);
  }
}

export class CancelledError extends ProvkeyError {
  constructor(message = 'cancelled') {
    super('cancelled', message, ExitCode.cancelled);
  }
}

/**
 * A store or target adapter failed in a way the caller may want to tell apart
 * (auth, sealed, unreachable, timeout, throttled, not found, conflict).
 * The message starts with the adapter name: "[vault] permission denied on ...".
 */
export type AdapterErrorKind =
  | 'not_found'
  | 'conflict'
  | 'permission_denied'
  | 'auth_failed'
  | 'sealed'
  | 'unreachable'
  | 'timeout'
  | 'throttled'
  | 'server_error'
  | 'tampered'
  | 'invalid'
  | 'locked';

export class AdapterError extends ProvkeyError {
  readonly adapter: string;
  readonly kind: AdapterErrorKind;
  constructor(adapter: string, kind: AdapterErrorKind, message: string, options?: { cause?: unknown }) {
    const exit = kind === 'invalid' ? ExitCode.usage : kind === 'tampered' ? ExitCode.needsHuman : ExitCode.failed;
    super(`${adapter}.${kind}`, `[${adapter}] ${message}`, exit, options);
    this.adapter = adapter;
    this.kind = kind;
  }
}

/** Thrown by stores when a compare-and-set write lost a race. */
export class ConflictError extends AdapterError {
  constructor(adapter: string, message: string) {
    super(adapter, 'conflict', message);
  }
}


export function isProvkeyError(error: unknown): error is ProvkeyError {
  return error instanceof ProvkeyError;
}
