import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/located.ts';
import { newClaim } from '../../src/core/claim.ts';
import { fingerprint } from '../../src/core/fingerprint.ts';
import { versionByLabel, type KeyRecord } from '../../src/core/model.ts';
import { revokeVersions } from '../../src/core/transitions.ts';
import { addKey } from '../../src/engine/add.ts';
import { forEachKey } from '../../src/engine/batch.ts';
import { drillCompromise } from '../../src/engine/drill.ts';
import { runDue } from '../../src/engine/due.ts';
import { openKey, type KeyContext } from '../../src/engine/key-context.ts';
import { rotateKey } from '../../src/engine/rotate.ts';
import { Session } from '../../src/engine/session.ts';
import { keyStatuses } from '../../src/engine/status.ts';
import { ScriptedTargetDouble } from './scripted-target-double.ts';

// Regression tests for issue 7 ("trust under faults"), items 1, 3, 4, 5, 6: each failed on the
// engine before its fix. Real embedded file store; the target is a scripted double (engine
// decisions only: every real target is proven against its server in test/integration and in
// the fault matrix, test/fault/matrix.test.ts).
let dir: string;
let target: ScriptedTargetDouble;

function session(options: { grace?: string; env?: NodeJS.ProcessEnv } = {}) {
  const config = parseConfigText(
    `keys:\n  k:\n    rotation: { interval: 30d, grace: ${options.grace ?? '1h'} }\n    target: { type: scim, url: "http://127.0.0.1:9/scim/v2", applier: { type: store } }`,
    path.join(dir, 'provkey.yaml'),
  );
  return new Session({ config, ...(options.env ? { env: { ...process.env, ...options.env } } : {}), openTarget: async () => target });
}

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-trust-'));
  writeFileSync(path.join(dir, 'provkey.yaml'), '');
  target = new ScriptedTargetDouble();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function addedKey(s: Session): Promise<KeyContext> {
  const ctx = await openKey(s, 'k');
  expect((await addKey(ctx)).outcome).toBe('added');
  return ctx;
}

async function record(ctx: KeyContext): Promise<KeyRecord> {
  return (await ctx.store.read('k'))!;
}

describe('item 1: an outage is never a lockout', () => {
  it('the app down for the whole rotate: exit 5, no lockout, the next run rotates', async () => {
    const ctx = await addedKey(session());
    const current = versionByLabel(await record(ctx), 'current')!;
    target.down = true;
    const result = await rotateKey(ctx);
    expect(result.exitCode).toBe(5);
    expect(result.message).not.toMatch(/LOCKOUT/);
    const after = await record(ctx);
    expect(after.state.lockout).toBeUndefined();
    expect(versionByLabel(after, 'current')!.id).toBe(current.id);

    target.down = false;
    const next = await rotateKey(await openKey(session(), 'k'));
    expect(next.exitCode).toBe(0);
    const done = await record(ctx);
    expect(done.versions.filter((v) => v.label === 'current')).toHaveLength(1);
    expect(done.versions.some((v) => v.label === 'pending')).toBe(false);
    expect(done.state.claim).toBeUndefined();
  });

  it('down after the set: the new token stays valid at the app, so the store keeps it pending (with its value) until a run proves which one works', async () => {
    const ctx = await addedKey(session());
    const set = target.set.bind(target);
    target.set = async (change) => {
      const applied = await set(change);
      target.down = true; // the app goes away right after it took the new token
      return applied;
    };
    const result = await rotateKey(ctx);
    expect(result.exitCode).toBe(5);
    const after = await record(ctx);
    expect(after.state.lockout).toBeUndefined();
    const pending = versionByLabel(after, 'pending')!;
    expect(pending, 'the unproven new version is kept pending, not marked failed').toBeDefined();
    const value = await ctx.store.readSecret('k', pending.id);
    expect(target.accepted.has(value), 'the app accepts it').toBe(true);
    expect(after.state.claim, 'the claim is kept for the next run').toBeDefined();

    target.down = false;
    target.set = set;
    const resumed = await rotateKey(await openKey(session(), 'k'));
    expect(resumed.exitCode).toBe(0);
    const done = await record(ctx);
    expect(done.versions.filter((v) => v.label === 'current')).toHaveLength(1);
    expect(done.versions.some((v) => v.label === 'pending')).toBe(false);
    // Every token the app accepts is one the store knows as live.
    const live = done.versions.filter((v) => v.label === 'current' || v.label === 'previous');
    expect(target.accepted.size).toBe(live.length);
  });

  it('the proof that a replaced version is rejected cannot reach the app: exit 5, its value and a claim are kept, and the next run proves it', async () => {
    const ctx = await addedKey(session({ grace: '0' }));
    const old = versionByLabel(await record(ctx), 'current')!;
    const test = target.test.bind(target);
    target.test = async (secret, options) => (options.expect === 'reject' ? { ...(await test(secret, options)), verdict: 'unreachable', ok: false } : test(secret, options));
    const result = await rotateKey(ctx);
    expect(result.exitCode, result.message).toBe(5);
    const after = await record(ctx);
    expect(after.state.attention, 'no evidence is not "needs a human"').toBeUndefined();
    expect(after.versions.find((v) => v.id === old.id)!.label).toBe('revoked');
    expect(await ctx.store.readSecret('k', old.id), 'the value stays until its rejection is proven').toBeTruthy();
    expect(after.state.claim?.operation).toBe('revoke');

    target.test = test;
    const resumed = await rotateKey(await openKey(session({ grace: '0' }), 'k'));
    expect(resumed.exitCode, resumed.message).toBe(0);
    expect(resumed.outcome).toBe('resumed');
    const done = await record(ctx);
    expect(done.state.claim).toBeUndefined();
    await expect(ctx.store.readSecret('k', old.id)).rejects.toThrow();
  });

  it('converging an interrupted LDAP-like change without identify tests one candidate once (no failed binds beyond the budget)', async () => {
    const ctx = await addedKey(session({ grace: '0' }));
    target.capabilities = { overlap: false, negativeProbe: 'costly', propagationTimeoutMs: 1000 };
    // A rotation that stored "setting" and died: the target never got the new version.
    const base = await record(ctx);
    const current = versionByLabel(base, 'current')!;
    const created = await ctx.store.addVersion('k', base.revision, 'never-applied-password-0123456789', { label: 'pending', fingerprint: fingerprint('never-applied-password-0123456789'), createdAt: new Date().toISOString(), labelledAt: new Date().toISOString(), origin: 'generated' });
    const claim = newClaim('rotate', { host: hostname(), pid: process.pid }, new Date(), { step: 'setting', fromVersionId: current.id, pendingVersionId: created.versionId, overlap: false });
    await ctx.store.update('k', created.record.revision, { versions: created.record.versions, state: { ...created.record.state, claim } });

    const refusedBefore = target.refusals.length;
    const result = await rotateKey(await openKey(session({ grace: '0' }), 'k'));
    const refusedDuringConvergence = target.refusals.slice(refusedBefore).filter((f) => f === fingerprint('never-applied-password-0123456789'));
    expect(refusedDuringConvergence.length, 'failed binds with the never-applied password').toBeLessThanOrEqual(1);
    expect(result.outcome).not.toBe('lockout');
    expect((await record(ctx)).state.lockout).toBeUndefined();
  });
});

describe('item 3: a stale claim is converged before anything needs a current version', () => {
  let crashes = 0;
  /** A grace-0 rotation killed after the old version was relabelled revoked and before finish. */
  async function crashedBeforeFinish(ctx: KeyContext): Promise<void> {
    const base = await record(ctx);
    const current = versionByLabel(base, 'current')!;
    const value = `rotated-in-value-${++crashes}-0123456789abcdef`;
    const created = await ctx.store.addVersion('k', base.revision, value, { label: 'pending', fingerprint: fingerprint(value), createdAt: new Date().toISOString(), labelledAt: new Date().toISOString(), origin: 'generated' });
    target.accepted.add(value);
    target.accepted.delete(await ctx.store.readSecret('k', current.id));
    const claim = newClaim('rotate', { host: hostname(), pid: process.pid }, new Date(), { step: 'tested', fromVersionId: current.id, pendingVersionId: created.versionId, overlap: false });
    await ctx.store.update('k', created.record.revision, { versions: revokeVersions(created.record, [current.id], new Date()), state: { ...created.record.state, claim } });
  }

  it('rotate finishes it instead of "no current version (run provkey add)"', async () => {
    const ctx = await addedKey(session({ grace: '0' }));
    await crashedBeforeFinish(ctx);
    const result = await rotateKey(await openKey(session({ grace: '0' }), 'k'));
    expect(result.exitCode, result.message).toBe(0);
    const done = await record(ctx);
    expect(done.versions.filter((v) => v.label === 'current')).toHaveLength(1);
    expect(done.state.claim).toBeUndefined();
  });

  it('rotate --due and a drill converge it too', async () => {
    const ctx = await addedKey(session({ grace: '0' }));
    await crashedBeforeFinish(ctx);
    expect((await runDue(await openKey(session({ grace: '0' }), 'k'))).exitCode).toBe(0);
    await crashedBeforeFinish(ctx);
    const drill = await drillCompromise(await openKey(session({ grace: '0' }), 'k'), { rtoMs: 60_000, dryRun: false });
    expect(drill.exitCode, drill.message).toBe(0);
  });

  it('status says the key needs attention (state "interrupted", a problem), never "empty"', async () => {
    const ctx = await addedKey(session({ grace: '0' }));
    await crashedBeforeFinish(ctx);
    const [status] = await keyStatuses(session({ grace: '0' }), ['k']);
    expect(status!.state).toBe('interrupted');
    expect(status!.problem).toMatch(/provkey rotate k/);
  });
});

describe('item 4: a drill that did not prove containment never exits 0', () => {
  it('the lockout guard forbade the proof: exit 3, containmentProven false, no time to contain', async () => {
    const ctx = await addedKey(session({ grace: '0' }));
    target.capabilities = { overlap: false, negativeProbe: 'forbidden', propagationTimeoutMs: 300 };
    const report = await drillCompromise(ctx, { rtoMs: 60_000, dryRun: false });
    expect(report.containmentProven).toBe(false);
    expect(report.ok).toBe(false);
    expect(report.exitCode).not.toBe(0);
    expect(report.timeToContainMs).toBeUndefined();
  });

  it('time to contain includes every grace version, not only the leaked one', async () => {
    const s = session();
    const ctx = await addedKey(s);
    await rotateKey(ctx); // a grace version now waits out its period
    const report = await drillCompromise(ctx, { rtoMs: 600_000, dryRun: false });
    expect(report.exitCode, report.message).toBe(0);
    const graceProof = report.steps.find((step) => step.step === 'previous:prove-rejected');
    expect(graceProof?.ok).toBe(true);
    expect(report.timeToContainMs).toBeGreaterThanOrEqual(graceProof!.endedAtMs!);
  });
});

describe('item 5: rotate --due re-checks due-ness after the claim', () => {
  it('a key another run rotated between the due check and the claim is not rotated twice', async () => {
    // A key whose current version is 31 days old: due.
    const ctx = await openKey(session(), 'k');
    const value = 'an-old-token-that-is-due-0123456789';
    const old = new Date(Date.now() - 31 * 86_400_000).toISOString();
    const created = await ctx.store.addVersion('k', undefined, value, { label: 'current', fingerprint: fingerprint(value), createdAt: old, labelledAt: old, origin: 'imported' });
    expect(versionByLabel(created.record, 'current')).toBeDefined();
    target.accepted.add(value);
    // Another cron host rotates it while this run is between its due check and its claim
    // (expiresAt runs exactly there).
    const other = await openKey(session(), 'k');
    target.expiresAt = async () => {
      target.expiresAt = undefined;
      expect((await rotateKey(other)).outcome).toBe('rotated');
      return undefined;
    };
    const result = await runDue(await openKey(session(), 'k'));
    expect(result.exitCode).toBe(0);
    const done = await record(ctx);
    expect(done.versions.map((v) => v.label), 'one rotation, not two').toEqual(['previous', 'current']);
    expect(done.state.claim).toBeUndefined();
  });
});

describe('item 6: contention is not failure', () => {
  it('a file store locked by another live process: the key is skipped cleanly, nothing left behind', async () => {
    const s = session({ env: { PROVKEY_LOCK_TIMEOUT_MS: '50' } });
    const ctx = await addedKey(s);
    const before = await record(ctx);
    // Another provkey holds the store's write lock: a write transaction left open on the database.
    const other = new DatabaseSync(path.join(dir, '.provkey', 'store.enc'));
    other.exec('BEGIN IMMEDIATE');
    const [result] = await forEachKey(s, ['k'], 'rotate', (c) => rotateKey(c));
    expect(result!.exitCode, result!.message).toBe(0);
    expect(result!.outcome).toBe('skipped');
    expect(result!.message).not.toMatch(/rolled back/);
    other.exec('ROLLBACK');
    other.close();
    const after = await record(ctx);
    expect(after.versions).toEqual(before.versions);
    expect(after.state.claim).toBeUndefined();
    expect(target.accepted.size, 'no new token was handed to the app').toBe(1);
  });
});
