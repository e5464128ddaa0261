import { configPath, keyOrThrow, loadConfig, type Config } from '../config/load.js';
import { ConfigError } from '../core/errors.js';
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

/**
 * The config every command works on, validated whole and the same way for every command
 * (`status` refuses what `test` refuses). A missing config is an error for every command
 * that reads one: running on nothing would report an all-clear for nothing checked.
 */
export async function loadConfigFor(globals: GlobalOptions): Promise<Config> {
  const config = await loadConfig(configPath(globals.config, process.env, process.cwd()), { mustExist: true });
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

/** Opens a session for one command and always closes its stores and targets. */
export async function withSession<T>(globals: GlobalOptions, io: Io, fn: (session: Session) => Promise<T>): Promise<T> {
  const config = await loadConfigFor(globals);
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
