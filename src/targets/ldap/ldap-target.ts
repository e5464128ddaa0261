import type { Client } from 'ldapts';
import type { LdapTargetConfig } from '../../config/schema.js';
import { parseDuration } from '../../core/duration.js';
import { ConfigError } from '../../core/errors.js';
import { fingerprint } from '../../core/fingerprint.js';
import type { GenerationPolicy } from '../../core/keygen.js';
import { redact, registerSecret } from '../../core/redact.js';
import type { AdapterContext } from '../../stores/context.js';
import type { ApplyResult, ConnectionTest, Probe, SecretInUse, Target, TargetCapabilities, TestOptions, Verdict } from '../target.js';
import { changePassword, clearPasswordReset, lockAccount, readPasswordChangedTime, throwAwayPassword } from './account.js';
import { FailedBindGuard } from './bind-guard.js';
import { closeQuietly, LdapConnector, parseLdapServers, type LdapServer } from './connection.js';
import {
  failedBindBudget,
  mergePolicy,
  negativeProbeFor,
  passwordProblem,
  readDirectoryPolicy,
  validateGenerationPolicy,
  type ConfiguredPolicy,
  type EffectivePolicy,
} from './ppolicy.js';
import { bindWithPolicy, combineVerdicts, judgeBind, probeConnect, probeSearch, probeWhoami, skipped, verdictOfFailure, type BindResult } from './probes.js';
import { applyFailure, type LdapFailure } from './result-codes.js';

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
  if (!config.bindDn.trim()) throw new ConfigError(`${field}.bindDn: must not be empty`);
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
  return new LdapTarget({ keyName, config, context, servers, timeoutMs, propagationTimeoutMs, admin, configured });
}

interface LdapTargetSetup {
  keyName: string;
  config: LdapTargetConfig;
  context: AdapterContext;
  servers: LdapServer[];
  timeoutMs: number;
  propagationTimeoutMs: number;
  admin: { dn: string; ref: string; field: string } | undefined;
  configured: ConfiguredPolicy;
}

/**
 * What `rollback` returns under `rollback: keep-new` when the account keeps the new password:
 * the directory would refuse the old one back (pwdInHistory), and the new one binds. The
 * engine must then keep `next` as current instead of verifying `current` (see docs/ldap.md).
 */
export type KeptNextResult = Extract<ApplyResult, { ok: true }> & { kept: 'next'; detail: string };

export function keptNext(result: ApplyResult): result is KeptNextResult {
  return result.ok && result.kept === 'next';
}

/** The change provkey made last, so a test can tell a lagging replica from a wrong password. */
interface LastChange {
  /** Fingerprint of the password the account should now have. */
  to: string;
  /** The password it had before, if known. */
  from?: SecretInUse;
  /** Servers that accepted `to`. */
  confirmed: Set<number>;
  /** Servers known to have dropped `from` (so it is never tried there again). */
  fromGone: Set<number>;
}

type ServerResult = { verdict: Verdict; probes: Probe[] };

const WRITE_SERVER = 0;

class LdapTarget implements Target {
  readonly type = 'ldap' as const;

  readonly #setup: LdapTargetSetup;
  readonly #config: LdapTargetConfig;
  readonly #connector: LdapConnector;
  readonly #guard: FailedBindGuard;
  /** Every value this target handled, cut out of any server message before it is shown. */
  readonly #secrets = new Set<string>();
  /** Passwords whose `set` the directory refused before the account changed: nothing to roll back. */
  readonly #untouched = new Set<string>();
  #policy: EffectivePolicy;
  #policyFromDirectory = false;
  readonly #policyTriedAs = new Set<'admin' | 'account'>();
  #change: LastChange | undefined;

  constructor(setup: LdapTargetSetup) {
    this.#setup = setup;
    this.#config = setup.config;
    this.#policy = mergePolicy(undefined, setup.configured, 'not read yet');
    this.#guard = new FailedBindGuard(() => failedBindBudget(this.#policy.policy));
    this.#connector = new LdapConnector({
      tls: setup.config.tls,
      configDir: setup.context.configDir,
      caField: `keys.${setup.keyName}.target.tls.caFile`,
      timeoutMs: setup.timeoutMs,
      scrub: (text) => this.#scrub(text),
    });
  }

  /** Computed: the lockout guard depends on the policy, which is read on first use. */
  get capabilities(): TargetCapabilities {
    return {
      overlap: false,
      negativeProbe: negativeProbeFor(this.#config.negativeProbe, this.#policy.policy),
      propagationTimeoutMs: this.#setup.propagationTimeoutMs,
    };
  }

  /** The policy in force (directory + config), for messages and tests. */
  get effectivePolicy(): EffectivePolicy {
    return this.#policy;
  }

  // --- connection test ------------------------------------------------------------------

  async test(secret: SecretInUse, options: TestOptions): Promise<ConnectionTest> {
    const at = new Date().toISOString();
    const started = performance.now();
    this.#remember(secret.value);
    const expected: Verdict = options.expect === 'accept' ? 'accepted' : 'rejected';
    if (secret.value === '') {
      const probe: Probe = { name: 'bind', outcome: 'fail', ms: 0, detail: 'empty password: an LDAP bind without a password is an anonymous bind; not sent' };
      return { expect: options.expect, verdict: 'error', ok: false, probes: [probe], at, ms: 0 };
    }
    const results = await Promise.all(
      this.#setup.servers.map((_, index) => (options.expect === 'accept' ? this.#acceptOn(index, secret) : this.#rejectOn(index, secret))),
    );
    const several = this.#setup.servers.length > 1;
    const probes = results.flatMap((result, index) => (several ? result.probes.map((p) => ({ ...p, name: `${p.name}-${index + 1}` })) : result.probes));
    if (options.write && options.expect === 'accept') {
      probes.push({
        name: 'write',
        outcome: 'unsupported',
        ms: 0,
        detail: 'the ldap target has no write probe; bind, Who am I? and the search under searchBase are its proof',
      });
    }
    const verdict = combineVerdicts(
      results.map((r) => r.verdict),
      options.expect,
    );
    return {
      expect: options.expect,
      verdict,
      ok: verdict === expected && probes.every((p) => p.outcome !== 'fail'),
      probes: probes.map((p) => (p.detail ? { ...p, detail: this.#scrub(p.detail) } : p)),
      at,
      ms: Math.round(performance.now() - started),
    };
  }

  async #acceptOn(index: number, secret: SecretInUse): Promise<ServerResult> {
    const server = this.#setup.servers[index]!;
    const { bindDn, searchBase, searchFilter } = this.#config;
    const connection = await this.#connector.open(server);
    const probes: Probe[] = [probeConnect(connection, server.url)];
    const notRun = (why: string) => ['bind', 'whoami', 'search'].filter((n) => !probes.some((p) => p.name === n)).map((n) => skipped(n, why));
    if (!connection.ok) return { verdict: verdictOfFailure(connection.failure), probes: [...probes, ...notRun('not run: no connection')] };
    const client = connection.client;
    try {
      // A replica still accepting the previous password has not received the change yet. Asking
      // it that way costs no failed bind, where polling it with the new password would.
      const change = this.#change;
      if (change && change.to === secret.fingerprint && change.from && !change.confirmed.has(index) && !change.fromGone.has(index)) {
        const previous = await bindWithPolicy(client, bindDn, change.from.value, this.#scrub);
        if (previous.ok) {
          this.#guard.succeeded(index);
          probes.push({
            name: 'replication',
            outcome: 'fail',
            status: 0,
            ms: previous.ms,
            detail: `still accepts the previous password ${change.from.fingerprint}: the change has not reached this server yet`,
          });
          return { verdict: 'rejected', probes: [...probes, ...notRun('not run: waiting for replication')] };
        }
        if (previous.failure!.kind !== 'rejected') {
          probes.push({ name: 'replication', outcome: 'fail', status: previous.failure!.status, ms: previous.ms, detail: previous.failure!.detail });
          return { verdict: verdictOfFailure(previous.failure!), probes: [...probes, ...notRun('not run')] };
        }
        change.fromGone.add(index);
        this.#guard.failed(index, change.from.fingerprint);
        probes.push({ name: 'replication', outcome: 'pass', status: 49, ms: previous.ms, detail: `the previous password ${change.from.fingerprint} is rejected: the change has arrived` });
      }
      const gate = this.#guard.check(index, secret.fingerprint);
      if (!gate.ok) {
        probes.push({ name: 'bind', outcome: 'fail', ms: 0, detail: gate.reason });
        return { verdict: 'rejected', probes: [...probes, ...notRun('not run')] };
      }
      const bind = await bindWithPolicy(client, bindDn, secret.value, this.#scrub);
      this.#recordBind(index, secret, bind.ok, bind.failure);
      const judged = judgeBind(bind, 'accept');
      probes.push(judged.probe);
      if (!bind.ok) return { verdict: judged.verdict, probes: [...probes, ...notRun('not run: the bind failed')] };
      if (change && change.to === secret.fingerprint) change.confirmed.add(index);
      probes.push(await probeWhoami(client, bindDn, this.#scrub));
      probes.push(await probeSearch(client, searchBase, searchFilter, this.#scrub));
      if (index === WRITE_SERVER && bind.ppolicy?.errorName !== 'changeAfterReset') await this.#loadPolicyOn(client, 'account');
      return { verdict: 'accepted', probes };
    } finally {
      await closeQuietly(client);
    }
  }

  /** The negative probe: one bind with the secret on this server, which must fail with 49. */
  async #rejectOn(index: number, secret: SecretInUse): Promise<ServerResult> {
    const server = this.#setup.servers[index]!;
    const connection = await this.#connector.open(server);
    const probes: Probe[] = [probeConnect(connection, server.url)];
    if (!connection.ok) return { verdict: verdictOfFailure(connection.failure), probes: [...probes, skipped('bind', 'not run: no connection')] };
    try {
      const bind = await bindWithPolicy(connection.client, this.#config.bindDn, secret.value, this.#scrub);
      this.#recordBind(index, secret, bind.ok, bind.failure);
      const judged = judgeBind(bind, 'reject');
      probes.push(judged.probe);
      return { verdict: judged.verdict, probes };
    } finally {
      await closeQuietly(connection.client);
    }
  }

  #recordBind(index: number, secret: SecretInUse, ok: boolean, failure: LdapFailure | undefined): void {
    if (ok) this.#guard.succeeded(index);
    else if (failure?.kind === 'rejected') this.#guard.failed(index, secret.fingerprint);
  }

  // --- set --------------------------------------------------------------------------------

  async set(change: { next: SecretInUse; current?: SecretInUse; replace: boolean }): Promise<ApplyResult> {
    const { next, current } = change;
    this.#remember(next.value, current?.value);
    // One password per account: every set replaces, whatever `replace` says.
    if (next.value === '') return this.#refused(next, { ok: false, reason: 'policy', detail: `${next.fingerprint}: the password is empty` });
    if (current && current.value === next.value) {
      return this.#refused(next, { ok: false, reason: 'policy', detail: `${next.fingerprint} is the current password; a change needs a new value` });
    }
    return this.#config.apply.mode === 'admin' ? this.#setAsAdmin(next, current) : this.#setAsSelf(next, current);
  }

  /** RFC 3062 as the account: bind with the current password, send old and new. */
  async #setAsSelf(next: SecretInUse, current: SecretInUse | undefined): Promise<ApplyResult> {
    if (!current) {
      return this.#refused(next, {
        ok: false,
        reason: 'error',
        detail: `apply.mode self changes the password as the account itself and needs the current one: run "provkey import ${this.#setup.keyName}" with the password the account has now, or use apply.mode admin`,
      });
    }
    const server = this.#setup.servers[WRITE_SERVER]!;
    return this.#onServer(server, async (client) => {
      const bind = await bindWithPolicy(client, this.#config.bindDn, current.value, this.#scrub);
      this.#recordBind(WRITE_SERVER, current, bind.ok, bind.failure);
      if (!bind.ok) {
        return this.#refused(next, applyFailure(bind.failure!, `bind as ${this.#config.bindDn} with the current password ${current.fingerprint} failed`));
      }
      await this.#loadPolicyOn(client, 'account');
      const problem = passwordProblem(next.value, this.#policy);
      if (problem) return this.#refused(next, { ok: false, reason: 'policy', detail: `${next.fingerprint}: ${problem}` });
      const changed = await changePassword(client, { user: this.#config.bindDn, oldPassword: current.value, newPassword: next.value }, this.#scrub);
      if (!changed.ok) return this.#refused(next, applyFailure(changed.failure, `password modify (self) on ${server.url} refused ${next.fingerprint}`));
      this.#changed(next, current);
      return { ok: true, detail: `password modify as ${this.#config.bindDn} on ${server.url}` };
    });
  }

  /**
   * RFC 3062 as the admin. Under pwdMustChange an admin reset leaves the account able only to
   * change its password, so provkey resets to a throw-away value and lets the account change
   * that to `next` itself: the stored version is then the account's own, fully usable password.
   */
  async #setAsAdmin(next: SecretInUse, current: SecretInUse | undefined): Promise<ApplyResult> {
    const server = this.#setup.servers[WRITE_SERVER]!;
    const bindDn = this.#config.bindDn;
    return this.#onServer(server, async (admin) => {
      const bound = await this.#bindAdmin(admin);
      if (!bound.ok) return this.#refused(next, bound.result);
      await this.#loadPolicyOn(admin, 'admin');
      const problem = passwordProblem(next.value, this.#policy);
      if (problem) return this.#refused(next, { ok: false, reason: 'policy', detail: `${next.fingerprint}: ${problem}` });

      // Unknown counts as TRUE: the two steps work either way; a direct reset does not.
      if (this.#policy.policy.mustChange === false) {
        const reset = await changePassword(admin, { user: bindDn, newPassword: next.value }, this.#scrub);
        if (!reset.ok) return this.#refused(next, applyFailure(reset.failure, `admin reset of ${bindDn} on ${server.url} refused ${next.fingerprint}`));
        this.#changed(next, current);
        const usable = await this.#ensureNoPendingChange(admin, server, next);
        if (!usable.ok) return usable;
        return { ok: true, detail: `admin reset by ${this.#setup.admin!.dn} on ${server.url}` };
      }

      const temporary = this.#throwAway();
      const reset = await changePassword(admin, { user: bindDn, newPassword: temporary.value }, this.#scrub);
      if (!reset.ok) return this.#refused(next, applyFailure(reset.failure, `admin reset of ${bindDn} on ${server.url} refused`));
      const own = await this.#onServer(server, async (account) => {
        const bind = await bindWithPolicy(account, bindDn, temporary.value, this.#scrub);
        if (!bind.ok) return applyFailure(bind.failure!, `bind as ${bindDn} with the temporary password failed`);
        this.#guard.succeeded(WRITE_SERVER);
        const changed = await changePassword(account, { oldPassword: temporary.value, newPassword: next.value }, this.#scrub);
        if (!changed.ok) return applyFailure(changed.failure, `the account's own change from the temporary password to ${next.fingerprint} was refused`);
        return { ok: true } as ApplyResult;
      });
      if (!own.ok) {
        // Never leave the account on a password nobody knows when the old one can be put back.
        if (!current) return { ...own, detail: `${own.detail}; the account is left on an unknown temporary password: an admin reset (provkey add or rotate, admin mode) recovers it` };
        const restored = await this.#adminRestore(admin, current, next);
        if (restored.ok) return this.#refused(next, { ...own, detail: `${own.detail}; ${current.fingerprint} was put back` });
        return { ...own, detail: `${own.detail}; putting ${current.fingerprint} back failed too (${restored.detail})` };
      }
      this.#changed(next, current);
      return { ok: true, detail: `admin reset by ${this.#setup.admin!.dn} to a temporary password, then changed to ${next.fingerprint} by the account itself (pwdMustChange) on ${server.url}` };
    });
  }

  /**
   * The policy said pwdMustChange is off, but a per-account policy may say otherwise: if the
   * account is asked to change its password, the admin clears pwdReset (the value is fresh and
   * known only to the store), or the apply fails with what to configure.
   */
  async #ensureNoPendingChange(admin: Client, server: LdapServer, next: SecretInUse): Promise<ApplyResult> {
    const bind = await this.#onServer(
      server,
      (account) => bindWithPolicy(account, this.#config.bindDn, next.value, this.#scrub),
      (failure): BindResult => ({ ok: false, failure, ms: 0 }),
    );
    this.#recordBind(WRITE_SERVER, next, bind.ok, bind.failure);
    if (!bind.ok) return applyFailure(bind.failure!, `bind with ${next.fingerprint} right after the admin reset failed`);
    if (bind.ppolicy?.errorName !== 'changeAfterReset') return { ok: true };
    const cleared = await clearPasswordReset(admin, this.#config.bindDn, this.#scrub);
    if (cleared.ok) return { ok: true };
    return applyFailure(cleared.failure, 'the account must change its password after the reset (pwdMustChange) and provkey cannot clear pwdReset; set passwordPolicy.mustChange: true', 'policy');
  }

  // --- retire / revoke --------------------------------------------------------------------

  async retire(change: { old: SecretInUse; current?: SecretInUse }): Promise<ApplyResult> {
    const { old } = change;
    // A "current" that is the retired value itself cannot stay in use: that is a revoke.
    const current = change.current && change.current.value !== old.value ? change.current : undefined;
    this.#remember(old.value, current?.value);
    if (current) {
      return { ok: true, detail: `nothing to do: the account runs on ${current.fingerprint}, which replaced ${old.fingerprint} (one password per account)` };
    }
    const server = this.#setup.servers[WRITE_SERVER]!;
    const bindDn = this.#config.bindDn;
    const discard = this.#throwAway();
    const reset = await this.#onServer(server, async (client): Promise<ApplyResult> => {
      if (this.#setup.admin) {
        const bound = await this.#bindAdmin(client);
        if (!bound.ok) return bound.result;
        await this.#loadPolicyOn(client, 'admin');
        const done = await changePassword(client, { user: bindDn, newPassword: discard.value }, this.#scrub);
        return done.ok ? { ok: true, detail: `admin reset of ${bindDn} to an unknown random password` } : applyFailure(done.failure, `admin reset of ${bindDn} on ${server.url} failed`);
      }
      const bind = await bindWithPolicy(client, bindDn, old.value, this.#scrub);
      this.#recordBind(WRITE_SERVER, old, bind.ok, bind.failure);
      if (!bind.ok && bind.failure!.kind === 'rejected') return { ok: true, detail: `${old.fingerprint} already does not bind (${bind.failure!.detail})` };
      if (!bind.ok) return applyFailure(bind.failure!, `bind as ${bindDn} with ${old.fingerprint} failed`);
      await this.#loadPolicyOn(client, 'account');
      const done = await changePassword(client, { user: bindDn, oldPassword: old.value, newPassword: discard.value }, this.#scrub);
      return done.ok ? { ok: true, detail: `changed by the account itself to an unknown random password` } : applyFailure(done.failure, `password modify (self) on ${server.url} failed`);
    });
    if (!reset.ok) return reset;
    this.#changed(discard, old);
    const lagging = await this.#waitForReplicas(discard);
    const notes = [reset.detail ?? 'reset'];
    if (lagging.length) notes.push(`not yet confirmed on ${lagging.join(', ')}`);
    if (this.#config.revoke.lockAccount) {
      const locked = await this.#onServer(server, async (client): Promise<ApplyResult> => {
        const bound = await this.#bindAdmin(client);
        if (!bound.ok) return bound.result;
        const done = await lockAccount(client, bindDn, this.#scrub);
        return done.ok ? { ok: true } : applyFailure(done.failure, 'locking the account (pwdAccountLockedTime) failed');
      });
      if (!locked.ok) return { ...locked, detail: `${notes.join('; ')}; but ${locked.detail}` };
      notes.push('account locked (pwdAccountLockedTime; an admin password reset unlocks it)');
    }
    return { ok: true, detail: notes.join('; ') };
  }

  /**
   * After a revoke, waits (within the propagation timeout) until every other server accepts
   * the throw-away password, so the negative probe that follows sees the change everywhere.
   * Binding with it costs nothing once it has arrived; before that the bind guard paces it.
   */
  async #waitForReplicas(secret: SecretInUse): Promise<string[]> {
    const deadline = Date.now() + this.#setup.propagationTimeoutMs;
    const lagging: string[] = [];
    for (let index = 1; index < this.#setup.servers.length; index++) {
      const server = this.#setup.servers[index]!;
      let accepted = false;
      while (!accepted && Date.now() < deadline) {
        if (this.#guard.check(index, secret.fingerprint).ok) {
          const connection = await this.#connector.open(server);
          if (connection.ok) {
            const bind = await bindWithPolicy(connection.client, this.#config.bindDn, secret.value, this.#scrub);
            await closeQuietly(connection.client);
            this.#recordBind(index, secret, bind.ok, bind.failure);
            accepted = bind.ok;
          }
        }
        if (!accepted) await sleep(Math.min(250, Math.max(0, deadline - Date.now())));
      }
      if (!accepted) lagging.push(server.url);
    }
    return lagging;
  }

  // --- rollback ---------------------------------------------------------------------------

  async rollback(change: { next: SecretInUse; current?: SecretInUse }): Promise<ApplyResult> {
    const { next, current } = change;
    this.#remember(next.value, current?.value);
    if (!current) {
      return { ok: true, detail: `nothing to restore: there was no previous version; ${next.fingerprint} stays on the account and is disabled in the store` };
    }
    if (this.#untouched.has(next.fingerprint)) {
      return { ok: true, detail: `nothing to undo: the directory never took ${next.fingerprint}; ${current.fingerprint} is unchanged` };
    }
    if (this.#config.rollback === 'keep-new') {
      const decided = await this.#keepNewIfItBinds(next, current);
      if (decided) return decided;
    }
    if (!this.#setup.admin) {
      return {
        ok: false,
        reason: 'rejected',
        detail: `neither ${next.fingerprint} nor ${current.fingerprint} binds as ${this.#config.bindDn}, and there is no admin credential (apply.adminDn) to put ${current.fingerprint} back`,
      };
    }
    const server = this.#setup.servers[WRITE_SERVER]!;
    return this.#onServer(server, async (admin) => {
      const bound = await this.#bindAdmin(admin);
      if (!bound.ok) return bound.result;
      return this.#adminRestore(admin, current, next);
    });
  }

  /**
   * rollback: keep-new. A password history refuses the old password as a self change; if the
   * new one binds and is fully usable, it stays (the engine keeps it as current). If it does not
   * bind but the old one still does, the set never took effect and there is nothing to undo.
   * Otherwise undefined: fall back to an admin reset.
   */
  async #keepNewIfItBinds(next: SecretInUse, current: SecretInUse): Promise<ApplyResult | undefined> {
    const server = this.#setup.servers[WRITE_SERVER]!;
    return this.#onServer(
      server,
      async (client): Promise<ApplyResult | undefined> => {
        const withNext = await bindWithPolicy(client, this.#config.bindDn, next.value, this.#scrub);
        this.#recordBind(WRITE_SERVER, next, withNext.ok, withNext.failure);
        if (withNext.ok && withNext.ppolicy?.errorName !== 'changeAfterReset') {
          const kept: KeptNextResult = {
            ok: true,
            kept: 'next',
            detail: `kept ${next.fingerprint} (rollback: keep-new): it binds on ${server.url}, and the directory would refuse ${current.fingerprint} back as a self change (pwdInHistory)`,
          };
          return kept;
        }
        const withCurrent = await bindWithPolicy(client, this.#config.bindDn, current.value, this.#scrub);
        this.#recordBind(WRITE_SERVER, current, withCurrent.ok, withCurrent.failure);
        if (withCurrent.ok) return { ok: true, detail: `${next.fingerprint} is not in effect and ${current.fingerprint} still binds: nothing to undo` };
        return undefined;
      },
      () => undefined,
    );
  }

  /** The admin puts `current` back (bypassing pwdInHistory as a password administrator) and clears pwdReset. */
  async #adminRestore(admin: Client, current: SecretInUse, next: SecretInUse): Promise<ApplyResult> {
    const bindDn = this.#config.bindDn;
    const reset = await changePassword(admin, { user: bindDn, newPassword: current.value }, this.#scrub);
    if (!reset.ok) {
      const refused = applyFailure(reset.failure, `admin reset of ${bindDn} back to ${current.fingerprint} refused`);
      if (reset.failure.status !== 19) return refused;
      const hint = `an admin with only "write" access is held to the password policy: give ${this.#setup.admin!.dn} "manage" on userPassword to act as a password administrator`;
      return { ...refused, detail: `${refused.detail}; ${hint}` };
    }
    this.#changed(current, next);
    const cleared = await clearPasswordReset(admin, bindDn, this.#scrub);
    const note = cleared.ok ? '' : `; pwdReset could not be cleared (${cleared.failure.detail}), so under pwdMustChange the account must change its password before it can search`;
    return { ok: true, detail: `admin reset back to ${current.fingerprint} by ${this.#setup.admin!.dn}${note}` };
  }

  // --- policy and expiry ------------------------------------------------------------------

  /**
   * Reads the directory's policy (as the admin, or as the account with `current` when given)
   * and refuses a generation policy whose values the directory would reject. The engine does
   * not pass `current` (yet): in self mode without an admin credential the policy is then
   * checked at `set`, before anything changes.
   */
  async checkGenerationPolicy(policy: GenerationPolicy, current?: SecretInUse): Promise<void> {
    if (current) this.#remember(current.value);
    await this.#ensurePolicy(current);
    validateGenerationPolicy(policy, this.#policy, `keys.${this.#setup.keyName}.format`);
  }

  /** pwdChangedTime + pwdMaxAge of the account: `rotate --due` rotates before the directory expires it. */
  async expiresAt(current: SecretInUse): Promise<Date | undefined> {
    this.#remember(current.value);
    const server = this.#setup.servers[WRITE_SERVER]!;
    const changedAt = await this.#onServer(
      server,
      async (client): Promise<Date | 'expired' | undefined> => {
        if (this.#setup.admin) {
          const bound = await this.#bindAdmin(client);
          if (!bound.ok) return undefined;
          await this.#loadPolicyOn(client, 'admin');
        } else {
          const bind = await bindWithPolicy(client, this.#config.bindDn, current.value, this.#scrub);
          this.#recordBind(WRITE_SERVER, current, bind.ok, bind.failure);
          if (!bind.ok) return bind.ppolicy?.errorName === 'passwordExpired' ? 'expired' : undefined;
          if (bind.ppolicy?.graceAuthNsRemaining !== undefined) return 'expired';
          await this.#loadPolicyOn(client, 'account');
        }
        return readPasswordChangedTime(client, this.#config.bindDn).catch(() => undefined);
      },
      () => undefined,
    );
    if (changedAt === 'expired') return new Date();
    const maxAge = this.#policy.policy.maxAge;
    if (!changedAt || !maxAge || maxAge <= 0) return undefined;
    return new Date(changedAt.getTime() + maxAge * 1000);
  }

  async #ensurePolicy(secret: SecretInUse | undefined): Promise<void> {
    if (this.#policyFromDirectory) return;
    const who = this.#setup.admin ? 'admin' : secret ? 'account' : undefined;
    if (!who || this.#policyTriedAs.has(who)) return;
    const server = this.#setup.servers[WRITE_SERVER]!;
    await this.#onServer(
      server,
      async (client) => {
        if (who === 'admin') {
          if (!(await this.#bindAdmin(client)).ok) return;
        } else {
          const bind = await bindWithPolicy(client, this.#config.bindDn, secret!.value, this.#scrub);
          this.#recordBind(WRITE_SERVER, secret!, bind.ok, bind.failure);
          if (!bind.ok) return;
        }
        await this.#loadPolicyOn(client, who);
      },
      () => undefined,
    );
  }

  /** Reads the policy once per identity on a bound connection; the config's values override it. */
  async #loadPolicyOn(client: Client, who: 'admin' | 'account'): Promise<void> {
    if (this.#policyFromDirectory || this.#policyTriedAs.has(who)) return;
    this.#policyTriedAs.add(who);
    const { found, note } = await readDirectoryPolicy(client, {
      ...(this.#setup.configured.dn ? { configuredDn: this.#setup.configured.dn } : {}),
      accountDn: this.#config.bindDn,
    });
    this.#policy = mergePolicy(found, this.#setup.configured, note);
    this.#policyFromDirectory = found !== undefined;
    if (!found) this.#setup.context.debug(`[ldap] ${this.#setup.keyName}: ${note}; using the config's passwordPolicy`);
  }

  // --- plumbing ---------------------------------------------------------------------------

  async #bindAdmin(client: Client): Promise<{ ok: true } | { ok: false; result: ApplyResult }> {
    const admin = this.#setup.admin!;
    const password = await this.#setup.context.resolveSecret(admin.ref, admin.field);
    this.#remember(password);
    const bind = await bindWithPolicy(client, admin.dn, password, this.#scrub);
    if (bind.ok) return { ok: true };
    return { ok: false, result: applyFailure(bind.failure!, `admin bind as ${admin.dn} failed`) };
  }

  /** Runs `work` on a fresh connection to `server`; a connection failure becomes the result. */
  async #onServer<T>(server: LdapServer, work: (client: Client) => Promise<T>, onNoConnection?: (failure: LdapFailure) => T): Promise<T> {
    const connection = await this.#connector.open(server);
    if (!connection.ok) {
      if (onNoConnection) return onNoConnection(connection.failure);
      return applyFailure(connection.failure, `cannot connect to ${server.url}`) as T;
    }
    try {
      return await work(connection.client);
    } finally {
      await closeQuietly(connection.client);
    }
  }

  #changed(to: SecretInUse, from: SecretInUse | undefined): void {
    this.#change = {
      to: to.fingerprint,
      ...(from ? { from } : {}),
      confirmed: new Set([WRITE_SERVER]),
      fromGone: new Set([WRITE_SERVER]),
    };
  }

  #refused(next: SecretInUse, result: ApplyResult): ApplyResult {
    this.#untouched.add(next.fingerprint);
    return result;
  }

  #throwAway(): SecretInUse {
    const value = throwAwayPassword(this.#policy.policy);
    registerSecret(value);
    this.#remember(value);
    return { value, fingerprint: fingerprint(value) };
  }

  #remember(...values: Array<string | undefined>): void {
    for (const value of values) if (value) this.#secrets.add(value);
  }

  readonly #scrub = (text: string): string => {
    let out = redact(text);
    for (const value of this.#secrets) if (value.length >= 4 && out.includes(value)) out = out.split(value).join('[secret]');
    return out;
  };

  async close(): Promise<void> {
    // Every operation opens and closes its own connection: nothing stays open.
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
