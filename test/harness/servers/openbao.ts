// A real OpenBao dev server for tests.
//
// Erasable TypeScript only (Node 24 runs it by type stripping); node: built-ins only.
//
//   const bao = await startOpenBao();
//   try { ... bao.addr, bao.rootToken, await bao.api('GET', 'sys/mounts') ... }
//   finally { await bao.stop(); }
//
// The binary is built once by test/harness/install/openbao.sh into
// ${PROVKEY_TEST_CACHE:-$HOME/.cache/provkey-test}/openbao/bin/bao
// (PROVKEY_OPENBAO_BIN overrides it with an existing bao or vault binary).

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ApiResponse {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

export interface OpenBaoServer {
  /** http://127.0.0.1:PORT */
  addr: string;
  rootToken: string;
  /** Dev mode's single unseal key (printed by the server at start). */
  unsealKey?: string;
  /** Kills the server (SIGTERM, then SIGKILL after 5 s) and removes its temp dir. Idempotent. */
  stop(): Promise<void>;
  /**
   * Tiny fetch helper for set-up. `path` is relative to /v1/ ('sys/health', or '/v1/sys/health').
   * Uses the root token unless `token` is given ('' sends no token). Never throws on HTTP status.
   */
  api(method: string, path: string, body?: unknown, token?: string): Promise<ApiResponse>;
  /** Writes ACL policy `policyName` and returns a new token holding it (plus 'default'). */
  createPolicyToken(
    policyName: string,
    policyHcl: string,
    opts?: { ttl?: string; renewable?: boolean },
  ): Promise<string>;
  /** Mounts a KV v2 engine at `mount` and waits until it takes writes. */
  enableKv2(mount: string): Promise<void>;
  /** Enables approle auth (once), creates role `roleName` with `policies`, returns its credentials. */
  enableAppRole(roleName: string, policies: string[]): Promise<{ roleId: string; secretId: string }>;
  /** Seals the server (sys/seal). */
  seal(): Promise<void>;
  /** Unseals with the captured dev unseal key and waits until sys/health is 200 again. */
  unseal(): Promise<void>;
  /** Last lines of the server's stdout+stderr, for debugging. */
  logs(): string;
  /**
   * Every request the server's own file audit device recorded so far, oldest first (only with
   * `startOpenBao({ audit: true })`; otherwise it throws). The count of what a client really sent.
   */
  auditedRequests(): AuditedRequest[];
}

/** One "request" entry of OpenBao's file audit device (token and values are HMACed by the server). */
export interface AuditedRequest {
  /** KV and sys operations: read, create, update, list, delete. */
  operation: string;
  /** Relative to /v1/, e.g. "secret/data/provkey/k1/state". */
  path: string;
  /** The policies of the token that sent it (["root"] for the harness's own calls). */
  policies: string[];
}

export interface StartOpenBaoOptions {
  /**
   * Enable a file audit device, declared in a config file (OpenBao refuses to enable one
   * through the API), so a test can count the requests a run made from the server's own record.
   */
  audit?: boolean;
}

const HERE = fileURLToPath(new URL('.', import.meta.url));
const INSTALL_SCRIPT = join(HERE, '..', 'install', 'openbao.sh');
const START_TIMEOUT_MS = 30_000;
const LOG_TAIL_CHARS = 16_384;

function cacheRoot(): string {
  return process.env.PROVKEY_TEST_CACHE || join(process.env.HOME || homedir(), '.cache', 'provkey-test');
}

export function openBaoBinPath(): string {
  return process.env.PROVKEY_OPENBAO_BIN || join(cacheRoot(), 'openbao', 'bin', 'bao');
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

let ensuring: Promise<string> | undefined;

/** Returns the bao binary path, building it first (minutes, once per machine) if missing. */
export async function ensureOpenBao(): Promise<string> {
  const bin = openBaoBinPath();
  if (isExecutable(bin)) return bin;
  if (process.env.PROVKEY_OPENBAO_BIN) {
    throw new Error(`PROVKEY_OPENBAO_BIN=${bin} is not an executable file`);
  }
  ensuring ??= runInstallScript().finally(() => {
    ensuring = undefined;
  });
  return ensuring;
}

function runInstallScript(): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [INSTALL_SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err = (err + d).slice(-LOG_TAIL_CHARS);
      if (process.env.PROVKEY_TEST_VERBOSE) process.stderr.write(d);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0 && last && isExecutable(last)) resolve(last);
      else reject(new Error(`${INSTALL_SCRIPT} failed (exit ${code}); stderr tail:\n${err}`));
    });
  });
}

// ---------------------------------------------------------------------------
// Child process bookkeeping: kill every server if this process exits.

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) {
      try {
        child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

/**
 * A detached `sh` that SIGKILLs `pid` as soon as its stdin reaches EOF, i.e. when this
 * process dies in any way, even by SIGKILL or a signal that skips 'exit' handlers.
 */
function spawnWatchdog(pid: number): ChildProcess {
  const dog = spawn('/bin/sh', ['-c', 'read _ignored; kill -KILL "$1" 2>/dev/null', 'provkey-openbao-watchdog', String(pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  dog.on('error', () => {});
  dog.stdin?.on('error', () => {});
  // A child's stdio pipe is a net.Socket: unref it so it does not keep this process alive.
  (dog.stdin as Socket | null)?.unref();
  dog.unref();
  return dog;
}

function listenOnce(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(undefined));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const addr = srv.address();
      const got = typeof addr === 'object' && addr ? addr.port : undefined;
      srv.close(() => resolve(got));
    });
  });
}

/**
 * A free port P such that P+1 is free too: the dev server also binds its cluster
 * listener on API port + 1. Another process may still grab either before the
 * server binds them; startOpenBao retries on "address already in use".
 */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await listenOnce(0);
    if (p && p < 65535 && (await listenOnce(p + 1))) return p;
  }
  throw new Error('could not find two adjacent free ports on 127.0.0.1');
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function stripAnsi(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, '');
}

function cleanEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(VAULT|BAO)_/.test(k)) continue; // a stray VAULT_ADDR/BAO_TOKEN must not steer the server
    env[k] = v;
  }
  env.HOME = home; // nothing may touch the real ~/.vault-token
  env.TMPDIR = home;
  return env;
}

async function rawApi(addr: string, method: string, path: string, body: unknown, token: string): Promise<ApiResponse> {
  const p = path.replace(/^\/+/, '');
  const url = `${addr}/${p.startsWith('v1/') ? p : `v1/${p}`}`;
  const headers: Record<string, string> = {};
  if (token) headers['X-Vault-Token'] = token;
  const init: RequestInit = { method: method.toUpperCase(), headers, signal: AbortSignal.timeout(15_000) };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  return { status: res.status, body: parsed };
}

function expectOk(what: string, r: ApiResponse): ApiResponse {
  if (r.status < 200 || r.status >= 300) {
    throw new Error(`OpenBao ${what} failed: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  }
  return r;
}

interface Launched {
  child: ChildProcess;
  watchdog: ChildProcess;
  addr: string;
  unsealKey?: string;
  logs: () => string;
}

class StartError extends Error {
  portInUse = false;
}

async function launch(bin: string, dir: string, rootToken: string, configFile: string | undefined): Promise<Launched> {
  const port = await freePortPair();
  const addr = `http://127.0.0.1:${port}`;
  const args = [
    'server',
    '-dev',
    `-dev-listen-address=127.0.0.1:${port}`,
    `-dev-root-token-id=${rootToken}`,
    '-dev-no-store-token',
    '-log-level=warn',
    ...(configFile ? [`-config=${configFile}`] : []),
  ];
  const child = spawn(bin, args, { cwd: dir, env: cleanEnv(dir), stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  installExitHook();
  let log = '';
  let unsealKey: string | undefined;
  const onData = (d: string) => {
    log = (log + d).slice(-LOG_TAIL_CHARS);
    if (!unsealKey) {
      const m = /Unseal Key:\s*(\S+)/.exec(stripAnsi(log));
      if (m) unsealKey = m[1];
    }
  };
  child.stdout?.setEncoding('utf8').on('data', onData);
  child.stderr?.setEncoding('utf8').on('data', onData);

  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  child.on('error', (e) => (spawnError = e));
  child.on('exit', (code, signal) => {
    exited = { code, signal };
    running.delete(child);
  });

  const watchdog = child.pid ? spawnWatchdog(child.pid) : undefined;
  const kill = () => {
    child.kill('SIGKILL');
    running.delete(child);
    watchdog?.kill('SIGKILL');
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  let lastProbe = 'no answer yet';
  for (;;) {
    if (spawnError) {
      kill();
      throw new Error(`could not start ${bin}: ${spawnError.message}`);
    }
    if (exited) {
      watchdog?.kill('SIGKILL');
      const e = new StartError(
        `OpenBao dev server exited early (code ${exited.code}, signal ${exited.signal}); output tail:\n${log}`,
      );
      e.portInUse = /address already in use/i.test(log);
      throw e;
    }
    try {
      const r = await rawApi(addr, 'GET', 'sys/health', undefined, '');
      // Make sure it is our server (not another one that grabbed the port): our root token works.
      if (r.status === 200 && (await rawApi(addr, 'GET', 'auth/token/lookup-self', undefined, rootToken)).status === 200) {
        break;
      }
      lastProbe = `HTTP ${r.status} ${JSON.stringify(r.body)}`;
    } catch (e) {
      lastProbe = (e as Error).message;
    }
    if (Date.now() > deadline) {
      kill();
      throw new Error(
        `OpenBao dev server at ${addr} not healthy within ${START_TIMEOUT_MS / 1000}s (last probe: ${lastProbe}); output tail:\n${log}`,
      );
    }
    await sleep(100);
  }
  // The banner with the unseal key is printed before the listener answers, but be lenient.
  for (let i = 0; i < 20 && !unsealKey; i++) await sleep(50);
  if (!watchdog) {
    kill();
    throw new Error('spawned OpenBao has no pid');
  }
  return { child, watchdog, addr, unsealKey, logs: () => log };
}

/** Starts `bao server -dev` on 127.0.0.1 at a random free port; resolves once sys/health is 200. */
export async function startOpenBao(options: StartOpenBaoOptions = {}): Promise<OpenBaoServer> {
  const bin = await ensureOpenBao();
  const rootToken = `root-${randomBytes(16).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'provkey-openbao-'));
  const auditFile = join(dir, 'audit.log');
  let configFile: string | undefined;
  if (options.audit) {
    configFile = join(dir, 'audit.hcl');
    writeFileSync(configFile, `audit "file" "counted" {\n  options {\n    file_path = ${JSON.stringify(auditFile)}\n  }\n}\n`);
  }

  let launched: Launched | undefined;
  for (let attempt = 1; !launched; attempt++) {
    try {
      launched = await launch(bin, dir, rootToken, configFile);
    } catch (e) {
      if (e instanceof StartError && e.portInUse && attempt < 5) continue;
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }
  const { child, watchdog, addr, unsealKey, logs } = launched;

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await gone;
        clearTimeout(timer);
      }
      running.delete(child);
      watchdog.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    })());

  const api = (method: string, path: string, body?: unknown, token?: string) =>
    rawApi(addr, method, path, body, token ?? rootToken);

  const waitHealthy = async (what: string) => {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const r = await api('GET', 'sys/health', undefined, '');
      if (r.status === 200) return;
      if (Date.now() > deadline) throw new Error(`OpenBao not healthy after ${what}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
      await sleep(100);
    }
  };

  const auditedRequests = (): AuditedRequest[] => {
    if (!options.audit) throw new Error('auditedRequests() needs startOpenBao({ audit: true })');
    if (!existsSync(auditFile)) return [];
    const requests: AuditedRequest[] = [];
    for (const line of readFileSync(auditFile, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const entry = JSON.parse(line) as { type?: string; auth?: { policies?: string[] }; request?: { operation?: string; path?: string } };
      if (entry.type !== 'request') continue;
      requests.push({ operation: entry.request?.operation ?? '', path: entry.request?.path ?? '', policies: entry.auth?.policies ?? [] });
    }
    return requests;
  };

  const server: OpenBaoServer = {
    addr,
    rootToken,
    stop,
    api,
    logs,
    auditedRequests,
    async createPolicyToken(policyName, policyHcl, opts = {}) {
      expectOk(`write policy ${policyName}`, await api('PUT', `sys/policies/acl/${encodeURIComponent(policyName)}`, { policy: policyHcl }));
      const req: Record<string, unknown> = { policies: [policyName] };
      if (opts.ttl !== undefined) req.ttl = opts.ttl;
      if (opts.renewable !== undefined) req.renewable = opts.renewable;
      const r = expectOk('create token', await api('POST', 'auth/token/create', req));
      return r.body.auth.client_token as string;
    },
    async enableKv2(mount) {
      const m = mount.replace(/^\/+|\/+$/g, '');
      expectOk(`mount kv-v2 at ${m}`, await api('POST', `sys/mounts/${m}`, { type: 'kv', options: { version: '2' } }));
      // A fresh KV v2 mount answers "upgrading" for a moment; wait until it serves its config.
      const deadline = Date.now() + 10_000;
      for (;;) {
        const r = await api('GET', `${m}/config`);
        if (r.status === 200) return;
        if (Date.now() > deadline) throw new Error(`KV v2 mount ${m} not ready: HTTP ${r.status} ${JSON.stringify(r.body)}`);
        await sleep(50);
      }
    },
    async enableAppRole(roleName, policies) {
      const auths = expectOk('list auth methods', await api('GET', 'sys/auth'));
      const data = auths.body.data ?? auths.body;
      if (!data['approle/']) {
        expectOk('enable approle', await api('POST', 'sys/auth/approle', { type: 'approle' }));
      }
      const role = encodeURIComponent(roleName);
      expectOk(`create approle role ${roleName}`, await api('POST', `auth/approle/role/${role}`, { token_policies: policies }));
      const rid = expectOk('read role-id', await api('GET', `auth/approle/role/${role}/role-id`));
      const sid = expectOk('create secret-id', await api('POST', `auth/approle/role/${role}/secret-id`, {}));
      return { roleId: rid.body.data.role_id as string, secretId: sid.body.data.secret_id as string };
    },
    async seal() {
      expectOk('seal', await api('PUT', 'sys/seal'));
    },
    async unseal() {
      if (!unsealKey) throw new Error(`no unseal key captured from the dev server output:\n${logs()}`);
      const r = expectOk('unseal', await api('PUT', 'sys/unseal', { key: unsealKey }, ''));
      if (r.body.sealed) throw new Error(`still sealed after unseal: ${JSON.stringify(r.body)}`);
      await waitHealthy('unseal');
    },
  };
  if (unsealKey) server.unsealKey = unsealKey;
  return server;
}
