import type { ApplyResult, ConnectionTest, SecretInUse, Target, TargetCapabilities } from '../../src/targets/target.ts';

/**
 * A hand-written target DOUBLE for engine tests: it accepts a set of secrets and can be told to
 * fail a step. It proves engine decisions (rollback, convergence, what is reported), never an
 * adapter: every real target is proven against its real server in test/integration.
 */
export class ScriptedTargetDouble implements Target {
  readonly type = 'scim' as const;
  readonly accepted = new Set<string>();
  capabilities: TargetCapabilities = { overlap: true, negativeProbe: 'free', propagationTimeoutMs: 300 };
  failSet?: ApplyResult;
  failRetire?: ApplyResult;
  /** Returned by rollback instead of really rolling back. */
  rollbackResult?: ApplyResult;
  throwOnTest?: Error;
  /** Set/retire do nothing at all (the change never reaches the app). */
  deaf = false;
  /** The app is down: every call answers as an unreachable server does (verdict/reason "unreachable"). */
  down = false;
  /** Every test with a secret the target refuses (what a failed LDAP bind would be). */
  readonly refusals: string[] = [];
  /** Every call, in order: "test:accept", "set", … */
  readonly calls: string[] = [];

  async test(secret: SecretInUse, options: { expect: 'accept' | 'reject' }): Promise<ConnectionTest> {
    this.calls.push(`test:${options.expect}`);
    if (this.throwOnTest) throw this.throwOnTest;
    if (this.down) return { expect: options.expect, verdict: 'unreachable', ok: false, probes: [{ name: 'double', outcome: 'fail', ms: 0, detail: 'unreachable: ECONNREFUSED' }], at: new Date().toISOString(), ms: 0 };
    const accepted = this.accepted.has(secret.value);
    if (!accepted) this.refusals.push(secret.fingerprint);
    const ok = options.expect === 'accept' ? accepted : !accepted;
    return { expect: options.expect, verdict: accepted ? 'accepted' : 'rejected', ok, probes: [{ name: 'double', outcome: ok ? 'pass' : 'fail', ms: 0 }], at: new Date().toISOString(), ms: 0 };
  }
  async set(change: { next: SecretInUse; current?: SecretInUse; replace: boolean }): Promise<ApplyResult> {
    this.calls.push('set');
    if (this.down) return { ok: false, reason: 'unreachable', detail: 'ECONNREFUSED' };
    if (this.failSet) return this.failSet;
    if (this.deaf) return { ok: true };
    this.accepted.add(change.next.value);
    if (change.replace && change.current) this.accepted.delete(change.current.value);
    return { ok: true };
  }
  async retire(change: { old: SecretInUse }): Promise<ApplyResult> {
    this.calls.push('retire');
    if (this.down) return { ok: false, reason: 'unreachable', detail: 'ECONNREFUSED' };
    if (this.failRetire) return this.failRetire;
    if (!this.deaf) this.accepted.delete(change.old.value);
    return { ok: true };
  }
  async rollback(change: { next: SecretInUse; current?: SecretInUse }): Promise<ApplyResult> {
    this.calls.push('rollback');
    if (this.down) return { ok: false, reason: 'unreachable', detail: 'ECONNREFUSED' };
    if (this.rollbackResult) return this.rollbackResult;
    this.accepted.delete(change.next.value);
    if (change.current) this.accepted.add(change.current.value);
    return { ok: true };
  }
  async close(): Promise<void> {}
}
