import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/located.ts';
import { newClaim } from '../../src/core/claim.ts';
import { AdapterError } from '../../src/core/errors.ts';
import { versionByLabel } from '../../src/core/model.ts';
import { addKey } from '../../src/engine/add.ts';
import { forEachKey } from '../../src/engine/batch.ts';
import { drillCompromise } from '../../src/engine/drill.ts';
import { openKey } from '../../src/engine/key-context.ts';
import { revokeKey } from '../../src/engine/revoke.ts';
import { rotateKey } from '../../src/engine/rotate.ts';
import { Session } from '../../src/engine/session.ts';
import { keyStatuses } from '../../src/engine/status.ts';
import { ScriptedTargetDouble } from './scripted-target-double.ts';

// Engine decisions against the real file store and a scripted target double: what is
// reported, what is left in the store, and that nothing is called a success that is not.
let dir: string;
let targets: Map<string, ScriptedTargetDouble>;

function session(options: { dryRun?: boolean } = {}) {
  const config = parseConfigText(
    ['keys:', ...['a', 'b', 'c'].map((k) => `  ${k}:\n    rotation: { interval: 30d, grace: 1h }\n    target: { type: scim, url: "http://127.0.0.1:9/scim/v2", applier: { type: store } }`)].join('\n'),
    path.join(dir, 'provkey.yaml'),
  );
  return new Session({ config, dryRun: options.dryRun ?? false, openTarget: async (key) => targets.get(key.name)! });
}

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-engine-'));
  writeFileSync(path.join(dir, 'provkey.yaml'), '');
  targets = new Map(['a', 'b', 'c'].map((k) => [k, new ScriptedTargetDouble()]));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function added(s: Session, name: string) {
  const ctx = await openKey(s, name);
  const result = await addKey(ctx);
  expect(result.outcome).toBe('added');
  return ctx;
}

describe('the engine never calls an unproven revoke a success', () => {
  it('a failed retire under the lockout guard is exit 3 and stays visible in status', async () => {
    const s = session();
    const ctx = await added(s, 'a');
    await rotateKey(ctx);
    const target = targets.get('a')!;
    target.capabilities = { ...target.capabilities, negativeProbe: 'forbidden' };
    target.failRetire = { ok: false, reason: 'denied', detail: 'insufficient access' };
    const result = await revokeKey(ctx, { which: 'previous' });
    expect(result.exitCode).toBe(3);
    expect(result.message).toMatch(/retiring it at the target failed/);
    const [status] = await keyStatuses(s, ['a']);
    expect(status!.state).toBe('attention');
    expect((await ctx.store.read('a'))!.state.claim).toBeUndefined();
  });

  it('a store that cannot read a value stops the revoke: nothing relabelled, and the next run finishes it', async () => {
    const s = session();
    const ctx = await added(s, 'a');
    await rotateKey(ctx);
    const before = (await ctx.store.read('a'))!;
    const readSecret = ctx.store.readSecret.bind(ctx.store);
    ctx.store.readSecret = async () => {
      throw new AdapterError('file', 'timeout', 'simulated timeout');
    };
    await expect(revokeKey(ctx, { which: 'previous' })).rejects.toThrow(/simulated timeout/);
    ctx.store.readSecret = readSecret;
    const after = (await ctx.store.read('a'))!;
    expect(after.versions.map((v) => v.label)).toEqual(before.versions.map((v) => v.label));
    // The claim stays, so the next run converges it instead of trusting a half-done revoke.
    expect(after.state.claim?.operation).toBe('revoke');
    const retried = await revokeKey(ctx, { which: 'previous' });
    expect(retried.outcome).toBe('revoked');
    const done = (await ctx.store.read('a'))!;
    expect(done.versions.map((v) => v.label)).toEqual(['revoked', 'current']);
    expect(done.state.claim).toBeUndefined();
  });

  it('a target that keeps a replaced version after a no-overlap rotation: exit 3, attention recorded', async () => {
    const s = session();
    const ctx = await added(s, 'a');
    const target = targets.get('a')!;
    const old = await ctx.store.readSecret('a', versionByLabel((await ctx.store.read('a'))!, 'current')!.id);
    const set = target.set.bind(target);
    target.set = async (change) => set({ ...change, replace: false });
    target.retire = async () => ({ ok: true });
    const result = await drillCompromise(ctx, { rtoMs: 60_000, dryRun: false });
    expect(result.ok).toBe(false);
    expect(result.exitCode).toBe(3);
    expect(target.accepted.has(old)).toBe(true);
    expect((await ctx.store.read('a'))!.state.attention?.detail).toMatch(/still accepts/);
  });
});

describe('drills and rollbacks', () => {
  it('a drill on a key another live run has claimed fails instead of claiming containment', async () => {
    const s = session();
    const ctx = await added(s, 'a');
    const record = (await ctx.store.read('a'))!;
    const claim = newClaim('rotate', { host: 'another-host', pid: 1234 }, new Date());
    await ctx.store.update('a', record.revision, { versions: record.versions, state: { ...record.state, claim } });
    const report = await drillCompromise(ctx, { rtoMs: 60_000, dryRun: false });
    expect(report.ok).toBe(false);
    expect(report.exitCode).not.toBe(0);
    expect(report.containmentProven).toBe(false);
    expect(report.message).toMatch(/not started: rotate already in progress/);
  });

  it('keep-new: a target that cannot go back but accepts the new version keeps it, exit 1', async () => {
    const s = session();
    const ctx = await added(s, 'a');
    const target = targets.get('a')!;
    target.capabilities = { ...target.capabilities, overlap: false, propagationTimeoutMs: 0 };
    const test = target.test.bind(target);
    let calls = 0;
    target.test = async (secret, options) => (++calls === 1 ? { ...(await test(secret, options)), ok: false, verdict: 'error' } : test(secret, options));
    target.rollbackResult = { ok: true, kept: 'next', detail: 'kept for the test' };
    const result = await rotateKey(ctx);
    expect(result.exitCode).toBe(1);
    expect(result.message).toMatch(/kept .* as current \(rollback: keep-new\)/);
    const record = (await ctx.store.read('a'))!;
    expect(record.versions.map((v) => v.label)).toEqual(['revoked', 'current']);
    expect(record.state.claim).toBeUndefined();
  });

  it('a rollback after which both versions answer and are refused is a recorded lockout', async () => {
    const s = session();
    const ctx = await added(s, 'a');
    const target = targets.get('a')!;
    target.deaf = true; // the new version never arrives…
    target.rollbackResult = { ok: true }; // …the rollback says it went back…
    target.accepted.clear(); // …but the current one stopped working too: positive evidence
    const result = await rotateKey(ctx);
    expect(result.outcome).toBe('lockout');
    expect(result.exitCode).toBe(3);
    expect((await ctx.store.read('a'))!.state.lockout).toBeDefined();
    expect((await rotateKey(ctx)).outcome).toBe('lockout'); // refused until repaired
  });
});

describe('batches and dry runs', () => {
  it('runs many keys concurrently, never more at once than defaults.concurrency', async () => {
    const config = parseConfigText(
      ['defaults: { concurrency: 2 }', 'keys:', ...['a', 'b', 'c', 'd', 'e'].map((k) => `  ${k}:\n    target: { type: scim, url: "http://127.0.0.1:9/scim/v2", applier: { type: store } }`)].join('\n'),
      path.join(dir, 'provkey.yaml'),
    );
    let inFlight = 0;
    let most = 0;
    let entered = 0;
    // A barrier, not a sleep: a test waits until a second one is in flight (or every key has
    // started one), so the bound is reached whatever the machine's load.
    let waiting: Array<() => void> = [];
    const doubles = new Map(['a', 'b', 'c', 'd', 'e'].map((k) => [k, new ScriptedTargetDouble()]));
    for (const double of doubles.values()) {
      const test = double.test.bind(double);
      double.test = async (secret, options) => {
        inFlight++;
        entered++;
        most = Math.max(most, inFlight);
        if (inFlight >= 2 || entered >= doubles.size) {
          for (const release of waiting) release();
          waiting = [];
        } else {
          await new Promise<void>((resolve) => waiting.push(resolve));
        }
        inFlight--;
        return test(secret, options);
      };
    }
    const s = new Session({ config, openTarget: async (key) => doubles.get(key.name)! });
    const results = await forEachKey(s, ['a', 'b', 'c', 'd', 'e'], 'add', (ctx) => addKey(ctx));
    expect(results.every((r) => r.outcome === 'added')).toBe(true);
    expect(most).toBe(2);
  });

  it('one key whose target throws a bug does not stop the others', async () => {
    const s = session();
    for (const k of ['a', 'b', 'c']) await added(s, k);
    targets.get('b')!.throwOnTest = new TypeError('boom');
    const results = await forEachKey(s, ['a', 'b', 'c'], 'rotate', (ctx) => rotateKey(ctx));
    expect(results.map((r) => [r.key, r.outcome])).toEqual([['a', 'rotated'], ['b', 'failed'], ['c', 'rotated']]);
    expect(results[1]!.message).toMatch(/internal error: boom/);
  });

  it('a dry-run session refuses every change to the store and the target', async () => {
    await added(session(), 'a');
    const dry = session({ dryRun: true });
    const ctx = await openKey(dry, 'a');
    await expect(rotateKey(ctx)).rejects.toThrow(/--dry-run: this command would change/);
    const record = (await ctx.store.read('a'))!;
    expect(record.versions).toHaveLength(1);
    expect(record.state.claim).toBeUndefined();
  });
});
