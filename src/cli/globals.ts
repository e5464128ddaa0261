import { configPath, keyOrThrow, loadConfig, stateDirOption, type Config } from '../config/load.js';
import { ConfigError } from '../core/errors.js';
import { Session } from '../engine/session.js';
import { createProgress } from './progress-bar.js';
import type { Io } from './io.js';

/** Global flags, normalised once at the edge. */
export interface GlobalOptions {
  config?: string;
  /** --state-dir (else PROVKEY_STATE_DIR, else .provkey/ beside the config). */
  stateDir?: string;
  json: boolean;
  yes: boolean;
  dryRun: boolean;
  verbose: boolean;
  /** --quiet: nothing on stdout but values and --json; errors and warnings still on stderr. */
  quiet: boolean;
  color: boolean;
}

export async function loadConfigFor(globals: GlobalOptions, options: { mustExist: boolean }): Promise<Config> {
  // Only the implicit ./provkey.yaml may be missing: a named config that is not there is a
  // mistake a cron job must hear about, not an empty list of keys.
  const named = globals.config !== undefined || Boolean(process.env.PROVKEY_CONFIG);
  const stateDir = stateDirOption(globals.stateDir, process.env, process.cwd());
  return loadConfig(configPath(globals.config, process.env, process.cwd()), { mustExist: options.mustExist || named, stateDir });
}

export async function promptHidden(message: string): Promise<string> {
  const { password } = await import('@inquirer/prompts');
  return password({ message: `${message}:`, mask: true }, { output: process.stderr });
}

/**
 * Opens a session for one command and always closes its stores and targets. A command that
 * only reads (`writesState: false`) works from a state dir it cannot write; any other one
 * first makes sure the state dir exists and is writable, so it fails up front, with a usage
 * error that says what to do, instead of half-way through with a raw mkdir error.
 */
export async function withSession<T>(globals: GlobalOptions, io: Io, fn: (session: Session) => Promise<T>, options: { mustExist?: boolean; writesState?: boolean } = {}): Promise<T> {
  const config = await loadConfigFor(globals, { mustExist: options.mustExist ?? true });
  if ((options.writesState ?? true) && !globals.dryRun) await ensureStateDir(config.stateDir);
  const progress = await createProgress(io);
  const session = new Session({
    config,
    progress: progress.sink,
    dryRun: globals.dryRun,
    debug: io.debug,
    ...(io.interactive ? { promptSecret: (message: string) => promptHidden(message) } : {}),
  });
  try {
    return await fn(session);
  } finally {
    progress.stop();
    await session.close();
  }
}

async function ensureStateDir(dir: string): Promise<void> {
  const { access, constants, mkdir } = await import('node:fs/promises');
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await access(dir, constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(
      `state dir ${dir}: cannot ${code === 'EACCES' || code === 'EROFS' || code === 'EPERM' ? 'write to' : 'create'} it (${code}); pass --state-dir or set PROVKEY_STATE_DIR to a writable directory (the config itself may stay read-only)`,
      'config.state_dir',
    );
  }
}

/** The keys a multi-key command works on: the named ones (checked, deduplicated), else every key. */
export function selectKeys(config: Config, names: string[]): string[] {
  if (names.length === 0) return Object.keys(config.keys).sort();
  for (const name of names) keyOrThrow(config, name);
  return [...new Set(names)];
}
