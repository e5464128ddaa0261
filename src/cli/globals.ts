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
  /** --metrics-file: Prometheus textfile to rewrite after the run (docs/observability.md). */
  metricsFile?: string;
}

/**
 * The config every command works on, validated whole and the same way for every command
 * (`status` refuses what `test` refuses). A missing config is an error for every command
 * that reads one: running on nothing would report an all-clear for nothing checked.
 */
export async function loadConfigFor(globals: GlobalOptions, options: { mustExist?: boolean } = {}): Promise<Config> {
  const stateDir = stateDirOption(globals.stateDir, process.env, process.cwd());
  // Only `scan` (which finds leaked tokens by their shape without any config) may run on none.
  const named = globals.config !== undefined || Boolean(process.env.PROVKEY_CONFIG);
  const config = await loadConfig(configPath(globals.config, process.env, process.cwd()), { mustExist: (options.mustExist ?? true) || named, stateDir });
  await checkStoreSettings(config);
  return config;
}

/** Store settings that need the environment (VAULT_ADDR, proxies): checked at load, without I/O. */
async function checkStoreSettings(config: Config): Promise<void> {
  for (const [name, store] of Object.entries(config.stores)) {
    if (store.type !== 'vault') continue;
    // Imported only when a vault store is configured: file-store runs load no Vault code.
    const { resolveVaultSettings } = await import('../stores/vault/settings.js');
    resolveVaultSettings(name, store, { configDir: config.dir, env: process.env, resolveSecret: async () => '', debug: () => undefined });
  }
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
export async function withSession<T>(globals: GlobalOptions, io: Io, fn: (session: Session) => Promise<T>, options: { writesState?: boolean; mustExist?: boolean } = {}): Promise<T> {
  const config = await loadConfigFor(globals, options);
  if ((options.writesState ?? true) && !globals.dryRun) await ensureStateDir(config.stateDir);
  const progress = await createProgress(io);
  const session = new Session({
    config,
    subscribers: [progress.subscriber],
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

/**
 * The keys a multi-key command works on: the named ones (checked, deduplicated), else every
 * key. A config with no keys is an error: checking (or rotating) nothing is never success.
 */
export function selectKeys(config: Config, names: string[]): string[] {
  if (names.length === 0) {
    const all = Object.keys(config.keys).sort();
    if (all.length === 0) throw new ConfigError(`config: ${config.file ?? 'the config'} defines no keys, so there is nothing to check (add one under keys:, then provkey add KEY)`, 'config.no_keys');
    return all;
  }
  for (const name of names) keyOrThrow(config, name);
  return [...new Set(names)];
}
