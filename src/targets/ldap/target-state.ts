import type { Client } from 'ldapts';
import type { LdapTargetConfig } from '../../config/schema.js';
import { fingerprint } from '../../core/fingerprint.js';
import { redact, registerSecret } from '../../core/redact.js';
import type { AdapterContext } from '../../stores/context.js';
import type { ApplyResult, SecretInUse } from '../target.js';
import { throwAwayPassword } from './account.js';
import { FailedBindGuard } from './bind-guard.js';
import { closeQuietly, LdapConnector, type LdapServer } from './connection.js';
import { failedBindBudget, mergePolicy, readDirectoryPolicy, type ConfiguredPolicy, type EffectivePolicy } from './ppolicy.js';
import { bindWithPolicy } from './probes.js';
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
  /** Every value this target handled, cut out of any server message before it is shown. */
  readonly #secrets = new Set<string>();
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
    if (ok) this.guard.succeeded(index);
    else if (failure?.kind === 'rejected') this.guard.failed(index, secret.fingerprint);
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
    const connection = await this.connector.open(server);
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

  changed(to: SecretInUse, from: SecretInUse | undefined): void {
    this.change = {
      to: to.fingerprint,
      ...(from ? { from } : {}),
      confirmed: new Set([WRITE_SERVER]),
      fromGone: new Set([WRITE_SERVER]),
    };
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
