import type { GenerationPolicy } from '../core/keygen.js';

/**
 * A system that must accept a key: a SCIM service provider or an LDAP directory.
 * Expected outcomes (accepted, rejected, unreachable, policy violation) are values, not
 * exceptions; a target throws only for the unexpected (a bug, a config it cannot use).
 */
export interface Target {
  readonly type: TargetType;
  readonly capabilities: TargetCapabilities;

  /**
   * One connection test with the given secret, without retries (the engine retries while a
   * change propagates). `expect: 'reject'` proves a revoked or replaced secret no longer works.
   */
  test(secret: SecretInUse, options: TestOptions): Promise<ConnectionTest>;
  /** Make the target accept `next`. With `replace`, `current` stops working as part of the change. */
  set(change: { next: SecretInUse; current?: SecretInUse; replace: boolean }): Promise<ApplyResult>;
  /**
   * Make the target reject `old` (end of a grace period, revoke, drill). `current`, when given,
   * is the version that stays in use: a target with one secret per account (LDAP) has then
   * already replaced `old` and must not touch the account again.
   */
  retire(change: { old: SecretInUse; current?: SecretInUse }): Promise<ApplyResult>;
  /** Undo a `set`: the target accepts `current` again and rejects `next`. */
  rollback(change: { next: SecretInUse; current?: SecretInUse }): Promise<ApplyResult>;
  /**
   * Which of `candidates` the target accepts now, to converge an interrupted change. Candidates
   * come most-likely-current first. Uses evidence that costs no failed bind first (LDAP:
   * pwdChangedTime, entryCSN, the ppolicy control), then binds only within the failed-bind
   * budget, stopping before it. Never throws for an outage: unreachable is a verdict.
   */
  identify?(candidates: SecretInUse[]): Promise<Identification>;

  /**
   * Refuse, with a clear message, a generation policy the target would reject (LDAP ppolicy).
   * `current`, when known, lets a target read its policy with the account's own credential.
   */
  checkGenerationPolicy?(policy: GenerationPolicy, current?: SecretInUse): Promise<void>;
  /** When the target itself will expire the secret (LDAP pwdChangedTime + pwdMaxAge). */
  expiresAt?(current: SecretInUse): Promise<Date | undefined>;
  /**
   * A target with two accounts (LDAP blue/green): the account a new version goes to, the one
   * `current` is not on (the first account when there is no current). Recorded on the version.
   */
  accountFor?(current?: SecretInUse): string;
  close(): Promise<void>;
}

export type TargetType = 'scim' | 'ldap';

export interface TargetCapabilities {
  /** Two versions can be accepted at once (SCIM: yes; an LDAP account has one password). */
  overlap: boolean;
  /**
   * What proving a rejection costs: `free` (a 401), `costly` (a failed LDAP bind counting
   * toward lockout), `forbidden` (the policy's failure limit is too low to risk one).
   */
  negativeProbe: 'free' | 'costly' | 'forbidden';
  /** How long a change may take to reach every instance or replica before it counts as failed. */
  propagationTimeoutMs: number;
}

/** A secret handed to a target: the value plus the fingerprint used in every message. */
export interface SecretInUse {
  value: string;
  fingerprint: string;
  versionId?: string;
  /**
   * When the version was generated (ISO 8601), if known. `identify` compares it with the
   * directory's pwdChangedTime: a version created after the password last changed was never set.
   */
  createdAt?: string;
  /** Two-account keys: the account (DN) this value is the password of (VersionMeta.account). */
  account?: string;
}

export interface TestOptions {
  expect: 'accept' | 'reject';
  /** Also run the write probe (create, patch, delete a throw-away user): drills. */
  write?: boolean;
  /**
   * Runs each write-probe step (one side effect on the target) through the engine's seam
   * (EffectSeam.target supplies it); absent, the step simply runs. `run` never throws: its
   * failures are values. Whatever the hook throws (the session was abandoned) ends the test.
   */
  effect?: ProbeEffect;
}

/** The write probe's steps: each is one side effect, the seam's operation `probe.<step>`. */
export type ProbeStep = 'cleanup' | 'add' | 'group' | 'modify' | 'delete';

/** A probe step the seam did not let through: an outage (never "rejected") or a refusal. */
export interface ProbeStepFault {
  reason: 'unreachable' | 'rejected';
  status?: number | string;
  detail: string;
}

export type ProbeEffect = <T>(step: ProbeStep, run: () => Promise<T>) => Promise<{ ok: true; value: T } | { ok: false; fault: ProbeStepFault }>;

/** No seam: the step runs as it is. */
export const directProbeEffect: ProbeEffect = async (_step, run) => ({ ok: true, value: await run() });

export type ProbeOutcome = 'pass' | 'fail' | 'unsupported' | 'skipped';

export interface Probe {
  /** e.g. "entra-user-query", "okta-user-page", "service-provider-config", "bind", "whoami". */
  name: string;
  outcome: ProbeOutcome;
  /** HTTP status or LDAP result code, when there was one. */
  status?: number | string;
  ms: number;
  detail?: string;
}

export type Verdict = 'accepted' | 'rejected' | 'unreachable' | 'error';

export interface ConnectionTest {
  expect: 'accept' | 'reject';
  /** What the target did with the secret. */
  verdict: Verdict;
  /** The verdict matched the expectation and every required probe passed. */
  ok: boolean;
  probes: Probe[];
  at: string;
  ms: number;
}

export type ApplyResult =
  /**
   * `kept: 'next'` (rollback only): the target could not go back, but the new version works
   * and stays (LDAP `rollback: keep-new`, where password history forbids a change back).
   */
  | { ok: true; detail?: string; kept?: 'next' }
  | {
      ok: false;
      reason: 'rejected' | 'policy' | 'unreachable' | 'denied' | 'error';
      detail: string;
    };

/** What a target showed about one candidate version while identifying which one it holds. */
export type CandidateVerdict = 'accepted' | 'rejected' | 'unreachable' | 'unknown';

export interface Identification {
  /** fingerprint -> what the target showed; 'unknown' = not asked (failed-bind budget) or could not tell. */
  verdicts: Record<string, CandidateVerdict>;
  /** One line for people and the audit log: which evidence was used (never a secret). */
  detail: string;
}
