import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { Client } from 'ldapts';
import { ConfigError } from '../../core/errors.js';
import { isLoopbackHost } from '../../core/loopback.js';
import { applyFailure, classifyLdapError, type LdapFailure } from './result-codes.js';

/**
 * Where and how provkey talks LDAP: the configured URLs checked against the TLS rule of
 * DESIGN.md (LDAPS or StartTLS; plain only to loopback or with allowPlain), and a connector
 * that opens one verified connection per operation.
 *
 * provkey opens the TCP/TLS socket itself and hands it to ldapts: so the connect step is
 * timed and reported on its own, the certificate is checked against the real host name (with
 * StartTLS too), and a dropped connection is never silently re-opened. ldapts would re-open
 * it in plain text after a StartTLS session, and the next bind would send the password in
 * the clear.
 */

export interface LdapServer {
  /** scheme://host:port, nothing else. */
  url: string;
  host: string;
  port: number;
  security: 'ldaps' | 'starttls' | 'plain';
}

/** Checks the configured URLs; throws a ConfigError naming the field. No I/O. */
export function parseLdapServers(urls: string[], options: { startTls: boolean; allowPlain: boolean }, field: string): LdapServer[] {
  return urls.map((raw, index) => parseLdapServer(raw, options, `${field}.${index}`));
}

function parseLdapServer(raw: string, options: { startTls: boolean; allowPlain: boolean }, field: string): LdapServer {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${field}: "${raw}" is not an LDAP URL (e.g. ldaps://ldap.example.com or ldap://ldap.example.com with startTls)`);
  }
  if (url.protocol !== 'ldap:' && url.protocol !== 'ldaps:') {
    throw new ConfigError(`${field}: scheme ${url.protocol} is not supported (use ldaps:// or ldap:// with StartTLS)`);
  }
  if (url.username || url.password) {
    throw new ConfigError(`${field}: must not contain credentials (user:password@); the bind DN and password come from bindDn and the key`);
  }
  if ((url.pathname !== '' && url.pathname !== '/') || url.search || url.hash) {
    throw new ConfigError(`${field}: only scheme://host:port is used; put the base DN in searchBase, not in the URL`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new ConfigError(`${field}: no host in "${raw}"`);
  const secure = url.protocol === 'ldaps:';
  const port = url.port ? Number(url.port) : secure ? 636 : 389;
  const security = secure ? 'ldaps' : options.startTls ? 'starttls' : 'plain';
  if (security === 'plain' && !isLoopbackHost(host) && !options.allowPlain) {
    throw new ConfigError(
      `${field}: ${url.protocol}//${url.host} without StartTLS sends the bind password in plain text to a non-loopback host; use ldaps://, set startTls: true, or set allowPlain: true`,
      'config.insecure',
    );
  }
  return { url: `${url.protocol}//${url.host}`, host, port, security };
}

export interface ConnectorOptions {
  tls: { caFile?: string; serverName?: string };
  configDir: string;
  /** The config field of the CA file, for the error when it cannot be read. */
  caField: string;
  timeoutMs: number;
  /** Cuts secret values out of server messages. */
  scrub: (text: string) => string;
}

export type Connection =
  | { ok: true; client: Client; ms: number; detail: string }
  | { ok: false; failure: LdapFailure; ms: number };

export class LdapConnector {
  readonly #options: ConnectorOptions;
  #ca: Promise<string | undefined> | undefined;

  constructor(options: ConnectorOptions) {
    this.#options = options;
  }

  /** The CA file, read once on first use. An unreadable CA file is a config provkey cannot use: that throws. */
  #caPem(): Promise<string | undefined> {
    const { caFile } = this.#options.tls;
    this.#ca ??= (async () => {
      if (!caFile) return undefined;
      const file = path.resolve(this.#options.configDir, caFile);
      try {
        return await readFile(file, 'utf8');
      } catch (error) {
        throw new ConfigError(`${this.#options.caField}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, 'config.tls');
      }
    })();
    return this.#ca;
  }

  /** Opens a connection (TCP, then TLS or StartTLS) ready for a bind. Expected failures are values. */
  async open(server: LdapServer): Promise<Connection> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const ca = await this.#caPem();
    const serverName = this.#options.tls.serverName ?? (net.isIP(server.host) ? undefined : server.host);
    const tlsOptions: tls.ConnectionOptions = {
      host: server.host,
      ...(serverName ? { servername: serverName } : {}),
      ...(ca ? { ca: [ca] } : {}),
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    };
    const timeoutMs = this.#options.timeoutMs;
    let client: Client | undefined;
    try {
      if (server.security === 'ldaps') {
        const socket = await withTimeout(connectTls(server, tlsOptions), timeoutMs);
        client = new Client({ url: server.url, timeout: timeoutMs, createSecureConnection: oneShot(socket) as unknown as typeof tls.connect });
        sockets.set(client, socket);
        return { ok: true, client, ms: elapsed(), detail: `ldaps, ${socket.getProtocol() ?? 'TLS'}` };
      }
      const socket = await withTimeout(connectTcp(server), timeoutMs);
      let upgraded: tls.TLSSocket | undefined;
      const upgrade = (options: tls.ConnectionOptions) => (upgraded = tls.connect(options));
      client = new Client({
        url: server.url,
        timeout: timeoutMs,
        createConnection: oneShot(socket) as unknown as typeof net.connect,
        createSecureConnection: upgrade as unknown as typeof tls.connect,
      });
      sockets.set(client, socket);
      if (server.security === 'plain') return { ok: true, client, ms: elapsed(), detail: 'plain LDAP (no TLS)' };
      try {
        await client.startTLS(tlsOptions);
      } catch (error) {
        const failure = classifyLdapError(error, this.#options.scrub);
        if (failure.kind !== 'tls') failure.detail = `StartTLS: ${failure.detail}`;
        await closeQuietly(client);
        return { ok: false, failure, ms: elapsed() };
      }
      // Narrowing does not survive the callback assignment; read it back through a cast.
      const protocol = (upgraded as tls.TLSSocket | undefined)?.getProtocol();
      return { ok: true, client, ms: elapsed(), detail: `StartTLS, ${protocol ?? 'TLS'}` };
    } catch (error) {
      if (client) await closeQuietly(client);
      return { ok: false, failure: classifyLdapError(error, this.#options.scrub), ms: elapsed() };
    }
  }
}

/** ldapts calls its connection factory again after a drop; provkey never reconnects mid-operation. */
function oneShot<T>(socket: T): () => T {
  let used = false;
  return () => {
    if (used) throw Object.assign(new Error('the connection was closed; provkey does not reconnect in the middle of an operation'), { code: 'ECONNRESET' });
    used = true;
    return socket;
  };
}

function connectTcp(server: LdapServer): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: server.host, port: server.port });
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error) => {
      socket.destroy();
      reject(error);
    });
  });
}

function connectTls(server: LdapServer, options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ ...options, port: server.port });
    socket.once('secureConnect', () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error) => {
      socket.destroy();
      reject(error);
    });
  });
}

function withTimeout<T extends net.Socket>(connecting: Promise<T>, ms: number): Promise<T> {
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(Object.assign(new Error(`no connection within ${ms} ms`), { code: 'ETIMEDOUT' }));
    }, ms);
  });
  // A socket that connects after the deadline is closed, not leaked.
  connecting.then(
    (socket) => {
      if (timedOut) socket.destroy();
    },
    () => undefined,
  );
  return Promise.race([connecting, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The socket provkey opened for each client. ldapts takes it over only on the client's first
 * operation: an ldaps client closed before any (a test that found nothing to bind yet) would
 * otherwise leave the TLS socket open, and the process would never exit.
 */
const sockets = new WeakMap<Client, net.Socket>();

export async function closeQuietly(client: Client): Promise<void> {
  await client.unbind().catch(() => undefined);
  sockets.get(client)?.destroy();
}

/**
 * Runs `work` on a fresh connection to `server` and always closes it. A connection that cannot
 * be opened becomes `onNoConnection`'s answer, else the failed ApplyResult every operation returns.
 */
export async function withConnection<T>(
  connector: LdapConnector,
  server: LdapServer,
  work: (client: Client) => Promise<T>,
  onNoConnection?: (failure: LdapFailure) => T,
): Promise<T> {
  const connection = await connector.open(server);
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
