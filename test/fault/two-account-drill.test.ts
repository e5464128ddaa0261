// `drill compromise` on a two-account (blue/green) LDAP key whose accounts BOTH hold a live
// version: the current pair on one account, the previous pair (still in its grace period) on the
// other. The emergency pair goes to the account not in use, the grace pair's: its set replaces
// that account's password and its connection test proves the new one there, which is the proof
// that the grace pair is rejected. Regression (fault matrix, seed 976097647, boundary #31): the
// drill asked the account again whether it accepted the NEW pair, and a refusal of that question
// ended the drill "NEEDS A HUMAN: the account does not accept [the new version] either" (exit 3),
// blaming the grace pair for an answer about another password. Also: an emergency set that rolls
// back, and (Samba AD DC) a drill after two rotations within one grace period. Real servers,
// in-process CLI through the engine's seam (the matrix's harness), failed binds counted by the
// servers themselves (slapd's log, AD's badPwdCount).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installFaultHook, type EffectCall, type Fault } from '../../src/engine/seam.ts';
import { STORE_ADAPTERS, TARGET_ADAPTERS, type StoreFixture, type TargetFixture } from '../harness/fault-matrix/adapters.ts';
import { enumerateCases, freshCase, KEY, OPERATIONS, runCase } from '../harness/fault-matrix/matrix.ts';

const drill = OPERATIONS.find((o) => o.name === 'drill compromise')!;
let store: StoreFixture;
let target: TargetFixture;

beforeAll(async () => {
  [store, target] = await Promise.all([STORE_ADAPTERS.find((a) => a.name === 'file')!.start(), TARGET_ADAPTERS.find((a) => a.name === 'ldap-two-accounts')!.start()]);
});
afterAll(async () => {
  await Promise.all([store?.stop(), target?.stop()]);
});

interface DrillJson {
  ok: boolean;
  exitCode: number;
  message: string;
  containmentProven: boolean;
  timeToContainMs?: number;
  newFingerprint?: string;
  steps: { step: string; ok: boolean; detail?: string }[];
}

/** `drill compromise KEY` with every seam call of the run answered by `hook`. */
async function drillUnder(fixture: Awaited<ReturnType<typeof freshCase>>, hook: (call: EffectCall) => Fault | undefined) {
  installFaultHook(hook);
  try {
    return await fixture.cli(['--json', '--yes', 'drill', 'compromise', KEY, '--rto', '10m']);
  } finally {
    installFaultHook(undefined);
  }
}

describe('drill compromise, two accounts, a grace pair on the account the emergency pair takes', () => {
  it('contains both live pairs with one failed bind, and never asks the accounts about the new pair again after its test', async () => {
    const fixture = await freshCase(drill, store, target);
    const before = (await fixture.record()).record!;
    const { live } = await fixture.liveValues(before);
    const grace = before.versions.find((v) => v.label === 'previous')!;
    const leaked = before.versions.find((v) => v.label === 'current')!;
    expect(grace.account).toBeDefined();
    expect(leaked.account).not.toBe(grace.account);
    expect(live).toHaveLength(2);
    for (const value of live) expect(await target.accepts(value)).toBe(true);

    // Every accept test after the emergency pair's own (baseline, then the rotation's test) is
    // answered "rejected": a drill that asks again blames the grace pair for it.
    let acceptTests = 0;
    const calls: EffectCall[] = [];
    const mark = await target.mark();
    const run = await drillUnder(fixture, (call) => {
      calls.push(call);
      if (call.boundary !== 'target' || call.operation !== 'test' || call.expect !== 'accept') return undefined;
      return ++acceptTests > 2 ? 'rejection' : undefined;
    });
    const report = JSON.parse(run.stdout) as DrillJson;
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(report).toMatchObject({ ok: true, exitCode: 0, containmentProven: true });
    expect(report.timeToContainMs).toBeGreaterThan(0);
    // The leaked pair: a bind refused with 49 on its own account. The grace pair: the emergency set and test.
    const proofs = report.steps.filter((s) => s.step.endsWith('prove-rejected'));
    expect(proofs.map((s) => [s.step, s.ok])).toEqual([['prove-rejected', true], ['previous:prove-rejected', true]]);
    expect(proofs[0]!.detail).toMatch(/^rejected after \d+ attempt/);
    expect(proofs[1]!.detail).toContain(`${grace.fingerprint} replaced on ${grace.account} by ${report.newFingerprint}`);
    expect(acceptTests).toBe(2);

    // The real directory agrees: neither old pair binds, the emergency pair does, nothing is locked.
    for (const value of live) expect(await target.accepts(value)).toBe(false);
    const after = (await fixture.record()).record!;
    const { current } = await fixture.liveValues(after);
    expect(await target.accepts(current!)).toBe(true);
    expect(after.versions.find((v) => v.label === 'current')!.account).toBe(grace.account);
    expect(after.versions.filter((v) => v.id === grace.id || v.id === leaked.id).map((v) => v.label)).toEqual(['revoked', 'revoked']);
    expect(after.state.claim).toBeUndefined();
    expect(after.state.attention).toBeUndefined();
    expect(await target.failedSince(mark)).toBe(1);
    expect(await target.locked()).toBe(false);
    fixture.scanSecrets();
  });

  it('an emergency set that is refused (rollback) revokes the grace pair whose account it was for (that account no longer takes it)', async () => {
    const fixture = await freshCase(drill, store, target);
    const before = (await fixture.record()).record!;
    const { live, current: leakedValue } = await fixture.liveValues(before);
    const grace = before.versions.find((v) => v.label === 'previous')!;
    const graceValue = live.find((v) => v !== leakedValue)!;
    const mark = await target.mark();

    // The directory refuses the emergency set: the drill rolls back, and undoing it moves the
    // account the emergency pair was for (the grace pair's) to an unknown password.
    const run = await drillUnder(fixture, (call) => (call.boundary === 'target' && call.operation === 'set' ? 'rejection' : undefined));
    const report = JSON.parse(run.stdout) as DrillJson;
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(1);
    expect(report).toMatchObject({ ok: false, exitCode: 1, containmentProven: false });
    expect(report.message).toContain(`${grace.fingerprint} (in its grace period on ${grace.account}, the account the emergency pair was for) is revoked`);
    expect(report.steps.find((s) => s.step === 'previous:prove-rejected')).toMatchObject({ ok: true });

    // The leaked pair is still the current one and works (the drill failed); the grace pair is revoked and refused.
    const after = (await fixture.record()).record!;
    expect(after.versions.find((v) => v.label === 'current')!.id).toBe(before.versions.find((v) => v.label === 'current')!.id);
    expect(after.versions.find((v) => v.id === grace.id)!.label).toBe('revoked');
    expect(after.versions.some((v) => v.label === 'previous' || v.label === 'pending')).toBe(false);
    expect(after.state.claim).toBeUndefined();
    expect(after.state.attention).toBeUndefined();
    expect(await target.accepts(leakedValue!)).toBe(true);
    expect(await target.accepts(graceValue)).toBe(false);
    expect(await target.failedSince(mark)).toBeLessThanOrEqual(target.failedBindBudgetPerRun);
    expect(await target.locked()).toBe(false);
    fixture.scanSecrets();
  });

  it('every refused accept test of the drill (the matrix cases, all of them) converges with no violation', async () => {
    const cases = (await enumerateCases(drill, 'file', 'ldap-two-accounts', store, target)).filter((c) => c.fault === 'rejection' && c.call.startsWith('target.test(accept)'));
    // The baseline and the emergency pair's test.
    expect(cases.length).toBeGreaterThanOrEqual(2);
    const violations: string[] = [];
    for (const c of cases) {
      const found = await runCase(c, drill, store, target);
      if (found.length) violations.push(`#${c.boundary} ${c.call}: ${found.join('; ')}`);
    }
    expect(violations).toEqual([]);
  });
});

describe('drill compromise, two accounts on Samba AD, after two rotations within one grace period', () => {
  let dcTarget: TargetFixture;
  beforeAll(async () => {
    dcTarget = await TARGET_ADAPTERS.find((a) => a.name === 'samba-ad-two-accounts')!.start();
  });
  afterAll(async () => {
    await dcTarget?.stop();
  });

  it('every pair still listed as live is proven rejected (the one the second rotation replaced was revoked by it), within the lockout budget', async () => {
    // add (p1 on blue), rotate (p2 on green), rotate again within the grace period (p3 on blue:
    // its set replaced p1 there, so that rotation revoked p1, proven by its own set and test).
    // The drill: p3 leaked on blue, the emergency pair goes to green (replacing p2: proven by its
    // set and test), blue is reset to an unknown password (p3: a 49).
    const twice = { ...drill, setup: [...drill.setup, ['rotate', KEY]] };
    const fixture = await freshCase(twice, store, dcTarget);
    const before = (await fixture.record()).record!;
    await fixture.liveValues(before);
    const previous = before.versions.filter((v) => v.label === 'previous');
    const p3 = before.versions.find((v) => v.label === 'current')!;
    expect(previous).toHaveLength(1);
    expect(previous[0]!.account).not.toBe(p3.account);
    const p1 = before.versions.find((v) => v.label === 'revoked')!;
    expect(p1.account).toBe(p3.account);
    const mark = await dcTarget.mark();

    const run = await fixture.cli(['--json', '--yes', 'drill', 'compromise', KEY, '--rto', '10m']);
    const report = JSON.parse(run.stdout) as DrillJson;
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(report).toMatchObject({ ok: true, exitCode: 0, containmentProven: true });
    const proofs = report.steps.filter((s) => s.step.endsWith('prove-rejected'));
    expect(proofs.every((s) => s.ok && !s.detail?.startsWith('not probed'))).toBe(true);
    expect(proofs, JSON.stringify(proofs)).toHaveLength(2);

    const after = (await fixture.record()).record!;
    expect(after.versions.filter((v) => v.label === 'previous')).toEqual([]);
    expect(after.state.attention).toBeUndefined();
    expect(await dcTarget.failedSince(mark)).toBeLessThanOrEqual(dcTarget.failedBindBudgetPerRun);
    expect(await dcTarget.locked()).toBe(false);
    fixture.scanSecrets();
  });
});
