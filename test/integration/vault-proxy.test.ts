// Item 9 of issue 7: with HTTP_PROXY set, a loopback Vault's token went to the proxy in clear
// text. A real OpenBao, a real proxy process (test/harness/proxy/recording-proxy.ts) that
// records every request and every byte it relays, and a TLS front for OpenBao so that an https
// Vault under a non-loopback name is reachable only through the proxy's CONNECT tunnel (the
// proxy sends every tunnel to 127.0.0.1: nothing leaves the machine, and the client never
// resolves the name itself).

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import * as v from 'valibot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeSchema, type VaultStoreConfig } from '../../src/config/schema.js';
import { ConfigError } from '../../src/core/errors.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { AdapterContext } from '../../src/stores/context.js';
import type { SecretStore } from '../../src/stores/store.js';
import { createVaultStore } from '../../src/stores/vault.js';
import { chooseProxy, noProxyMatches } from '../../src/stores/vault/settings.js';
import { ProvkeyCli, describeRun } from '../harness/cli.ts';
import { startOpenBao, type OpenBaoServer } from '../harness/servers/openbao.ts';
import { startRecordingProxy, type RecordingProxy } from '../harness/servers/proxy.ts';

const NAME = 'vault.provkey.test';
let dir: string;
let bao: OpenBaoServer;
let front: tls.Server;
let frontPort: number;
let proxy: RecordingProxy;
let caFile: string;

/** A CA and a server certificate for NAME, localhost and 127.0.0.1 (openssl, as the slapd harness does). */
function makeCertificates(into: string): { cert: string; key: string; ca: string } {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: into, stdio: 'pipe' });
  run(['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=provkey proxy test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${NAME}`]);
  writeFileSync(path.join(into, 'server.ext'), `basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:${NAME},DNS:localhost,IP:127.0.0.1\n`);
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext']);
  return { cert: readFileSync(path.join(into, 'server.pem'), 'utf8'), key: readFileSync(path.join(into, 'server.key'), 'utf8'), ca: path.join(into, 'ca.pem') };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-proxy-'));
  bao = await startOpenBao();
  await bao.enableKv2('proxykv');
  const certs = makeCertificates(dir);
  caFile = certs.ca;
  // TLS in front of OpenBao's plain port: OpenBao behind https, the way it runs in production.
  const baoPort = Number(new URL(bao.addr).port);
  front = tls.createServer({ cert: certs.cert, key: certs.key }, (socket) => {
    const upstream = net.connect(baoPort, '127.0.0.1');
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  frontPort = await new Promise<number>((resolve) => front.listen(0, '127.0.0.1', () => resolve((front.address() as net.AddressInfo).port)));
  proxy = await startRecordingProxy({ tunnelPort: frontPort });
});

afterAll(async () => {
  await proxy?.stop();
  await new Promise<void>((resolve) => (front ? front.close(() => resolve()) : resolve()));
  await bao?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function config(fields: Record<string, unknown>): VaultStoreConfig {
  const parsed = v.parse(storeSchema, { type: 'vault', mount: 'proxykv', prefix: `p-${randomBytes(3).toString('hex')}`, timeout: '5s', ...fields });
  if (parsed.type !== 'vault') throw new Error('not a vault config');
  return parsed;
}

function context(env: NodeJS.ProcessEnv): AdapterContext {
  return { configDir: dir, env: { HOME: dir, VAULT_TOKEN: bao.rootToken, ...env }, resolveSecret: async () => '', debug: () => undefined };
}

/** A round trip that sends the token and a secret value: write a version, read it back. */
async function roundTrip(store: SecretStore): Promise<string> {
  const secret = `pk_proxy_${randomBytes(18).toString('base64url')}`;
  const at = new Date().toISOString();
  const created = await store.addVersion('k', undefined, secret, { label: 'current', fingerprint: fingerprint(secret), createdAt: at, labelledAt: at, origin: 'generated' });
  expect(await store.readSecret('k', created.versionId)).toBe(secret);
  return secret;
}

const allProxies = () => ({ HTTP_PROXY: proxy.url, http_proxy: proxy.url, HTTPS_PROXY: proxy.url, https_proxy: proxy.url });

function expectTokenNeverSeen(secrets: string[]): void {
  const relayed = proxy.relayed().toString('latin1');
  const records = JSON.stringify(proxy.records());
  for (const value of [bao.rootToken, ...secrets]) {
    expect(relayed.includes(value), 'a token or value crossed the proxy in clear text').toBe(false);
    expect(records.includes(value), 'a token or value reached the proxy in a request').toBe(false);
  }
  expect(proxy.records().filter((r) => r.kind === 'forward')).toEqual([]);
}

describe('vault store behind proxies', () => {
  it('a loopback Vault (http) is never proxied, whatever proxy variables are set', async () => {
    const before = proxy.records().length;
    const store = await createVaultStore('vault', config({ address: bao.addr }), context(allProxies()), { maxAttempts: 1 });
    try {
      const secret = await roundTrip(store);
      expect(proxy.records().slice(before), 'the proxy saw no connection at all').toEqual([]);
      expectTokenNeverSeen([secret]);
    } finally {
      await store.close();
    }
  });

  it('a loopback Vault over https (localhost) goes direct too', async () => {
    const before = proxy.records().length;
    const store = await createVaultStore('vault', config({ address: `https://localhost:${frontPort}`, tls: { caFile } }), context(allProxies()), { maxAttempts: 1 });
    try {
      const secret = await roundTrip(store);
      expect(proxy.records().slice(before)).toEqual([]);
      expectTokenNeverSeen([secret]);
    } finally {
      await store.close();
    }
  });

  it('an https Vault under a non-loopback name tunnels through HTTPS_PROXY by CONNECT only: the proxy relays TLS it cannot read', async () => {
    const before = proxy.records().length;
    const store = await createVaultStore('vault', config({ address: `https://${NAME}:8200`, tls: { caFile } }), context(allProxies()), { maxAttempts: 1 });
    try {
      const secret = await roundTrip(store);
      const seen = proxy.records().slice(before);
      expect(seen.filter((r) => r.kind === 'connect').map((r) => r.target)).toContain(`${NAME}:8200`);
      expect(seen.every((r) => r.kind === 'connect' || r.kind === 'connection')).toBe(true);
      expect(proxy.relayed().length, 'bytes did cross the tunnel').toBeGreaterThan(0);
      expectTokenNeverSeen([secret]);
    } finally {
      await store.close();
    }
  });

  it('a plain http Vault under a non-loopback name with HTTP_PROXY set is refused before any request', async () => {
    const before = proxy.records().length;
    const error = await createVaultStore('vault', config({ address: `http://${NAME}:8200`, allowInsecureHttp: true }), context(allProxies()), { maxAttempts: 1 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/HTTP_PROXY is set and http:\/\/vault\.provkey\.test:8200 is plain http: the proxy would read the Vault token/);
    expect(proxy.records().slice(before)).toEqual([]);
  });

  it('the CLI, with every proxy variable in its environment, keeps a loopback Vault\'s token off the proxy', async () => {
    const before = proxy.records().length;
    const work = mkdtempSync(path.join(dir, 'cli-'));
    writeFileSync(
      path.join(work, 'provkey.yaml'),
      ['stores:', `  bao: { type: vault, address: "${bao.addr}", mount: proxykv, prefix: cli }`, 'defaults: { store: bao }', 'keys:', '  app:', '    target: { type: scim, url: "http://127.0.0.1:9/scim/v2", applier: { type: store } }'].join('\n'),
    );
    const cli = new ProvkeyCli({ cwd: work, config: path.join(work, 'provkey.yaml'), env: { VAULT_TOKEN: bao.rootToken, NODE_USE_ENV_PROXY: '1', ...allProxies() } });
    cli.scanner.addSecret(bao.rootToken, 'Vault root token');
    const status = await cli.run(['--json', 'status']);
    expect(status.code, describeRun(status)).toBe(0);
    expect(JSON.parse(status.stdout).keys[0]).toMatchObject({ name: 'app', store: 'bao', state: 'empty' });
    expect(proxy.records().slice(before)).toEqual([]);
    expectTokenNeverSeen([]);
    cli.scanner.assertClean();
  });
});

describe('the proxy decision (pure)', () => {
  const url = (u: string) => new URL(u);
  it.each([
    ['http://127.0.0.1:8200', { HTTP_PROXY: 'http://p:3128', HTTPS_PROXY: 'http://p:3128' }, undefined],
    ['http://[::1]:8200', { HTTP_PROXY: 'http://p:3128' }, undefined],
    ['https://localhost:8200', { HTTPS_PROXY: 'http://p:3128' }, undefined],
    ['https://vault.example.com', { HTTPS_PROXY: 'http://p:3128' }, 'http://p:3128/'],
    ['https://vault.example.com', { https_proxy: 'p:3128' }, 'http://p:3128/'],
    ['https://vault.example.com', { HTTP_PROXY: 'http://p:3128' }, undefined],
    ['https://vault.example.com', { HTTPS_PROXY: 'http://p:3128', NO_PROXY: 'example.com' }, undefined],
    ['https://vault.example.com', { HTTPS_PROXY: 'http://p:3128', no_proxy: '.example.com' }, undefined],
    ['https://vault.example.com', { HTTPS_PROXY: 'http://p:3128', NO_PROXY: '*' }, undefined],
    ['https://vault.example.com:8200', { HTTPS_PROXY: 'http://p:3128', NO_PROXY: 'vault.example.com:8200' }, undefined],
    ['https://vault.example.com:8200', { HTTPS_PROXY: 'http://p:3128', NO_PROXY: 'vault.example.com:443' }, 'http://p:3128/'],
    ['https://vault.example.com', { HTTPS_PROXY: 'http://p:3128', NO_PROXY: 'ample.com,other.org' }, 'http://p:3128/'],
    ['http://vault.example.com', { HTTP_PROXY: 'http://p:3128', NO_PROXY: 'vault.example.com' }, undefined],
    ['http://vault.example.com', { HTTPS_PROXY: 'http://p:3128' }, undefined],
  ] as [string, Record<string, string>, string | undefined][])('%s with %j → %s', (address, env, expected) => {
    expect(chooseProxy(url(address), env)).toBe(expected);
  });

  it('plain http to a non-loopback host with HTTP_PROXY is refused', () => {
    expect(() => chooseProxy(url('http://vault.example.com'), { HTTP_PROXY: 'http://p:3128' })).toThrow(/the proxy would read the Vault token/);
  });

  it('NO_PROXY matches whole labels only', () => {
    expect(noProxyMatches(url('https://notexample.com'), 'example.com')).toBe(false);
    expect(noProxyMatches(url('https://a.b.example.com'), '*.example.com')).toBe(true);
    expect(noProxyMatches(url('https://[2001:db8::1]:8200'), '[2001:db8::1]:8200')).toBe(true);
  });
});
