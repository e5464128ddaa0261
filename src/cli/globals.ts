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
}

export async function loadConfigFor(globals: GlobalOptions, options: { mustExist: boolean }): Promise<Config> {
  return loadConfig(configPath(globals.config, process.env, process.cwd()), options);
}

/** Opens a session for one command and always closes its stores and targets. */
export async function withSession<T>(globals: GlobalOptions, io: Io, fn: (session: Session) => Promise<T>, options: { mustExist?: boolean } = {}): Promise<T> {
  const config = await loadConfigFor(globals, { mustExist: options.mustExist ?? true });
  const progress = await createProgress(io);
  const session = new Session({ config, progress: progress.sink, dryRun: globals.dryRun, debug: io.debug });
  try {
    return await fn(session);
  } finally {
    progress.stop();
    await session.close();
  }
}

/** The keys a multi-key command works on: the named ones, or every key with --all / none named. */
export function selectKeys(config: Config, names: string[], all: boolean): string[] {
  if (names.length > 0) {
    for (const name of names) keyOrThrow(config, name);
    return [...new Set(names)];
  }
  return all || names.length === 0 ? Object.keys(config.keys).sort() : names;
}
