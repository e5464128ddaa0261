import { isClaimStale, newClaim } from '../core/claim.js';
import { ConflictError, ExitCode, UsageError, exitCodeForTargetAnswer } from '../core/errors.js';
import { fingerprint } from '../core/fingerprint.js';
import { checkPolicy, generateSecret } from '../core/keygen.js';
import { versionByLabel, type KeyRecord } from '../core/model.js';
import { registerSecret } from '../core/redact.js';
import { abandonPending, finishRotation, orphanPendingIds } from '../core/transitions.js';
import { convergeStaleClaim, convergenceEndsOperation } from './converge.js';
import { owner, type KeyContext , thisRun } from './key-context.js';
import { waitForVerdict } from './propagation.js';
import { StepTimer, resultsFor, type KeyResult } from './result.js';
import { completeRotation, newVersionMeta } from './rotate.js';

/**
 * What `add` refuses before it changes anything, so that `add --dry-run` refuses exactly the
 * same: a key that already has a current version, a format under the entropy minimum or
 * impossible to satisfy, a format the target's own password policy would reject.
 */
export async function refuseAdd(ctx: KeyContext): Promise<void> {
  refuseExisting(ctx.key.name, await ctx.store.read(ctx.key.name));
  checkPolicy(ctx.key.policy);
  await ctx.target.checkGenerationPolicy?.(ctx.key.policy);
}

function refuseExisting(name: string, existing: KeyRecord | undefined): void {
  const current = existing && versionByLabel(existing, 'current');
  if (current) throw new UsageError(`key ${name} already has a current version (${current.fingerprint}); use "provkey rotate ${name}"`, 'key.exists');
}

/**
 * `add`: the first version of a key: generate, store as pending, apply to the target, test,
 * finish. `import`: adopt a value the target already uses: test it first, store it only if
 * the target accepts it (with `apply`, push it to the target like `add`).
 */
export async function addKey(ctx: KeyContext, options: { value?: string; apply?: boolean; expiresAt?: Date } = {}): Promise<KeyResult> {
  const name = ctx.key.name;
  const timer = new StepTimer(ctx.session.stepEvents(ctx.key.name));
  const imported = options.value !== undefined;
  const operation = imported ? 'import' : 'add';
  const existing = await ctx.store.read(name);
  refuseExisting(name, existing);
  if (existing?.state.claim) {
    if (!isClaimStale(existing.state.claim, new Date(), thisRun())) {
      return { key: name, operation, outcome: 'skipped', ok: true, exitCode: ExitCode.ok, message: 'another run is adding this key', steps: [], tests: [], ms: 0 };
    }
    // An earlier add died part-way: the target may already accept its version. Converge first.
    const converged = await timer.run('converge', () => convergeStaleClaim(ctx, existing));
    const ended = convergenceEndsOperation(converged);
    if (ended) return resultsFor(name, operation, timer)(ended);
    return addKey(ctx, options);
  }
  const orphans = existing ? orphanPendingIds(existing) : [];
  if (existing && orphans.length > 0) {
    // Left by an add that died between storing its version and claiming the key: the target never saw it.
    const now = new Date();
    const cleaned = orphans.reduce((r, id) => ({ ...r, ...abandonPending(r, id, now) }), existing);
    await ctx.session.emit({ type: 'audit', event: 'add.abandoned', key: name, outcome: 'rolled_back', detail: { orphans } });
    await ctx.store.update(name, existing.revision, { versions: cleaned.versions, state: cleaned.state });
    for (const id of orphans) await ctx.store.disableVersion(name, id);
    return addKey(ctx, options);
  }
  if (!imported) await ctx.target.checkGenerationPolicy?.(ctx.key.policy);
  const value = options.value ?? generateSecret(ctx.key.policy);
  registerSecret(value);
  // Two-account keys: a first version goes to the first account (an import is that account's password).
  const account = ctx.target.accountFor?.();
  const meta = { ...newVersionMeta(value, imported ? 'imported' : 'generated'), ...(options.expiresAt ? { expiresAt: options.expiresAt.toISOString() } : {}), ...(account ? { account } : {}) };
  const secret = { value, fingerprint: fingerprint(value), ...(account ? { account } : {}) };

  if (imported && !options.apply) {
    // The target already runs on this value: prove it before the store adopts it.
    const check = await timer.run('test', () => waitForVerdict(ctx.target, secret, 'accept', { timeoutMs: 0 }), (w) => ({ ok: w.test.ok, detail: w.test.verdict }));
    timer.tests.push(check.test);
    if (!check.test.ok) {
      return {
        key: name, operation, outcome: 'failed', ok: false, exitCode: exitCodeForTargetAnswer(check.test.verdict),
        message: `the target does not accept the imported value (${check.test.verdict}); nothing was stored`,
        fingerprint: secret.fingerprint, steps: timer.steps, tests: timer.tests, ms: timer.elapsed(),
      };
    }
    const now = new Date();
    const created = await timer.run('store', () => ctx.store.addVersion(name, existing?.revision, value, meta));
    const finished = finishRotation(created.record, created.versionId, { overlap: false, graceMs: 0, now, test: { ok: true, at: now.toISOString(), versionId: created.versionId, fingerprint: secret.fingerprint } });
    await ctx.session.emit({ type: 'audit', event: 'key.imported', key: name, outcome: 'ok', fingerprint: secret.fingerprint, versionId: created.versionId });
    await ctx.store.update(name, created.record.revision, { versions: finished.versions, state: finished.state });
    return {
      key: name, operation, outcome: 'imported', ok: true, exitCode: ExitCode.ok, message: `imported: ${secret.fingerprint} is current`,
      fingerprint: secret.fingerprint, steps: timer.steps, tests: timer.tests, ms: timer.elapsed(),
    };
  }

  let created;
  try {
    created = await timer.run('create', () => ctx.store.addVersion(name, existing?.revision, value, meta), () => ({ ok: true, detail: meta.fingerprint }));
  } catch (error) {
    if (error instanceof ConflictError) {
      return { key: name, operation, outcome: 'skipped', ok: true, exitCode: ExitCode.ok, message: 'another run added this key first', steps: timer.steps, tests: [], ms: timer.elapsed() };
    }
    throw error;
  }
  const record = await ctx.store.update(name, created.record.revision, {
    versions: created.record.versions,
    state: { ...created.record.state, claim: newClaim('add', owner(), new Date(), { step: 'created', pendingVersionId: created.versionId, overlap: false }) },
  });
  return completeRotation(ctx, { record, next: { ...secret, versionId: created.versionId, createdAt: meta.createdAt }, old: undefined, overlap: false, timer, operation: 'add' });
}
