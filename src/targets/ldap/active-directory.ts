import { randomBytes } from 'node:crypto';
import type { Client } from 'ldapts';
import { parseDuration } from '../../core/duration.js';
import { ConfigError } from '../../core/errors.js';
import { fingerprint } from '../../core/fingerprint.js';
import type { GenerationPolicy } from '../../core/keygen.js';
import { redact, registerSecret } from '../../core/redact.js';
import type { ApplyResult, CandidateVerdict, ConnectionTest, Identification, Probe, SecretInUse, Target, TargetCapabilities, TestOptions, Verdict } from '../target.js';
import type { AdFailure } from './ad-errors.js';
import { adBind, changeOwnPassword, resetPassword } from './ad-password.js';
import { assumedFreeAllowed, budgetReason, identifyRoom, readLockoutState, type AccountLockoutState } from './ad-lockout.js';
import { adExpiry, adPasswordProblem, fileTimeToDate, readAdPolicy, validateAdGenerationPolicy, type AdAccount, type AdPolicy } from './ad-policy.js';
import { FailedBindGuard } from './bind-guard.js';
import { closeQuietly, LdapConnector, withConnection, type LdapServer } from './connection.js';
import { failedBindBudget, negativeProbeFor } from './ppolicy.js';
import { combineVerdicts, probeConnect, probeSearch, skipped, verdictOfFailure } from './probes.js';
import { applyFailure, classifyLdapError, type LdapFailure } from './result-codes.js';
import { probeWrites, writeProbeNotConfigured } from './write-probe.js';
import type { LdapTargetSetup } from './target-state.js';

/**
 * The LDAP target in Active Directory mode (`directory: activeDirectory`; proven against
 * Samba AD DC): the password is unicodePwd (ad-password.ts), the policy is the domain's or a
 * fine-grained one (ad-policy.ts), errors carry AD's extended codes (ad-errors.ts).
 *
 * What AD does differently, and what this module does about it:
 * - No Who am I? (result 2): the test reads the account's own entry as the bound identity.
 * - Searches as the account return referrals (to the configuration partition): skipped.
 * - After a change AD still accepts the previous password for `oldPasswordAllowedPeriod`
 *   (60 minutes by default) and does not count binds with it (nor with the one before). So
 *   when the old password must stop working at once (a rotation without overlap, a revoke,
 *   a rollback), the change is made twice, through a throw-away value: the old password is
 *   then two back, which AD refuses. As the account itself that needs minPwdAge 0; otherwise
 *   the result says until when the old password still works.
 * - A lockout (775) is not cleared by a reset; `lockoutTime: 0` clears it.
 */

export async function createActiveDirectoryTarget(setup: LdapTargetSetup): Promise<Target> {
  const field = `keys.${setup.keyName}.target`;
  const config = setup.config;
  if (config.revoke.lockAccount) throw new ConfigError(`${field}.revoke.lockAccount: not supported with directory: activeDirectory (AD locks an account only after failed binds); a revoke resets it to an unknown password`);
  if (setup.servers.some((s) => s.security === 'plain')) {
    throw new ConfigError(`${field}.urls: Active Directory refuses password changes without TLS: use ldaps:// or startTls: true`, 'config.insecure');
  }
  const windowMs = parseDuration(config.oldPasswordAllowedPeriod, `${field}.oldPasswordAllowedPeriod`);
  return new ActiveDirectoryTarget(setup, windowMs);
}

/** Clocks of provkey's host and the DC may differ: closer than this proves nothing. */
const CLOCK_SKEW_MS = 5 * 60_000;

/** The change provkey made last: which password the account has now and which one it replaced. */
interface LastChange {
  to: string;
  from?: SecretInUse;
  at: number;
  /** The replaced password is already two back (the change went through a throw-away value). */
  contained: boolean;
}

type ServerResult = { verdict: Verdict; probes: Probe[] };

class ActiveDirectoryTarget implements Target {
  readonly type = 'ldap' as const;
  readonly #setup: LdapTargetSetup;
  readonly #connector: LdapConnector;
  readonly #guard: FailedBindGuard;
  readonly #windowMs: number;
  readonly #secrets = new Set<string>();
  readonly #untouched = new Set<string>();
  #policy: AdPolicy | undefined;
  #account: AdAccount;
  #policyRead = false;
  #change: LastChange | undefined;
  /** The account's two previous passwords as far as this run knows: AD does not count failed binds with them. */
  #previous: string[] = [];
  /** Failed binds in identify this run that counted (or may have) toward lockoutThreshold. */
  #countedThisRun = 0;
  /** Passwords that got 49 since this run's last change: never bound again to learn the same thing. */
  readonly #refusedSince = new Set<string>();

  constructor(setup: LdapTargetSetup, windowMs: number) {
    this.#setup = setup;
    this.#windowMs = windowMs;
    this.#account = { dn: setup.config.bindDn };
    this.#guard = new FailedBindGuard(() => failedBindBudget(this.#lockoutView()));
    this.#connector = new LdapConnector({
      tls: setup.config.tls,
      configDir: setup.context.configDir,
      caField: `keys.${setup.keyName}.target.tls.caFile`,
      timeoutMs: setup.timeoutMs,
      scrub: (text) => this.#scrub(text),
    });
  }

  /** lockoutThreshold in ppolicy terms, so the shared lockout rules apply. */
  #lockoutView(): { maxFailure?: number; lockout?: boolean } {
    // The stricter of the config's and the domain's (a config value above the DC's own would lock the account).
    const configured = this.#setup.configured.maxFailure;
    const read = this.#policy?.lockoutThreshold;
    const threshold = configured === undefined ? read : read === undefined || read === 0 ? configured : configured === 0 ? read : Math.min(configured, read);
    if (threshold === undefined) return {};
    return { maxFailure: threshold, lockout: threshold > 0 };
  }

  get capabilities(): TargetCapabilities {
    return {
      overlap: false,
      negativeProbe: negativeProbeFor(this.#setup.config.negativeProbe, this.#lockoutView()),
      propagationTimeoutMs: this.#setup.propagationTimeoutMs,
    };
  }

  /** The policy in force, for messages and tests. */
  get effectivePolicy(): AdPolicy | undefined {
    return this.#effective();
  }

  #effective(): AdPolicy | undefined {
    const minLength = this.#setup.configured.minLength;
    const base = this.#policy;
    if (minLength === undefined) return base;
    return { ...(base ?? { complexity: false, historyLength: 0, lockoutThreshold: 0, minAge: 0, maxAge: 0, source: 'config' }), minLength, source: base ? `${base.source} + config` : 'config (passwordPolicy)' };
  }

  // --- test ---------------------------------------------------------------------------------

  async test(secret: SecretInUse, options: TestOptions): Promise<ConnectionTest> {
    const at = new Date().toISOString();
    const started = performance.now();
    this.#remember(secret.value);
    if (secret.value === '') {
      const probe: Probe = { name: 'bind', outcome: 'fail', ms: 0, detail: 'empty password: an LDAP bind without a password is an anonymous bind; not sent' };
      return { expect: options.expect, verdict: 'error', ok: false, probes: [probe], at, ms: 0 };
    }
    const servers = this.#setup.servers;
    const results = await Promise.all(servers.map((server, index) => (options.expect === 'accept' ? this.#acceptOn(server, index, secret) : this.#rejectOn(server, index, secret))));
    const several = servers.length > 1;
    const probes = results.flatMap((r, index) => (several ? r.probes.map((p) => ({ ...p, name: `${p.name}-${index + 1}` })) : r.probes));
    if (options.write && options.expect === 'accept') probes.push(...(await this.#writeProbe(secret, results[0]!.verdict, options.effect)));
    const verdict = combineVerdicts(results.map((r) => r.verdict), options.expect);
    const expected: Verdict = options.expect === 'accept' ? 'accepted' : 'rejected';
    return {
      expect: options.expect,
      verdict,
      ok: verdict === expected && probes.every((p) => p.outcome !== 'fail'),
      probes: probes.map((p) => (p.detail ? { ...p, detail: this.#scrub(p.detail) } : p)),
      at,
      ms: Math.round(performance.now() - started),
    };
  }

  async #acceptOn(server: LdapServer, index: number, secret: SecretInUse): Promise<ServerResult> {
    const { bindDn, searchBase, searchFilter } = this.#setup.config;
    const connection = await this.#connector.open(server);
    const probes: Probe[] = [probeConnect(connection, server.url)];
    const notRun = (why: string) => ['bind', 'whoami', 'search'].filter((n) => !probes.some((p) => p.name === n)).map((n) => skipped(n, why));
    if (!connection.ok) return { verdict: verdictOfFailure(connection.failure), probes: [...probes, ...notRun('not run: no connection')] };
    const client = connection.client;
    try {
      const gate = this.#guard.check(index, secret.fingerprint);
      if (!gate.ok) {
        probes.push({ name: 'bind', outcome: 'fail', ms: 0, detail: gate.reason });
        return { verdict: 'rejected', probes: [...probes, ...notRun('not run')] };
      }
      const bind = await adBind(client, bindDn, secret.value, this.#scrub);
      this.#recordBind(index, secret, bind.ok, bind.failure);
      if (!bind.ok) {
        probes.push({ name: 'bind', outcome: 'fail', status: bind.failure!.status, ms: bind.ms, detail: bind.failure!.detail });
        return { verdict: verdictOfFailure(bind.failure!), probes: [...probes, ...notRun('not run: the bind failed')] };
      }
      const inWindow = this.#acceptedOnlyByWindow(secret);
      probes.push(inWindow
        ? { name: 'bind', outcome: 'fail', status: 0, ms: bind.ms, detail: `bound with the previous password: AD still accepts it until ${inWindow} (old password allowed period), but the account no longer has it` }
        : { name: 'bind', outcome: 'pass', status: 0, ms: bind.ms });
      probes.push(await this.#probeIdentity(client));
      probes.push(await probeSearch(client, searchBase, searchFilter, this.#scrub));
      if (index === 0) await this.#loadPolicy(client);
      return { verdict: 'accepted', probes };
    } finally {
      await closeQuietly(client);
    }
  }

  /** The provisioning write probe (write-probe.ts) on the first server, once the account was accepted there. */
  async #writeProbe(secret: SecretInUse, verdict: Verdict, effect: TestOptions['effect']): Promise<Probe[]> {
    const config = this.#setup.config.writeProbe;
    if (!config) return [writeProbeNotConfigured()];
    if (verdict !== 'accepted') return [skipped('write', 'not run: the account was not accepted')];
    return this.#onWriteServer(
      async (client) => {
        const bind = await adBind(client, this.#setup.config.bindDn, secret.value, this.#scrub);
        this.#recordBind(0, secret, bind.ok, bind.failure);
        if (!bind.ok) return [{ name: 'write', outcome: 'fail', status: bind.failure!.status, ms: bind.ms, detail: bind.failure!.detail } as Probe];
        return probeWrites(client, config, { activeDirectory: true, scrub: this.#scrub, ...(effect ? { effect } : {}) });
      },
      (failure) => [{ name: 'write', outcome: 'fail', status: failure.status, ms: 0, detail: failure.detail } as Probe],
    );
  }

  /** AD has no Who am I?: the bound identity reads its own entry, which a mapped or anonymous bind could not. */
  async #probeIdentity(client: Client): Promise<Probe> {
    const started = performance.now();
    const dn = this.#setup.config.bindDn;
    try {
      const result = await client.search(dn, { scope: 'base', filter: '(objectClass=*)', attributes: ['objectSid'] });
      const ms = Math.round(performance.now() - started);
      if (result.searchEntries.length === 1) return { name: 'whoami', outcome: 'pass', status: 0, ms, detail: `bound as ${dn} (AD has no Who am I?: the account's own entry was read)` };
      return { name: 'whoami', outcome: 'fail', status: 0, ms, detail: `the account's own entry ${dn} is not visible to this bind` };
    } catch (error) {
      const failure = classifyLdapError(error, this.#scrub);
      return { name: 'whoami', outcome: 'fail', status: failure.status, ms: Math.round(performance.now() - started), detail: `reading ${dn} as itself: ${failure.detail}` };
    }
  }

  /** A negative probe: one bind that must fail with 49. The previous password within AD's window binds: reported as such. */
  async #rejectOn(server: LdapServer, index: number, secret: SecretInUse): Promise<ServerResult> {
    const connection = await this.#connector.open(server);
    const probes: Probe[] = [probeConnect(connection, server.url)];
    if (!connection.ok) return { verdict: verdictOfFailure(connection.failure), probes: [...probes, skipped('bind', 'not run: no connection')] };
    try {
      const bind = await adBind(connection.client, this.#setup.config.bindDn, secret.value, this.#scrub);
      this.#recordBind(index, secret, bind.ok, bind.failure);
      if (bind.ok) {
        const until = this.#acceptedOnlyByWindow(secret);
        const detail = until
          ? `the server still accepts this password: it is the previous one, which AD accepts until ${until} (old password allowed period)`
          : 'the server still accepts this password';
        probes.push({ name: 'bind', outcome: 'fail', status: 0, ms: bind.ms, detail });
        return { verdict: 'accepted', probes };
      }
      const failure = bind.failure!;
      const verdict = verdictOfFailure(failure);
      probes.push({ name: 'bind', outcome: verdict === 'rejected' ? 'pass' : 'fail', status: failure.status, ms: bind.ms, detail: failure.detail });
      return { verdict, probes };
    } finally {
      await closeQuietly(connection.client);
    }
  }

  /** When `secret` is the password provkey's last change replaced and AD's window still covers it: the window's end. */
  #acceptedOnlyByWindow(secret: SecretInUse): string | undefined {
    const change = this.#change;
    if (!change || change.contained || change.from?.fingerprint !== secret.fingerprint) return undefined;
    const end = change.at + this.#windowMs;
    return Date.now() < end ? new Date(end).toISOString() : undefined;
  }

  #recordBind(index: number, secret: SecretInUse, ok: boolean, failure: LdapFailure | undefined): void {
    if (failure?.kind === 'rejected' && index === 0) this.#refusedSince.add(secret.fingerprint);
    if (ok) this.#guard.succeeded(index);
    // AD's "n-2" rule: a bind with one of the two previous passwords does not count toward lockoutThreshold.
    else if (failure?.kind === 'rejected' && !this.#previous.includes(secret.fingerprint)) this.#guard.failed(index, secret.fingerprint);
  }

  // --- identify -------------------------------------------------------------------------------

  /**
   * Which candidate the account has, for a resumed run. Free evidence first, read as the admin
   * when there is one (ad-lockout.ts): a lockout (UF_LOCKOUT) answers for every candidate;
   * a candidate made after pwdLastSet was never set. Then binds, in the caller's order (the
   * oldest first), until one is accepted.
   *
   * What a failure costs, as Samba 4.17 showed (ldap-ad-target.test.ts): a bind with one of the
   * two previous passwords is refused but not counted (the n-2 rule), and a success resets
   * badPwdCount to 0. A provkey change leaves the replaced password one or two back, so the
   * oldest candidate is tried first as free; with an admin, badPwdCount is read again after it
   * fails, and a failure that did count (the password was changed outside provkey) is charged.
   * Failures that count are spent within identifyRoom (ad-lockout.ts); the assumed-free one
   * only while a failure that did count would still leave the account clear of the limit.
   */
  async identify(candidates: SecretInUse[]): Promise<Identification> {
    const unique = candidates.filter((c, i) => candidates.findIndex((o) => o.fingerprint === c.fingerprint) === i);
    this.#remember(...unique.map((c) => c.value));
    const verdicts: Record<string, CandidateVerdict> = Object.fromEntries(unique.map((c) => [c.fingerprint, 'unknown' as CandidateVerdict]));
    const notes: string[] = [];
    const result = (): Identification => ({ verdicts, detail: this.#scrub(notes.join('; ')) });
    if (unique.length === 0) return { verdicts, detail: 'no candidate versions to identify' };
    const undecided = () => unique.filter((c) => verdicts[c.fingerprint] === 'unknown' && c.value !== '');
    const all = (verdict: CandidateVerdict) => {
      for (const c of undecided()) verdicts[c.fingerprint] = verdict;
    };
    const server = this.#setup.servers[0]!;
    const connection = await this.#connector.open(server);
    if (!connection.ok) {
      all(connection.failure.kind === 'unreachable' || connection.failure.kind === 'tls' ? 'unreachable' : 'unknown');
      notes.push(`${server.url}: ${connection.failure.detail}`);
      return result();
    }
    const client = connection.client;
    try {
      const asAdmin = this.#setup.admin !== undefined && (await this.#bindAdmin(client)).ok;
      let state: AccountLockoutState | undefined;
      if (asAdmin) {
        await this.#loadPolicy(client);
        state = await readLockoutState(client, this.#setup.config.bindDn);
        if (state?.locked) {
          all('rejected');
          notes.push(`the account is locked out${state.lockedAt ? ` since ${state.lockedAt.toISOString()}` : ''} (${state.lockSource}): an admin must set lockoutTime to 0`);
          return result();
        }
        if (state?.lockedAt) notes.push(`lockoutTime ${state.lockedAt.toISOString()} has ended (lockoutDuration): not locked`);
        const lastSet = state?.passwordLastSet;
        for (const c of undecided()) {
          const created = c.createdAt ? Date.parse(c.createdAt) : NaN;
          if (lastSet && Number.isFinite(created) && created > lastSet.getTime() + CLOCK_SKEW_MS) {
            verdicts[c.fingerprint] = 'rejected';
            notes.push(`${c.fingerprint} was generated after the password last changed (pwdLastSet ${lastSet.toISOString()}): never set`);
          }
        }
      }
      const threshold = this.#lockoutView().maxFailure;
      let room = identifyRoom(threshold, state?.badPwdCount, this.#countedThisRun);
      // provkey's change pushes the old password one or two back, where AD does not count a
      // failed bind with it: the oldest candidate is tried first, as free (checked below).
      const created = (c: SecretInUse) => (c.createdAt ? Date.parse(c.createdAt) : NaN);
      const dated = unique.filter((c) => Number.isFinite(created(c)));
      const oldest = dated.length >= 2 ? dated.reduce((a, b) => (created(b) < created(a) ? b : a)) : undefined;
      let tentative: SecretInUse | undefined;
      for (const candidate of [...undecided()].sort((a, b) => Number(b === oldest) - Number(a === oldest))) {
        const known = this.#previous.includes(candidate.fingerprint);
        const free = known || (candidate === oldest && assumedFreeAllowed(threshold, state?.badPwdCount, this.#countedThisRun));
        if (!free && room <= 0) {
          notes.push(`${undecided().map((c) => c.fingerprint).join(', ')} not tried: ${budgetReason(threshold, state?.badPwdCount, this.#countedThisRun)}`);
          break;
        }
        const bind = await adBind(client, this.#setup.config.bindDn, candidate.value, this.#scrub);
        this.#recordBind(0, candidate, bind.ok, bind.failure);
        if (bind.ok) {
          if (this.#acceptedOnlyByWindow(candidate)) {
            verdicts[candidate.fingerprint] = 'rejected';
            notes.push(`${candidate.fingerprint} binds only because AD still accepts the previous password (old password allowed period)`);
            continue;
          }
          // Within oldPasswordAllowedPeriod the replaced password binds too (Samba: LDAP simple
          // binds included): unless the password has not changed since a newer candidate was
          // made, that newer one decides.
          const newer = undecided().filter((c) => c !== candidate && created(c) > created(candidate));
          if (this.#windowMs > 0 && newer.length > 0 && !(await this.#unchangedSince(client, state, Math.min(...newer.map(created))))) {
            tentative = candidate;
            notes.push(`${candidate.fingerprint} binds, but it may be the previous password AD still accepts (old password allowed period): ${newer.map((c) => c.fingerprint).join(', ')} decides`);
            continue;
          }
          verdicts[candidate.fingerprint] = 'accepted';
          notes.push(`${candidate.fingerprint} binds`);
          break;
        }
        const failure = bind.failure!;
        if (failure.kind !== 'rejected') {
          verdicts[candidate.fingerprint] = failure.kind === 'unreachable' || failure.kind === 'tls' ? 'unreachable' : 'unknown';
          notes.push(`${candidate.fingerprint}: ${failure.detail}`);
          if (failure.kind === 'unreachable' || failure.kind === 'tls') {
            all('unreachable');
            break;
          }
          continue;
        }
        verdicts[candidate.fingerprint] = 'rejected';
        notes.push(`${candidate.fingerprint}: ${failure.detail}`);
        if (bind.failure?.locked) {
          all('rejected');
          break;
        }
        if (!free) {
          room -= 1;
          this.#countedThisRun += 1;
        } else if (!known && asAdmin && state?.badPwdCount !== undefined) {
          // Assumed free: the DC's own count says whether it was (unreadable: charged).
          const counted = await this.#countedSince(client, state.badPwdCount);
          if (counted === undefined || counted > 0) {
            room -= 1;
            this.#countedThisRun += 1;
            notes.push(`${candidate.fingerprint} ${counted === undefined ? 'may have counted' : 'counted'} toward lockoutThreshold (not one of the two previous passwords: changed outside provkey?)`);
          }
        }
      }
      if (tentative) {
        const newer = unique.filter((c) => c !== tentative && created(c) > created(tentative!));
        if (unique.some((c) => verdicts[c.fingerprint] === 'accepted')) verdicts[tentative.fingerprint] = 'rejected';
        else if (newer.every((c) => verdicts[c.fingerprint] === 'rejected')) {
          verdicts[tentative.fingerprint] = 'accepted';
          notes.push(`${tentative.fingerprint} is the account's password (no newer candidate binds)`);
        } else notes.push(`${tentative.fingerprint} binds, but whether as the current password or within the old password allowed period is not known`);
      }
      return result();
    } finally {
      await closeQuietly(client);
    }
  }

  /**
   * Whether the password has not changed since `since` (ms, provkey's clock): pwdLastSet, read
   * as the admin before or now as the account itself (this connection is bound as it).
   */
  async #unchangedSince(client: Client, state: AccountLockoutState | undefined, since: number): Promise<boolean> {
    const lastSet = state?.passwordLastSet ?? (await readLockoutState(client, this.#setup.config.bindDn))?.passwordLastSet;
    return lastSet !== undefined && lastSet.getTime() + CLOCK_SKEW_MS < since;
  }

  /** badPwdCount now minus `before`, read as the admin on this connection (it rebinds); undefined when unreadable. */
  async #countedSince(client: Client, before: number | undefined): Promise<number | undefined> {
    if (before === undefined || !(await this.#bindAdmin(client)).ok) return undefined;
    const now = await readLockoutState(client, this.#setup.config.bindDn);
    if (now?.badPwdCount === undefined) return undefined;
    return Math.max(0, now.badPwdCount - before);
  }

  // --- policy ---------------------------------------------------------------------------------

  async #loadPolicy(client: Client): Promise<void> {
    if (this.#policyRead) return;
    const read = await readAdPolicy(client, this.#setup.config.bindDn);
    this.#account = read.account;
    if (read.policy) {
      this.#policy = read.policy;
      this.#policyRead = true;
    } else {
      this.#setup.context.debug(`[ldap] ${this.#setup.keyName}: ${read.note}; using the config's passwordPolicy`);
    }
  }

  async checkGenerationPolicy(policy: GenerationPolicy, current?: SecretInUse): Promise<void> {
    if (current) this.#remember(current.value);
    if (!this.#policyRead && (this.#setup.admin || current)) {
      await this.#onWriteServer(
        async (client) => {
          if (this.#setup.admin) {
            if (!(await this.#bindAdmin(client)).ok) return;
          } else {
            const bind = await adBind(client, this.#setup.config.bindDn, current!.value, this.#scrub);
            this.#recordBind(0, current!, bind.ok, bind.failure);
            if (!bind.ok) return;
          }
          await this.#loadPolicy(client);
        },
        () => undefined,
      );
    }
    const effective = this.#effective();
    if (effective) validateAdGenerationPolicy(policy, effective, `keys.${this.#setup.keyName}.format`);
  }

  /** msDS-UserPasswordExpiryTimeComputed (fine-grained policies included), else pwdLastSet + maxPwdAge. */
  async expiresAt(current: SecretInUse): Promise<Date | undefined> {
    this.#remember(current.value);
    return this.#onWriteServer(
      async (client) => {
        if (this.#setup.admin) {
          if (!(await this.#bindAdmin(client)).ok) return undefined;
        } else {
          const bind = await adBind(client, this.#setup.config.bindDn, current.value, this.#scrub);
          this.#recordBind(0, current, bind.ok, bind.failure);
          // 532: expired. Due now.
          if (!bind.ok) return bind.failure?.adCode === '532' ? new Date() : undefined;
        }
        const read = await readAdPolicy(client, this.#setup.config.bindDn);
        this.#account = read.account;
        if (read.policy) {
          this.#policy = read.policy;
          this.#policyRead = true;
        }
        return adExpiry(read.account, this.#policy);
      },
      () => undefined,
    );
  }

  // --- set, retire, rollback --------------------------------------------------------------------

  async set(change: { next: SecretInUse; current?: SecretInUse; replace: boolean }): Promise<ApplyResult> {
    const { next, current } = change;
    this.#remember(next.value, current?.value);
    if (next.value === '') return this.#refused(next, { ok: false, reason: 'policy', detail: `${next.fingerprint}: the password is empty` });
    if (current && current.value === next.value) return this.#refused(next, { ok: false, reason: 'policy', detail: `${next.fingerprint} is the current password; a change needs a new value` });
    // One password per account: the old one must stop working now, so it is pushed two back.
    if (this.#setup.config.apply.mode === 'admin') return this.#resetTo(next, current, 'set');
    if (!current) {
      return this.#refused(next, {
        ok: false,
        reason: 'error',
        detail: `apply.mode self changes the password as the account itself and needs the current one: run "provkey import ${this.#setup.keyName}" with the password the account has now, or use apply.mode admin`,
      });
    }
    return this.#changeAsSelf(current, next);
  }

  /** The account changes its own password: current → (throw-away →) next, on one bound connection. */
  async #changeAsSelf(current: SecretInUse, next: SecretInUse, what = 'set'): Promise<ApplyResult> {
    const { bindDn } = this.#setup.config;
    const server = this.#setup.servers[0]!;
    return this.#onWriteServer(async (client) => {
      const bind = await adBind(client, bindDn, current.value, this.#scrub);
      this.#recordBind(0, current, bind.ok, bind.failure);
      if (!bind.ok) return this.#refused(next, applyFailure(bind.failure!, `bind as ${bindDn} with the current password ${current.fingerprint} failed`));
      await this.#loadPolicy(client);
      const problem = adPasswordProblem(next.value, this.#effective(), this.#account);
      if (problem) return this.#refused(next, { ok: false, reason: 'policy', detail: `${next.fingerprint}: ${problem}` });
      // A second change right away needs minPwdAge 0; otherwise AD keeps the window open.
      const twice = this.#windowMs > 0 && (this.#effective()?.minAge ?? 1) === 0;
      let from = current;
      let via: SecretInUse | undefined;
      if (twice) {
        const step = this.#throwAway();
        via = step;
        const first = await changeOwnPassword(client, bindDn, current.value, step.value, this.#scrub);
        if (!first.ok) return this.#refused(next, this.#failed(first.failure, `${what}: the account's change (unicodePwd) on ${server.url} refused the new password`));
        from = step;
      }
      const changed = await changeOwnPassword(client, bindDn, from.value, next.value, this.#scrub);
      if (!changed.ok) {
        if (!twice) return this.#refused(next, this.#failed(changed.failure, `${what}: the account's change (unicodePwd) on ${server.url} refused ${next.fingerprint}`));
        // The account is on the throw-away value now: the admin (if any) puts it on `next`.
        return { ...this.#failed(changed.failure, `${what}: the second change (throw-away → ${next.fingerprint}) on ${server.url} was refused; the account is on an unknown temporary password`), detail: `${this.#failed(changed.failure, 'second change').detail}; the account is on an unknown temporary password: an admin reset (apply.mode admin) recovers it` };
      }
      this.#changed(next, current, twice, via);
      const window = twice ? `; ${current.fingerprint} was pushed two back through a throw-away value, so AD refuses it now` : this.#windowNote(current);
      return { ok: true, detail: `unicodePwd change as ${bindDn} on ${server.url}${window}` };
    });
  }

  /** An admin reset to `next` (through a throw-away value first, so the replaced password is two back). */
  async #resetTo(next: SecretInUse, replaced: SecretInUse | undefined, what: string): Promise<ApplyResult> {
    const { bindDn } = this.#setup.config;
    const server = this.#setup.servers[0]!;
    if (!this.#setup.admin) return { ok: false, reason: 'error', detail: `${what} needs an admin credential: set apply.adminDn and apply.adminPasswordRef` };
    return this.#onWriteServer(async (client) => {
      const bound = await this.#bindAdmin(client);
      if (!bound.ok) return this.#refused(next, bound.result);
      await this.#loadPolicy(client);
      const problem = adPasswordProblem(next.value, this.#effective(), this.#account);
      if (problem) return this.#refused(next, { ok: false, reason: 'policy', detail: `${next.fingerprint}: ${problem}` });
      // Also without a known previous password (add): whoever knew it must lose it now.
      const twice = this.#windowMs > 0;
      const via = twice ? this.#throwAway() : undefined;
      if (via) {
        const step = await resetPassword(client, bindDn, via.value, this.#scrub);
        if (!step.ok) return this.#refused(next, this.#failed(step.failure, `${what}: admin reset (unicodePwd) of ${bindDn} on ${server.url} refused`));
      }
      const reset = await resetPassword(client, bindDn, next.value, this.#scrub);
      if (!reset.ok) {
        const failed = this.#failed(reset.failure, `${what}: admin reset (unicodePwd) of ${bindDn} on ${server.url} refused ${next.fingerprint}`);
        return twice ? { ...failed, detail: `${failed.detail}; the account is on an unknown temporary password: run the command again (an admin reset recovers it)` } : this.#refused(next, failed);
      }
      this.#changed(next, replaced, twice, via);
      return { ok: true, detail: `admin reset (unicodePwd) by ${this.#setup.admin!.dn} on ${server.url}${twice ? `; ${replaced?.fingerprint ?? 'the previous password'} pushed two back, so AD refuses it now` : ''}` };
    });
  }

  async retire(change: { old: SecretInUse; current?: SecretInUse }): Promise<ApplyResult> {
    const { old } = change;
    const current = change.current && change.current.value !== old.value ? change.current : undefined;
    this.#remember(old.value, current?.value);
    if (current) {
      // Without a change of its own to go by (another run made it), the window may be open.
      const until = this.#acceptedOnlyByWindow(old) ?? (!this.#change && this.#windowMs > 0 ? 'the old password allowed period ends' : undefined);
      if (!until) return { ok: true, detail: `nothing to do: the account runs on ${current.fingerprint}, which replaced ${old.fingerprint} (one password per account)` };
      // AD would still take `old` until the window closes: push it out (admin only: the history forbids `current` again as a self change).
      if (this.#setup.admin) return this.#resetTo(current, old, 'retire');
      return { ok: true, detail: `the account runs on ${current.fingerprint}; AD still accepts ${old.fingerprint} until ${until} (old password allowed period; as the account, minPwdAge > 0 forbids a second change)` };
    }
    // A revoke: the account moves to a password nobody knows.
    const discard = this.#throwAway();
    if (this.#setup.admin) {
      const reset = await this.#resetTo(discard, old, 'revoke');
      return reset.ok ? { ok: true, detail: `${reset.detail} (an unknown random password)` } : reset;
    }
    const changed = await this.#changeAsSelf(old, discard, 'revoke');
    if (!changed.ok && /invalidCredentials|00000056/.test(changed.detail)) return { ok: true, detail: `${old.fingerprint} already does not bind (${changed.detail})` };
    return changed.ok ? { ok: true, detail: `${changed.detail} (an unknown random password)` } : changed;
  }

  async rollback(change: { next: SecretInUse; current?: SecretInUse }): Promise<ApplyResult> {
    const { next, current } = change;
    this.#remember(next.value, current?.value);
    if (!current) return { ok: true, detail: `nothing to restore: there was no previous version; ${next.fingerprint} stays on the account and is disabled in the store` };
    if (this.#untouched.has(next.fingerprint)) return { ok: true, detail: `nothing to undo: the directory never took ${next.fingerprint}; ${current.fingerprint} is unchanged` };
    if (this.#setup.config.rollback === 'keep-new') {
      const decided = await this.#keepNewIfItBinds(next, current);
      if (decided) return decided;
    }
    if (!this.#setup.admin) {
      return { ok: false, reason: 'rejected', detail: `neither ${next.fingerprint} nor ${current.fingerprint} binds as ${this.#setup.config.bindDn}, and there is no admin credential (apply.adminDn) to put ${current.fingerprint} back` };
    }
    // An admin reset is not held to the history (Samba): current goes back, next two back.
    const restored = await this.#resetTo(current, next, 'rollback');
    if (restored.ok) this.#untouched.delete(current.fingerprint);
    return restored.ok ? { ok: true, detail: `admin reset back to ${current.fingerprint}: ${restored.detail}` } : restored;
  }

  async #keepNewIfItBinds(next: SecretInUse, current: SecretInUse): Promise<ApplyResult | undefined> {
    const { bindDn } = this.#setup.config;
    return this.#onWriteServer<ApplyResult | undefined>(
      async (client): Promise<ApplyResult | undefined> => {
        // A `next` this run already saw refused is not bound again: each failure counts toward lockoutThreshold.
        const withNext = this.#refusedSince.has(next.fingerprint) ? { ok: false as const } : await adBind(client, bindDn, next.value, this.#scrub);
        if ('ms' in withNext) this.#recordBind(0, next, withNext.ok, withNext.failure);
        if (withNext.ok && !this.#acceptedOnlyByWindow(next)) {
          return { ok: true, kept: 'next', detail: `kept ${next.fingerprint} (rollback: keep-new): it binds, and the domain would refuse ${current.fingerprint} back as a self change (password history)` };
        }
        const withCurrent = await adBind(client, bindDn, current.value, this.#scrub);
        this.#recordBind(0, current, withCurrent.ok, withCurrent.failure);
        if (withCurrent.ok && !this.#acceptedOnlyByWindow(current)) return { ok: true, detail: `${next.fingerprint} is not in effect and ${current.fingerprint} still binds: nothing to undo` };
        return undefined;
      },
      // A DC that does not answer is unreachable, never "neither binds".
      (failure) => applyFailure(failure, `cannot connect to ${this.#setup.servers[0]!.url}`),
    );
  }

  async close(): Promise<void> {
    // Every operation opens and closes its own connection.
  }

  // --- shared plumbing ----------------------------------------------------------------------

  #changed(to: SecretInUse, from: SecretInUse | undefined, contained: boolean, via?: SecretInUse): void {
    this.#change = { to: to.fingerprint, ...(from ? { from } : {}), at: Date.now(), contained: contained || this.#windowMs === 0 };
    const replaced = [via?.fingerprint, from?.fingerprint].filter((f): f is string => f !== undefined);
    this.#previous = [...replaced, ...this.#previous].filter((f) => f !== to.fingerprint).slice(0, 2);
    this.#refusedSince.clear();
    this.#guard.succeeded(0);
  }

  #windowNote(replaced: SecretInUse): string {
    if (this.#windowMs === 0) return '';
    return `; AD still accepts ${replaced.fingerprint} until ${new Date(Date.now() + this.#windowMs).toISOString()} (old password allowed period; minPwdAge > 0 forbids a second change as the account)`;
  }

  #failed(failure: AdFailure, what: string): Extract<ApplyResult, { ok: false }> {
    const result = applyFailure(failure, what);
    return failure.locked ? { ...result, reason: 'denied', detail: `${result.detail} (locked out: an admin must set lockoutTime to 0)` } : result;
  }

  #refused(next: SecretInUse, result: ApplyResult): ApplyResult {
    if (!result.ok) this.#untouched.add(next.fingerprint);
    return result;
  }

  async #bindAdmin(client: Client): Promise<{ ok: true } | { ok: false; result: ApplyResult }> {
    const admin = this.#setup.admin!;
    const password = await this.#setup.context.resolveSecret(admin.ref, admin.field);
    this.#remember(password);
    const bind = await adBind(client, admin.dn, password, this.#scrub);
    if (bind.ok) return { ok: true };
    return { ok: false, result: applyFailure(bind.failure!, `admin bind as ${admin.dn} failed`) };
  }

  async #onWriteServer<T>(work: (client: Client) => Promise<T>, onNoConnection?: (failure: LdapFailure) => T): Promise<T> {
    const server = this.#setup.servers[0]!;
    return withConnection(this.#connector, server, work, onNoConnection);
  }

  /** A value nobody learns: long, and from all four categories (the complexity rule). */
  #throwAway(): SecretInUse {
    const length = Math.max(40, this.#effective()?.minLength ?? 0);
    const value = `Aa1-${randomBytes(length).toString('base64url')}`.slice(0, length);
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
}
