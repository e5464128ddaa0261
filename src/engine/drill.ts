import { consumerNameOf } from '../config/validate.js';
import { ExitCode } from '../core/errors.js';
import { versionByLabel } from '../core/model.js';
import { readExisting, secretOf, type KeyContext } from './key-context.js';
import { waitForVerdict } from './propagation.js';
import type { SecretInUse } from '../targets/target.js';
import { convergeFirst } from './converge.js';
import { StepTimer, type KeyResult, type StepRecord } from './result.js';
import { revokeKey } from './revoke.js';
import { rotateKey } from './rotate.js';

export interface DrillReport {
  key: string;
  scenario: 'compromise';
  dryRun: boolean;
  ok: boolean;
  exitCode: number;
  message: string;
  leakedFingerprint: string;
  newFingerprint?: string;
  rtoMs: number;
  /** From "leak declared" until the target was proven to reject the leaked version. */
  timeToContainMs?: number;
  /** False when the lockout guard forbade the failed bind that would prove the rejection (LDAP). */
  containmentProven?: boolean;
  /** From "leak declared" until the new version passed the connection test. */
  timeToRecoverMs?: number;
  withinRto?: boolean;
  steps: StepRecord[];
  plan?: string[];
}

/**
 * `drill compromise`: treat the current version as leaked and contain it for real: emergency
 * rotation with no overlap, the leaked version revoked, proof that the target rejects it and
 * accepts the new one (with the write probe), timed against the recovery objective.
 */
export async function drillCompromise(ctx: KeyContext, options: { rtoMs: number; dryRun: boolean }): Promise<DrillReport> {
  const report = await runDrill(ctx, options);
  // Every real drill's end, however it ended, is one event (webhooks announce drill.finished).
  if (!report.dryRun) await ctx.session.emit({ type: 'drill-finished', key: report.key, ok: report.ok, report });
  return report;
}

async function runDrill(ctx: KeyContext, options: { rtoMs: number; dryRun: boolean }): Promise<DrillReport> {
  const name = ctx.key.name;
  if (!options.dryRun) {
    // A crashed run first: until it is converged the key may have no current version to "leak".
    const converging = new StepTimer(ctx.session.stepEvents(ctx.key.name));
    const ended = await convergeFirst(ctx, converging);
    if (ended && ended.outcome !== 'resumed') {
      const leakedFingerprint = (await ctx.store.read(name).then((r) => r && versionByLabel(r, 'current')))?.fingerprint ?? 'unknown';
      return { key: name, scenario: 'compromise', leakedFingerprint, rtoMs: options.rtoMs, dryRun: false, ok: false, exitCode: ended.exitCode || ExitCode.failed, steps: converging.steps, containmentProven: false, withinRto: false, message: `drill not started: ${ended.message}` };
    }
  }
  const { current } = await readExisting(ctx);
  const base = { key: name, scenario: 'compromise' as const, leakedFingerprint: current.fingerprint, rtoMs: options.rtoMs };
  if (options.dryRun) {
    const target = ctx.key.config.target;
    return {
      ...base,
      dryRun: true,
      ok: true,
      exitCode: ExitCode.ok,
      message: 'dry run: nothing was touched',
      steps: [],
      plan: [
        `treat ${current.fingerprint} (created ${current.createdAt}) as leaked`,
        `baseline: confirm the ${target.type} target accepts it today`,
        `claim ${name} in store "${ctx.key.storeName}" and generate a new ${ctx.key.policy.type}`,
        `apply it with no overlap (${target.type === 'scim' ? `applier: ${target.applier.type}` : `password modify, ${target.apply.mode}`}), replacing the leaked version`,
        'test the new version (with the write probe) until it is accepted or the propagation timeout ends',
        ...ctx.key.config.consumers.map((c, i) => `consumer ${consumerNameOf(c, i)} (${c.type}): validate, switch to and prove the new version (it presents the leaked one until then)`),
        `revoke ${current.fingerprint} in the store and at the target, and prove it is rejected`,
        'revoke any older version still in its grace period, so only the new version works',
        `report time-to-contain and time-to-recover against the ${Math.round(options.rtoMs / 1000)}s objective`,
      ],
    };
  }

  const declared = Date.now();
  const steps: StepRecord[] = [];
  const leaked = await secretOf(ctx, current);
  const baseline = await waitForVerdict(ctx.target, leaked, 'accept', { timeoutMs: 0 });
  steps.push({ step: 'baseline', ok: baseline.test.ok, ms: baseline.ms, endedAtMs: Date.now() - declared, detail: `leaked version ${baseline.test.verdict}` });
  if (!baseline.test.ok) {
    const exitCode = baseline.test.verdict === 'unreachable' ? ExitCode.unavailable : ExitCode.failed;
    return { ...base, dryRun: false, ok: false, exitCode, steps, containmentProven: false, withinRto: false, message: `drill aborted: the target does not accept the current version before the drill (${baseline.test.verdict}); run "provkey test ${name}"` };
  }

  const offset = Date.now() - declared;
  const rotation = await rotateKey(ctx, { noOverlap: true, operation: 'drill', writeProbe: true, reason: 'compromise drill' });
  for (const step of rotation.steps) steps.push({ ...step, ...(step.endedAtMs !== undefined ? { endedAtMs: step.endedAtMs + offset } : {}) });
  if (rotation.outcome !== 'rotated') {
    // Skipped (another run holds the key), resumed or rolled back: nothing was contained by this drill.
    const lost = rotation.outcome === 'rolled_back' ? await revokeGracePairsOfRolledBackAccount(ctx, leaked, steps, declared) : undefined;
    const exitCode = lost && !lost.ok ? lost.exitCode : rotation.exitCode || ExitCode.failed;
    return { ...base, dryRun: false, ok: false, exitCode, steps, containmentProven: false, withinRto: false, message: `drill failed: the emergency rotation did not run (${rotation.outcome}: ${rotation.message})${lost ? `; ${lost.message}` : ''}` };
  }
  // Older versions still in their grace period must not outlive the drill: one key works afterwards.
  let previous: KeyResult | undefined;
  if (rotation.ok) {
    const after = await ctx.store.read(name);
    if (after?.versions.some((v) => v.label === 'previous')) {
      // Two accounts: the emergency pair went to the account not in use, the grace pair's. Its
      // set replaced that account's password and its test proved the new one there, which proves
      // the grace pair rejected (asking the account again about the new pair would prove nothing
      // more about the old one).
      const emergency = versionByLabel(after, 'current');
      const replaced = emergency?.account && emergency.fingerprint === rotation.fingerprint && rotation.steps.some((s) => s.step === 'set' && s.ok) && rotation.steps.some((s) => s.step === 'test' && s.ok)
        ? { account: emergency.account, fingerprint: emergency.fingerprint, how: 'the emergency set, then its connection test' }
        : undefined;
      previous = await revokeKey(ctx, { which: 'previous' }, 'drill', replaced ? { replaced } : {});
      const shift = Date.now() - declared - previous.ms;
      for (const step of previous.steps) steps.push({ ...step, step: `previous:${step.step}`, ...(step.endedAtMs !== undefined ? { endedAtMs: step.endedAtMs + shift } : {}) });
    }
  }
  const previousOk = previous?.ok ?? true;
  const at = (name: string) => steps.find((s) => s.step === name && s.ok)?.endedAtMs;
  // Recovered once the new version works at the target AND every consumer presents it (its last proof).
  const consumerProofs = steps.filter((s) => s.step === 'consumer-prove' && s.ok).map((s) => s.endedAtMs ?? Infinity);
  const timeToRecoverMs = rotation.ok ? (consumerProofs.length ? Math.max(at('test') ?? 0, ...consumerProofs) : at('test')) : undefined;
  // Contained once EVERY version that could still be used is proven rejected: the leaked one and each grace version.
  const proofs = steps.filter((s) => s.step === 'prove-rejected' || s.step === 'previous:prove-rejected');
  const unprobed = proofs.some((s) => s.detail?.startsWith('not probed'));
  const containmentProven = rotation.ok && previousOk && proofs.length > 0 && proofs.every((s) => s.ok) && !unprobed;
  const timeToContainMs = containmentProven ? Math.max(...proofs.map((s) => s.endedAtMs ?? Infinity)) : undefined;
  const worst = Math.max(timeToContainMs ?? Infinity, timeToRecoverMs ?? Infinity);
  const withinRto = containmentProven && worst <= options.rtoMs;
  const exitCode = !rotation.ok
    ? rotation.exitCode
    : !previousOk
      ? previous!.exitCode
      : !containmentProven
        ? ExitCode.needsHuman
        : withinRto
          ? ExitCode.ok
          : ExitCode.failed;
  const report: DrillReport = {
    ...base,
    dryRun: false,
    ok: exitCode === ExitCode.ok,
    exitCode,
    message: !rotation.ok
      ? `drill failed: ${rotation.message}`
      : !previousOk
        ? `the leaked version was retired, but an older version still in its grace period could not be proven revoked: ${previous!.message}`
        : !containmentProven
          ? 'NOT CONTAINED: the leaked version was retired, but its rejection was not proven (the lockout guard forbids the failed bind that would prove it); check it by hand'
          : withinRto
            ? `contained and recovered within the ${Math.round(options.rtoMs / 1000)}s objective`
            : `contained and recovered, but slower than the ${Math.round(options.rtoMs / 1000)}s objective`,
    ...(rotation.fingerprint ? { newFingerprint: rotation.fingerprint } : {}),
    ...(timeToContainMs !== undefined ? { timeToContainMs } : {}),
    ...(timeToRecoverMs !== undefined ? { timeToRecoverMs } : {}),
    withinRto,
    containmentProven,
    steps,
  };
  await ctx.session.emit({
    type: 'audit',
    event: 'drill.report',
    key: name,
    outcome: report.ok ? 'ok' : 'failed',
    fingerprint: leaked.fingerprint,
    detail: { newFingerprint: report.newFingerprint ?? null, timeToContainMs: timeToContainMs ?? null, timeToRecoverMs: timeToRecoverMs ?? null, rtoMs: options.rtoMs, withinRto },
  });
  return report;
}

/**
 * Two accounts, emergency rotation rolled back: the emergency pair was for the account of the
 * pair still in its grace period, and undoing it leaves that account on an unknown password
 * (or the set already replaced it). That grace pair is revoked and proven rejected, as a drill
 * does with every grace pair, so the store never lists as live a pair that no longer binds.
 */
async function revokeGracePairsOfRolledBackAccount(ctx: KeyContext, leaked: SecretInUse, steps: StepRecord[], declared: number): Promise<{ ok: boolean; exitCode: number; message: string } | undefined> {
  const account = ctx.target.accountFor?.(leaked);
  if (!account) return undefined;
  const record = await ctx.store.read(ctx.key.name);
  const lost = record?.versions.filter((v) => v.label === 'previous' && v.account === account) ?? [];
  const messages: string[] = [];
  let worst: KeyResult | undefined;
  for (const version of lost) {
    const revoked = await revokeKey(ctx, { version: version.id }, 'drill');
    const shift = Date.now() - declared - revoked.ms;
    for (const step of revoked.steps) steps.push({ ...step, step: `previous:${step.step}`, ...(step.endedAtMs !== undefined ? { endedAtMs: step.endedAtMs + shift } : {}) });
    messages.push(revoked.ok ? `${version.fingerprint} (in its grace period on ${account}, the account the emergency pair was for) is revoked` : revoked.message);
    if (!revoked.ok && (!worst || revoked.exitCode === ExitCode.needsHuman)) worst = revoked;
  }
  if (messages.length === 0) return undefined;
  return { ok: !worst, exitCode: worst?.exitCode ?? ExitCode.ok, message: messages.join('; ') };
}
