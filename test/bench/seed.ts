/**
 * Seeds a benchmark workspace with N keys that already have a current version: a config, the
 * store (written through provkey's own store adapter, as `provkey add` would leave it, without
 * spending N processes and N target round trips on it), and the tokens the SCIM app accepts.
 * The embedded store's writes were not announced in the audit log, so the workspace ends with
 * `provkey audit accept-store` (the supported way to adopt a store as it is), audited.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = path.join(root, 'bin/provkey');
const dist = (module: string) => import(path.join(root, 'dist', module));

export interface Workspace {
  dir: string;
  config: string;
  keys: string[];
  /** Key name → its current token (the one the SCIM app accepts). */
  tokens: Map<string, string>;
}

export interface SeedOptions {
  dir: string;
  count: number;
  scimUrl: string;
  adminUrl: string;
  /** Where the keys live: the embedded store (default) or a Vault/OpenBao KV v2 mount. */
  vault?: { address: string; tokenFile: string };
  concurrency: number;
  /** Stop seeding (returning undefined) once this much time is spent. */
  budgetMs: number;
  env: NodeJS.ProcessEnv;
  onProgress?: (done: number) => void;
}

/** Key names sort in creation order, so a partial run covers a prefix of them. */
export const keyName = (i: number) => `app-${String(i).padStart(5, '0')}`;

export function token(): string {
  return `bench_${randomBytes(30).toString('base64url')}`;
}

/** Seeds and returns the workspace, or undefined when `budgetMs` ran out first (with how far it got). */
export async function seedWorkspace(options: SeedOptions): Promise<{ workspace?: Workspace; seeded: number; seconds: number; refused?: string }> {
  const started = Date.now();
  mkdirSync(options.dir, { recursive: true });
  const config = path.join(options.dir, 'provkey.yaml');
  const keys = Array.from({ length: options.count }, (_, i) => keyName(i));
  const store = options.vault
    ? `stores:\n  default:\n    type: vault\n    address: ${JSON.stringify(options.vault.address)}\n    auth: { method: token, tokenFile: ${JSON.stringify(options.vault.tokenFile)} }\n`
    : '';
  // One line per key, defaults for the rest (a 30-day interval, a 24-hour grace period, so
  // rotations overlap, as the figures of the issue are): provkey refuses a config over 1 MiB.
  const keyLines = keys.map((name) => `  ${name}: {target: {type: scim, url: ${JSON.stringify(options.scimUrl)}, applier: {type: http, url: ${JSON.stringify(options.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN"}}}\n`);
  writeFileSync(config, `${store}defaults: { concurrency: ${options.concurrency} }\nkeys:\n${keyLines.join('')}`, { mode: 0o600 });

  // The store exactly as provkey resolves it from this config.
  const { loadConfig } = await dist('config/load.js');
  const { openStore } = await dist('stores/index.js');
  const { fingerprint } = await dist('core/fingerprint.js');
  let loaded;
  try {
    loaded = await loadConfig(config, { mustExist: true });
  } catch (error) {
    // provkey itself cannot take this many keys in one config: say so, measure nothing.
    return { seeded: 0, seconds: (Date.now() - started) / 1000, refused: (error as Error).message };
  }
  const storeConfig = loaded.stores.default;
  const context = { configDir: loaded.dir, env: options.env, resolveSecret: async () => '', debug: () => {} };
  if (storeConfig.type === 'file') {
    const { initFileStore } = await dist('stores/file.js');
    await initFileStore(storeConfig, context, {});
  }
  const secretStore = await openStore('default', storeConfig, context);
  const tokens = new Map<string, string>();
  let next = 0;
  let outOfBudget = false;
  const worker = async () => {
    while (next < keys.length && !outOfBudget) {
      const name = keys[next++]!;
      const value = token();
      const now = new Date().toISOString();
      await secretStore.addVersion(name, undefined, value, { label: 'current', fingerprint: fingerprint(value), createdAt: now, labelledAt: now, origin: 'generated' });
      tokens.set(name, value);
      options.onProgress?.(tokens.size);
      // Past the budget, or sure to pass it: the cost per key never falls as the store grows,
      // so the time so far scaled linearly to all keys is a lower bound.
      const elapsed = Date.now() - started;
      if (elapsed > options.budgetMs || (tokens.size >= keys.length / 20 && (elapsed * keys.length) / tokens.size > options.budgetMs)) outOfBudget = true;
    }
  };
  // The embedded store takes one writer at a time; Vault takes them concurrently.
  await Promise.all(Array.from({ length: options.vault ? 8 : 1 }, worker));
  await secretStore.close();
  const seconds = (Date.now() - started) / 1000;
  if (outOfBudget && tokens.size < keys.length) return { seeded: tokens.size, seconds };
  if (!options.vault) {
    const accepted = spawnSync(process.execPath, [BIN, '--config', config, '--yes', 'audit', 'accept-store', 'default'], { cwd: options.dir, env: options.env, encoding: 'utf8' });
    if (accepted.status !== 0) throw new Error(`audit accept-store failed (${accepted.status}): ${accepted.stderr}`);
  }
  return { workspace: { dir: options.dir, config, keys, tokens }, seeded: tokens.size, seconds };
}
