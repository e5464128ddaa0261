import type { Client } from 'ldapts';
import type { LdapTargetConfig } from '../../config/schema.js';
import { fingerprint } from '../../core/fingerprint.js';
import { redact, registerSecret } from '../../core/redact.js';
import type { AdapterContext } from '../../stores/context.js';
import type { ApplyResult, SecretInUse } from '../target.js';
import { throwAwayPassword } from './account.js';
import { FailedBindGuard } from './bind-guard.js';
import { LdapConnector, withConnection, type LdapServer } from './connection.js';
import { failedBindBudget, mergePolicy, readDirectoryPolicy, type ConfiguredPolicy, type EffectivePolicy } from './ppolicy.js';
import { bindWithPolicy } from './probes.js';
import { closeWatchers, readEntryCsn, ReplicaStates, type Watcher, type WatcherSet } from './replication.js';
import { applyFailure, type LdapFailure } from './result-codes.js';

/** The checked config of one LDAP target (see createLdapTarget). */
export interface LdapTargetSetup {
  keyName: string;
  config: LdapTargetConfig;
  context: AdapterContext;
  servers: LdapServer[];
  timeoutMs: number;
  propagationTimeoutMs: number;
  admin: { dn: string; ref: string; field: string } | undefined;
  configured: ConfiguredPolicy;
}

/** The change provkey made last, so a test can tell a lagging replica from a wrong password. */
export interface LastChange {
  /** Fingerprint of the password the account should now have. */
  to: string;
  /** The password it had before, if known. */
  from?: SecretInUse;
  /** Servers that accepted `to`. */
  confirmed: Set<number>;
  /** Servers known to have dropped `from` (so it is never tried there again). */
  fromGone: Set<number>;
  /** entryCSN of the account entry on the writable server right after the change (replication.ts). */
  mark?: string;
  /** Replica connections opened before the change, to read entryCSN without a failed bind. */
  watchers: Map<number, Watcher>;
}

/** A bind that got 49 on one server since provkey's last change. */
export interface SeenRejection {
  at: string;
  status: number | string;
  detail: string;
}

/** Changes go to the first listed server; the others are replicas that must catch up. */
export const WRITE_SERVER = 0;

/**
 * What every operation of one LDAP target (test, set, retire, rollback, policy) shares: the
 * connector, the failed-bind guard, the values to cut out of server messages, the password
 * policy in force, and what changed last. The operations themselves live in
 * connection-test.ts, apply.ts, retire.ts and rollback.ts.
 */
export class LdapTargetState {
  readonly setup: LdapTargetSetup;
  readonly config: LdapTargetConfig;
  readonly connector: LdapConnector;
  readonly guard: FailedBindGuard;
  /** The change provkey made last (set, retire, rollback), for the replication check of a test. */
  change: LastChange | undefined;
  /** What each replica's copy of the account entry held at the entryCSNs provkey has seen. */
  readonly replicas = new ReplicaStates();
  /** fingerprint → server → its 49, since the last change (see seenRejecting). */
  readonly #rejections = new Map<string, Map<number, SeenRejection>>();
  /** Every value this target handled, cut out of any server message before it is shown. */
  readonly #secrets = new Set<string>();
  /** Failed binds as the account per server in this run (this target's life): the identify budget. */
  readonly #failedThisRun = new Map<number, number>();
  /** Passwords whose `set` the directory refused before the account changed: nothing to roll back. */
  readonly #untouched = new Set<string>();
  #policy: EffectivePolicy;
  #policyFromDirectory = false;
  readonly #policyTriedAs = new Set<'admin' | 'account'>();

  constructor(setup: LdapTargetSetup) {
    this.setup = setup;
    this.config = setup.config;
    this.#policy = mergePolicy(undefined, setup.configured, 'not read yet');
    this.guard = new FailedBindGuard(() => failedBindBudget(this.#policy.policy));
    this.connector = new LdapConnector({
      tls: setup.config.tls,
      configDir: setup.context.configDir,
      caField: `keys.${setup.keyName}.target.tls.caFile`,
      timeoutMs: setup.timeoutMs,
      scrub: (text) => this.scrub(text),
    });
  }

  /** The policy in force (directory + config); the config's values until the directory's is read. */
  get policy(): EffectivePolicy {
    return this.#policy;
  }

  recordBind(index: number, secret: SecretInUse, ok: boolean, failure: LdapFailure | undefined): void {
    if (ok) {
      this.guard.succeeded(index);
      this.#rejections.get(secret.fingerprint)?.delete(index);
      return;
    }
    if (failure?.kind !== 'rejected') return;
    this.#failedThisRun.set(index, (this.#failedThisRun.get(index) ?? 0) + 1);
    this.guard.failed(index, secret.fingerprint);
    // A replica refusing the password a change is still bringing to it says nothing lasting.
    const change = this.change;
    if (change && change.to === secret.fingerprint && !change.confirmed.has(index)) return;
    const servers = this.#rejections.get(secret.fingerprint) ?? new Map<number, SeenRejection>();
    servers.set(index, { at: new Date().toISOString(), status: failure.status, detail: failure.detail });
    this.#rejections.set(secret.fingerprint, servers);
  }

  /** Failed binds as the account this target caused on a server so far (never reset by a success). */
  failedBindsThisRun(index: number): number {
    return this.#failedThisRun.get(index) ?? 0;
  }

  /**
   * The 49 this server gave `fingerprint` since provkey's last change, if any. The negative
   * probe counts it as the proof instead of binding again: each failed bind counts toward
   * pwdMaxFailure. Every change forgets them all.
   */
  seenRejecting(index: number, fingerprint: string): SeenRejection | undefined {
    return this.#rejections.get(fingerprint)?.get(index);
  }

  /** Reads the directory's policy once: as the admin when there is one, else as the account with `secret`. */
  async ensurePolicy(secret: SecretInUse | undefined): Promise<void> {
    if (this.#policyFromDirectory) return;
    const who = this.setup.admin ? 'admin' : secret ? 'account' : undefined;
    if (!who || this.#policyTriedAs.has(who)) return;
    const server = this.setup.servers[WRITE_SERVER]!;
    await this.onServer(
      server,
      async (client) => {
        if (who === 'admin') {
          if (!(await this.bindAdmin(client)).ok) return;
        } else {
          const bind = await bindWithPolicy(client, this.config.bindDn, secret!.value, this.scrub);
          this.recordBind(WRITE_SERVER, secret!, bind.ok, bind.failure);
          if (!bind.ok) return;
        }
        await this.loadPolicyOn(client, who);
      },
      () => undefined,
    );
  }

  /** Reads the policy once per identity on a bound connection; the config's values override it. */
  async loadPolicyOn(client: Client, who: 'admin' | 'account'): Promise<void> {
    if (this.#policyFromDirectory || this.#policyTriedAs.has(who)) return;
    this.#policyTriedAs.add(who);
    const { found, note } = await readDirectoryPolicy(client, {
      ...(this.setup.configured.dn ? { configuredDn: this.setup.configured.dn } : {}),
      accountDn: this.config.bindDn,
    });
    this.#policy = mergePolicy(found, this.setup.configured, note);
    this.#policyFromDirectory = found !== undefined;
    if (!found) this.setup.context.debug(`[ldap] ${this.setup.keyName}: ${note}; using the config's passwordPolicy`);
  }

  async bindAdmin(client: Client): Promise<{ ok: true } | { ok: false; result: ApplyResult }> {
    const admin = this.setup.admin!;
    const password = await this.setup.context.resolveSecret(admin.ref, admin.field);
    this.remember(password);
    const bind = await bindWithPolicy(client, admin.dn, password, this.scrub);
    if (bind.ok) return { ok: true };
    return { ok: false, result: applyFailure(bind.failure!, `admin bind as ${admin.dn} failed`) };
  }

  /** Runs `work` on a fresh connection to `server`; a connection failure becomes the result. */
  async onServer<T>(server: LdapServer, work: (client: Client) => Promise<T>, onNoConnection?: (failure: LdapFailure) => T): Promise<T> {
    return withConnection(this.connector, server, work, onNoConnection);
  }

  /**
   * A change provkey has just made on the writable server. `made` is the connection that made
   * it (still bound) and the replica watchers opened before it: the entry's entryCSN is read
   * there now, before anything else touches the entry, for the replication check.
   */
  async changed(to: SecretInUse, from: SecretInUse | undefined, made?: { client: Client; watchers: WatcherSet }): Promise<void> {
    const previous = this.change;
    const refusedBefore = made ? [...made.watchers.refusedBefore] : [];
    const watchers = made?.watchers.handOver() ?? new Map<number, Watcher>();
    const mark = watchers.size > 0 ? await readEntryCsn(made!.client, this.config.bindDn) : undefined;
    if (!mark) await closeWatchers(watchers);
    else if (from) {
      for (const [index, watcher] of watchers) this.replicas.know(index, watcher.before, from.fingerprint, watcher.boundWith === from.fingerprint);
    }
    this.change = {
      to: to.fingerprint,
      ...(from ? { from } : {}),
      confirmed: new Set([WRITE_SERVER]),
      fromGone: new Set([WRITE_SERVER, ...refusedBefore]),
      ...(mark ? { mark } : {}),
      watchers,
    };
    this.#rejections.clear();
    if (previous) await closeWatchers(previous.watchers);
  }

  /** Closes the replica watchers still open. */
  async close(): Promise<void> {
    if (this.change) await closeWatchers(this.change.watchers);
  }

  /** A `set` of `next` the directory refused before the account changed. */
  refused(next: SecretInUse, result: ApplyResult): ApplyResult {
    this.#untouched.add(next.fingerprint);
    return result;
  }

  /** True when a `set` of this version was refused before anything changed. */
  neverTook(versionFingerprint: string): boolean {
    return this.#untouched.has(versionFingerprint);
  }

  throwAway(): SecretInUse {
    const value = throwAwayPassword(this.#policy.policy);
    registerSecret(value);
    this.remember(value);
    return { value, fingerprint: fingerprint(value) };
  }

  remember(...values: Array<string | undefined>): void {
    for (const value of values) if (value) this.#secrets.add(value);
  }

  readonly scrub = (text: string): string => {
    let out = redact(text);
    for (const value of this.#secrets) if (value.length >= 4 && out.includes(value)) out = out.split(value).join('[secret]');
    return out;
  };
}
