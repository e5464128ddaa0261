// The third-party Key Vault emulator pair for tests: calvinchengx/entra-emulator (issues real
// RS256 tokens) and calvinchengx/azure-keyvault-emulator (validates them against entra's JWKS).
// Neither is built or shipped by this repository: the harness only RUNS binaries it is given:
//
//   PROVKEY_TEST_AZURE_KV_EMULATOR=/path/to/azure-keyvault-emulator
//   PROVKEY_TEST_ENTRA_EMULATOR=/path/to/entra-emulator
//
// Both listen on 127.0.0.1 only (their defaults would listen on every interface), on free
// ports, with TLS from their own generated certificates, trusted through one CA file (never by
// turning verification off), and state in a temp dir removed at stop().
//
// Erasable TypeScript only; node: built-ins only.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** entra-emulator's deterministic seed (docs/06-data-model-and-seed.md of that project). */
export const ENTRA_SEED = {
  tenantId: '6f89cf12-978b-4d23-ac18-9ef0c127cf87',
  /** "Sample Daemon": confidential client; also the default managed-identity client. */
  daemonClientId: '00d88624-f0d7-46f6-a641-6232c2608928',
  daemonClientSecret: 'daemon-app-secret',
} as const;

export interface AzureEmulators {
  /** https://127.0.0.1:PORT: the vault (its default vault answers on IP hosts). */
  vaultUrl: string;
  /** https://127.0.0.1:PORT: entra's login origin (authorityHost). */
  authorityHost: string;
  tenantId: string;
  /** PEM file trusting both emulators' certificates. */
  caFile: string;
  /** App-Service-style managed identity endpoint and its header secret. */
  identityEndpoint: string;
  identityHeader: string;
  /** POST to the vault's /_emulator control surface (faults, clock, permissions). */
  control(path: string, body: unknown): Promise<{ status: number; body: string }>;
  /** POST/GET on entra (admin API: forged tokens, apps). */
  entra(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }>;
  /** The object id (oid) of a token issued to `clientId` by client credentials: the permission map's key. */
  principalOf(clientId: string, clientSecret: string): Promise<string>;
  logs(): string;
  stop(): Promise<void>;
}

/** The two binaries, or the reason the emulator tier cannot run. */
export function azureEmulatorBinaries(): { kv: string; entra: string } | { skip: string } {
  const kv = process.env.PROVKEY_TEST_AZURE_KV_EMULATOR;
  const entra = process.env.PROVKEY_TEST_ENTRA_EMULATOR;
  if (!kv || !entra) return { skip: 'PROVKEY_TEST_AZURE_KV_EMULATOR and PROVKEY_TEST_ENTRA_EMULATOR do not name the emulator binaries (see docs/azure.md, testing)' };
  for (const bin of [kv, entra]) {
    try {
      accessSync(bin, fsConstants.X_OK);
    } catch {
      return { skip: `${bin} is not an executable file` };
    }
  }
  return { kv, entra };
}

const START_TIMEOUT_MS = 30_000;

export async function startAzureEmulators(bins: { kv: string; entra: string }): Promise<AzureEmulators> {
  const dir = mkdtempSync(join(tmpdir(), 'provkey-azure-emu-'));
  const [entraPort, kvPort] = [await freePort(), await freePort()];
  const identityHeader = randomBytes(16).toString('hex');
  const authorityHost = `https://127.0.0.1:${entraPort}`;
  const issuer = `${authorityHost}/${ENTRA_SEED.tenantId}/v2.0`;
  const log: string[] = [];
  const children: ChildProcess[] = [];

  const stop = async () => {
    await Promise.all(children.map(stopChild));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const entra = spawn(bins.entra, [], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: dir,
        HOST: '127.0.0.1',
        PORT: String(entraPort),
        PUBLIC_ORIGIN: authorityHost,
        ENTRA_DATA_DIR: join(dir, 'entra'),
        CONFIG_FILE: join(dir, 'no-entra-config.json'),
        MANAGED_IDENTITY_SECRET: identityHeader,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(entra);
    await waitForLine(entra, /listening on 127\.0\.0\.1:/, log, 'entra-emulator');
    const entraCert = join(dir, 'entra', 'tls', 'cert.pem');

    const kv = spawn(
      bins.kv,
      ['--addr', `127.0.0.1:${kvPort}`, '--data-dir', join(dir, 'kv'), '--entra-issuer', issuer, '--soft-delete-retention-days', '7'],
      // Go reads SSL_CERT_FILE: the vault trusts entra's certificate when it fetches the JWKS.
      { cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, SSL_CERT_FILE: entraCert }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(kv);
    await waitForLine(kv, /listening on https:\/\/127\.0\.0\.1:/, log, 'azure-keyvault-emulator');
    const caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, readFileSync(entraCert, 'utf8') + readFileSync(join(dir, 'kv', 'tls', 'cert.pem'), 'utf8'));
    const ca = readFileSync(caFile, 'utf8');

    const request = (origin: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
      httpsRequest(`${origin}${path}`, method, ca, body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body), headers);
    const vaultUrl = `https://127.0.0.1:${kvPort}`;
    return {
      vaultUrl,
      authorityHost,
      tenantId: ENTRA_SEED.tenantId,
      caFile,
      identityEndpoint: `${authorityHost}/msi/token`,
      identityHeader,
      control: (path, body) => request(vaultUrl, 'POST', `/_emulator/${path}`, body, { 'content-type': 'application/json' }),
      entra: (method, path, body) => request(authorityHost, method, path, body, body === undefined ? {} : { 'content-type': 'application/json' }),
      async principalOf(clientId, clientSecret) {
        const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, scope: 'https://vault.azure.net/.default' });
        const answer = await request(authorityHost, 'POST', `/${ENTRA_SEED.tenantId}/oauth2/v2.0/token`, form.toString(), { 'content-type': 'application/x-www-form-urlencoded' });
        const token = (JSON.parse(answer.body) as { access_token?: string }).access_token;
        if (!token) throw new Error(`entra-emulator issued no token for ${clientId} (${answer.status})`);
        const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { oid?: string; sub?: string; appid?: string; azp?: string };
        return claims.oid ?? claims.sub ?? claims.azp ?? claims.appid ?? '';
      },
      logs: () => log.slice(-40).join('\n'),
      stop,
    };
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n${log.slice(-20).join('\n')}`);
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves when the child prints `pattern` (its start-up line); rejects if it exits first. */
function waitForLine(child: ChildProcess, pattern: RegExp, log: string[], name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => finish(new Error(`${name} did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    const finish = (error?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve();
    };
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        log.push(`[${name}] ${line}`);
        if (pattern.test(line)) finish();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code, signal) => finish(new Error(`${name} exited (${code ?? signal}) before it listened`)));
    child.once('error', (error) => finish(error));
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export function httpsRequest(url: string, method: string, ca: string | undefined, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca, headers: { ...headers, ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
