import { ConflictError, ExitCode, exitCodeForTargetAnswer } from '../core/errors.js';
import type { KeyRecord } from '../core/model.js';
import { readExisting, secretOf, type KeyContext } from './key-context.js';
import { waitForVerdict } from './propagation.js';
import { StepTimer, type KeyResult } from './result.js';

/** `test`: the connection test with the current version; the result is kept in the store for `status`. */
export async function testKey(ctx: KeyContext, options: { write?: boolean } = {}): Promise<KeyResult> {
  const timer = new StepTimer(ctx.session.stepEvents(ctx.key.name));
  const { record, current } = await readExisting(ctx);
  const secret = await secretOf(ctx, current);
  const write = options.write ?? (ctx.key.config.target.type === 'scim' && ctx.key.config.target.writeProbe);
  const { test } = await timer.run('test', () => waitForVerdict(ctx.target, secret, 'accept', { timeoutMs: 0, write }), (w) => ({ ok: w.test.ok, detail: w.test.verdict }));
  timer.tests.push(test);
  await saveLastTest(ctx, record, { ok: test.ok, at: test.at, versionId: current.id, fingerprint: current.fingerprint });
  await ctx.session.emit({ type: 'audit', event: 'key.tested', key: ctx.key.name, outcome: test.ok ? 'ok' : 'failed', fingerprint: current.fingerprint, versionId: current.id, detail: { verdict: test.verdict } });
  return {
    key: ctx.key.name,
    operation: 'test',
    outcome: test.ok ? 'tested' : 'failed',
    ok: test.ok,
    exitCode: test.ok ? ExitCode.ok : exitCodeForTargetAnswer(test.verdict),
    message: test.ok ? `${current.fingerprint} accepted by the target` : `${current.fingerprint}: connection test failed (${test.verdict})`,
    fingerprint: current.fingerprint,
    steps: timer.steps,
    tests: timer.tests,
    ms: timer.elapsed(),
  };
}

async function saveLastTest(ctx: KeyContext, record: KeyRecord, lastTest: NonNullable<KeyRecord['state']['lastTest']>): Promise<void> {
  if (ctx.session.dryRun) return;
  // A passing test ends a recorded lockout: a human has repaired the account.
  const { lockout, ...rest } = record.state;
  const state = lastTest.ok ? { ...rest, lastTest } : { ...rest, ...(lockout ? { lockout } : {}), lastTest };
  try {
    await ctx.store.update(ctx.key.name, record.revision, { versions: record.versions, state });
  } catch (error) {
    // A rotation started meanwhile; its own test result will be recorded instead.
    if (!(error instanceof ConflictError)) throw error;
  }
}
