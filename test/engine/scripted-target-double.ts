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

  async test(secret: SecretInUse, options: { expect: 'accept' | 'reject' }): Promise<ConnectionTest> {
    if (this.throwOnTest) throw this.throwOnTest;
    const accepted = this.accepted.has(secret.value);
    const ok = options.expect === 'accept' ? accepted : !accepted;
    return { expect: options.expect, verdict: accepted ? 'accepted' : 'rejected', ok, probes: [{ name: 'double', outcome: ok ? 'pass' : 'fail', ms: 0 }], at: new Date().toISOString(), ms: 0 };
  }
  async set(change: { next: SecretInUse; current?: SecretInUse; replace: boolean }): Promise<ApplyResult> {
    if (this.failSet) return this.failSet;
    if (this.deaf) return { ok: true };
    this.accepted.add(change.next.value);
    if (change.replace && change.current) this.accepted.delete(change.current.value);
    return { ok: true };
  }
  async retire(change: { old: SecretInUse }): Promise<ApplyResult> {
    if (this.failRetire) return this.failRetire;
    if (!this.deaf) this.accepted.delete(change.old.value);
    return { ok: true };
  }
  async rollback(change: { next: SecretInUse; current?: SecretInUse }): Promise<ApplyResult> {
    if (this.rollbackResult) return this.rollbackResult;
    this.accepted.delete(change.next.value);
    if (change.current) this.accepted.add(change.current.value);
    return { ok: true };
  }
  async close(): Promise<void> {}
}
