import type { LdapTargetConfig } from '../../config/schema.js';
import { parseDuration } from '../../core/duration.js';
import { ConfigError } from '../../core/errors.js';
import type { GenerationPolicy } from '../../core/keygen.js';
import type { AdapterContext } from '../../stores/context.js';
import type { ApplyResult, ConnectionTest, Identification, SecretInUse, Target, TargetCapabilities, TestOptions } from '../target.js';
import { readPasswordChangedTime } from './account.js';
import { setPassword } from './apply.js';
import { parseLdapServers } from './connection.js';
import { identifyPassword } from './identify.js';
import { testPassword } from './connection-test.js';
import { negativeProbeFor, validateGenerationPolicy, type ConfiguredPolicy, type EffectivePolicy } from './ppolicy.js';
import { bindWithPolicy } from './probes.js';
import { retirePassword } from './retire.js';
import { rollbackPassword } from './rollback.js';
import { LdapTargetState, WRITE_SERVER, type LdapTargetSetup } from './target-state.js';

export { keptNext, type KeptNextResult } from './rollback.js';

/**
 * The LDAP target: the bind password of a directory service account, changed with the RFC 3062
 * Password Modify operation (as the account itself, or as an admin), proven with the probes of
 * DESIGN.md against every listed server. An account has one password, so there is no overlap:
 * every set replaces, and `retire` after a set has nothing left to do.
 *
 * Creation checks the config and does no I/O; the CA file, the admin credential and the
 * directory's password policy are read on first use.
 */
export async function createLdapTarget(keyName: string, config: LdapTargetConfig, context: AdapterContext): Promise<Target> {
  const field = `keys.${keyName}.target`;
  const servers = parseLdapServers(config.urls, { startTls: config.startTls, allowPlain: config.allowPlain }, `${field}.urls`);
  const timeoutMs = parseDuration(config.timeout, `${field}.timeout`);
  if (timeoutMs <= 0) throw new ConfigError(`${field}.timeout: must be longer than 0`);
  const propagationTimeoutMs = parseDuration(config.propagationTimeout, `${field}.propagationTimeout`);
  if (config.accounts) return createTwoAccountTarget(keyName, config, context);
  if (!config.bindDn.trim()) throw new ConfigError(`${field}.bindDn: required (the service account's DN), or accounts: [A, B] for two-account rotation`);
  if (!config.searchBase.trim()) throw new ConfigError(`${field}.searchBase: must not be empty`);

  const { adminDn, adminPasswordRef } = config.apply;
  if (adminDn && !adminPasswordRef) throw new ConfigError(`${field}.apply.adminPasswordRef: required with apply.adminDn (env:NAME, file:/path or key:OTHER-KEY)`);
  if (adminPasswordRef && !adminDn) throw new ConfigError(`${field}.apply.adminDn: required with apply.adminPasswordRef`);
  const admin = adminDn && adminPasswordRef ? { dn: adminDn, ref: adminPasswordRef, field: `${field}.apply.adminPasswordRef` } : undefined;
  const needsAdmin = (what: string, where: string) => {
    if (!admin) throw new ConfigError(`${field}.${where}: ${what} needs an admin credential: set apply.adminDn and apply.adminPasswordRef`);
  };
  if (config.apply.mode === 'admin') needsAdmin('apply.mode admin', 'apply.adminDn');
  if (config.rollback === 'admin-reset') needsAdmin('rollback: admin-reset', 'rollback');
  if (config.revoke.lockAccount) needsAdmin('revoke.lockAccount (setting pwdAccountLockedTime)', 'revoke.lockAccount');

  const pp = config.passwordPolicy;
  const configured: ConfiguredPolicy = {
    ...(pp.dn ? { dn: pp.dn } : {}),
    ...(pp.minLength !== undefined ? { minLength: pp.minLength } : {}),
    ...(pp.checkQuality !== undefined ? { checkQuality: pp.checkQuality } : {}),
    ...(pp.inHistory !== undefined ? { inHistory: pp.inHistory } : {}),
    ...(pp.maxAge !== undefined ? { maxAge: Math.round(parseDuration(pp.maxAge, `${field}.passwordPolicy.maxAge`) / 1000) } : {}),
    ...(pp.maxFailure !== undefined ? { maxFailure: pp.maxFailure } : {}),
    ...(pp.mustChange !== undefined ? { mustChange: pp.mustChange } : {}),
  };
  const setup: LdapTargetSetup = { keyName, config, context, servers, timeoutMs, propagationTimeoutMs, admin, configured };
  // Active Directory has no RFC 3062 and no ppolicy: its own module (active-directory.ts).
  if (config.directory === 'activeDirectory') return (await import('./active-directory.js')).createActiveDirectoryTarget(setup);
  return new LdapTarget(setup);
}

/**
 * `accounts: [A, B]`: one single-account target per account, alternated by TwoAccountTarget.
 * Each new password is set by an admin reset: the account not in use has, by design, a password
 * nobody knows (set at the end of the last grace period), so it cannot change its own.
 */
async function createTwoAccountTarget(keyName: string, config: LdapTargetConfig, context: AdapterContext): Promise<Target> {
  const field = `keys.${keyName}.target`;
  const accounts = config.accounts!;
  if (config.bindDn.trim()) throw new ConfigError(`${field}.bindDn: leave it out with accounts (each rotation binds as one of the two accounts)`);
  accounts.forEach((dn, i) => {
    if (!/^[^=,]+=[^=]+/.test(dn.trim())) throw new ConfigError(`${field}.accounts.${i}: not a DN (e.g. cn=svc-blue,ou=services,dc=example,dc=com)`);
  });
  const { normalizeDn, TwoAccountTarget } = await import('./two-accounts.js');
  if (normalizeDn(accounts[0]!) === normalizeDn(accounts[1]!)) throw new ConfigError(`${field}.accounts: the two accounts must be different DNs`);
  if (config.apply.mode !== 'admin') {
    throw new ConfigError(`${field}.apply.mode: accounts needs apply.mode admin (the account not in use has an unknown password, so only an admin can set its next one)`);
  }
  const one = (dn: string) => createLdapTarget(keyName, { ...config, accounts: undefined, bindDn: dn.trim() }, context);
  const targets = [await one(accounts[0]!), await one(accounts[1]!)] as const;
  return new TwoAccountTarget([accounts[0]!.trim(), accounts[1]!.trim()], targets, `${field}.accounts`);
}

/**
 * The Target interface over the operations, one module each: connection-test.ts, apply.ts
 * (set), retire.ts, rollback.ts, identify.ts; what they share is in target-state.ts. The directory's
 * password policy (checkGenerationPolicy) and the account's expiry (expiresAt) are here.
 */
class LdapTarget implements Target {
  readonly type = 'ldap' as const;

  readonly #state: LdapTargetState;

  constructor(setup: LdapTargetSetup) {
    this.#state = new LdapTargetState(setup);
  }

  /** Computed: the lockout guard depends on the policy, which is read on first use. */
  get capabilities(): TargetCapabilities {
    return {
      overlap: false,
      negativeProbe: negativeProbeFor(this.#state.config.negativeProbe, this.#state.policy.policy),
      propagationTimeoutMs: this.#state.setup.propagationTimeoutMs,
    };
  }

  /** The policy in force (directory + config), for messages and tests. */
  get effectivePolicy(): EffectivePolicy {
    return this.#state.policy;
  }

  test(secret: SecretInUse, options: TestOptions): Promise<ConnectionTest> {
    return testPassword(this.#state, secret, options);
  }

  set(change: { next: SecretInUse; current?: SecretInUse; replace: boolean }): Promise<ApplyResult> {
    return setPassword(this.#state, change);
  }

  retire(change: { old: SecretInUse; current?: SecretInUse }): Promise<ApplyResult> {
    return retirePassword(this.#state, change);
  }

  rollback(change: { next: SecretInUse; current?: SecretInUse }): Promise<ApplyResult> {
    return rollbackPassword(this.#state, change);
  }

  /** Which candidate the account has, within the failed-bind budget (identify.ts). */
  identify(candidates: SecretInUse[]): Promise<Identification> {
    return identifyPassword(this.#state, candidates);
  }

  /**
   * Reads the directory's policy and refuses a generation policy whose values the directory
   * would reject, before a value is generated. The policy is read as the admin when there is
   * one, else as the account with `current`, which rotate passes. `add` has no current secret:
   * without an admin credential only the config's passwordPolicy is checked here (and self
   * mode cannot set a first password anyway). `set` checks the value against the policy again
   * on its bound connection, before the account is changed.
   */
  async checkGenerationPolicy(policy: GenerationPolicy, current?: SecretInUse): Promise<void> {
    if (current) this.#state.remember(current.value);
    await this.#state.ensurePolicy(current);
    validateGenerationPolicy(policy, this.#state.policy, `keys.${this.#state.setup.keyName}.format`);
  }

  /** pwdChangedTime + pwdMaxAge of the account: `rotate --due` rotates before the directory expires it. */
  async expiresAt(current: SecretInUse): Promise<Date | undefined> {
    const state = this.#state;
    state.remember(current.value);
    const server = state.setup.servers[WRITE_SERVER]!;
    const changedAt = await state.onServer(
      server,
      async (client): Promise<Date | 'expired' | undefined> => {
        if (state.setup.admin) {
          const bound = await state.bindAdmin(client);
          if (!bound.ok) return undefined;
          await state.loadPolicyOn(client, 'admin');
        } else {
          const bind = await bindWithPolicy(client, state.config.bindDn, current.value, state.scrub);
          state.recordBind(WRITE_SERVER, current, bind.ok, bind.failure);
          if (!bind.ok) return bind.ppolicy?.errorName === 'passwordExpired' ? 'expired' : undefined;
          if (bind.ppolicy?.graceAuthNsRemaining !== undefined) return 'expired';
          await state.loadPolicyOn(client, 'account');
        }
        return readPasswordChangedTime(client, state.config.bindDn).catch(() => undefined);
      },
      () => undefined,
    );
    if (changedAt === 'expired') return new Date();
    const maxAge = state.policy.policy.maxAge;
    if (!changedAt || !maxAge || maxAge <= 0) return undefined;
    return new Date(changedAt.getTime() + maxAge * 1000);
  }

  async close(): Promise<void> {
    // Every operation opens and closes its own connection; only replica watchers stay open
    // between a change and its test (replication.ts).
    await this.#state.close();
  }
}
