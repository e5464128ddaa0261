import { ConflictError, ExitCode, exitCodeForTargetAnswer } from '../core/errors.js';
import type { KeyRecord } from '../core/model.js';
import { readExisting, secretOf, type KeyContext } from './key-context.js';
import { waitForVerdict } from './propagation.js';
import { StepTimer, type KeyResult } from './result.js';
import { checkConsumers, proofsOf } from './consumers.js';

/** `test`: the connection test with the current version; the result is kept in the store for `status`. */
export async function testKey(ctx: KeyContext, options: { write?: boolean } = {}): Promise<KeyResult> {
  const timer = new StepTimer(ctx.session.stepEvents(ctx.key.name));
  const { record, current } = await readExisting(ctx);
  const secret = await secretOf(ctx, current);
  const write = options.write ?? (ctx.key.config.target.type === 'scim' && ctx.key.config.target.writeProbe);
  const { test } = await timer.run('test', () => waitForVerdict(ctx.target, secret, 'accept', { timeoutMs: 0, write }), (w) => ({ ok: w.test.ok, detail: w.test.verdict }));
  timer.tests.push(test);
  // The consumers' own proofs (Entra: its test connection with the saved token, the job's health, failed validations in its logs).
  const consumers = await checkConsumers(ctx, secret, timer);
  const failedConsumers = consumers.filter((c) => !c.answer.ok);
  const ok = test.ok && failedConsumers.length === 0;
  await saveLastTest(ctx, record, { ok: test.ok, at: test.at, versionId: current.id, fingerprint: current.fingerprint }, consumers.length ? proofsOf(consumers, secret) : undefined);
  await ctx.session.emit({
    type: 'audit',
    event: 'key.tested',
    key: ctx.key.name,
    outcome: ok ? 'ok' : 'failed',
    fingerprint: current.fingerprint,
    versionId: current.id,
    detail: { verdict: test.verdict, ...(consumers.length ? { consumers: Object.fromEntries(consumers.map((c) => [c.name, c.answer.ok ? 'ok' : c.answer.reason])) } : {}) },
  });
  const consumerExit = failedConsumers.map((c) => (c.answer.ok ? ExitCode.ok : exitCodeForTargetAnswer(c.answer.reason)))[0];
  const consumerText = failedConsumers.map((c) => `consumer ${c.name}: ${c.answer.ok ? '' : `${c.answer.reason}: ${c.answer.detail}`}`).join('; ');
  return {
    key: ctx.key.name,
    operation: 'test',
    outcome: ok ? 'tested' : 'failed',
    ok,
    exitCode: !test.ok ? exitCodeForTargetAnswer(test.verdict) : (consumerExit ?? ExitCode.ok),
    message: !test.ok
      ? `${current.fingerprint}: connection test failed (${test.verdict})`
      : failedConsumers.length
        ? `${current.fingerprint} accepted by the target; ${consumerText}`
        : `${current.fingerprint} accepted by the target${consumers.length ? ` and ${consumers.length} consumer(s)` : ''}`,
    fingerprint: current.fingerprint,
    steps: timer.steps,
    tests: timer.tests,
    ms: timer.elapsed(),
  };
}

async function saveLastTest(ctx: KeyContext, record: KeyRecord, lastTest: NonNullable<KeyRecord['state']['lastTest']>, consumerProofs?: KeyRecord['state']['consumerProofs']): Promise<void> {
  if (ctx.session.dryRun) return;
  // A passing test ends a recorded lockout: a human has repaired the account.
  const { lockout, ...rest } = record.state;
  const proofs = consumerProofs ? { consumerProofs: { ...rest.consumerProofs, ...consumerProofs } } : {};
  const state = lastTest.ok ? { ...rest, lastTest, ...proofs } : { ...rest, ...(lockout ? { lockout } : {}), lastTest, ...proofs };
  try {
    await ctx.store.update(ctx.key.name, record.revision, { versions: record.versions, state });
  } catch (error) {
    // A rotation started meanwhile; its own test result will be recorded instead.
    if (!(error instanceof ConflictError)) throw error;
  }
}
