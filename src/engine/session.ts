import { AuditLog } from '../audit/audit-log.js';
import type { AuditKey } from '../audit/chain.js';
import type { Config, ResolvedKey } from '../config/load.js';
import { keyOrThrow } from '../config/load.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { ConfigError } from '../core/errors.js';
import { versionByLabel } from '../core/model.js';
import { registerSecret } from '../core/redact.js';
import type { AdapterContext } from '../stores/context.js';
import { openStore } from '../stores/index.js';
import type { SecretStore } from '../stores/store.js';
import { openTarget } from '../targets/index.js';
import type { Target } from '../targets/target.js';
import type { Consumer } from '../consumers/consumer.js';
import { checkOnlyConsumer, readOnlyStore, testOnlyTarget } from './dry-run.js';
import type { AuditRecord, EngineEvent } from './events.js';
import { EventBus, type Subscriber } from './events-bus.js';
import type { StepEvents } from './result.js';
import { EffectSeam, type FaultHook } from './seam.js';

const BEST_EFFORT_DRAIN_MS = 2000;

/**
 * Everything one provkey run shares: the config, stores and targets opened on first use
 * (each adapter module is imported only then), the audit log and the event stream whose
 * awaited subscriber the audit log is.
 */
export class Session {
  readonly config: Config;
  readonly audit: AuditLog;
  /** The run's one event stream (events.ts); the audit log is its awaited subscriber. */
  readonly events: EventBus;
  readonly dryRun: boolean;
  readonly debug: (message: string) => void;
  /** Every side effect of this run passes through it (src/engine/seam.ts). */
  readonly seam: EffectSeam;
  private readonly env: NodeJS.ProcessEnv;
  private readonly stores = new Map<string, Promise<SecretStore>>();
  private readonly targets = new Map<string, Promise<Target>>();
  private readonly consumers = new Map<string, Promise<Consumer[]>>();
  private readonly openTarget: (key: ResolvedKey, context: AdapterContext) => Promise<Target>;
  private readonly promptSecret: ((message: string) => Promise<string>) | undefined;
  /** What adapters learn about a server once per run (AdapterContext.runScope). */
  private readonly runScope = new Map<string, unknown>();

  constructor(options: {
    config: Config;
    env?: NodeJS.ProcessEnv;
    /** Best-effort subscribers of the event stream (the progress bar). */
    subscribers?: Subscriber[];
    dryRun?: boolean;
    debug?: (message: string) => void;
    /** Asks a person for a secret (the CLI passes one only when prompting is possible). */
    promptSecret?: (message: string) => Promise<string>;
    /** Tests hand in their own target (a named double) instead of the configured one. */
    openTarget?: (key: ResolvedKey, context: AdapterContext) => Promise<Target>;
    /** The fault harness drives the seam through this (or installFaultHook). */
    faultHook?: FaultHook;
  }) {
    this.config = options.config;
    this.env = options.env ?? process.env;
    this.seam = new EffectSeam({ ...(options.faultHook ? { hook: options.faultHook } : {}), env: this.env });
    // The log is keyed with a key derived from the default store's (audit/chain.ts), and is
    // the journal the embedded store announces its generations to (audit/generation.ts).
    this.audit = new AuditLog(options.config.auditPath, {
      key: (options) => this.auditChainKey(options),
      ...(options.config.auditAnchor ? { anchor: options.config.auditAnchor } : {}),
    });
    this.dryRun = options.dryRun ?? false;
    this.debug = options.debug ?? (() => {});
    this.events = new EventBus({ onFailure: (error, event) => this.debug(`event subscriber failed on ${event.type}: ${(error as Error)?.message ?? String(error)}`) });
    this.events.subscribeAwaited((event) => (event.type === 'audit' ? this.appendAudit(event) : undefined));
    for (const subscriber of options.subscribers ?? []) this.events.subscribe(subscriber);
    this.promptSecret = options.promptSecret;
    this.openTarget = options.openTarget ?? ((key, context) => openTarget(key.name, key.config.target, context));
  }

  key(name: string): ResolvedKey {
    return keyOrThrow(this.config, name);
  }

  adapterContext(): AdapterContext {
    const prompt = this.promptSecret;
    return {
      configDir: this.config.dir,
      env: this.env,
      debug: this.debug,
      journal: this.audit,
      runScope: this.runScope,
      rotationOf: (key) => this.config.keys[key]?.rotation,
      ...(prompt
        ? {
            promptSecret: async (message: string) => {
              const value = await prompt(message);
              registerSecret(value);
              return value;
            },
          }
        : {}),
      resolveSecret: async (ref, field) => {
        const value = await resolveSecretRef(ref, field, {
          configDir: this.config.dir,
          env: this.env,
          readKey: (other) => this.readCurrentSecret(other, field),
        });
        registerSecret(value);
        return value;
      },
    };
  }

  storeNamed(name: string): Promise<SecretStore> {
    let store = this.stores.get(name);
    if (!store) {
      const config = this.config.stores[name];
      if (!config) throw new ConfigError(`stores.${name}: no such store`);
      store = openStore(name, config, this.adapterContext()).then((opened) => {
        const seen = this.seam.store(opened);
        return this.dryRun ? readOnlyStore(seen) : seen;
      });
      this.stores.set(name, store);
    }
    return store;
  }

  /** Why the audit log cannot be keyed in this config, or undefined when it can. */
  auditKeyUnavailable(): string | undefined {
    const name = this.config.raw.defaults.store;
    return this.config.stores[name]?.type === 'file' ? undefined : `the default store "${name}" is not an embedded file store`;
  }

  /** The audit chain key: derived from the default store's key when that is an embedded file store. */
  async auditChainKey(options: { create: boolean } = { create: false }): Promise<AuditKey | undefined> {
    if (this.auditKeyUnavailable()) return undefined;
    const store = await this.storeNamed(this.config.raw.defaults.store);
    return store.auditKey?.(options);
  }

  storeFor(key: ResolvedKey): Promise<SecretStore> {
    return this.storeNamed(key.storeName);
  }

  targetFor(key: ResolvedKey): Promise<Target> {
    let target = this.targets.get(key.name);
    if (!target) {
      target = this.openTarget(key, this.adapterContext()).then((opened) => {
        const seen = this.seam.target(opened, key.name);
        return this.dryRun ? testOnlyTarget(seen) : seen;
      });
      this.targets.set(key.name, target);
    }
    return target;
  }

  /** A key's consumers (docs/consumers.md), opened on first use, each through the seam; none when the key has none. */
  consumersFor(key: ResolvedKey): Promise<Consumer[]> {
    if (key.config.consumers.length === 0) return Promise.resolve([]);
    let consumers = this.consumers.get(key.name);
    if (!consumers) {
      consumers = import('../consumers/index.js')
        .then(({ openConsumers }) => openConsumers(key, this.adapterContext()))
        .then((opened) => opened.map((consumer) => this.seam.consumer(consumer, key.name)))
        .then((seen) => (this.dryRun ? seen.map(checkOnlyConsumer) : seen));
      this.consumers.set(key.name, consumers);
    }
    return consumers;
  }

  /** The current value of another key, for `key:` references (e.g. an LDAP admin password). */
  private async readCurrentSecret(name: string, field: string): Promise<string> {
    const key = this.config.keys[name];
    if (!key) throw new ConfigError(`${field}: key:${name} is not a key in the config`);
    const store = await this.storeFor(key);
    const record = await store.read(name);
    const current = record && versionByLabel(record, 'current');
    if (!current) throw new ConfigError(`${field}: key ${name} has no current version`);
    return store.readSecret(name, current.id);
  }

  private readonly failedBinds = new Map<string, number>();

  /**
   * The failed-bind budget (docs/ldap.md): where a refused credential counts toward lockout, one
   * run may spend at most one per key's directory. True (and counted) when one is still free.
   */
  spendFailedBind(key: string): boolean {
    const spent = this.failedBinds.get(key) ?? 0;
    if (spent >= 1) return false;
    this.failedBinds.set(key, spent + 1);
    return true;
  }

  failedBindSpent(key: string): boolean {
    return (this.failedBinds.get(key) ?? 0) >= 1;
  }

  private auditChecked: Promise<void> | undefined;

  /** Before the first change: a damaged audit log stops the command before it acts. */
  ensureAuditWritable(): Promise<void> {
    if (this.dryRun) return Promise.resolve();
    this.auditChecked ??= this.audit.checkWritable();
    return this.auditChecked;
  }

  /** Emits one engine event: resolves once the audit log (if it is an audit record) holds it. */
  emit(event: EngineEvent): Promise<void> {
    return this.events.emit(event);
  }

  /** Where a key's step timer reports its steps. */
  stepEvents(key: string): StepEvents {
    return { key, emit: (event) => this.emit(event) };
  }

  /** The audit subscriber: each record is appended through the seam (its faults are driven there). */
  private async appendAudit(event: { type: 'audit' } & AuditRecord): Promise<void> {
    if (this.dryRun) return;
    const { type: _type, ...record } = event;
    await this.seam.run({ boundary: 'audit', operation: 'append', adapter: 'audit', ...(record.key ? { key: record.key } : {}) }, () => this.audit.append(record), () => {
      throw new Error('unreachable: the audit boundary only has crash faults');
    });
  }

  /** A write to the config file (migrate), through the seam like every other side effect. */
  writeConfig(what: string, write: () => Promise<void>): Promise<void> {
    return this.seam.run({ boundary: 'config', operation: 'write', adapter: 'config', key: what }, write, () => {
      throw new Error('unreachable: the config boundary only has crash faults');
    });
  }

  async close(): Promise<void> {
    // Best-effort subscribers get a bounded moment to finish; they never hold the run up longer.
    await this.events.drain(BEST_EFFORT_DRAIN_MS);
    const all = [...this.stores.values(), ...this.targets.values()];
    await Promise.allSettled(all.map(async (p) => (await p).close()));
    await Promise.allSettled([...this.consumers.values()].map(async (p) => Promise.allSettled((await p).map((c) => c.close()))));
  }
}
