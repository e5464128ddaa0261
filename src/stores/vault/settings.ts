import { homedir } from 'node:os';
import path from 'node:path';
import type { VaultStoreConfig } from '../../config/schema.js';
import { parseDuration } from '../../core/duration.js';
import { ConfigError } from '../../core/errors.js';
import { isLoopbackHost } from '../../core/loopback.js';
import type { AdapterContext } from '../context.js';

/**
 * A vault store's config with the environment folded in, checked once when the store is
 * opened (no I/O): every later request can trust these values. Environment variables follow
 * the Vault CLI's names so an existing `export VAULT_ADDR=...` set-up just works.
 */
export interface VaultSettings {
  storeName: string;
  /** Origin plus optional path, no trailing slash, e.g. "https://vault.example.com:8200". */
  address: string;
  https: boolean;
  /** KV v2 mount, no leading/trailing slash ("secret", "team/kv"). */
  mount: string;
  /** Path prefix inside the mount, no leading/trailing slash; may be empty. */
  prefix: string;
  namespace: string | undefined;
  timeoutMs: number;
  destroyOnRevoke: boolean;
  /** Absolute path of a PEM bundle to trust instead of the system CAs. */
  caFile: string | undefined;
  serverName: string | undefined;
  /**
   * The HTTPS proxy that requests tunnel through (CONNECT: TLS still ends at Vault, the proxy
   * sees only the host name); undefined means direct. Never a forwarding proxy: that would read
   * the token. See `chooseProxy`.
   */
  tunnelProxy: string | undefined;
  auth: VaultAuthSettings;
}

export type VaultAuthSettings =
  | { method: 'token'; tokenFile: string | undefined; envToken: string | undefined; defaultTokenFile: string }
  | { method: 'approle'; mount: string; roleId: CredentialSource; secretId: CredentialSource }
  | { method: 'kubernetes'; mount: string; role: string; jwtFile: string };

/** Where an AppRole credential comes from: a file (preferred: not in the environment of every child) or an env var. */
export type CredentialSource = { file: string; what: string } | { env: string; value: string | undefined; what: string };

const SEGMENT = /^[A-Za-z0-9._-]+$/;

export function resolveVaultSettings(name: string, config: VaultStoreConfig, context: AdapterContext): VaultSettings {
  const field = (f: string) => `stores.${name}.${f}`;
  const env = context.env;
  const resolvePath = (p: string) => path.resolve(context.configDir, expandHome(p, env));

  const rawAddress = config.address ?? env.VAULT_ADDR;
  if (!rawAddress) throw new ConfigError(`${field('address')}: not set, and VAULT_ADDR is not set either`);
  let url: URL;
  try {
    url = new URL(rawAddress);
  } catch {
    throw new ConfigError(`${field('address')}: not a URL (e.g. https://vault.example.com:8200)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError(`${field('address')}: use https:// (or http:// to loopback), not ${url.protocol}`);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new ConfigError(`${field('address')}: must not contain credentials, a query or a fragment`);
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname) && !config.allowInsecureHttp) {
    throw new ConfigError(
      `${field('address')}: plain http:// to ${url.hostname} would send the Vault token unencrypted; use https://, or set ${field('allowInsecureHttp')}: true`,
    );
  }

  const mount = trimSlashes(config.mount);
  const prefix = trimSlashes(config.prefix);
  checkPathField(mount, field('mount'), false);
  checkPathField(prefix, field('prefix'), true);
  const timeoutMs = parseDuration(config.timeout, field('timeout'));
  if (timeoutMs <= 0) throw new ConfigError(`${field('timeout')}: must be longer than 0`);
  const namespace = config.namespace ?? (env.VAULT_NAMESPACE || undefined);
  if (namespace !== undefined) checkPathField(trimSlashes(namespace), field('namespace'), false);

  const caFile = config.tls.caFile ?? (env.VAULT_CACERT || undefined);
  const serverName = config.tls.serverName ?? (env.VAULT_TLS_SERVER_NAME || undefined);
  if (url.protocol === 'http:' && (config.tls.caFile || config.tls.serverName)) {
    throw new ConfigError(`${field('tls')}: set, but ${field('address')} is plain http://`);
  }

  let auth: VaultAuthSettings;
  const a = config.auth;
  switch (a.method) {
    case 'token':
      auth = {
        method: 'token',
        tokenFile: a.tokenFile === undefined ? undefined : resolvePath(a.tokenFile),
        envToken: env.VAULT_TOKEN || undefined,
        defaultTokenFile: path.join(env.HOME || homedir(), '.vault-token'),
      };
      break;
    case 'approle':
      checkPathField(trimSlashes(a.mount), field('auth.mount'), false);
      auth = {
        method: 'approle',
        mount: trimSlashes(a.mount),
        roleId: a.roleIdFile ? { file: resolvePath(a.roleIdFile), what: 'role_id' } : { env: a.roleIdEnv, value: env[a.roleIdEnv] || undefined, what: 'role_id' },
        secretId: a.secretIdFile
          ? { file: resolvePath(a.secretIdFile), what: 'secret_id' }
          : { env: a.secretIdEnv, value: env[a.secretIdEnv] || undefined, what: 'secret_id' },
      };
      break;
    case 'kubernetes':
      checkPathField(trimSlashes(a.mount), field('auth.mount'), false);
      auth = { method: 'kubernetes', mount: trimSlashes(a.mount), role: a.role, jwtFile: resolvePath(a.jwtFile) };
      break;
  }

  const tunnelProxy = chooseProxy(url, env, field);
  if (tunnelProxy && !nodeHasAgentProxy(process.versions.node)) {
    // Going direct instead would be a silent surprise (and may not be allowed where a proxy is).
    throw new ConfigError(
      `${field('address')}: HTTPS_PROXY is set, but Node.js ${process.versions.node} cannot send requests through a proxy; use Node.js 22.21 or 24.5 or later, or unset it`,
    );
  }

  return {
    storeName: name,
    address: url.href.replace(/\/+$/, ''),
    https: url.protocol === 'https:',
    mount,
    prefix,
    namespace: namespace === undefined ? undefined : trimSlashes(namespace),
    timeoutMs,
    destroyOnRevoke: config.destroyOnRevoke,
    caFile: caFile === undefined ? undefined : resolvePath(caFile),
    serverName,
    tunnelProxy,
    auth,
  };
}

/**
 * Whether a request to `url` goes through a proxy, and which. The rules, strictest first:
 * - a loopback Vault is never proxied (the request never leaves the machine; a proxy would
 *   only be one more reader of the token);
 * - a host NO_PROXY names is never proxied;
 * - an https Vault tunnels through HTTPS_PROXY (or https_proxy) with CONNECT: the proxy
 *   relays TLS bytes and learns only host:port;
 * - a plain http:// Vault (non-loopback: allowInsecureHttp) with HTTP_PROXY set is refused: a
 *   forwarding proxy reads every request, token included. Use https, or NO_PROXY for the host.
 * HTTP_PROXY never applies to https (as in curl and Node), so it alone sends an https Vault direct.
 */
export function chooseProxy(url: URL, env: NodeJS.ProcessEnv, field: (f: string) => string = (f) => f): string | undefined {
  if (isLoopbackHost(url.hostname)) return undefined;
  if (noProxyMatches(url, env.no_proxy ?? env.NO_PROXY ?? '')) return undefined;
  if (url.protocol === 'http:') {
    const forward = env.http_proxy || env.HTTP_PROXY;
    if (forward) {
      throw new ConfigError(
        `${field('address')}: HTTP_PROXY is set and ${url.origin} is plain http: the proxy would read the Vault token; use https:// (tunnelled through HTTPS_PROXY), or add ${url.hostname} to NO_PROXY`,
        'config.insecure',
      );
    }
    return undefined;
  }
  const tunnel = env.https_proxy || env.HTTPS_PROXY;
  if (!tunnel) return undefined;
  let proxy: URL;
  try {
    proxy = new URL(tunnel.includes('://') ? tunnel : `http://${tunnel}`);
  } catch {
    throw new ConfigError(`${field('address')}: HTTPS_PROXY is not a URL (e.g. http://proxy.example.com:3128)`);
  }
  if (proxy.protocol !== 'http:' && proxy.protocol !== 'https:') throw new ConfigError(`${field('address')}: HTTPS_PROXY must be an http:// or https:// URL`);
  return proxy.href;
}

/**
 * NO_PROXY as curl reads it: comma- or space-separated entries; "*" matches every host; an
 * entry matches the host itself and every subdomain (a leading "." or "*." is optional); an
 * entry with ":port" matches that port only; IP addresses match exactly (no CIDR ranges).
 */
export function noProxyMatches(url: URL, noProxy: string): boolean {
  const host = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  for (const raw of noProxy.split(/[\s,]+/)) {
    let entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    let entryPort: string | undefined;
    const bracketed = /^\[(.*)\](?::(\d+))?$/.exec(entry);
    if (bracketed) {
      entry = bracketed[1]!;
      entryPort = bracketed[2];
    } else if (/^[^:]+:\d+$/.test(entry)) {
      [entry, entryPort] = entry.split(':') as [string, string];
    }
    if (entryPort && entryPort !== port) continue;
    entry = entry.replace(/^\*?\./, '');
    if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

/** http.Agent's proxyEnv option exists from Node.js 22.21 and 24.5; older versions ignore it silently. */
export function nodeHasAgentProxy(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 24 || (major === 24 && minor >= 5) || (major === 22 && minor >= 21);
}

function trimSlashes(value: string): string {
  return value.replace(/^\/+|\/+$/g, '');
}

function checkPathField(value: string, field: string, mayBeEmpty: boolean): void {
  if (value === '') {
    if (mayBeEmpty) return;
    throw new ConfigError(`${field}: must not be empty`);
  }
  for (const segment of value.split('/')) {
    if (!SEGMENT.test(segment) || segment === '.' || segment === '..') {
      throw new ConfigError(`${field}: must be path segments of letters, digits, ".", "_", "-" separated by "/"`);
    }
  }
}

function expandHome(p: string, env: NodeJS.ProcessEnv): string {
  return p === '~' || p.startsWith('~/') ? path.join(env.HOME || homedir(), p.slice(1)) : p;
}
