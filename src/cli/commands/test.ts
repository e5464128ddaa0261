import { batchExitCode, forEachKey } from '../../engine/batch.js';
import { testKey } from '../../engine/test-key.js';
import { observeRun } from '../../observe/observer.js';
import { selectKeys, withSession, type GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';
import { renderResults } from '../render/results.js';

export async function testCommand(options: { keys: string[]; write: boolean }, globals: GlobalOptions, io: Io): Promise<number> {
  return withSession(globals, io, async (session) => {
    const names = selectKeys(session.config, options.keys);
    const observer = await observeRun(session, globals, io, 'test');
    const results = await forEachKey(session, names, 'test', (ctx) => testKey(ctx, options.write ? { write: true } : {}));
    const exitCode = batchExitCode(results);
    renderResults(io, results, exitCode);
    await observer.finish({ exitCode });
    return exitCode;
  });
}
