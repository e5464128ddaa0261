import { configPath, keyOrThrow, loadConfig, type Config } from '../config/load.js';
import { Session } from '../engine/session.js';
import { createProgress } from './progress-bar.js';
import type { Io } from './io.js';

/** Global flags, normalised once at the edge. */
export interface GlobalOptions {
  config?: string;
  json: boolean;
  yes: boolean;
  dryRun: boolean;
  verbose: boolean;
  color: boolean;
  /** --metrics-file: Prometheus textfile to rewrite after the run (docs/observability.md). */
  metricsFile?: string;
}

export async function loadConfigFor(globals: GlobalOptions, options: { mustExist: boolean }): Promise<Config> {
  // Only the implicit ./provkey.yaml may be missing: a named config that is not there is a
  // mistake a cron job must hear about, not an empty list of keys.
  const named = globals.config !== undefined || Boolean(process.env.PROVKEY_CONFIG);
  return loadConfig(configPath(globals.config, process.env, process.cwd()), { mustExist: options.mustExist || named });
}

export async function promptHidden(message: string): Promise<string> {
  const { password } = await import('@inquirer/prompts');
  return password({ message: `${message}:`, mask: true }, { output: process.stderr });
}

/** Opens a session for one command and always closes its stores and targets. */
export async function withSession<T>(globals: GlobalOptions, io: Io, fn: (session: Session) => Promise<T>, options: { mustExist?: boolean } = {}): Promise<T> {
  const config = await loadConfigFor(globals, { mustExist: options.mustExist ?? true });
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

/** The keys a multi-key command works on: the named ones (checked, deduplicated), else every key. */
export function selectKeys(config: Config, names: string[]): string[] {
  if (names.length === 0) return Object.keys(config.keys).sort();
  for (const name of names) keyOrThrow(config, name);
  return [...new Set(names)];
}
