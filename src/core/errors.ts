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
  /** A store or target was unreachable, timed out, throttled or failed (5xx) after retries: try again later. */
  unavailable: 5,
  /** A store or target refused provkey's credentials or policy (permission denied, auth failed). */
  denied: 6,
  /** The Vault is sealed: someone must unseal it. */
  sealed: 7,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * How serious a code is when a batch of keys reports several: a key needing a human outranks
 * a rolled-back failure, which outranks an environment problem, a usage error, a cancel.
 */
const SEVERITY: readonly ExitCode[] = [ExitCode.ok, ExitCode.cancelled, ExitCode.usage, ExitCode.unavailable, ExitCode.sealed, ExitCode.denied, ExitCode.failed, ExitCode.needsHuman];

export function mostSerious(a: ExitCode, b: ExitCode): ExitCode {
  return SEVERITY.indexOf(b) > SEVERITY.indexOf(a) ? b : a;
}

/**
 * The one mapping from what a target (or its applier) answered to the code an operation ends
 * with, when the answer was not what the operation needed: "unreachable" is never "rejected",
 * and a refused admin credential is a refused credential (6), not a failed test (1).
 */
export function exitCodeForTargetAnswer(answer: 'rejected' | 'policy' | 'unreachable' | 'denied' | 'error' | 'accepted'): ExitCode {
  switch (answer) {
    case 'unreachable':
      return ExitCode.unavailable;
    case 'denied':
      return ExitCode.denied;
    default:
      return ExitCode.failed;
  }
}

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
  /** Held by another live run past the wait (file lock): contention, so "try again later". */
  | 'locked'
  /** The backend is in a state only a person can end (e.g. an Azure name deleted but recoverable). */
  | 'blocked';

export class AdapterError extends ProvkeyError {
  readonly adapter: string;
  readonly kind: AdapterErrorKind;
  constructor(adapter: string, kind: AdapterErrorKind, message: string, options?: { cause?: unknown }) {
    super(`${adapter}.${kind}`, `[${adapter}] ${message}`, exitCodeFor(kind), options);
    this.adapter = adapter;
    this.kind = kind;
  }
}

function exitCodeFor(kind: AdapterErrorKind): ExitCode {
  switch (kind) {
    case 'invalid':
      return ExitCode.usage;
    case 'tampered':
    case 'blocked':
      return ExitCode.needsHuman;
    case 'locked':
    case 'unreachable':
    case 'timeout':
    case 'throttled':
    case 'server_error':
      return ExitCode.unavailable;
    case 'permission_denied':
    case 'auth_failed':
      return ExitCode.denied;
    case 'sealed':
      return ExitCode.sealed;
    default:
      return ExitCode.failed;
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
