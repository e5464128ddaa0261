import pLimit from 'p-limit';
import { ExitCode, isProvkeyError, mostSerious } from '../core/errors.js';
import { keyDone, type RunOperation } from './events.js';
import { openKey, type KeyContext } from './key-context.js';
import type { KeyResult } from './result.js';
import { SessionAborted } from './seam.js';
import type { Session } from './session.js';

/**
 * Runs one operation over many keys with a concurrency bound and collects every outcome:
 * one key's failure never stops the others (a cron run reports them all).
 */
export async function forEachKey(
  session: Session,
  names: string[],
  operation: RunOperation,
  run: (ctx: KeyContext) => Promise<KeyResult>,
): Promise<KeyResult[]> {
  const limit = pLimit(session.config.concurrency);
  await session.emit({ type: 'run-start', total: names.length, operation });
  const results = await Promise.all(
    names.map((name) =>
      limit(async () => {
        await session.emit({ type: 'key-start', key: name, operation: operation });
        const started = Date.now();
        let result: KeyResult;
        try {
          result = await run(await openKey(session, name));
        } catch (error) {
          // A simulated crash ends the whole run, as a real one would.
          if (error instanceof SessionAborted) throw error;
          // Every key gets a result: one key's failure, even a bug, never stops the others.
          const known = isProvkeyError(error);
          const message = known ? error.message : `internal error: ${error instanceof Error ? error.message : String(error)} (please report this)`;
          result = { key: name, operation, outcome: 'failed', ok: false, exitCode: known ? error.exitCode : ExitCode.failed, message, steps: [], tests: [], ms: Date.now() - started };
        }
        await session.emit(keyDone(result));
        return result;
      }),
    ),
  );
  await session.emit({ type: 'run-done', operation: operation });
  return results;
}

/** The exit code of a batch: the most serious of its keys' codes. */
export function batchExitCode(results: KeyResult[]): ExitCode {
  return results.reduce<ExitCode>((worst, r) => mostSerious(worst, r.exitCode), ExitCode.ok);
}

/** One key run on its own (revoke): its start and outcome are events, as in a batch. */
export async function runOneKey(session: Session, name: string, operation: RunOperation, run: () => Promise<KeyResult>): Promise<KeyResult> {
  await session.emit({ type: 'key-start', key: name, operation });
  const result = await run();
  await session.emit(keyDone(result));
  return result;
}
