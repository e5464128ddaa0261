import { checkImportedValue } from '../../core/keygen.js';
import { parseExpiresAt } from '../../core/schedule.js';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../../config/load.js';
import { addKey, refuseAdd } from '../../engine/add.js';
import { batchExitCode } from '../../engine/batch.js';
import { openKey } from '../../engine/key-context.js';
import { withSession, type GlobalOptions } from '../globals.js';
import { readSecretInput } from '../confirm.js';
import type { Io } from '../io.js';
import { renderResults } from '../render/results.js';

export async function addCommand(options: { key: string }, globals: GlobalOptions, io: Io): Promise<number> {
  return withSession(globals, io, async (session) => {
    const ctx = await openKey(session, options.key);
    if (globals.dryRun) {
      await refuseAdd(ctx);
      io.out(`would generate a ${ctx.key.policy.type}, store it in "${ctx.key.storeName}", apply it to the ${ctx.key.config.target.type} target and test it`);
      return 0;
    }
    const newKeyFile = await keyFileAddWouldCreate(session.config, ctx.key.storeName);
    const result = await addKey(ctx);
    renderResults(io, [result], result.exitCode);
    // Without `init`, the first write of the embedded store created its key just now: say where, once.
    if (newKeyFile && existsSync(newKeyFile)) announceKeyFile(io, newKeyFile);
    return batchExitCode([result]);
  });
}

/** The key file of an embedded store that does not exist yet (so this run will create it), else undefined. */
async function keyFileAddWouldCreate(config: Config, storeName: string): Promise<string | undefined> {
  const store = config.stores[storeName];
  if (store?.type !== 'file' || store.passphraseEnv) return undefined;
  const keyFile = path.resolve(config.dir, store.keyFile);
  return existsSync(keyFile) ? undefined : keyFile;
}

function announceKeyFile(io: Io, keyFile: string): void {
  io.err(`${io.color.yellow('provkey:')} created the store key ${keyFile} (mode 0600): back it up now; without it the store cannot be read (see docs/file-store.md)`);
}

export async function importCommand(options: { key: string; apply: boolean; expiresAt?: string }, globals: GlobalOptions, io: Io): Promise<number> {
  const expiresAt = options.expiresAt === undefined ? undefined : parseExpiresAt(options.expiresAt, new Date());
  return withSession(globals, io, async (session) => {
    const ctx = await openKey(session, options.key);
    const value = await readSecretInput(io, `value for ${options.key}`);
    checkImportedValue(value, ctx.key.policy, { apply: options.apply, field: `value for ${options.key}` });
    if (globals.dryRun) {
      const { fingerprint } = await import('../../core/fingerprint.js');
      io.out(`would ${options.apply ? 'apply' : 'test'} ${fingerprint(value)} against the ${ctx.key.config.target.type} target and, if it is accepted, store it as the current version of ${options.key}`);
      return 0;
    }
    const newKeyFile = await keyFileAddWouldCreate(session.config, ctx.key.storeName);
    const result = await addKey(ctx, { value, apply: options.apply, ...(expiresAt ? { expiresAt } : {}) });
    renderResults(io, [result], result.exitCode);
    if (newKeyFile && existsSync(newKeyFile)) announceKeyFile(io, newKeyFile);
    return result.exitCode;
  });
}
