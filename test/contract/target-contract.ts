// The Target contract: what every target (SCIM with each applier, LDAP against slapd) must
// do, run against its real server. A target's own test file calls describeTargetContract
// with a setup that starts from "the target accepts `initial`".

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ApplyResult, ConnectionTest, SecretInUse, Target } from '../../src/targets/target.js';

/** A step that could not reach the target: it failed, and said "unreachable", never a refusal. */
function expectUnreachable(result: ApplyResult, what: string): void {
  expect(result, what).toMatchObject({ ok: false, reason: 'unreachable' });
}

export interface TargetUnderTest {
  target: Target;
  /** A secret the target accepts when setup returns. */
  initial: SecretInUse;
  /** A fresh random secret the target has never seen. */
  makeSecret(): SecretInUse;
  cleanup?(): Promise<void>;
  /** The server's own view (e.g. the SCIM harness's accepted digests): cross-checks the target's tests. */
  accepts?(secret: SecretInUse): Promise<boolean>;
  /** Stops the real server (every one the target talks to): the target must then say "unreachable". */
  takeDown(): Promise<void>;
}

export interface TargetContractOptions {
  /** Per-test timeout; must cover a few propagation waits. Default 60 s. */
  timeoutMs?: number;
}

const PROBE_OUTCOMES = ['pass', 'fail', 'unsupported', 'skipped'];

/**
 * Re-tests until the target gives the expected answer or its propagation timeout ends, with
 * backoff: the same loop the engine runs after a change. Returns the last test.
 */
export async function testUntil(target: Target, secret: SecretInUse, expectation: 'accept' | 'reject'): Promise<ConnectionTest> {
  const deadline = Date.now() + target.capabilities.propagationTimeoutMs;
  let delayMs = 50;
  for (;;) {
    const result = await target.test(secret, { expect: expectation });
    if (result.ok || Date.now() >= deadline) return result;
    await new Promise((resolve) => setTimeout(resolve, Math.min(delayMs, Math.max(0, deadline - Date.now()))));
    delayMs = Math.min(delayMs * 2, 2000);
  }
}

export function describeTargetContract(
  label: string,
  setup: () => Promise<TargetUnderTest>,
  options: TargetContractOptions = {},
): void {
  const timeout = options.timeoutMs ?? 60_000;

  describe(`Target contract: ${label}`, () => {
    let t: TargetUnderTest;

    beforeEach(async () => {
      t = await setup();
    }, timeout);

    afterEach(async () => {
      await t?.target.close();
      await t?.cleanup?.();
    }, timeout);

    /** Expects `secret` to reach `verdict` within the propagation timeout, with a readable failure. */
    async function expectEventually(secret: SecretInUse, expectation: 'accept' | 'reject', what: string): Promise<ConnectionTest> {
      const result = await testUntil(t.target, secret, expectation);
      expect(result.ok, `${what}: ${summary(result)}`).toBe(true);
      expect(result.verdict).toBe(expectation === 'accept' ? 'accepted' : 'rejected');
      if (t.accepts) expect(await t.accepts(secret), `${what}: the server's own view`).toBe(expectation === 'accept');
      return result;
    }

    function expectApplied(result: ApplyResult, what: string): void {
      expect(result, what).toMatchObject({ ok: true });
    }

    it('accepts the initial secret, with named and timed probes', async () => {
      const result = await t.target.test(t.initial, { expect: 'accept' });
      expect(result.ok, summary(result)).toBe(true);
      expect(result.verdict).toBe('accepted');
      expect(result.expect).toBe('accept');
      expect(Number.isNaN(Date.parse(result.at))).toBe(false);
      expect(result.ms).toBeGreaterThanOrEqual(0);
      expect(result.probes.length).toBeGreaterThan(0);
      for (const probe of result.probes) {
        expect(probe.name).toMatch(/^[a-z][a-z0-9-]*$/);
        expect(PROBE_OUTCOMES).toContain(probe.outcome);
        expect(Number.isFinite(probe.ms) && probe.ms >= 0, `${probe.name}.ms`).toBe(true);
      }
    }, timeout);

    it('rejects a random secret', async () => {
      const result = await t.target.test(t.makeSecret(), { expect: 'reject' });
      expect(result.ok, summary(result)).toBe(true);
      expect(result.verdict).toBe('rejected');
      const asAccept = await t.target.test(t.makeSecret(), { expect: 'accept' });
      expect(asAccept.ok).toBe(false);
      expect(asAccept.verdict).toBe('rejected');
    }, timeout);

    it('set without replace: the next secret is accepted', async () => {
      const next = t.makeSecret();
      expectApplied(await t.target.set({ next, current: t.initial, replace: false }), 'set');
      await expectEventually(next, 'accept', 'next after set');
      if (t.target.capabilities.overlap) {
        // Both versions work during the grace period.
        await expectEventually(t.initial, 'accept', 'current during overlap');
      } else {
        await expectEventually(t.initial, 'reject', 'current on a target without overlap');
      }
    }, timeout);

    it('retire: the old secret is rejected, the new one still accepted', async () => {
      const next = t.makeSecret();
      expectApplied(await t.target.set({ next, current: t.initial, replace: false }), 'set');
      await expectEventually(next, 'accept', 'next after set');
      expectApplied(await t.target.retire({ old: t.initial, current: next }), 'retire');
      await expectEventually(t.initial, 'reject', 'old after retire');
      await expectEventually(next, 'accept', 'next after retire');
      // Retiring again is harmless: a resumed run repeats steps.
      expectApplied(await t.target.retire({ old: t.initial, current: next }), 'retire again');
      await expectEventually(next, 'accept', 'next after a second retire');
    }, timeout);

    it('set with replace: the old secret stops working', async () => {
      const next = t.makeSecret();
      expectApplied(await t.target.set({ next, current: t.initial, replace: true }), 'set replace');
      await expectEventually(next, 'accept', 'next after replace');
      await expectEventually(t.initial, 'reject', 'old after replace');
    }, timeout);

    it('rollback after a replace: current works again, next does not', async () => {
      const next = t.makeSecret();
      expectApplied(await t.target.set({ next, current: t.initial, replace: true }), 'set replace');
      await expectEventually(next, 'accept', 'next after replace');
      expectApplied(await t.target.rollback({ next, current: t.initial }), 'rollback');
      await expectEventually(t.initial, 'accept', 'current after rollback');
      await expectEventually(next, 'reject', 'next after rollback');
      // Idempotent: a resumed rollback may run twice.
      expectApplied(await t.target.rollback({ next, current: t.initial }), 'rollback again');
      await expectEventually(t.initial, 'accept', 'current after a second rollback');
    }, timeout);

    it('rollback after a plain set: current still works, next does not', async () => {
      const next = t.makeSecret();
      expectApplied(await t.target.set({ next, current: t.initial, replace: false }), 'set');
      await expectEventually(next, 'accept', 'next after set');
      expectApplied(await t.target.rollback({ next, current: t.initial }), 'rollback');
      await expectEventually(next, 'reject', 'next after rollback');
      await expectEventually(t.initial, 'accept', 'current after rollback');
    }, timeout);

    it('identify tells which version the target accepts, whatever the order it is asked in', async () => {
      // Optional in the interface, but every target provkey ships has it.
      expect(typeof t.target.identify, 'identify').toBe('function');
      const random = t.makeSecret();
      const before = await t.target.identify!([random, t.initial]);
      expect(before.verdicts, before.detail).toEqual({ [random.fingerprint]: 'rejected', [t.initial.fingerprint]: 'accepted' });
      const next = t.makeSecret();
      expectApplied(await t.target.set({ next, current: t.initial, replace: true }), 'set replace');
      await expectEventually(next, 'accept', 'next after replace');
      await expectEventually(t.initial, 'reject', 'old after replace');
      const after = await t.target.identify!([t.initial, next]);
      expect(after.verdicts, after.detail).toEqual({ [t.initial.fingerprint]: 'rejected', [next.fingerprint]: 'accepted' });
      for (const secret of [t.initial, next, random]) expect(after.detail + before.detail).not.toContain(secret.value);
    }, timeout);

    it('a target that is down is "unreachable" for every operation, never "rejected"', async () => {
      const first = await t.target.test(t.initial, { expect: 'accept' });
      expect(first.ok, summary(first)).toBe(true);
      await t.takeDown();
      const next = t.makeSecret();

      const accept = await t.target.test(t.initial, { expect: 'accept' });
      expect(accept, summary(accept)).toMatchObject({ ok: false, verdict: 'unreachable' });
      const reject = await t.target.test(t.makeSecret(), { expect: 'reject' });
      expect(reject, summary(reject)).toMatchObject({ ok: false, verdict: 'unreachable' });
      expectUnreachable(await t.target.set({ next, current: t.initial, replace: false }), 'set');
      expectUnreachable(await t.target.set({ next, current: t.initial, replace: true }), 'set with replace');
      expectUnreachable(await t.target.rollback({ next, current: t.initial }), 'rollback');
      expectUnreachable(await t.target.retire({ old: t.initial }), 'retire (revoke)');
      // With a replacement, a target with one secret per account has nothing left to do.
      const retire = await t.target.retire({ old: t.initial, current: next });
      if (!retire.ok) expectUnreachable(retire, 'retire');
      const found = await t.target.identify!([next, t.initial]);
      expect(found.verdicts, found.detail).toEqual({ [next.fingerprint]: 'unreachable', [t.initial.fingerprint]: 'unreachable' });
    }, timeout);

    it('never puts a secret value into a result', async () => {
      const next = t.makeSecret();
      const random = t.makeSecret();
      const results: unknown[] = [
        await t.target.test(t.initial, { expect: 'accept', write: true }),
        await t.target.test(random, { expect: 'reject' }),
        await t.target.test(random, { expect: 'accept' }),
        await t.target.set({ next, current: t.initial, replace: false }),
        await testUntil(t.target, next, 'accept'),
        await t.target.retire({ old: t.initial, current: next }),
        await testUntil(t.target, t.initial, 'reject'),
        await t.target.test(t.initial, { expect: 'accept' }),
        await t.target.rollback({ next, current: t.initial }),
        await t.target.identify!([next, t.initial, random]),
      ];
      const text = JSON.stringify(results);
      for (const secret of [t.initial, next, random]) {
        expect(text.includes(secret.value), `secret ${secret.fingerprint} appears in a result`).toBe(false);
      }
      const first = results[0] as ConnectionTest;
      expect(first.ok, summary(first)).toBe(true);
    }, timeout);
  });
}

/** A failing test's message: verdict and each probe, without values. */
export function summary(result: ConnectionTest): string {
  const probes = result.probes.map((p) => `${p.name}=${p.outcome}${p.status === undefined ? '' : `(${p.status})`}${p.detail ? ` ${p.detail}` : ''}`);
  return `expect ${result.expect}, verdict ${result.verdict}, ok ${result.ok}; ${probes.join('; ')}`;
}
