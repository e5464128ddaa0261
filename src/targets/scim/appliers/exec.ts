import { spawn } from 'node:child_process';
import { access, constants, stat } from 'node:fs/promises';
import path from 'node:path';
import { isProvkeyError } from '../../../core/errors.js';
import { assertTrustedExecutable } from '../../../io/safe-file.js';
import type { ApplyResult, SecretInUse } from '../../target.js';
import { oneLine, scrubSecrets } from '../redact.js';
import type { TokenApplier } from './applier.js';

/**
 * A command that installs or removes a token: argv only (no shell), the token on stdin
 * (never argv or env, which other users can read in /proc), and what to do in env:
 * PROVKEY_ACTION=apply|revoke|rollback, PROVKEY_KEY, PROVKEY_FINGERPRINT and, when the
 * new token replaces one, PROVKEY_REPLACES_FINGERPRINT. A hook must be idempotent: a resumed
 * rotation may run the same action twice.
 *
 * The hook does not inherit provkey's environment: that holds provkey's own credentials (the
 * file store's passphrase, VAULT_TOKEN, AppRole secret ids, admin tokens behind env: refs), and
 * a hook is often a vendor's script. It gets BASE_ENV, the names the config lists in passEnv,
 * and the PROVKEY_* variables above; nothing else.
 */
export interface ExecApplierOptions {
  keyName: string;
  command: readonly string[];
  timeoutMs: number;
  cwd: string;
  /** provkey's environment; only BASE_ENV and the passEnv names are read from it. */
  env: NodeJS.ProcessEnv;
  /** Further variables to pass through by name (the applier's `passEnv`); unset ones are left out. */
  passEnv?: readonly string[];
}

/** What any program needs to run as the user would expect: find commands, home, locale, time zone, temp dir. */
export const BASE_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'] as const;

export type ExecAction = 'apply' | 'revoke' | 'rollback';

/**
 * sysexits.h EX_TEMPFAIL / EX_UNAVAILABLE: the hook's way to say "the app could not be reached
 * or is failing right now" (connection refused, 5xx, 429), so the step is resumed later
 * instead of counted as a refusal of the token.
 */
export const HOOK_EXIT_UNREACHABLE = [75, 69] as const;

/** After the timeout, SIGTERM to the process group; SIGKILL if it is still there after this. */
const KILL_GRACE_MS = 2000;
const MAX_STDERR_BYTES = 64 * 1024;

export function createExecApplier(options: ExecApplierOptions): TokenApplier {
  const run = (action: ExecAction, token: SecretInUse, replaces?: SecretInUse) => runHook(options, action, token, replaces);
  return {
    async set({ next, current, replace }) {
      if (!replace || !current) return run('apply', next);
      // The hook is told what is being replaced (so it can swap atomically), and then asked
      // to revoke it: "replace" must not depend on every hook reading an optional variable,
      // and revoking an absent token is a no-op for an idempotent hook.
      const applied = await run('apply', next, current);
      if (!applied.ok) return applied;
      const revoked = await run('revoke', current);
      return revoked.ok ? { ok: true, detail: `${applied.detail}; ${revoked.detail}` } : revoked;
    },
    retire: ({ old }) => run('revoke', old),
    async rollback({ next, current }) {
      const undone = await run('rollback', next);
      if (!undone.ok || !current) return undone;
      return run('apply', current);
    },
  };
}

/**
 * Refuses (exit 2, naming the file) a hook that group or others can write, or one in a
 * directory they can write, as ssh refuses such a config: anyone who can change the hook
 * receives every new token on its stdin. A bare name is looked up on PATH as spawn would.
 */
export async function assertHookTrusted(options: Pick<ExecApplierOptions, 'command' | 'cwd' | 'env' | 'keyName'>): Promise<void> {
  const [command, ...args] = options.command;
  const file = await locateHook(command!, options.cwd, options.env.PATH);
  if (file) await assertTrustedExecutable(file, `exec hook of ${options.keyName}`);
  // An interpreter's script ([python3, hook.py]) is the hook just as much.
  for (const arg of args) {
    const script = path.resolve(options.cwd, arg);
    if (await stat(script).then((info) => info.isFile(), () => false)) await assertTrustedExecutable(script, `exec hook script of ${options.keyName}`);
  }
}

async function locateHook(command: string, cwd: string, searchPath: string | undefined): Promise<string | undefined> {
  const candidates = command.includes('/') ? [path.resolve(cwd, command)] : (searchPath ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.resolve(cwd, dir, command));
  for (const candidate of candidates) {
    if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
  }
  return undefined;
}

export async function runHook(options: ExecApplierOptions, action: ExecAction, token: SecretInUse, replaces?: SecretInUse): Promise<ApplyResult> {
  try {
    await assertHookTrusted(options);
  } catch (error) {
    if (!isProvkeyError(error)) throw error;
    return { ok: false, reason: 'error', detail: error.message };
  }
  return spawnHook(options, action, token, replaces);
}

function spawnHook(options: ExecApplierOptions, action: ExecAction, token: SecretInUse, replaces?: SecretInUse): Promise<ApplyResult> {
  const [file, ...args] = options.command;
  const env = hookEnvironment(options, action, token, replaces);
  const what = `${file} (${action} ${token.fingerprint})`;
  const clean = (text: string): string => oneLine(scrubSecrets(text, [token, replaces]), 200);

  return new Promise<ApplyResult>((resolve) => {
    let settled = false;
    let timedOut = false;
    let stderr = '';
    const finish = (result: ApplyResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      resolve(result);
    };

    // detached: its own process group, so a timeout kills the hook's children too.
    const child = spawn(file!, args, { cwd: options.cwd, env, stdio: ['pipe', 'ignore', 'pipe'], detached: true, shell: false });
    const killGroup = (signal: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // Already gone.
      }
    };
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
    }, options.timeoutMs);

    child.on('error', (error: NodeJS.ErrnoException) => {
      finish({ ok: false, reason: 'error', detail: `cannot run ${what}: ${error.code ?? oneLine(error.message)}` });
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      // Keep the tail (the last line is what gets reported), cut at a line start so a
      // token is never half-kept where scrubbing could not recognise it.
      stderr += chunk;
      if (stderr.length > 2 * MAX_STDERR_BYTES) {
        const tail = stderr.slice(-MAX_STDERR_BYTES);
        const lineStart = tail.indexOf('\n');
        stderr = lineStart < 0 ? '' : tail.slice(lineStart + 1);
      }
    });
    // A hook that exits without reading stdin makes the write fail with EPIPE; its exit code tells the story.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(`${token.value}\n`);

    child.on('close', (code, signal) => {
      if (timedOut) {
        // A hook that hangs is almost always waiting on a slow or dead app: not a refusal.
        finish({ ok: false, reason: 'unreachable', detail: `${what} did not finish within ${options.timeoutMs}ms and was killed` });
      } else if (code === 0) {
        finish({ ok: true, detail: `${what} succeeded` });
      } else if (code !== null && (HOOK_EXIT_UNREACHABLE as readonly number[]).includes(code)) {
        const last = lastLine(stderr);
        finish({ ok: false, reason: 'unreachable', detail: `${what} could not reach the app (exit ${code})${last ? `: ${clean(last)}` : ''}` });
      } else if (code !== null) {
        const last = lastLine(stderr);
        finish({ ok: false, reason: 'rejected', detail: `${what} exited with ${code}${last ? `: ${clean(last)}` : ''}` });
      } else {
        finish({ ok: false, reason: 'error', detail: `${what} was killed by ${signal ?? 'a signal'}` });
      }
    });
  });
}

/** The hook's whole environment: BASE_ENV and passEnv when set in provkey's, then the PROVKEY_* it is told. */
export function hookEnvironment(options: ExecApplierOptions, action: ExecAction, token: SecretInUse, replaces?: SecretInUse): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of [...BASE_ENV, ...(options.passEnv ?? [])]) {
    const value = options.env[name];
    if (value !== undefined) env[name] = value;
  }
  // Set last: passEnv cannot override them, and a stale PROVKEY_REPLACES_FINGERPRINT never leaks in.
  for (const name of Object.keys(env)) if (name.startsWith('PROVKEY_')) delete env[name];
  env.PROVKEY_ACTION = action;
  env.PROVKEY_KEY = options.keyName;
  env.PROVKEY_FINGERPRINT = token.fingerprint;
  if (replaces) env.PROVKEY_REPLACES_FINGERPRINT = replaces.fingerprint;
  return env;
}

function lastLine(text: string): string | undefined {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .at(-1);
}
