import { checkImportedValue } from '../../core/keygen.js';
import { addKey } from '../../engine/add.js';
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
      io.out(`would generate a ${ctx.key.policy.type}, store it in "${ctx.key.storeName}", apply it to the ${ctx.key.config.target.type} target and test it`);
      return 0;
    }
    const result = await addKey(ctx);
    renderResults(io, [result], result.exitCode);
    return batchExitCode([result]);
  });
}

export async function importCommand(options: { key: string; apply: boolean }, globals: GlobalOptions, io: Io): Promise<number> {
  return withSession(globals, io, async (session) => {
    const ctx = await openKey(session, options.key);
    const value = await readSecretInput(io, `value for ${options.key}`);
    checkImportedValue(value, ctx.key.policy, { apply: options.apply, field: `value for ${options.key}` });
    if (globals.dryRun) {
      const { fingerprint } = await import('../../core/fingerprint.js');
      io.out(`would ${options.apply ? 'apply' : 'test'} ${fingerprint(value)} against the ${ctx.key.config.target.type} target and, if it is accepted, store it as the current version of ${options.key}`);
      return 0;
    }
    const result = await addKey(ctx, { value, apply: options.apply });
    renderResults(io, [result], result.exitCode);
    return result.exitCode;
  });
}
