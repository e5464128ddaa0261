import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
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

/** Vault's answers are small JSON documents; anything bigger is not Vault. */
const MAX_ANSWER_BYTES = 8 * 1024 * 1024;

/**
 * node:http(s) as the transport, one request per call on a keep-alive agent built from the
 * store's settings, which are the only source of truth (no VAULT_* variable is read here).
 *
 * Redirects are never followed. A request carries the token in X-Vault-Token and, for writes,
 * secret values in its body; an HTTP client that follows a 3xx sends both again to wherever
 * the Location points, https→http included (node-vault's axios did exactly that). node:http
 * does not follow redirects at all, and any 3xx answer is an error naming where it pointed, so
 * nothing is re-sent.
 *
 * TLS verification is always on: a CA file replaces the system roots, a server name overrides
 * SNI and the name check. A proxy is used only as settings.ts chose it: an HTTPS proxy that
 * https requests tunnel through with CONNECT (Node's built-in support, given that one proxy
 * and nothing else), so TLS still ends at Vault. A loopback or NO_PROXY Vault, and every plain
 * http one, goes direct: a forwarding proxy would read the token.
 */
export class VaultTransport {
  private readonly settings: VaultSettings;
  private agent: Promise<http.Agent> | undefined;

  constructor(settings: VaultSettings) {
    this.settings = settings;
  }

  /**
   * Sends one request. Any non-redirect HTTP status is an answer; a redirect and a missing
   * answer (unreachable, timeout, TLS) throw.
   */
  async send(request: VaultRequest, token: string | undefined): Promise<VaultAnswer> {
    const agent = await this.httpAgent();
    const { settings } = this;
    const query = new URLSearchParams(request.query);
    // LIST as GET ?list=true: the same ACL capability ("list"), and no custom verb for proxies to refuse.
    if (request.method === 'LIST') query.set('list', 'true');
    const search = query.size ? `?${query.toString()}` : '';
    const url = new URL(`${settings.address}/v1/${request.path}${search}`);

    const headers: Record<string, string> = { accept: 'application/json' };
    if (token) headers['x-vault-token'] = token;
    if (settings.namespace) headers['x-vault-namespace'] = settings.namespace;
    const payload = request.body === undefined ? undefined : Buffer.from(JSON.stringify(request.body), 'utf8');
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }

    return new Promise<VaultAnswer>((resolve, reject) => {
      let settled = false;
      let deadline: NodeJS.Timeout | undefined;
      const settle = (outcome: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        outcome();
      };
      const httpRequest = settings.https ? https.request : http.request;
      const req = httpRequest(url, { method: request.method === 'LIST' ? 'GET' : request.method, headers, agent }, (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) {
          // Read nothing more and drop the connection: it is not reused after an answer we refuse.
          res.on('error', () => undefined);
          res.destroy();
          req.destroy();
          settle(() => reject(redirectError(settings, request, status, res.headers.location, url)));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) {
            req.destroy();
            settle(() => reject(vaultError('server_error', `${request.method} ${request.path}: the answer of ${settings.address} is larger than ${MAX_ANSWER_BYTES} bytes; is the address a Vault server?`)));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => settle(() => resolve({ status, body: parseBody(Buffer.concat(chunks).toString('utf8')) })));
        res.on('error', (error) => settle(() => reject(describeTransportFailure(error, settings, request))));
      });
      req.on('error', (error) => settle(() => reject(describeTransportFailure(error, settings, request))));
      // One deadline for the whole exchange (connect, TLS, proxy tunnel, answer).
      deadline = setTimeout(() => {
        req.destroy();
        settle(() => reject(timeoutError(settings, request)));
      }, settings.timeoutMs);
      req.end(payload);
    });
  }

  close(): void {
    void this.agent?.then(
      (a) => a.destroy(),
      () => undefined,
    );
    this.agent = undefined;
  }

  private httpAgent(): Promise<http.Agent> {
    this.agent ??= (async () => {
      // Only an https agent ever gets a proxy, and only as HTTPS_PROXY: Node tunnels those with CONNECT.
      if (!this.settings.https) return new http.Agent({ keepAlive: true });
      const { tunnelProxy } = this.settings;
      const proxy = tunnelProxy ? { proxyEnv: { HTTPS_PROXY: tunnelProxy } } : {};
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
      return new https.Agent({ keepAlive: true, rejectUnauthorized: true, ...(ca ? { ca } : {}), ...(serverName ? { servername: serverName } : {}), ...proxy });
    })().catch((error: unknown) => {
      this.agent = undefined;
      throw error;
    });
    return this.agent;
  }
}

function parseBody(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    // Not JSON (a proxy's error page): callers find no fields in it, and it is never echoed.
    return text;
  }
}

/** Names only the origin the redirect pointed to: its path or query could carry anything. */
function redirectError(settings: VaultSettings, request: VaultRequest, status: number, location: string | undefined, from: URL): AdapterError {
  let target = 'an unreadable location';
  if (location) {
    try {
      target = new URL(location, from).origin;
    } catch {
      // keep the generic wording
    }
  }
  return vaultError(
    'invalid',
    `${settings.address} answered ${request.method} ${request.path} with ${status}, a redirect to ${target}; provkey does not follow redirects with a token: set stores.${settings.storeName}.address to the server that answers (e.g. the active node or the load balancer)`,
  );
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
 * Only the error's code becomes the message and a fresh cause: a socket error can carry the
 * request it belonged to, so the original is never kept.
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
    ERR_PROXY_TUNNEL: 'the proxy (HTTPS_PROXY) refused or failed the tunnel',
    ERR_PROXY_INVALID_CONFIG: 'the proxy setting (HTTP_PROXY/HTTPS_PROXY) is not a usable URL',
  };
  return vaultError('unreachable', `cannot reach ${where}: ${reasons[code] ?? 'request failed'} (${code})`, cause);
}

function errorCode(error: unknown): string {
  const e = error as { code?: unknown; cause?: { code?: unknown }; errors?: { code?: unknown }[] } | undefined;
  // A dual-stack connect failure is an AggregateError whose own code may be missing.
  for (const candidate of [e?.code, e?.cause?.code, e?.errors?.[0]?.code]) {
    if (typeof candidate === 'string') return candidate;
  }
  return 'EUNKNOWN';
}
