import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type NodeVault from 'node-vault';
import { AdapterError } from '../../core/errors.js';
import { transportCause, vaultError } from './errors.js';
import type { VaultSettings } from './settings.js';

/** One HTTP exchange with Vault; retries, auth and error kinds live in client.ts. */
export interface VaultRequest {
  method: 'GET' | 'POST' | 'DELETE' | 'LIST';
  /** Path under /v1/ without a leading slash, e.g. "secret/data/provkey/k/state". */
  path: string;
  /** Query parameters (e.g. version=3). */
  query?: Record<string, string>;
  body?: unknown;
}

export interface VaultAnswer {
  status: number;
  // Vault's JSON answer; shapes are checked where they are used.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/**
 * node-vault as the transport: it adds the token and namespace headers and runs the request
 * on its axios instance with our TLS agent. Everything it would otherwise take from the
 * process environment is pinned here, because the store's settings (built from provkey.yaml
 * and the adapter context's env) are the only source of truth:
 * - VAULT_SKIP_VERIFY would silently turn TLS verification off: strictSSL is forced on.
 * - VAULT_PREFIX would rewrite every path, VAULT_NAMESPACE/VAULT_TOKEN would add headers:
 *   pathPrefix, namespace and token are set explicitly (the token per request).
 * - DEBUG=node-vault would print request bodies, secret values included: its debug is a no-op.
 * node-vault's own generated helpers (approleLogin, kvRead…) are not used: they validate
 * with tv4 and throw different error types; one generic `request` keeps the error mapping
 * in one place. The module (~100 ms to import) is loaded on the first request only.
 */
export class VaultTransport {
  private readonly settings: VaultSettings;
  private client: Promise<NodeVault.client> | undefined;
  private agent: Promise<http.Agent> | undefined;

  constructor(settings: VaultSettings) {
    this.settings = settings;
  }

  /** Sends one request. Any HTTP status is an answer; only a missing answer throws (unreachable, timeout, TLS). */
  async send(request: VaultRequest, token: string | undefined): Promise<VaultAnswer> {
    const [client, agent] = await Promise.all([this.vault(), this.httpAgent()]);
    const { method, path } = request;
    const query = new URLSearchParams(request.query);
    // LIST as GET ?list=true: the same ACL capability ("list"), and no custom verb for proxies to refuse.
    if (method === 'LIST') query.set('list', 'true');
    const search = query.size ? `?${query.toString()}` : '';
    const headers: Record<string, string> = {};
    if (token) headers['X-Vault-Token'] = token;
    if (this.settings.namespace) headers['X-Vault-Namespace'] = this.settings.namespace;
    const options: NodeVault.RequestOption = {
      method: method === 'LIST' ? 'GET' : method,
      path: `/${path}${search}`,
      headers,
      timeout: this.settings.timeoutMs,
      ...(this.settings.https ? { httpsAgent: agent } : { httpAgent: agent }),
    };
    if (request.body !== undefined) options.json = request.body;

    let timer: NodeJS.Timeout | undefined;
    // axios's timeout is a socket-idle timeout; this caps the whole exchange as well.
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(timeoutError(this.settings, request)), this.settings.timeoutMs + 250);
    });
    try {
      const body = await Promise.race([client.request(options), deadline]);
      return { status: 200, body };
    } catch (error) {
      const response = (error as { response?: { statusCode?: unknown; body?: unknown } }).response;
      if (response && typeof response.statusCode === 'number') return { status: response.statusCode, body: response.body };
      throw describeTransportFailure(error, this.settings, request);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    void this.agent?.then((a) => a.destroy(), () => undefined);
    this.agent = undefined;
  }

  private vault(): Promise<NodeVault.client> {
    this.client ??= import('node-vault').then(({ default: createClient }) => {
      const client = createClient({
        endpoint: this.settings.address,
        apiVersion: 'v1',
        pathPrefix: '',
        debug: () => undefined,
        rpDefaults: { strictSSL: true },
      } as NodeVault.VaultOptions);
      // The factory falls back to process.env for these; pin them (the token goes per request).
      client.token = '';
      (client as unknown as { namespace: string }).namespace = '';
      (client as unknown as { pathPrefix: string }).pathPrefix = '';
      return client;
    });
    return this.client;
  }

  private httpAgent(): Promise<http.Agent> {
    this.agent ??= (async () => {
      if (!this.settings.https) return new http.Agent({ keepAlive: true });
      const { caFile, serverName } = this.settings;
      let ca: Buffer | undefined;
      if (caFile) {
        try {
          ca = await readFile(caFile);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code ?? 'error';
          throw vaultError('invalid', `stores.${this.settings.storeName}.tls.caFile: cannot read ${caFile} (${code})`);
        }
      }
      // Verification is always on; a CA file replaces the system roots, a server name overrides SNI and the name check.
      return new https.Agent({ keepAlive: true, rejectUnauthorized: true, ...(ca ? { ca } : {}), ...(serverName ? { servername: serverName } : {}) });
    })();
    return this.agent;
  }
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);

function timeoutError(settings: VaultSettings, request: VaultRequest) {
  return vaultError('timeout', `no answer from ${settings.address} within ${settings.timeoutMs} ms (${request.method} ${request.path}); raise stores.${settings.storeName}.timeout or check the network`);
}

/**
 * The axios error carries the request config, token header included, so it is never kept:
 * only its code becomes the message and a fresh, token-free cause.
 */
function describeTransportFailure(error: unknown, settings: VaultSettings, request: VaultRequest) {
  if (error instanceof AdapterError) return error;
  const code = errorCode(error);
  const where = settings.address;
  const cause = transportCause(code, request.method + ' ' + request.path);
  if (code === 'ECONNABORTED' || code === 'ETIMEDOUT' || code === 'ESOCKETTIMEDOUT') return timeoutError(settings, request);
  if (TLS_CODES.has(code)) {
    return vaultError('unreachable', `TLS: the certificate of ${where} is not trusted (${code}); set stores.${settings.storeName}.tls.caFile (and tls.serverName if the name differs); verification is never turned off`, cause);
  }
  const reasons: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ENOTFOUND: 'host not found',
    EAI_AGAIN: 'DNS lookup failed',
    ECONNRESET: 'connection reset',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    EPROTO: 'TLS handshake failed (is it https?)',
    ERR_SSL_WRONG_VERSION_NUMBER: 'TLS handshake failed (is the server plain http?)',
  };
  return vaultError('unreachable', `cannot reach ${where}: ${reasons[code] ?? 'request failed'} (${code})`, cause);
}

function errorCode(error: unknown): string {
  const e = error as { code?: unknown; cause?: { code?: unknown; errors?: { code?: unknown }[] }; errors?: { code?: unknown }[] } | undefined;
  for (const candidate of [e?.cause?.code, e?.code, e?.errors?.[0]?.code, e?.cause?.errors?.[0]?.code]) {
    if (typeof candidate === 'string' && candidate !== 'ERR_BAD_REQUEST' && candidate !== 'ERR_NETWORK') return candidate;
  }
  return typeof e?.code === 'string' ? e.code : 'EUNKNOWN';
}
