import { spawn } from 'node:child_process';
import { assertTrustedExecutable } from '../io/safe-file.js';
import { serverText } from './text.js';
import type { ConsumerAnswer } from './consumer.js';

/**
 * Runs a consumer's command (exec consumer, store readiness probe): argv only (no shell), the
 * value on stdin (never argv or env), an environment of PATH/HOME/locale plus the passEnv names
 * and the PROVKEY_* variables. Exit 0 passes; 75/69 (sysexits TEMPFAIL/UNAVAILABLE) mean "could
 * not reach it now", anything else a refusal.
 */
export interface CommandOptions {
  command: readonly string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  passEnv: readonly string[];
  timeoutMs: number;
  what: string;
}

const BASE_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'];

export async function runConsumerCommand(options: CommandOptions, vars: Record<string, string>, stdin: string | undefined): Promise<ConsumerAnswer> {
  const [file, ...args] = options.command;
  if (file!.includes('/')) await assertTrustedExecutable(file!, options.what);
  const env: NodeJS.ProcessEnv = {};
  for (const name of [...BASE_ENV, ...options.passEnv]) if (options.env[name] !== undefined) env[name] = options.env[name];
  Object.assign(env, vars);
  return new Promise<ConsumerAnswer>((resolve) => {
    const child = spawn(file!, args, { cwd: options.cwd, env, stdio: ['pipe', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < 64 * 1024) stderr += chunk;
    });
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, options.timeoutMs);
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin ?? '');
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: 'error', detail: `${options.what}: cannot run ${file} (${error.code ?? 'error'})` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const last = serverText(stderr.trim().split('\n').at(-1) ?? '');
      const said = last ? `: ${last}` : '';
      if (code === 0) resolve({ ok: true, detail: `${options.what} passed` });
      else if (signal) resolve({ ok: false, reason: 'unreachable', detail: `${options.what} timed out or was killed (${signal})` });
      else if (code === 75 || code === 69) resolve({ ok: false, reason: 'unreachable', detail: `${options.what} could not reach the consumer (exit ${code})${said}` });
      else resolve({ ok: false, reason: 'rejected', detail: `${options.what} failed (exit ${code})${said}` });
    });
  });
}
