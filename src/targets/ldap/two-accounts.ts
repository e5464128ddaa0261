import { ConfigError } from '../../core/errors.js';
import type { GenerationPolicy } from '../../core/keygen.js';
import type { ApplyResult, CandidateVerdict, ConnectionTest, Identification, SecretInUse, Target, TargetCapabilities, TestOptions } from '../target.js';

/**
 * Two-account (blue/green) rotation: `accounts: [A, B]`. A key's version is an (account,
 * password) pair. A rotation sets a fresh password on the account not in use, so the account
 * consumers bind with now is never touched by `set`: the target has overlap, and the engine's
 * grace machinery applies unchanged. At the end of the grace period (`retire` with a current
 * version on the other account) the old account gets a password nobody knows; a revoke or a
 * drill does the same to the leaked pair's account at once.
 *
 * Every operation on one account is the single-account target of that account (its own
 * LdapTarget or Active Directory target, with its password policy, lockout guard and failed-bind
 * budget), so each directory's admin reset, policy checks and proofs are reused as they are.
 */
export class TwoAccountTarget implements Target {
  readonly type = 'ldap' as const;
  readonly #accounts: readonly [string, string];
  readonly #targets: readonly [Target, Target];
  readonly #field: string;

  /** `field`: the config path of `accounts`, for the one error a stale version can cause. */
  constructor(accounts: readonly [string, string], targets: readonly [Target, Target], field: string) {
    this.#accounts = accounts;
    this.#targets = targets;
    this.#field = field;
  }

  get capabilities(): TargetCapabilities {
    const [a, b] = this.#targets.map((t) => t.capabilities) as [TargetCapabilities, TargetCapabilities];
    // The stricter guard of the two: both accounts live under the same directory policy.
    const order = { free: 0, costly: 1, forbidden: 2 } as const;
    return {
      overlap: true,
      negativeProbe: order[a.negativeProbe] >= order[b.negativeProbe] ? a.negativeProbe : b.negativeProbe,
      propagationTimeoutMs: Math.max(a.propagationTimeoutMs, b.propagationTimeoutMs),
    };
  }

  /** The account a new version goes to: the one `current` is not on. */
  accountFor(current?: SecretInUse): string {
    if (!current) return this.#accounts[0];
    return this.#indexOf(current) === 0 ? this.#accounts[1] : this.#accounts[0];
  }

  test(secret: SecretInUse, options: TestOptions): Promise<ConnectionTest> {
    return this.#on(secret).test(secret, options);
  }

  /** Only the new version's account changes; `current` keeps working (the engine retires it later). */
  set(change: { next: SecretInUse; current?: SecretInUse; replace: boolean }): Promise<ApplyResult> {
    const { next, current } = change;
    if (current && this.#sameAccount(next, current)) return this.#on(next).set(change);
    return this.#on(next).set({ next, replace: true });
  }

  /**
   * On `old`'s account: with `current` on the other account, the old account is moved to an
   * unknown password (or locked, with revoke.lockAccount) and `current` is never touched.
   */
  retire(change: { old: SecretInUse; current?: SecretInUse }): Promise<ApplyResult> {
    const { old, current } = change;
    if (current && this.#sameAccount(old, current)) return this.#on(old).retire(change);
    return this.#on(old).retire({ old });
  }

  /** Undo a set: the new version's account gets an unknown password; `current`'s account was never changed. */
  async rollback(change: { next: SecretInUse; current?: SecretInUse }): Promise<ApplyResult> {
    const { next, current } = change;
    if (current && this.#sameAccount(next, current)) return this.#on(next).rollback(change);
    const retired = await this.#on(next).retire({ old: next });
    if (!retired.ok && retired.reason !== 'unreachable') {
      // The account could not be reset (e.g. the set never reached it): undone anyway if it does not accept `next`.
      const found = await this.identify([next]);
      if (found.verdicts[next.fingerprint] === 'rejected') {
        return { ok: true, detail: `nothing to undo: ${this.#accountOf(next)} does not accept ${next.fingerprint} (${found.detail}); ${retired.detail}` };
      }
    }
    if (!retired.ok) return retired;
    return { ok: true, detail: `${this.#accountOf(next)} moved to an unknown password; ${current ? `${current.fingerprint} on ${this.#accountOf(current)} was never changed` : 'there was no previous version'}` };
  }

  /** Each account answers for its own candidates, within its own failed-bind budget. */
  async identify(candidates: SecretInUse[]): Promise<Identification> {
    const verdicts: Record<string, CandidateVerdict> = {};
    const details: string[] = [];
    for (const index of [0, 1] as const) {
      const mine = candidates.filter((c) => this.#indexOf(c) === index);
      if (mine.length === 0) continue;
      const target = this.#targets[index];
      const found: Identification = target.identify
        ? await target.identify(mine)
        : { verdicts: Object.fromEntries(mine.map((c) => [c.fingerprint, 'unknown' as const])), detail: 'no identify' };
      Object.assign(verdicts, found.verdicts);
      details.push(`${this.#accounts[index]}: ${found.detail}`);
    }
    return { verdicts, detail: details.join('; ') };
  }

  async checkGenerationPolicy(policy: GenerationPolicy, current?: SecretInUse): Promise<void> {
    // The next version's account is the other one; both accounts are under the directory's policy.
    const target = current ? this.#on(current) : this.#targets[0];
    await target.checkGenerationPolicy?.(policy, current);
  }

  async expiresAt(current: SecretInUse): Promise<Date | undefined> {
    return this.#on(current).expiresAt?.(current);
  }

  async close(): Promise<void> {
    await Promise.all(this.#targets.map((t) => t.close()));
  }

  /** A version stored before the key had two accounts carries no account: it is the first one's (the old bindDn). */
  #indexOf(secret: SecretInUse): 0 | 1 {
    if (!secret.account) return 0;
    const wanted = normalizeDn(secret.account);
    if (normalizeDn(this.#accounts[0]) === wanted) return 0;
    if (normalizeDn(this.#accounts[1]) === wanted) return 1;
    // The config no longer lists the account this version was set on: never guess which one it is.
    throw new ConfigError(`${this.#field}: version ${secret.fingerprint} is the password of ${secret.account}, which is not one of the two accounts; put it back in accounts, or revoke the key's versions first`);
  }

  #accountOf(secret: SecretInUse): string {
    return this.#accounts[this.#indexOf(secret)];
  }

  #sameAccount(a: SecretInUse, b: SecretInUse): boolean {
    return this.#indexOf(a) === this.#indexOf(b);
  }

  #on(secret: SecretInUse): Target {
    return this.#targets[this.#indexOf(secret)];
  }
}

/** Case and spacing around separators do not make two DNs different accounts. */
export function normalizeDn(dn: string): string {
  return dn
    .split(',')
    .map((rdn) => rdn.split('=').map((part) => part.trim().toLowerCase()).join('='))
    .join(',');
}
