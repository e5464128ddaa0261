import { AdapterError, ConflictError } from '../core/errors.js';
import type { Consumer, ConsumerAnswer } from '../consumers/consumer.js';
import type { SecretStore } from '../stores/store.js';
import type { ApplyResult, ConnectionTest, Identification, ProbeEffect, ProbeStepFault, Target } from '../targets/target.js';

/**
 * The one seam every side effect of the engine passes through: each store read and write,
 * each target test/set/retire/rollback/identify (appliers run inside set/retire/rollback) and
 * each step of a test's write probe (`probe.cleanup|add|group|modify|delete`, inside the test),
 * each audit append and the config rewrite of `migrate`. In production it only counts; the
 * fault harness (test/fault/matrix) drives it: at any call it can abandon the run as a crash
 * would, or make the call fail exactly as the real adapter fails in an outage.
 */

export type Boundary = 'store' | 'target' | 'consumer' | 'audit' | 'config';

export type Fault =
  /** The process dies just before the call: nothing of it, nor after it, happens. */
  | 'kill-before'
  /** The call happens, then the process dies. */
  | 'kill-after'
  | 'timeout'
  | 'refused'
  | '5xx'
  /** Throttled: the adapter honoured Retry-After within its bound and still got 429. */
  | '429'
  /** A positive refusal: the target refused the credential or change; the store lost a race / was denied. */
  | 'rejection';

export const FAULTS: readonly Fault[] = ['kill-before', 'kill-after', 'timeout', 'refused', '5xx', '429', 'rejection'];
const OUTAGES: readonly Fault[] = ['timeout', 'refused', '5xx', '429'];
const KILLS: readonly Fault[] = ['kill-before', 'kill-after'];

export interface EffectCall {
  /** 0-based position of this call among all calls of the session. */
  index: number;
  boundary: Boundary;
  /** The adapter method, e.g. "update", "set", "test", "append". */
  operation: string;
  /** Store name, target type, consumer type ("entra", "file", …), "audit" or "config". */
  adapter: string;
  key?: string;
  /** For target tests: what the engine expects the target to do with the secret. */
  expect?: 'accept' | 'reject';
}

/** Decides, for each call, whether a fault happens there. Stateful hooks model outages. */
export type FaultHook = (call: EffectCall) => Fault | undefined;

/**
 * Thrown when the seam abandons the run (a simulated crash). Not a ProvkeyError on purpose:
 * nothing in the engine maps it to an outcome, and every later call throws it again, so
 * whatever code catches it can cause no further side effect.
 */
export class SessionAborted extends Error {
  readonly call: EffectCall;
  constructor(call: EffectCall) {
    super(`session abandoned (simulated crash) at call ${call.index}: ${describeCall(call)}`);
    this.name = 'SessionAborted';
    this.call = call;
  }
}

export function describeCall(call: Omit<EffectCall, 'index'>): string {
  return `${call.boundary}.${call.operation}${call.expect ? `(${call.expect})` : ''} [${call.adapter}]`;
}

/**
 * The faults that make sense at a call. A rejection is injected only where a real service
 * can refuse: a store read (denied) or write (lost compare-and-set), a target set/rollback
 * refused, a test of a credential the engine expects to work. (A faked "rejected" for a
 * negative probe would be a lie no adapter tells; an outage there is real.)
 */
export function applicableFaults(call: Omit<EffectCall, 'index'>): Fault[] {
  if (call.boundary === 'audit' || call.boundary === 'config') return [...KILLS];
  if (call.boundary === 'store') return [...KILLS, ...OUTAGES, 'rejection'];
  // A consumer can refuse a credential at each step; `check` (test/status) changes nothing, so a kill there proves nothing new.
  if (call.boundary === 'consumer') return call.operation === 'check' ? [...OUTAGES] : [...KILLS, ...OUTAGES, 'rejection'];
  switch (call.operation) {
    // The write probe's steps: a directory or app can refuse an add, a group change or a
    // modify (no write access); a cleanup or delete of the probe's own entry is not refused.
    case 'probe.add':
    case 'probe.group':
    case 'probe.modify':
      return [...KILLS, ...OUTAGES, 'rejection'];
    case 'probe.cleanup':
    case 'probe.delete':
      return [...KILLS, ...OUTAGES];
    case 'test':
      return call.expect === 'accept' ? [...KILLS, ...OUTAGES, 'rejection'] : [...KILLS, ...OUTAGES];
    case 'set':
    case 'rollback':
      return [...KILLS, ...OUTAGES, 'rejection'];
    case 'retire':
    case 'identify':
      return [...KILLS, ...OUTAGES];
    default:
      return [...KILLS];
  }
}

let installedHook: FaultHook | undefined;

/** Test-only: every Session created from now on asks `hook` at each side effect. */
export function installFaultHook(hook: FaultHook | undefined): void {
  installedHook = hook;
}

/**
 * PROVKEY_FAULT_AT="<index>:kill-before|kill-after" makes a subprocess SIGKILL itself at that
 * call: the crash tests use it to prove the in-process simulation matches a real crash.
 */
function envHook(env: NodeJS.ProcessEnv): FaultHook | undefined {
  const spec = env.PROVKEY_FAULT_AT;
  const match = spec ? /^(\d+):(kill-before|kill-after)$/.exec(spec) : null;
  if (!match) return undefined;
  const at = Number(match[1]);
  const fault = match[2] as Fault;
  return (call) => (call.index === at ? fault : undefined);
}

export class EffectSeam {
  readonly trace: EffectCall[] = [];
  private dead: SessionAborted | undefined;
  private readonly hook: FaultHook | undefined;
  private readonly realCrash: boolean;

  constructor(options: { hook?: FaultHook; env?: NodeJS.ProcessEnv } = {}) {
    const fromEnv = envHook(options.env ?? process.env);
    this.hook = options.hook ?? installedHook ?? fromEnv;
    this.realCrash = !options.hook && !installedHook && fromEnv !== undefined;
  }

  /** Runs one side effect through the seam. `failed` builds what the adapter returns or throws in an outage. */
  async run<T>(what: Omit<EffectCall, 'index'>, effect: () => Promise<T>, failed: (fault: Fault) => T | Promise<T>): Promise<T> {
    if (this.dead) throw this.dead;
    const call: EffectCall = { index: this.trace.length, ...what };
    this.trace.push(call);
    const fault = this.hook?.(call);
    if (fault === 'kill-before') this.abandon(call);
    if (fault && fault !== 'kill-after') return failed(fault);
    const value = await effect();
    if (fault === 'kill-after') this.abandon(call);
    // A call that finished after another one abandoned the session changes nothing more.
    if (this.dead) throw this.dead;
    return value;
  }

  private abandon(call: EffectCall): never {
    if (this.realCrash) process.kill(process.pid, 'SIGKILL');
    this.dead = new SessionAborted(call);
    throw this.dead;
  }

  store(store: SecretStore): SecretStore {
    const via = <T>(operation: string, key: string | undefined, effect: () => Promise<T>): Promise<T> =>
      this.run({ boundary: 'store', operation, adapter: store.name, ...(key ? { key } : {}) }, effect, (fault) => {
        throw storeFault(store.name, operation, key, fault);
      });
    return {
      name: store.name,
      type: store.type,
      capabilities: store.capabilities,
      listKeys: () => via('listKeys', undefined, () => store.listKeys()),
      read: (key) => via('read', key, () => store.read(key)),
      readSecret: (key, versionId) => via('readSecret', key, () => store.readSecret(key, versionId)),
      addVersion: (key, revision, secret, meta, state) => via('addVersion', key, () => store.addVersion(key, revision, secret, meta, state)),
      update: (key, revision, change) => via('update', key, () => store.update(key, revision, change)),
      disableVersion: (key, versionId, options) => via('disableVersion', key, () => store.disableVersion(key, versionId, options)),
      deleteKey: (key) => via('deleteKey', key, () => store.deleteKey(key)),
      close: () => store.close(),
      // The audit log's own keying and generation cross-check: read with the audit boundary (append).
      ...(store.auditKey ? { auditKey: (options?: { create: boolean }) => store.auditKey!(options) } : {}),
      ...(store.generationState ? { generationState: () => store.generationState!() } : {}),
    };
  }

  target(target: Target, key: string): Target {
    const at = (operation: string, extra: Partial<EffectCall> = {}) => ({ boundary: 'target' as const, operation, adapter: target.type, key, ...extra });
    const applyFault = (fault: Fault): ApplyResult =>
      fault === 'rejection' ? { ok: false, reason: 'rejected', detail: 'the target refused the change' } : { ok: false, reason: 'unreachable', detail: outageDetail(fault) };
    const seam = this;
    const wrapped: Target = {
      type: target.type,
      get capabilities() {
        return target.capabilities;
      },
      test: (secret, options) => {
        // Each write-probe step is its own call, made while the test call is under way.
        const effect: ProbeEffect = <T>(step: Parameters<ProbeEffect>[0], run: () => Promise<T>) =>
          seam.run<{ ok: true; value: T } | { ok: false; fault: ProbeStepFault }>(
            at(`probe.${step}`),
            async () => ({ ok: true, value: await run() }),
            (fault) => ({ ok: false, fault: probeFault(target.type, fault) }),
          );
        return seam.run(at('test', { expect: options.expect }), () => target.test(secret, { ...options, effect }), (fault) => testFault(target, options.expect, fault));
      },
      set: (change) => seam.run(at('set'), () => target.set(change), applyFault),
      retire: (change) => seam.run(at('retire'), () => target.retire(change), applyFault),
      rollback: (change) => seam.run(at('rollback'), () => target.rollback(change), applyFault),
      close: () => target.close(),
    };
    if (target.identify) {
      const identify = target.identify.bind(target);
      wrapped.identify = (candidates) =>
        seam.run(at('identify'), () => identify(candidates), (): Identification => ({
          verdicts: Object.fromEntries(candidates.map((c) => [c.fingerprint, 'unreachable' as const])),
          detail: 'the target could not be reached',
        }));
    }
    if (target.checkGenerationPolicy) {
      const check = target.checkGenerationPolicy.bind(target);
      wrapped.checkGenerationPolicy = (policy, current) => seam.run(at('checkGenerationPolicy'), () => check(policy, current), () => undefined);
    }
    // A pure choice (no side effect): passed through as it is.
    if (target.accountFor) wrapped.accountFor = target.accountFor.bind(target);
    if (target.expiresAt) {
      const expires = target.expiresAt.bind(target);
      wrapped.expiresAt = (current) => seam.run(at('expiresAt'), () => expires(current), () => undefined);
    }
    return wrapped;
  }

  /** A key's consumer: validate, switch, prove and check each pass through the seam. */
  consumer(consumer: Consumer, key: string): Consumer {
    const via = (operation: 'validate' | 'switch' | 'prove' | 'check', effect: () => Promise<ConsumerAnswer>) =>
      this.run({ boundary: 'consumer', operation, adapter: consumer.type, key }, effect, consumerFault);
    return {
      type: consumer.type,
      name: consumer.name,
      validate: (next) => via('validate', () => consumer.validate(next)),
      switch: (secret) => via('switch', () => consumer.switch(secret)),
      prove: (secret) => via('prove', () => consumer.prove(secret)),
      check: (current) => via('check', () => consumer.check(current)),
      close: () => consumer.close(),
    };
  }
}

export function consumerFault(fault: Fault): ConsumerAnswer {
  return fault === 'rejection' ? { ok: false, reason: 'rejected', detail: 'the consumer refused the credential' } : { ok: false, reason: 'unreachable', detail: outageDetail(fault) };
}

function outageDetail(fault: Fault): string {
  switch (fault) {
    case 'timeout':
      return 'unreachable: ETIMEDOUT no answer within the request timeout';
    case 'refused':
      return 'unreachable: ECONNREFUSED';
    case '5xx':
      return 'HTTP 503: service unavailable';
    default:
      return 'HTTP 429: throttled (Retry-After honoured)';
  }
}

function probeFault(type: Target['type'], fault: Fault): ProbeStepFault {
  if (fault === 'rejection') {
    return type === 'ldap'
      ? { reason: 'rejected', status: 50, detail: 'insufficientAccessRights: the directory refused the write' }
      : { reason: 'rejected', status: 403, detail: 'HTTP 403: the app refused the write' };
  }
  const status = fault === '5xx' ? 503 : fault === '429' ? 429 : fault === 'timeout' ? 'ETIMEDOUT' : 'ECONNREFUSED';
  return { reason: 'unreachable', status, detail: outageDetail(fault) };
}

function testFault(target: Target, expect: 'accept' | 'reject', fault: Fault): ConnectionTest {
  const rejected = fault === 'rejection';
  const status = rejected ? (target.type === 'ldap' ? 49 : 401) : fault === '5xx' ? 503 : fault === '429' ? 429 : undefined;
  return {
    expect,
    verdict: rejected ? 'rejected' : 'unreachable',
    ok: rejected && expect === 'reject',
    probes: [{ name: target.type === 'ldap' ? 'bind' : 'entra-user-query', outcome: 'fail', ...(status ? { status } : {}), ms: 0, detail: rejected ? 'credential refused' : outageDetail(fault) }],
    at: new Date().toISOString(),
    ms: 0,
  };
}

function storeFault(adapter: string, operation: string, key: string | undefined, fault: Fault): AdapterError {
  const what = `${operation}${key ? ` ${key}` : ''}`;
  switch (fault) {
    case 'timeout':
      return new AdapterError(adapter, 'timeout', `${what}: no answer within the request timeout`);
    case 'refused':
      return new AdapterError(adapter, 'unreachable', `${what}: connection refused (ECONNREFUSED)`);
    case '5xx':
      return new AdapterError(adapter, 'server_error', `${what}: HTTP 503`);
    case '429':
      return new AdapterError(adapter, 'throttled', `${what}: HTTP 429 after honouring Retry-After`);
    default:
      return operation === 'read' || operation === 'readSecret' || operation === 'listKeys'
        ? new AdapterError(adapter, 'permission_denied', `${what}: permission denied`)
        : new ConflictError(adapter, `${what}: the key changed since it was read (check-and-set)`);
  }
}
