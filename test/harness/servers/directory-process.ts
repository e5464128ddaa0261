/**
 * What the Samba AD and 389-DS harnesses share: running a command, a per-run CA with a
 * server certificate naming one 127.0.0.x address, a cached template built once under a
 * cross-process lock, and a foreground child that is stopped with SIGTERM.
 *
 * Erasable TypeScript only; node: built-ins only.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Client } from 'ldapts';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { input?: string; cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

export async function runOk(cmd: string, args: string[], opts: { input?: string; cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${path.basename(cmd)} ${args.slice(0, 4).join(' ')}… failed (exit ${r.code}):\n${tail(r.stderr + r.stdout, 30)}`);
  return r;
}

export function tail(text: string, lines: number): string {
  return text.split('\n').filter((l) => l.length > 0).slice(-lines).join('\n');
}

/** Where built templates are cached between runs (outside the repo). */
export const CACHE_DIR = path.join(os.homedir(), '.cache', 'provkey-test');

/**
 * Builds `name` into CACHE_DIR once: the first process to take the lock builds into a temp
 * dir and renames it into place; the others wait for the lock to go. A lock left by a dead
 * process is taken over.
 */
export async function cachedTemplate(name: string, build: (dir: string) => Promise<string | void>, timeoutMs = 300_000): Promise<string> {
  const dir = path.join(CACHE_DIR, name);
  const lock = `${dir}.lock`;
  mkdirSync(CACHE_DIR, { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(path.join(dir, '.complete'))) return dir;
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
    } catch {
      const owner = Number(readFileSync(lock, 'utf8').trim() || '0');
      let alive = false;
      try {
        process.kill(owner, 0);
        alive = true;
      } catch {
        alive = false;
      }
      if (!alive) rmSync(lock, { force: true });
      else if (Date.now() > deadline) throw new Error(`${name}: waited ${timeoutMs} ms for another process building the template (lock ${lock})`);
      else await new Promise((resolve) => setTimeout(resolve, 250));
      continue;
    }
    try {
      if (existsSync(path.join(dir, '.complete'))) return dir;
      const building = `${dir}.building-${process.pid}`;
      await rm(building, { recursive: true, force: true });
      mkdirSync(building, { recursive: true });
      try {
        // Files may hold the absolute path the template was built at: users rewrite it (builtAt).
        const at = (await build(building)) ?? building;
        await writeFile(path.join(building, '.built-at'), at);
        await writeFile(path.join(building, '.complete'), new Date().toISOString());
        await rm(dir, { recursive: true, force: true });
        await rename(building, dir);
      } catch (error) {
        await rm(building, { recursive: true, force: true });
        throw error;
      }
      return dir;
    } finally {
      rmSync(lock, { force: true });
    }
  }
}

export interface RunCa {
  caFile: string;
  caPem: string;
  certFile: string;
  keyFile: string;
}

/** The absolute path a cached template was built at (files inside still name it). */
export async function builtAt(templateDir: string): Promise<string> {
  return (await readFile(path.join(templateDir, '.built-at'), 'utf8')).trim();
}

/** A fresh CA and a server certificate whose only names are IP:`host` and DNS:localhost. */
export async function generateRunCerts(dir: string, host: string): Promise<RunCa> {
  mkdirSync(dir, { recursive: true });
  const caFile = path.join(dir, 'ca.pem');
  const caKey = path.join(dir, 'ca.key');
  const keyFile = path.join(dir, 'server.key');
  const csr = path.join(dir, 'server.csr');
  const certFile = path.join(dir, 'server.pem');
  const ext = path.join(dir, 'server.ext');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await runOk('openssl', ['req', '-x509', '-new', ...ec, '-keyout', caKey, '-out', caFile, '-days', '3', '-subj', `/CN=provkey test CA ${randomBytes(4).toString('hex')}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await writeFile(ext, `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:${host},DNS:localhost\n`);
  await runOk('openssl', ['req', '-new', ...ec, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${host}`]);
  await runOk('openssl', ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-out', certFile, '-days', '2', '-extfile', ext]);
  await chmod(keyFile, 0o600);
  return { caFile, caPem: await readFile(caFile, 'utf8'), certFile, keyFile };
}

/** Children still running and the temp dirs they use: killed and removed if the test process exits first. */
const live = new Map<ChildProcess, string | undefined>();
let exitHook = false;

function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const [child, dir] of live) {
      child.kill('SIGKILL');
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** A foreground server child: its output kept (last 64 KiB) for failure messages. */
export class ForegroundProcess {
  readonly child: ChildProcess;
  #log = '';
  #exited: Promise<number | null>;

  constructor(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; dir?: string } = {}) {
    this.child = spawn(cmd, args, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    installExitHook();
    live.set(this.child, options.dir);
    this.child.once('exit', () => live.delete(this.child));
    const keep = (d: Buffer) => {
      this.#log = (this.#log + d.toString('utf8')).slice(-65_536);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.#exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  logTail(lines = 30): string {
    return tail(this.#log, lines);
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }
}

/** Polls `ready` until it resolves true, the process exits, or the time is up (no fixed sleeps). */
export async function waitUntilReady(what: string, proc: ForegroundProcess, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  for (;;) {
    if (proc.exited) throw new Error(`${what} exited during start-up:\n${proc.logTail()}`);
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${timeoutMs} ms:\n${proc.logTail()}`);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 400);
  }
}

/**
 * The named attributes of one entry, each as a list of strings. Directories answer attribute
 * names in their own case (AD: badPwdCount, 389-DS: passwordretrycount): matched case-insensitively.
 */
export async function readAttributes(client: Client, dn: string, attributes: string[]): Promise<Record<string, string[]>> {
  const entry = (await client.search(dn, { scope: 'base', attributes })).searchEntries[0]!;
  return Object.fromEntries(
    attributes.map((a) => {
      const key = Object.keys(entry).find((k) => k.toLowerCase() === a.toLowerCase());
      const value = key ? entry[key] : [];
      return [a, ([] as Array<string | Buffer>).concat(value as string | Buffer | Array<string | Buffer>).map(String)];
    }),
  );
}
