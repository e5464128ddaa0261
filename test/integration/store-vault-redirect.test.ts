// The vault store never follows a redirect: every request carries the token (and writes carry
// secret values), so a 3xx answer must end the exchange instead of re-sending them to the
// Location. Two tiny local servers stand in for Vault: A answers every request with a
// redirect to B, and B records every connection it ever gets. Also: an https Vault tunnels
// through HTTPS_PROXY by CONNECT (Node's built-in support, which replaced axios's); a loopback one goes direct.

import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as v from 'valibot';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { storeSchema, type VaultStoreConfig } from '../../src/config/schema.js';
import { AdapterError } from '../../src/core/errors.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { AdapterContext } from '../../src/stores/context.js';
import type { SecretStore } from '../../src/stores/store.js';
import { createVaultStore } from '../../src/stores/vault.js';
import { nodeHasAgentProxy } from '../../src/stores/vault/settings.js';

const TOKEN = `hvs.redirect-test-${randomBytes(8).toString('hex')}`;

interface Seen {
  method: string;
  url: string;
  token: string | undefined;
  body: string;
}

/** A: answers everything with `status` and a Location on B (GETs with 404 when `readsPass`). */
let redirectStatus = 307;
let readsPass = false;
const seenByA: Seen[] = [];
let a: http.Server;
let addressA: string;

/** B: any connection at all is a failure; requests are recorded too, for the message. */
let connectionsToB = 0;
const seenByB: Seen[] = [];
let b: TcpServer;
let portB: number;

function record(into: Seen[], req: http.IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const token = req.headers['x-vault-token'];
      into.push({ method: req.method ?? '', url: req.url ?? '', token: typeof token === 'string' ? token : undefined, body });
      resolve();
    });
  });
}

function listen(server: http.Server | TcpServer): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

beforeAll(async () => {
  // B is a raw TCP server: it counts connections before any HTTP parsing could fail.
  const bHttp = http.createServer((req, res) => {
    void record(seenByB, req).then(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":{}}'));
  });
  b = createTcpServer((socket) => {
    connectionsToB++;
    bHttp.emit('connection', socket);
  });
  portB = await listen(b);

  a = http.createServer((req, res) => {
    void record(seenByA, req).then(() => {
      if (readsPass && req.method === 'GET') return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[]}');
      // "localhost": another name for the same machine, as in the reported reproduction.
      res.writeHead(redirectStatus, { location: `http://localhost:${portB}${req.url}` }).end();
    });
  });
  addressA = `http://127.0.0.1:${await listen(a)}`;
});

afterAll(async () => {
  await new Promise<void>((r) => a.close(() => r()));
  await new Promise<void>((r) => b.close(() => r()));
});

const stores: SecretStore[] = [];
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  seenByA.length = 0;
  redirectStatus = 307;
  readsPass = false;
});

function config(fields: Record<string, unknown> = {}): VaultStoreConfig {
  const parsed = v.parse(storeSchema, { type: 'vault', address: addressA, mount: 'secret', prefix: 'provkey', timeout: '3s', ...fields });
  if (parsed.type !== 'vault') throw new Error('not a vault config');
  return parsed;
}

function context(env: NodeJS.ProcessEnv): AdapterContext {
  return {
    configDir: tmpdir(),
    env: { HOME: tmpdir(), ...env },
    resolveSecret: async () => {
      throw new Error('not used by the vault store');
    },
    debug: () => undefined,
  };
}

async function open(fields: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = { VAULT_TOKEN: TOKEN }): Promise<SecretStore> {
  const store = await createVaultStore('vault', config(fields), context(env), { maxAttempts: 1 });
  stores.push(store);
  return store;
}

async function failure(promise: Promise<unknown>): Promise<AdapterError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AdapterError);
  return error as AdapterError;
}

function expectNothingReachedB(): void {
  expect(seenByB).toEqual([]);
  expect(connectionsToB).toBe(0);
}

describe('vault store: redirects are refused, never followed', () => {
  it.each([301, 302, 303, 307, 308])('a read answered %i: kind invalid naming the redirect target; B never hears of it', async (status) => {
    redirectStatus = status;
    const store = await open();
    const error = await failure(store.read('k'));
    expect(error.kind).toBe('invalid');
    expect(error.code).toBe('vault.invalid');
    expect(error.message).toBe(
      `[vault] ${addressA} answered GET secret/data/provkey/k/state with ${status}, a redirect to http://localhost:${portB}; provkey does not follow redirects with a token: set stores.vault.address to the server that answers (e.g. the active node or the load balancer)`,
    );
    expect(error.message).not.toContain(TOKEN);
    // A got the request (it is the configured address); the redirect went nowhere.
    expect(seenByA.some((s) => s.token === TOKEN && s.url === '/v1/secret/data/provkey/k/state')).toBe(true);
    expectNothingReachedB();
  });

  it('a write answered 307 (which asks for the same body again): the secret value is not re-sent', async () => {
    readsPass = true;
    const store = await open();
    const secret = `pk_redirect_${randomBytes(18).toString('base64url')}`;
    const at = new Date().toISOString();
    // The state read finds no key (404), so the value write is the request that gets the 307.
    const error = await failure(
      store.addVersion('k', undefined, secret, { label: 'current', fingerprint: fingerprint(secret), createdAt: at, labelledAt: at, origin: 'generated' }),
    );
    expect(error.kind).toBe('invalid');
    expect(error.message).toContain('answered POST secret/data/provkey/k/value with 307, a redirect to http://localhost:');
    expect(error.message).not.toContain(secret);
    expect(seenByA.filter((s) => s.method === 'POST').map((s) => JSON.parse(s.body).data.value)).toEqual([secret]);
    expectNothingReachedB();
  });

  it('an AppRole login answered 308: the secret_id goes nowhere else', async () => {
    redirectStatus = 308;
    const secretId = `secret-id-${randomBytes(8).toString('hex')}`;
    const store = await open({ auth: { method: 'approle', roleIdEnv: 'ROLE', secretIdEnv: 'SECRET' } }, { ROLE: 'role-id-1', SECRET: secretId });
    const error = await failure(store.read('k'));
    expect(error.kind).toBe('invalid');
    expect(error.message).toMatch(/^\[vault\] http:\/\/127\.0\.0\.1:\d+ answered POST auth\/approle\/login with 308, a redirect to http:\/\/localhost:\d+; provkey does not follow redirects with a token/);
    expect(seenByA.map((s) => s.body)).toEqual([JSON.stringify({ role_id: 'role-id-1', secret_id: secretId })]);
    expectNothingReachedB();
  });

  it('a Location that is not a URL is still a refusal, naming no part of it', async () => {
    const odd = http.createServer((req, res) => {
      req.resume();
      res.writeHead(302, { location: 'http://[not-a-host/v1/x?token=abc' }).end();
    });
    const port = await listen(odd);
    try {
      const store = await open({ address: `http://127.0.0.1:${port}` });
      const error = await failure(store.read('k'));
      expect(error.message).toContain('with 302, a redirect to an unreadable location; provkey does not follow redirects with a token');
      expect(error.message).not.toContain('token=abc');
    } finally {
      await new Promise<void>((r) => odd.close(() => r()));
    }
  });
});

describe('vault store: proxies (Node built-in support)', () => {
  it.runIf(nodeHasAgentProxy(process.versions.node))('takes HTTPS_PROXY from the adapter context, not process.env, and only ever asks it for a CONNECT tunnel', async () => {
    const proxied: string[] = [];
    // Refuses every tunnel (403) and every forwarded request: only what was asked matters here.
    const proxy = http.createServer((req, res) => {
      proxied.push(`${req.method} ${req.url} token=${req.headers['x-vault-token'] === TOKEN}`);
      req.resume();
      res.writeHead(502).end();
    });
    proxy.on('connect', (req: http.IncomingMessage, socket: import('node:net').Socket) => {
      proxied.push(`CONNECT ${req.url}`);
      socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
    });
    const port = await listen(proxy);
    try {
      const store = await open({ address: 'https://vault.provkey.test:8200' }, { VAULT_TOKEN: TOKEN, HTTP_PROXY: `http://127.0.0.1:${port}`, HTTPS_PROXY: `http://127.0.0.1:${port}` });
      const error = await failure(store.read('k'));
      expect(error.kind).toBe('unreachable');
      expect(proxied.length).toBeGreaterThan(0);
      expect(new Set(proxied)).toEqual(new Set(['CONNECT vault.provkey.test:8200']));
      const asked = proxied.length;
      // A loopback Vault goes direct: the proxy hears nothing more (issue 7, item 9).
      const direct = await open({}, { VAULT_TOKEN: TOKEN, HTTP_PROXY: `http://127.0.0.1:${port}` });
      await failure(direct.read('k'));
      expect(proxied.length).toBe(asked);
    } finally {
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });

  it('knows which Node versions can use a proxy with a custom agent', () => {
    expect(['22.12.0', '22.20.9', '23.11.0', '24.4.1'].map(nodeHasAgentProxy)).toEqual([false, false, false, false]);
    expect(['22.21.0', '24.5.0', '24.21.0', '25.0.0', '26.1.0'].map(nodeHasAgentProxy)).toEqual([true, true, true, true, true]);
  });
});
