import { AdapterError } from '../../core/errors.js';
import { registerSecret } from '../../core/redact.js';
import type { AdapterContext } from '../context.js';
import { prepareLogin } from './auth.js';
import { vaultError, vaultMessage } from './errors.js';
import type { VaultSettings } from './settings.js';
import { VaultTransport, type VaultAnswer, type VaultRequest } from './transport.js';

export type { VaultAnswer } from './transport.js';

/** One call as the store sees it: the request plus what a refusal should be explained with. */
export interface VaultCall extends VaultRequest {
  /** The ACL capability the request needs, named in permission-denied errors. */
  capability: 'read' | 'list' | 'create/update' | 'update' | 'delete';
  /** Statuses handed back to the caller instead of thrown (404 on reads, 400 on a cas write). */
  accept?: number[];
  /** Sent without a token (login, sys/health). */
  anonymous?: boolean;
}

/** Test and tuning knobs, not part of provkey.yaml. */
export interface VaultClientInternals {
  /** First retry delay for 429/5xx answers; doubles per attempt (default 200 ms). */
  retryBaseMs?: number;
  /** Attempts for a request answered 429/5xx before giving up (default 4). */
  maxAttempts?: number;
}

interface Lease {
  token: string;
  /** 0: does not expire (or not known yet). */
  ttlMs: number;
  renewable: boolean;
  obtainedAt: number;
}

const RETRYABLE = new Set([429, 500, 502, 503, 504]);
const MAX_RETRY_DELAY_MS = 2_000;

/**
 * The authenticated Vault session of one store: obtains the token on first use (no I/O before),
 * renews it when half its TTL has passed so long runs (drills, batches waiting for propagation)
 * never outlive it, logs in again (AppRole, Kubernetes) when it is rejected, retries 429/5xx
 * with bounded backoff, and turns every other answer into an AdapterError of its own kind.
 */
export class VaultClient {
  private readonly settings: VaultSettings;
  private readonly context: AdapterContext;
  private readonly transport: VaultTransport;
  private readonly retryBaseMs: number;
  private readonly maxAttempts: number;
  private lease: Promise<Lease> | undefined;
  private renewing: Promise<void> | undefined;
  private lookup: Promise<void> | undefined;

  constructor(settings: VaultSettings, context: AdapterContext, internals: VaultClientInternals = {}) {
    this.settings = settings;
    this.context = context;
    this.transport = new VaultTransport(settings);
    this.retryBaseMs = internals.retryBaseMs ?? 200;
    this.maxAttempts = Math.max(1, internals.maxAttempts ?? 4);
  }

  private get canLogIn(): boolean {
    return this.settings.auth.method !== 'token';
  }

  async call(call: VaultCall): Promise<VaultAnswer> {
    if (call.anonymous) return this.exchange(call, undefined);
    for (let loggedInAgain = false; ; loggedInAgain = true) {
      const lease = await this.currentLease();
      try {
        return await this.exchange(call, lease.token);
      } catch (error) {
        // A token revoked or expired mid-run: a login method can simply get a new one, once.
        if (error instanceof AdapterError && error.kind === 'auth_failed' && this.canLogIn && !loggedInAgain) {
          this.context.debug('[vault] the token was rejected; logging in again');
          this.lease = undefined;
          continue;
        }
        throw error;
      }
    }
  }

  close(): void {
    this.transport.close();
  }

  /** The token, obtained on first use and renewed (or replaced by a new login) when due. */
  private async currentLease(): Promise<Lease> {
    const lease = await (this.lease ??= this.obtain().catch((error: unknown) => {
      this.lease = undefined;
      throw error;
    }));
    const age = Date.now() - lease.obtainedAt;
    if (lease.ttlMs > 0 && lease.renewable && age >= lease.ttlMs / 2) {
      await (this.renewing ??= this.renew(lease).finally(() => (this.renewing = undefined)));
      // A failed renewal of a login token cleared the lease: log in again now.
      return this.lease ? await this.lease : this.currentLease();
    }
    if (lease.ttlMs > 0 && !lease.renewable && this.canLogIn && age >= lease.ttlMs * 0.8) {
      this.context.debug('[vault] the token is close to expiry and not renewable; logging in again');
      this.lease = undefined;
      return this.currentLease();
    }
    return lease;
  }

  private async obtain(): Promise<Lease> {
    const login = await prepareLogin(this.settings.auth, this.settings.storeName);
    if (login.kind === 'token') {
      this.context.debug(`[vault] using the token from ${login.source}`);
      const lease: Lease = { token: login.token, ttlMs: 0, renewable: false, obtainedAt: Date.now() };
      // Learn the TTL alongside the first real request, not before it: short runs pay nothing.
      this.lookup ??= this.lookUpSelf(lease);
      return lease;
    }
    const answer = await this.exchange({ method: 'POST', path: login.path, body: login.body, capability: 'update', anonymous: true, accept: [400, 403] }, undefined);
    if (answer.status === 400 || answer.status === 403) {
      throw vaultError('auth_failed', `${login.describe} refused: ${vaultMessage(answer.body) || 'invalid credentials'}`);
    }
    const auth = answer.body?.auth;
    if (typeof auth?.client_token !== 'string' || !auth.client_token) {
      throw vaultError('auth_failed', `${login.describe}: the answer holds no client token`);
    }
    registerSecret(auth.client_token);
    const ttlMs = Number(auth.lease_duration ?? 0) * 1000;
    this.context.debug(`[vault] ${login.describe}: token valid for ${ttlMs / 1000}s${auth.renewable ? ', renewable' : ''}`);
    return { token: auth.client_token, ttlMs, renewable: Boolean(auth.renewable), obtainedAt: Date.now() };
  }

  private async lookUpSelf(lease: Lease): Promise<void> {
    try {
      const answer = await this.exchange({ method: 'GET', path: 'auth/token/lookup-self', capability: 'read' }, lease.token);
      const data = answer.body?.data ?? {};
      lease.ttlMs = Number(data.ttl ?? 0) * 1000;
      lease.renewable = Boolean(data.renewable);
      lease.obtainedAt = Date.now();
      this.context.debug(`[vault] token: ${lease.ttlMs ? `${lease.ttlMs / 1000}s left` : 'no expiry'}${lease.renewable ? ', renewable' : ''}`);
    } catch (error) {
      // The request that needed the token reports a bad token; a policy without lookup-self only loses renewal.
      this.context.debug(`[vault] token lookup failed, renewal is off: ${(error as Error).message}`);
    }
  }

  private async renew(lease: Lease): Promise<void> {
    try {
      const answer = await this.exchange({ method: 'POST', path: 'auth/token/renew-self', body: {}, capability: 'update' }, lease.token);
      const auth = answer.body?.auth ?? {};
      lease.ttlMs = Number(auth.lease_duration ?? 0) * 1000;
      lease.renewable = Boolean(auth.renewable) && lease.ttlMs > 0;
      lease.obtainedAt = Date.now();
      this.context.debug(`[vault] renewed the token: valid for ${lease.ttlMs / 1000}s more`);
    } catch (error) {
      if (this.canLogIn) {
        this.context.debug(`[vault] token renewal failed (${(error as Error).message}); logging in again`);
        this.lease = undefined;
        return;
      }
      // A static token that cannot be renewed keeps working until it expires; say so once.
      lease.renewable = false;
      this.context.debug(`[vault] token renewal failed, continuing until it expires: ${(error as Error).message}`);
    }
  }

  /** One request with retries on 429/5xx; every refusal becomes an AdapterError naming the path. */
  private async exchange(call: VaultCall, token: string | undefined): Promise<VaultAnswer> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      const answer = await this.transport.send(call, token);
      const { status } = answer;
      this.context.debug(`[vault] ${call.method} ${call.path} → ${status} (${Date.now() - started} ms)`);
      if ((status >= 200 && status < 300) || call.accept?.includes(status)) return answer;
      if (status === 403 && token !== undefined) throw await this.forbidden(call, answer, token);
      if (status === 503 && (await this.isSealed(answer))) {
        throw vaultError('sealed', `Vault at ${this.settings.address} is sealed: unseal it (bao/vault operator unseal), then run provkey again`);
      }
      if (RETRYABLE.has(status) && attempt < this.maxAttempts) {
        const delay = Math.min(MAX_RETRY_DELAY_MS, this.retryBaseMs * 2 ** (attempt - 1));
        await sleep(delay / 2 + Math.random() * (delay / 2));
        continue;
      }
      throw this.refusal(call, answer, attempt, Date.now() - started);
    }
  }

  /**
   * Vault answers 403 "permission denied" both for a token that lacks a capability and for a
   * token that is unknown, expired or revoked. sys/capabilities-self (in Vault's default
   * policy) tells them apart: an invalid token is refused there too, a valid one lists what it
   * may do on the path, which goes into the message.
   */
  private async forbidden(call: VaultCall, answer: VaultAnswer, token: string): Promise<AdapterError> {
    const message = vaultMessage(answer.body);
    const path = call.path;
    let capabilities: string[] | undefined;
    try {
      const caps = await this.transport.send({ method: 'POST', path: 'sys/capabilities-self', body: { paths: [path] } }, token);
      if (caps.status === 403) {
        return vaultError(
          'auth_failed',
          `the Vault token was refused (${message || 'permission denied'} on ${path}, and on sys/capabilities-self): it is unknown, expired or revoked${this.canLogIn ? '' : '; set a valid VAULT_TOKEN or auth.tokenFile'}`,
        );
      }
      const list = caps.status === 200 ? (caps.body?.data?.[path] ?? caps.body?.[path]) : undefined;
      if (Array.isArray(list)) capabilities = list.filter((c: unknown): c is string => typeof c === 'string');
    } catch {
      // Only a hint; the refusal itself is what matters.
    }
    const ns = this.settings.namespace ? ` in namespace ${this.settings.namespace}` : '';
    const has = capabilities ? ` (it has: ${capabilities.join(', ') || 'none'})` : '';
    return vaultError(
      'permission_denied',
      `permission denied on ${path}${ns}: the token's policy does not grant "${call.capability}"${has}; see docs/vault-policy.hcl`,
    );
  }

  private async isSealed(answer: VaultAnswer): Promise<boolean> {
    if (/sealed/i.test(vaultMessage(answer.body))) return true;
    try {
      // sys/health answers a sealed server with 503 and a body saying so: {"sealed": true, ...}.
      const health = await this.transport.send({ method: 'GET', path: 'sys/health' }, undefined);
      return health.body?.sealed === true;
    } catch {
      return false;
    }
  }

  private refusal(call: VaultCall, answer: VaultAnswer, attempts: number, ms: number): AdapterError {
    const { status } = answer;
    const message = vaultMessage(answer.body);
    const what = `${call.method} ${call.path}`;
    const detail = message ? `: ${message}` : '';
    if (status === 429) {
      return vaultError('throttled', `Vault kept answering 429 (rate limited) to ${what}: ${attempts} attempts over ${ms} ms; try again later`);
    }
    if (status >= 500) {
      return vaultError('server_error', `Vault answered ${status} to ${what}${detail} (${attempts} attempt${attempts === 1 ? '' : 's'} over ${ms} ms)`);
    }
    if (status === 404) return vaultError('not_found', `${what}: not found${detail}`);
    if (status === 401) return vaultError('auth_failed', `${what}: not authenticated${detail}`);
    if (status === 405) {
      return vaultError('invalid', `${what}: unsupported operation; is ${this.settings.mount} a KV version 2 mount?${detail}`);
    }
    return vaultError('invalid', `${what} was refused (${status})${detail}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
