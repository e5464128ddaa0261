// Test harness: run the built provkey CLI (bin/provkey → dist/) as a subprocess, exactly as
// a person or a cron job would, and scan everything it printed for secrets.
//
//   const cli = new ProvkeyCli({ cwd: dir, config: join(dir, 'provkey.yaml') });
//   cli.scanner.addSecret(adminToken, 'SCIM admin token');
//   const added = await cli.run(['add', 'app']);           // recorded for the scan
//   const value = await cli.reveal('app');                  // get --reveal: stdout NOT scanned; value added to the secrets
//   cli.scanner.assertClean();                              // in afterEach: no secret in any recorded output
//
// `npm test` builds dist/ first; the CLI runs under the same Node as the tests (process.execPath).

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';

/** Absolute path of bin/provkey, independent of the working directory. */
export const PROVKEY_BIN = fileURLToPath(new URL('../../bin/provkey', import.meta.url));

/**
 * Variables a test run must not inherit from the developer's shell or CI: they would change
 * which config is read, inject a crash, or turn colour on.
 */
const SCRUBBED_ENV = ['PROVKEY_CONFIG', 'PROVKEY_FAULT', 'FORCE_COLOR'];

export interface RunOptions {
  /** Working directory (default: the test process's). */
  cwd?: string;
  /** Extra environment; a value of `undefined` removes the variable. */
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed. Without it stdin is closed at once (never a TTY). */
  input?: string;
  /** Passed as `--config FILE` before the other arguments. */
  config?: string;
  /** Kill the run (SIGKILL) after this long; default 60 s. */
  timeoutMs?: number;
}

export interface RunResult {
  args: string[];
  /** Exit code, or null when the process was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `node bin/provkey [--config FILE] ARGS…` and collects its output. Never throws for a non-zero exit. */
export function runProvkey(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const argv = [...(opts.config !== undefined ? ['--config', opts.config] : []), ...args];
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  for (const name of SCRUBBED_ENV) delete env[name];
  for (const [name, value] of Object.entries(opts.env ?? {})) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  const started = Date.now();
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(process.execPath, [PROVKEY_BIN, ...argv], {
      cwd: opts.cwd ?? process.cwd(),
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => (stdout += chunk));
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    // A command that never reads stdin (or was killed) closes the pipe under us: not an error here.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run provkey: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ args: argv, code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** One piece of text provkey produced, with where it came from (for the leak report). */
export interface CapturedOutput {
  where: string;
  text: string;
}

export interface KnownSecret {
  value: string;
  /** What the secret is, e.g. "SCIM admin token", "app v2". Never the value. */
  label?: string;
}

/** The form in which a secret may be named in a failure message: the same as provkey's own fingerprints. */
export function secretFingerprint(value: string): string {
  return `sha256:${createHash('sha256').update(value, 'utf8').digest('hex').slice(0, 12)}`;
}

/**
 * Pieces of a secret that would betray it if printed: the whole value and overlapping
 * 16-character windows, so a truncated or wrapped secret is found too. Short values are
 * matched whole only (a window of a short value would match ordinary text).
 */
function needles(value: string): string[] {
  if (value.length < 24) return [value];
  const size = 16;
  const found = new Set<string>([value]);
  for (let i = 0; i + size <= value.length; i += 8) found.add(value.slice(i, i + size));
  found.add(value.slice(-size));
  return [...found];
}

/**
 * Fails when any secret appears in any output; the error lists each leak by the secret's
 * fingerprint and label and the output it appeared in, never the value itself.
 */
export function expectNoSecrets(outputs: readonly CapturedOutput[], secrets: ReadonlyArray<string | KnownSecret>): void {
  const leaks: string[] = [];
  for (const raw of secrets) {
    const secret = typeof raw === 'string' ? { value: raw } : raw;
    if (!secret.value) continue;
    const name = `${secretFingerprint(secret.value)}${secret.label ? ` (${secret.label})` : ''}`;
    for (const output of outputs) {
      const hit = needles(secret.value).find((needle) => output.text.includes(needle));
      if (hit === undefined) continue;
      const line = output.text.split('\n').findIndex((l) => l.includes(hit)) + 1;
      leaks.push(`secret ${name} leaked in ${output.where}, line ${line}${hit === secret.value ? '' : ' (partially)'}`);
    }
  }
  if (leaks.length > 0) {
    throw new Error(`${leaks.length} secret leak(s) in provkey output:\n  ${leaks.join('\n  ')}`);
  }
}

/**
 * Collects every output of one test and every secret the test handled, and checks them
 * against each other at the end. Outputs are kept by reference to the secret list, so a
 * secret learned late (read back after a rotation) is still checked against earlier output.
 */
export class SecretScanner {
  readonly outputs: CapturedOutput[] = [];
  private readonly secrets = new Map<string, KnownSecret>();

  addSecret(value: string, label?: string): string {
    if (value && !this.secrets.has(value)) this.secrets.set(value, { value, ...(label ? { label } : {}) });
    return value;
  }

  record(where: string, text: string): void {
    if (text) this.outputs.push({ where, text });
  }

  /** Records a run's stdout and stderr (`only: 'stderr'` for a --reveal whose stdout is the secret by design). */
  capture(result: RunResult, only?: 'stderr'): RunResult {
    const what = `provkey ${result.args.join(' ')}`;
    if (only !== 'stderr') this.record(`stdout of "${what}"`, result.stdout);
    this.record(`stderr of "${what}"`, result.stderr);
    return result;
  }

  get secretCount(): number {
    return this.secrets.size;
  }

  assertClean(): void {
    expectNoSecrets(this.outputs, [...this.secrets.values()]);
  }

  /** Forget outputs and secrets (the next test starts clean). */
  reset(): void {
    this.outputs.length = 0;
    this.secrets.clear();
  }
}

/**
 * A provkey bound to one config and working directory whose every output goes through the
 * scanner. Use `reveal` (never `run(['get', …, '--reveal'])`) to read a value: its stdout is
 * kept out of the scan and the value joins the secrets.
 */
export class ProvkeyCli {
  readonly scanner: SecretScanner;
  readonly defaults: RunOptions;

  constructor(defaults: RunOptions & { scanner?: SecretScanner } = {}) {
    const { scanner, ...rest } = defaults;
    this.scanner = scanner ?? new SecretScanner();
    this.defaults = rest;
  }

  private options(opts: RunOptions): RunOptions {
    return { ...this.defaults, ...opts, env: { ...this.defaults.env, ...opts.env } };
  }

  async run(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.scanner.capture(await runProvkey(args, this.options(opts)));
  }

  /** Runs with --json and parses stdout (throws with the output when it is not JSON). */
  async json<T = unknown>(args: string[], opts: RunOptions = {}): Promise<{ result: RunResult; data: T }> {
    const result = await this.run(['--json', ...args], opts);
    try {
      return { result, data: JSON.parse(result.stdout) as T };
    } catch {
      throw new Error(`provkey ${result.args.join(' ')} (exit ${String(result.code)}) did not print JSON:\n${result.stdout}\n${result.stderr}`);
    }
  }

  /** The current value of a key via `get --reveal`; its stdout is not scanned, the value becomes a known secret. */
  async reveal(key: string, label = `${key} (read back)`): Promise<string> {
    const result = this.scanner.capture(await runProvkey(['get', key, '--reveal'], this.options({})), 'stderr');
    if (result.code !== 0) throw new Error(`provkey get ${key} --reveal exited ${String(result.code)}: ${result.stderr.trim()}`);
    const value = result.stdout.replace(/\n$/, '');
    if (!value || value.includes('\n')) throw new Error(`provkey get ${key} --reveal printed ${value ? 'more than one line' : 'nothing'}`);
    return this.scanner.addSecret(value, label);
  }
}

/** A readable failure message for `expect(...)`: the command, its exit and both streams. */
export function describeRun(result: RunResult): string {
  return `provkey ${result.args.join(' ')} → code ${String(result.code)} signal ${String(result.signal)} (${result.ms} ms)\n--- stdout\n${result.stdout}--- stderr\n${result.stderr}`;
}

/**
 * What a SCIM service provider answers a bearer token, as an identity provider would see it:
 * the real HTTP status of `GET {scimUrl}/Users?count=1` (200 accepted, 401/403 rejected).
 */
export async function bearerStatus(scimUrl: string, token: string): Promise<number> {
  const response = await fetch(`${scimUrl}/Users?startIndex=1&count=1`, { headers: { authorization: `Bearer ${token}`, accept: 'application/scim+json' } });
  await response.arrayBuffer();
  return response.status;
}

/** Polls `probe` until it returns `expected` or `timeoutMs` passes (changes take a while to propagate); returns the last value. */
export async function eventually<T>(probe: () => Promise<T>, expected: T, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (JSON.stringify(value) === JSON.stringify(expected) || Date.now() >= deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** One version of a key as the embedded file store holds it, value included (null once disabled). */
export interface StoredVersion {
  id: string;
  label: string;
  fingerprint: string;
  value: string | null;
}

/**
 * Every version of `key` in the default file store of `configDir`, decrypted in the test
 * process. For the secret scan: a crash can leave a pending value that no command will ever
 * reveal, and it must not appear in any output either. Read-only; takes no lock.
 */
export async function readStoredVersions(configDir: string, key: string, layout = { path: '.provkey/store.enc', keyFile: '.provkey/store.key' }): Promise<StoredVersion[]> {
  const { createFileStore } = await import('../../src/stores/file.js');
  const store = await createFileStore('default', { type: 'file', ...layout }, {
    configDir,
    env: {},
    resolveSecret: async (_ref, field) => {
      throw new Error(`${field}: no secret references in the test reader`);
    },
    debug: () => undefined,
  });
  try {
    const record = await store.read(key);
    const versions: StoredVersion[] = [];
    for (const v of record?.versions ?? []) {
      const value = await store.readSecret(key, v.id).catch(() => null);
      versions.push({ id: v.id, label: v.label, fingerprint: v.fingerprint, value });
    }
    return versions;
  } finally {
    await store.close();
  }
}
