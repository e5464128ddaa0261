// Test harness: run provkey as it is installed on an operator's host (the bin of an
// `npm install -g` prefix, or the single executable), not from this checkout, with a PATH
// the test chooses, and scan every output for secrets like test/harness/cli.ts does.
//
//   const cli = new InstalledCli({ command: '/tmp/prefix/bin/provkey', path: [node24Dir], cwd: dir });
//   const result = await cli.run(['--config', file, 'status']);
//   cli.scanner.assertClean();

import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SecretScanner, type RunResult } from './cli.ts';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The project's own Node 24 (the `node` dev dependency): provkey's engines say >= 22.12. */
export const PROJECT_NODE = path.join(REPO_ROOT, 'node_modules/node/bin/node');
/** Where a plain Debian/Ubuntu host keeps its tools (and its own, older, Node). */
export const SYSTEM_PATH = ['/usr/local/bin', '/usr/bin', '/bin'];

/**
 * systemd-analyze, zsh and fish, installed from Debian packages when missing (like slapd is),
 * so that `npm ci && npm test` works on a fresh machine. Throws with the installer's output.
 */
export function ensureTestTools(): void {
  const script = path.join(REPO_ROOT, 'test/harness/install/tools.sh');
  const run = spawnSync('bash', [script], { encoding: 'utf8', timeout: 600_000 });
  if (run.status !== 0) throw new Error(`test/harness/install/tools.sh failed (exit ${String(run.status)}):\n${run.stdout}\n${run.stderr}`);
}

/**
 * How this host reaches the npm registry (a proxy, an extra CA): kept in every environment
 * built here, so an `npm ci` or `npm install` run by a test works where the developer's does.
 */
export function registryEnv(): Record<string, string> {
  const names = ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy'];
  return Object.fromEntries(names.filter((name) => process.env[name]).map((name) => [name, process.env[name]!]));
}

export interface InstalledRunOptions {
  cwd?: string;
  input?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** Runs `command args…` with exactly `env` (plus HOME, TMPDIR, NO_COLOR and registryEnv()); never throws for a non-zero exit. */
export function runCommand(command: string, args: string[], env: Record<string, string>, opts: InstalledRunOptions = {}): Promise<RunResult> {
  const started = Date.now();
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd ?? process.cwd(),
      env: { HOME: process.env.HOME ?? '/root', TMPDIR: process.env.TMPDIR ?? '/tmp', NO_COLOR: '1', ...registryEnv(), ...env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ args: [command, ...args], code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

export class InstalledCli {
  readonly scanner = new SecretScanner();
  private readonly env: Record<string, string>;

  constructor(private readonly options: { command: string; path: string[]; cwd: string; env?: Record<string, string> }) {
    this.env = { PATH: options.path.join(':'), ...options.env };
  }

  async run(args: string[], opts: InstalledRunOptions = {}): Promise<RunResult> {
    return this.scanner.capture(await runCommand(this.options.command, args, this.env, { cwd: this.options.cwd, ...opts }));
  }

  /** `get KEY --reveal`: stdout is the secret by design, so it joins the secrets instead of the scan. */
  async reveal(args: string[]): Promise<string> {
    const result = this.scanner.capture(await runCommand(this.options.command, [...args, '--reveal'], this.env, { cwd: this.options.cwd }), 'stderr');
    if (result.code !== 0) throw new Error(`${args.join(' ')} --reveal exited ${String(result.code)}: ${result.stderr}`);
    return this.scanner.addSecret(result.stdout.trim(), 'read back');
  }
}
