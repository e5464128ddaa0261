import { CLAIM_TTL_MS, newClaim } from '../core/claim.js';
import { AdapterError, ConflictError, ExitCode } from '../core/errors.js';
import { fingerprint } from '../core/fingerprint.js';
import { generateSecret } from '../core/keygen.js';
import type { Claim, KeyRecord, VersionMeta } from '../core/model.js';
import { exitCodeForTargetAnswer } from '../core/errors.js';
import { registerSecret } from '../core/redact.js';
import { finishRotation, revokeVersions } from '../core/transitions.js';
import type { SecretInUse } from '../targets/target.js';
import { owner, readExisting, secretOf, type KeyContext } from './key-context.js';
import { faultPoint } from './fault.js';
import { waitForVerdict } from './propagation.js';
import { StepTimer, resultsFor, type KeyResult } from './result.js';
import { convergeFirstSeen, proveRetiredAfterFinish, retireClaim } from './converge.js';
import { rollback } from './rollback.js';
import { deliverToConsumers } from './consumers.js';
import { consumerNameOf } from '../config/validate.js';
import { FINISHED, type StepName } from './events.js';
import { revokeKey } from './revoke.js';

export interface RotateOptions {
  /** Force no overlap (drills): the old version stops working as part of the rotation. */
  noOverlap?: boolean;
  operation?: 'rotate' | 'drill';
  /** Run the write probe on the new version (drills). */
  writeProbe?: boolean;
  reason?: string;
  /**
   * `rotate --due`: decided again on the record the claim was won against, so two runs that both
   * saw the key due rotate it once (issue 7, item 5).
   */
  stillDue?: (record: KeyRecord) => boolean;
}

/**
 * The rotation protocol of DESIGN.md: claim, create, set, test, finish; rollback on a
 * failure in set or test. Each step's outcome is written to the store before the next side
 * effect, so a run killed at any point leaves a claim the next run converges from.
 */
export async function rotateKey(ctx: KeyContext, options: RotateOptions = {}): Promise<KeyResult> {
  const timer = new StepTimer(ctx.session.stepEvents(ctx.key.name));
  const operation = options.operation ?? 'rotate';
  const name = ctx.key.name;
  const progress = (step: StepName, detail?: string) => ctx.session.emit({ type: 'step-start', key: name, step, ...(detail ? { detail } : {}) });
  const result = resultsFor(name, operation, timer);

  const { ended, seen } = await convergeFirstSeen(ctx, timer);
  if (ended) return result(ended);
  let { record, current } = await readExisting(ctx, seen);
  if (record.state.lockout) {
    return result({
      outcome: 'lockout',
      ok: false,
      exitCode: ExitCode.needsHuman,
      message: `key is in lockout since ${record.state.lockout.at}: ${record.state.lockout.detail}; recover it with an admin credential, then run "provkey test ${name}"`,
    });
  }

  const old = await secretOf(ctx, current);
  await ctx.target.checkGenerationPolicy?.(ctx.key.policy, old);
  const overlap = !options.noOverlap && ctx.key.rotation.graceMs > 0 && ctx.target.capabilities.overlap;

  // Due-ness decided on the record the claim below is checked against: if another run rotated
  // the key since, the claim fails anyway; if not, this is the record it wins against.
  if (options.stillDue && !options.stillDue(record)) {
    return result({ outcome: 'skipped', ok: true, exitCode: ExitCode.ok, message: 'not due any more (another run rotated it)' });
  }
  const claim = newClaim(operation, owner(), new Date(), { fromVersionId: current.id, overlap });
  const value = generateSecret(ctx.key.policy);
  registerSecret(value);
  // A target with two accounts (blue/green) names the one this version is for: the one not in use.
  const account = ctx.target.accountFor?.(old);
  const meta = { ...newVersionMeta(value, 'generated'), ...(account ? { account } : {}) };
  const claimedAndCreated = { ...record.state, claim: { ...claim, step: 'created' as const } };
  const skipped = (error: unknown) => {
    if (!isContention(error)) throw error;
    return result({ outcome: 'skipped', ok: true, exitCode: ExitCode.ok, message: `another run holds this key (${(error as Error).message}); skipped, nothing changed` });
  };

  // 1. claim: compare-and-set; a second rotator loses here and skips the key.
  // 2. create: a fresh value, stored as `pending` before the target ever sees it.
  // A store with a native compare-and-set (Vault) does both in one write: it stores the value,
  // then the claim and the pending version in one check-and-set, and a loser destroys its value.
  // Elsewhere (a lock, Azure's re-read) the claim is won first, so a loser never writes a value.
  // Either way the claim says "created" with the version beside it, not yet named: a run killed
  // before "setting" names it abandons it as an orphan (the target never saw it).
  let created: { record: KeyRecord; versionId: string };
  await progress('claim');
  if (ctx.store.capabilities.compareAndSet === 'native') {
    try {
      created = await timer.run('claim', () => ctx.store.addVersion(name, record.revision, value, meta, claimedAndCreated), () => ({ ok: true, detail: meta.fingerprint }));
    } catch (error) {
      return skipped(error);
    }
    // The claim step stored the version too: no separate create step to announce.
    faultPoint('after-claim');
  } else {
    try {
      record = await timer.run('claim', () => ctx.store.update(name, record.revision, { versions: record.versions, state: { ...record.state, claim } }));
    } catch (error) {
      return skipped(error);
    }
    faultPoint('after-claim');
    await progress('create');
    const claimed = record;
    created = await timer.run('create', () => ctx.store.addVersion(name, claimed.revision, value, meta, claimedAndCreated), () => ({ ok: true, detail: meta.fingerprint }));
  }
  record = created.record;
  faultPoint('after-create');
  const next: SecretInUse = { value, fingerprint: meta.fingerprint, versionId: created.versionId, createdAt: meta.createdAt, ...(account ? { account } : {}) };

  return completeRotation(ctx, { record, next, old, overlap, timer, operation, ...(options.writeProbe ? { writeProbe: true } : {}), ...(options.reason ? { reason: options.reason } : {}) });
}

/** A key claimed or locked by another run: not a failure, the key is simply skipped (item 6). */
export function isContention(error: unknown): boolean {
  return error instanceof ConflictError || (error instanceof AdapterError && error.kind === 'locked');
}

export function newVersionMeta(value: string, origin: VersionMeta['origin']): Omit<VersionMeta, 'id'> {
  const now = new Date().toISOString();
  return { label: 'pending', fingerprint: fingerprint(value), createdAt: now, labelledAt: now, origin };
}

async function advance(ctx: KeyContext, record: KeyRecord, step: Claim['step'], fields: Partial<Claim> = {}): Promise<KeyRecord> {
  const claim = record.state.claim!;
  const expiresAt = new Date(Date.now() + CLAIM_TTL_MS).toISOString();
  return ctx.store.update(ctx.key.name, record.revision, {
    versions: record.versions,
    state: { ...record.state, claim: { ...claim, ...fields, step, expiresAt } },
  });
}

/** set, test, finish (and rollback): shared by rotate and by `add`. */
export async function completeRotation(
  ctx: KeyContext,
  run: {
    record: KeyRecord;
    next: SecretInUse;
    old: SecretInUse | undefined;
    overlap: boolean;
    timer: StepTimer;
    operation: 'add' | 'rotate' | 'drill';
    writeProbe?: boolean;
    /** Why this rotation ran (e.g. "compromise drill"), for the audit record. */
    reason?: string;
  },
): Promise<KeyResult> {
  const { next, old, overlap, timer, operation } = run;
  let record = run.record;
  const name = ctx.key.name;
  const progress = (step: StepName) => ctx.session.emit({ type: 'step-start', key: name, step });
  const result = resultsFor(name, operation, timer, { fingerprint: next.fingerprint, ...(old ? { previousFingerprint: old.fingerprint } : {}) });

  // 3. set: the claim says "setting" (and names the pending version) before the target is
  // touched, so a crash here is resumable.
  record = await advance(ctx, record, 'setting', { pendingVersionId: next.versionId! });
  // Where asking the target which version it holds costs nothing (SCIM: a 401 is free), a
  // resumed run asks it: storing "set" and "tested" would spare it nothing, at a write each.
  // Where a refusal counts toward lockout (LDAP) each is evidence that spares a bind.
  const recordsEvidence = ctx.target.capabilities.negativeProbe !== 'free';
  faultPoint('before-set');
  await progress('set');
  const applied = await timer.run(
    'set',
    () => ctx.target.set({ next, ...(old ? { current: old } : {}), replace: !overlap }),
    (r) => (r.ok ? { ok: true, ...(r.detail ? { detail: r.detail } : {}) } : { ok: false, detail: `${r.reason}: ${r.detail}` }),
  );
  if (!applied.ok) {
    const rolled = await rollback(ctx, record, next, old, timer, `the target refused the new version (${applied.reason}: ${applied.detail})`, result);
    // A refused credential (e.g. the token endpoint's admin token) is exit 6 however the rollback went: the fix is the credential.
    return rolled.exitCode === ExitCode.failed ? { ...rolled, exitCode: exitCodeForTargetAnswer(applied.reason) } : rolled;
  }
  faultPoint('after-set');
  if (recordsEvidence) record = await advance(ctx, record, 'set');

  // 4. test: the new version must be accepted (waiting for propagation).
  await progress('test');
  const accepted = await timer.run(
    'test',
    () => waitForVerdict(ctx.target, next, 'accept', { write: run.writeProbe ?? false }),
    (w) => ({ ok: w.test.ok, detail: `${w.test.verdict} after ${w.attempts} attempt(s)` }),
  );
  timer.tests.push(accepted.test);
  if (!accepted.test.ok) {
    return rollback(ctx, record, next, old, timer, `the connection test with the new version failed (${summarize(accepted.test)})`, result);
  }
  if (recordsEvidence) record = await advance(ctx, record, 'tested');
  faultPoint('after-test');

  // 5. deliver: each consumer validates, switches to and proves the new version; a failure rolls
  // back consumers first, then the target (engine/consumers.ts).
  const delivered = await deliverToConsumers(ctx, record, next, timer);
  if (!delivered.ok) {
    const rolled = await rollback(ctx, delivered.record, next, old, timer, delivered.reason, result);
    return rolled.exitCode === ExitCode.failed ? { ...rolled, exitCode: delivered.exitCode } : rolled;
  }
  record = delivered.record;

  // Without overlap the old version is relabelled revoked before finish (so an app reading the
  // store drops it too); finish then keeps a revoke claim on it until the target is proven to
  // reject it, so a crash or an outage from here on is resumed like an interrupted revoke.
  const retiring = !overlap && old?.versionId ? old : undefined;
  if (retiring) {
    record = await ctx.store.update(name, record.revision, { versions: revokeVersions(record, [retiring.versionId!], new Date()), state: record.state });
  }

  // 6. finish: labels move in one compare-and-set write; the rotation claim is released with it.
  await progress('finish');
  const now = new Date();
  const finished = finishRotation(record, next.versionId!, {
    overlap,
    graceMs: ctx.key.rotation.graceMs,
    now,
    test: { ok: true, at: now.toISOString(), versionId: next.versionId!, fingerprint: next.fingerprint },
  });
  const state = retiring ? { ...finished.state, claim: retireClaim(now, retiring.versionId!, operation === 'drill' ? 'drill' : operation === 'add' ? 'add' : 'rotate') } : finished.state;
  const graceUntil = finished.versions.find((v) => v.id === finished.retiredId)?.graceUntil;
  // Audited before the store commits (the claim is still held): a crash in between resumes and
  // audits again, so the store never holds a change the audit log lacks.
  await ctx.session.emit({
    type: 'audit',
    event: FINISHED[operation],
    key: name,
    outcome: 'ok',
    fingerprint: next.fingerprint,
    versionId: next.versionId!,
    detail: { previous: old?.fingerprint ?? null, overlap, graceUntil: graceUntil ?? null, reason: run.reason ?? null, ...(ctx.key.config.consumers.length ? { consumers: ctx.key.config.consumers.map((c, i) => consumerNameOf(c, i)) } : {}) },
  });
  record = await timer.run('finish', () => ctx.store.update(name, record.revision, { versions: finished.versions, state }));
  faultPoint('after-finish');
  if (retiring) {
    const proof = await proveRetiredAfterFinish(ctx, record, retiring, next, timer);
    if (proof.unavailable) {
      return result({ outcome: 'failed', ok: false, exitCode: ExitCode.unavailable, message: `rotated: ${next.fingerprint} is current; ${proof.message}` });
    }
    if (!proof.ok) return result({ outcome: 'lockout', ok: false, exitCode: ExitCode.needsHuman, message: proof.message });
  }
  const displaced = operation === 'rotate' ? await revokeDisplacedGracePairs(ctx, record, next) : '';
  const message = overlap && old
    ? `rotated: ${next.fingerprint} is current; ${old.fingerprint} is accepted until ${graceUntil}${displaced}`
    : old
      ? `rotated: ${next.fingerprint} is current; ${old.fingerprint} is revoked`
      : `${next.fingerprint} is current`;
  const consumers = ctx.key.config.consumers.length;
  const toConsumers = consumers ? `; ${consumers} consumer(s) switched and proven` : '';
  return result({ outcome: operation === 'add' ? 'added' : 'rotated', ok: true, exitCode: ExitCode.ok, message: message + toConsumers });
}

/**
 * A two-account rotation within a grace period sets the account whose pair is still in grace:
 * that admin reset replaced the grace pair's password, and the finished rotation's test proved
 * the new pair there. The grace pair is dead, so it is revoked now (its grace ends early) with
 * that evidence instead of staying listed as live until its grace end. A crash before this
 * leaves it to the grace end, which proves it the same way (one password per account).
 */
async function revokeDisplacedGracePairs(ctx: KeyContext, record: KeyRecord, next: SecretInUse): Promise<string> {
  if (!next.account) return '';
  const displaced = record.versions.filter((v) => v.label === 'previous' && v.account === next.account && v.id !== next.versionId);
  const notes: string[] = [];
  for (const version of displaced) {
    const replaced = { account: next.account, fingerprint: next.fingerprint, how: 'this rotation\'s set, then accepted by its connection test' };
    const revoked = await revokeKey(ctx, { version: version.id }, 'grace-end', { replaced });
    notes.push(revoked.ok ? `${version.fingerprint} (its account now holds ${next.fingerprint}) is revoked` : `${version.fingerprint} lost its account to ${next.fingerprint}; its revoke did not finish: ${revoked.message}`);
  }
  return notes.length ? `; ${notes.join('; ')}` : '';
}

function summarize(test: { verdict: string; probes: { name: string; outcome: string; status?: number | string; detail?: string }[] }): string {
  const failed = test.probes.filter((p) => p.outcome === 'fail');
  if (failed.length === 0) return test.verdict;
  return failed.map((p) => `${p.name}: ${p.status ?? ''} ${p.detail ?? ''}`.trim()).join('; ');
}
