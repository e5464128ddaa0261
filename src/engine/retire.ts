import type { KeyRecord } from '../core/model.js';
import type { ApplyResult, SecretInUse } from '../targets/target.js';
import type { KeyContext } from './key-context.js';
import { faultPoint } from './fault.js';
import { waitForVerdict } from './propagation.js';
import type { StepTimer } from './result.js';

/**
 * What proving a retirement found. `unavailable`: the target could not be reached, so nothing
 * is known: the value is kept and the caller leaves a claim the next run resumes (exit 5).
 * Otherwise a failed proof is positive evidence (the target still accepts it, or refused to
 * retire it): exit 3, because a revoked key the target still accepts needs a human now.
 */
export interface RetireProof {
  ok: boolean;
  message: string;
  skipped?: boolean;
  unavailable?: boolean;
}

/**
 * Evidence this run already holds that an account's password was replaced: a set (an admin
 * reset, every earlier password of the account gone) and then a passing connection test of the
 * new value, on that account. On a two-account key a drill's emergency set goes to the account
 * of the pair still in its grace period, so that pair's rejection is proven by the drill's own
 * set and test: asking the account again would prove nothing more (and a refusal of the NEW
 * value would say nothing about the old one).
 */
export interface ReplacedOnAccount {
  /** The account (VersionMeta.account) whose password was replaced. */
  account: string;
  /** The version that replaced it, proven accepted there. */
  fingerprint: string;
  /** How it was proven, for the step's detail (e.g. "set, then accepted by the connection test"). */
  how: string;
}

/** Makes the target reject `old`, proves the rejection, and (once proven) disables it in the store. */
export async function proveRetired(
  ctx: KeyContext,
  old: SecretInUse,
  timer: StepTimer,
  options: { current?: SecretInUse; probe?: 'auto' | 'always'; disable?: boolean; noFailedBind?: boolean; replaced?: ReplacedOnAccount } = {},
): Promise<RetireProof> {
  const name = ctx.key.name;
  await ctx.session.emit({ type: 'step-start', key: name, step: 'retire' });
  const retired = await timer.run(
    'retire',
    () => ctx.target.retire({ old, ...(options.current ? { current: options.current } : {}) }),
    (r) => (r.ok ? { ok: true, ...(r.detail ? { detail: r.detail } : {}) } : { ok: false, detail: `${r.reason}: ${r.detail}` }),
  );
  faultPoint('after-retire');
  const outcome = (retired.ok && provenByReplacement(old, timer, options.replaced)) || await proveRejection(ctx, old, timer, retired, options.probe ?? 'auto', options.current, options.noFailedBind ?? false);
  // The value is erased only once the proof is done: a run killed while proving, or one that
  // could not reach the target, leaves it for the next run to prove again. (Its label already
  // says revoked, so apps reading the store have stopped accepting it.)
  if (old.versionId && options.disable !== false && !outcome.unavailable) await ctx.store.disableVersion(name, old.versionId);
  return outcome;
}

async function proveRejection(
  ctx: KeyContext,
  old: SecretInUse,
  timer: StepTimer,
  retired: ApplyResult,
  probe: 'auto' | 'always',
  current: SecretInUse | undefined,
  noFailedBind: boolean,
): Promise<RetireProof> {
  const name = ctx.key.name;
  const guarded = ctx.target.capabilities.negativeProbe === 'forbidden' && probe !== 'always';
  if (guarded && !retired.ok && retired.reason === 'unreachable') {
    return { ok: false, unavailable: true, message: `retiring ${old.fingerprint} could not reach the target (${retired.detail}); the next run retires and proves it` };
  }
  if (guarded && !retired.ok) {
    // Without a probe, a failed retire is all we know: never call that a revoke.
    await ctx.session.emit({ type: 'audit', event: 'retire.unproven', key: name, outcome: 'failed', fingerprint: old.fingerprint, ...(old.versionId ? { versionId: old.versionId } : {}), detail: { reason: retired.reason } });
    return { ok: false, message: `NEEDS A HUMAN: ${old.fingerprint} is revoked in the store but retiring it at the target failed (${retired.reason}: ${retired.detail}), and the lockout guard forbids probing it` };
  }
  if (guarded) {
    timer.steps.push({ step: 'prove-rejected', ok: true, ms: 0, endedAtMs: timer.elapsed(), detail: 'not probed: a failed bind could lock the account (lockout guard)' });
    return { ok: true, skipped: true, message: `${old.fingerprint} retired (rejection not probed: lockout guard)` };
  }
  const costly = ctx.target.capabilities.negativeProbe === 'costly' && probe !== 'always';
  const byCurrent = current !== undefined && current.value !== old.value && oneSecretHolds(ctx, old, current);
  if (costly && ((noFailedBind && byCurrent) || !ctx.session.spendFailedBind(name))) {
    return proveWithoutFailedBind(ctx, old, timer, retired, current);
  }
  const proof = await timer.run(
    'prove-rejected',
    () => waitForVerdict(ctx.target, old, 'reject'),
    (w) => ({ ok: w.test.ok, detail: `${w.test.verdict} after ${w.attempts} attempt(s)` }),
  );
  timer.tests.push(proof.test);
  if (proof.test.ok) return { ok: true, message: `${old.fingerprint} is rejected by the target` };
  if (proof.test.verdict === 'unreachable') {
    // No answer is no evidence either way: never "needs a human", never a success.
    await ctx.session.emit({ type: 'audit', event: 'retire.unavailable', key: name, outcome: 'failed', fingerprint: old.fingerprint, ...(old.versionId ? { versionId: old.versionId } : {}), detail: { verdict: proof.test.verdict } });
    return { ok: false, unavailable: true, message: `proving ${old.fingerprint} rejected could not reach the target; the next run proves it` };
  }
  const why = retired.ok ? `the target still ${proof.test.verdict === 'accepted' ? 'accepts' : 'cannot be shown to reject'} it` : `retiring it failed (${retired.ok ? '' : `${retired.reason}: ${retired.detail}`})`;
  await ctx.session.emit({
    type: 'audit',
    event: 'retire.unproven',
    key: name,
    outcome: 'failed',
    fingerprint: old.fingerprint,
    ...(old.versionId ? { versionId: old.versionId } : {}),
    detail: { verdict: proof.test.verdict },
  });
  return { ok: false, message: `NEEDS A HUMAN: ${old.fingerprint} is revoked in the store but ${why}` };
}

/** `old` is on the account this run already replaced the password of (and proved the new one there): no call, no failed bind. */
function provenByReplacement(old: SecretInUse, timer: StepTimer, replaced: ReplacedOnAccount | undefined): RetireProof | undefined {
  if (!replaced || old.account === undefined || old.account !== replaced.account || old.fingerprint === replaced.fingerprint) return undefined;
  const detail = `${old.fingerprint} replaced on ${replaced.account} by ${replaced.fingerprint} (${replaced.how}): one password per account, no bind needed`;
  timer.steps.push({ step: 'prove-rejected', ok: true, ms: 0, endedAtMs: timer.elapsed(), detail });
  return { ok: true, message: `${old.fingerprint} is rejected: ${detail}` };
}

/**
 * Whether `old` and `current` are passwords of one account with one secret, so that `current`
 * binding proves `old` does not: a target without overlap, or a two-account key's versions
 * on the same account.
 */
function oneSecretHolds(ctx: KeyContext, old: SecretInUse, current: SecretInUse): boolean {
  if (!ctx.target.capabilities.overlap) return true;
  return old.account !== undefined && old.account === current.account;
}

/**
 * This run already spent its one failed bind on the key's directory, or it is converging an
 * interrupted proof and its own operation still needs binds (a failed bind would hold back the
 * directory's lockout guard for the rest of the run). A target with one secret per account proves the
 * old one rejected by a successful bind of the one that replaced it; otherwise the rejection is
 * not probed (reported as such: a drill then does not count it as contained).
 */
async function proveWithoutFailedBind(ctx: KeyContext, old: SecretInUse, timer: StepTimer, retired: ApplyResult, current: SecretInUse | undefined): Promise<RetireProof> {
  if (!current || current.value === old.value || !oneSecretHolds(ctx, old, current)) {
    if (!retired.ok) {
      const unavailable = retired.reason === 'unreachable';
      return { ok: false, ...(unavailable ? { unavailable: true } : {}), message: `${unavailable ? '' : 'NEEDS A HUMAN: '}retiring ${old.fingerprint} failed (${retired.reason}: ${retired.detail}), and this run's failed-bind budget is spent` };
    }
    const evidence = await provenByIdentify(ctx, old, timer);
    if (evidence) return evidence;
    timer.steps.push({ step: 'prove-rejected', ok: true, ms: 0, endedAtMs: timer.elapsed(), detail: "not probed: this run's failed-bind budget is spent" });
    return { ok: true, skipped: true, message: `${old.fingerprint} retired (rejection not probed: failed-bind budget)` };
  }
  const check = await timer.run(
    'prove-rejected',
    () => waitForVerdict(ctx.target, current, 'accept', { timeoutMs: 0 }),
    (w) => ({ ok: w.test.ok, detail: `${current.fingerprint} ${w.test.verdict}: one password per account, so ${old.fingerprint} is not (no failed bind spent)` }),
  );
  timer.tests.push(check.test);
  if (check.test.ok) return { ok: true, message: `${old.fingerprint} is rejected: the account runs on ${current.fingerprint}` };
  if (check.test.verdict === 'unreachable') return { ok: false, unavailable: true, message: `proving ${old.fingerprint} rejected could not reach the target; the next run proves it` };
  return { ok: false, message: `NEEDS A HUMAN: ${old.fingerprint} is revoked in the store, but the account does not accept ${current.fingerprint} either; check it by hand` };
}

/**
 * A two-account key whose leaked version's account is not the current one: the current pair
 * binding proves nothing about the other account, but the target's identify can (LDAP: the
 * stored userPassword read as the admin, no bind; a bind only within that account's own budget).
 */
async function provenByIdentify(ctx: KeyContext, old: SecretInUse, timer: StepTimer): Promise<RetireProof | undefined> {
  if (!old.account || !ctx.target.identify) return undefined;
  const started = Date.now();
  const identification = await ctx.target.identify([old]);
  const verdict = identification.verdicts[old.fingerprint];
  // Not decided (no free evidence, budget spent): the caller reports it as not probed.
  if (verdict !== 'rejected' && verdict !== 'accepted' && verdict !== 'unreachable') return undefined;
  timer.steps.push({ step: 'prove-rejected', ok: verdict === 'rejected', ms: Date.now() - started, endedAtMs: timer.elapsed(), detail: identification.detail });
  if (verdict === 'rejected') return { ok: true, message: `${old.fingerprint} is rejected on ${old.account} (${identification.detail})` };
  if (verdict === 'accepted') return { ok: false, message: `NEEDS A HUMAN: ${old.fingerprint} is revoked in the store but ${old.account} still accepts it` };
  return { ok: false, unavailable: true, message: `proving ${old.fingerprint} rejected could not reach the target; the next run proves it` };
}

/**
 * One version of a revoke (relabelled `revoked`, claim held): retire and prove it, store how
 * that ended in the claim, and only then erase its value. Unreachable leaves the value and the
 * claim for the next run.
 */
export async function settleRetired(
  ctx: KeyContext,
  record: KeyRecord,
  old: SecretInUse,
  timer: StepTimer,
  current: SecretInUse | undefined,
  options: { noFailedBind?: boolean; replaced?: ReplacedOnAccount } = {},
): Promise<{ proof: RetireProof; record: KeyRecord }> {
  const proof = await proveRetired(ctx, old, timer, { ...(current ? { current } : {}), disable: false, ...options });
  if (proof.unavailable || !old.versionId) return { proof, record };
  const claim = record.state.claim!;
  const outcomes = { ...claim.outcomes, [old.versionId]: proof.ok ? 'proven' : proof.message };
  const updated = await ctx.store.update(ctx.key.name, record.revision, { versions: record.versions, state: { ...record.state, claim: { ...claim, outcomes } } });
  await ctx.store.disableVersion(ctx.key.name, old.versionId);
  return { proof, record: (await ctx.store.read(ctx.key.name)) ?? updated };
}
