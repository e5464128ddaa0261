import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_PATH } from '../harness/installed-cli.ts';

// Cron runs and admins pay start-up on every call: a command must load no store or target
// SDK it does not use. This runs the built CLI (the tsc output, dist/cli/main.js, one file per
// module) and lists every module it resolved; the bundle bin/provkey starts is checked below
// with a traced build of the same bundling (bin/build/bundle.mjs).
const root = path.resolve(import.meta.dirname, '../..');
const bin = path.join(root, 'bin/provkey');
const unbundled = path.join(root, 'dist/cli/main.js');
const hook = path.join(root, 'test/harness/trace-module-loads.mjs');
/** A --require hook that writes the Node modules a run loaded (process.moduleLoadList) to $PROVKEY_BUILTINS_LIST. */
const BUILTINS_HOOK = path.join(root, 'test/harness/list-builtin-loads.cjs');
let dir: string;

function modulesLoadedBy(args: string[], expectedStatus = 0, entry = unbundled, env: NodeJS.ProcessEnv = {}): string[] {
  const trace = path.join(dir, `trace-${Math.random().toString(36).slice(2)}.txt`);
  const run = spawnSync(process.execPath, ['--import', hook, entry, ...args], {
    cwd: dir,
    env: { ...process.env, PROVKEY_TRACE_LOADS: trace, NO_COLOR: '1', ...env },
    encoding: 'utf8',
  });
  expect(run.status, run.stderr).toBe(expectedStatus);
  return readFileSync(trace, 'utf8').split('\n');
}

const heavy = ['ldapts', 'undici', 'cli-progress', '@inquirer', '@azure'];
/** Output plumbing a run that prints to a pipe or a file never needs. */
const terminalOnly = ['chalk', 'cli-table3', 'string-width'];
const loaded = (modules: string[], name: string) => modules.filter((m) => m.includes(`/node_modules/${name}`));

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-startup-'));
  writeFileSync(
    path.join(dir, 'provkey.yaml'),
    'keys:\n  app:\n    target:\n      type: scim\n      url: http://127.0.0.1:9/scim/v2\n      applier: { type: store }\n',
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A config whose one key lives in a store of `type` that nobody listens for (127.0.0.1:9). */
function configWithStore(type: 'vault' | 'azure'): string {
  const file = path.join(dir, `provkey-${type}.yaml`);
  writeFileSync(path.join(dir, 'vault-token'), 'not-a-real-token\n', { mode: 0o600 });
  const store =
    type === 'vault'
      ? '    type: vault\n    address: http://127.0.0.1:9\n    auth: { method: token, tokenFile: vault-token }\n'
      : '    type: azure\n    vaultUrl: https://127.0.0.1:9\n    retries: 0\n    timeout: 2s\n    authorityHost: https://127.0.0.1:9\n    auth: { method: clientSecret, tenantId: t, clientId: c, clientSecretRef: env:PROVKEY_STARTUP_SECRET }\n';
  writeFileSync(
    file,
    `stores:\n  remote:\n${store}keys:\n  app:\n    store: remote\n    target:\n      type: scim\n      url: http://127.0.0.1:9/scim/v2\n      applier: { type: store }\n`,
  );
  return file;
}

describe('start-up loads only what the command uses', () => {
  it('--help loads no store, target or prompt library, no config parser and no output plumbing', () => {
    const modules = modulesLoadedBy(['--help']);
    expect(modules.some((m) => m.includes('/node_modules/commander/'))).toBe(true);
    for (const name of [...heavy, ...terminalOnly, 'yaml', 'valibot']) expect(loaded(modules, name), name).toEqual([]);
    // Redaction and colour come with the first command that prints: --help is commander's text.
    expect(modules.filter((m) => /\/dist\/(cli\/io|core\/redact|config|stores|targets|engine)[./]/.test(m))).toEqual([]);
  });

  it('status into a pipe loads no colour or table library (a terminal gets the drawn table)', () => {
    const modules = modulesLoadedBy(['status']);
    for (const name of terminalOnly) expect(loaded(modules, name), name).toEqual([]);
  });

  it('generate loads no config, store or target code', () => {
    const modules = modulesLoadedBy(['generate']);
    for (const name of [...heavy, ...terminalOnly, 'yaml', 'valibot']) expect(loaded(modules, name), name).toEqual([]);
    expect(modules.filter((m) => m.includes('/dist/stores/'))).toEqual([]);
  });

  it('status on the file store loads the file store only', () => {
    const modules = modulesLoadedBy(['status']);
    expect(modules.some((m) => m.includes('/dist/stores/file.js'))).toBe(true);
    for (const name of heavy) expect(loaded(modules, name), name).toEqual([]);
    expect(modules.filter((m) => /\/dist\/stores\/(vault|azure)/.test(m) || /\/dist\/targets\/(scim|ldap)\//.test(m))).toEqual([]);
  });

  it('a Vault-store run loads no Azure code', () => {
    // Vault on 127.0.0.1:9 is unreachable: status exits 5 after loading the Vault adapter only.
    const modules = modulesLoadedBy(['--config', configWithStore('vault'), 'status'], 5);
    expect(modules.some((m) => m.includes('/dist/stores/vault.js'))).toBe(true);
    expect(loaded(modules, '@azure')).toEqual([]);
    expect(modules.filter((m) => m.includes('/dist/stores/azure'))).toEqual([]);
  });

  it('an Azure-store run loads the Azure SDKs (the control for the cases above)', () => {
    process.env.PROVKEY_STARTUP_SECRET = 'not-a-real-secret';
    const modules = modulesLoadedBy(['--config', configWithStore('azure'), 'status'], 5);
    expect(modules.some((m) => m.includes('/dist/stores/azure.js'))).toBe(true);
    expect(loaded(modules, '@azure/keyvault-secrets').length).toBeGreaterThan(0);
    expect(loaded(modules, '@azure/identity').length).toBeGreaterThan(0);
  });
});

describe('the bundle bin/provkey starts', () => {
  let traced: string;
  beforeAll(async () => {
    // The same bundling as `npm run build` (with its vendor files), each module reporting its evaluation.
    const { bundleCommonJs } = (await import(path.join(root, 'bin/build/bundle.mjs'))) as { bundleCommonJs: (o: { outfile: string; trace: boolean; kind: string }) => Promise<string> };
    traced = await bundleCommonJs({ outfile: path.join(dir, 'bundle-traced', 'provkey.cjs'), trace: true, kind: 'npm' });
  });

  function evaluatedBy(args: string[], expectedStatus = 0): string[] {
    const trace = path.join(dir, `eval-${Math.random().toString(36).slice(2)}.txt`);
    writeFileSync(trace, '');
    const run = spawnSync(process.execPath, [traced, ...args], { cwd: dir, env: { ...process.env, PROVKEY_TRACE_LOADS: trace, NO_COLOR: '1' }, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(expectedStatus);
    return readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  }
  const matching = (modules: string[], pattern: RegExp) => modules.filter((m) => pattern.test(m));

  it('bin/provkey runs the bundle, not the separate modules', () => {
    const cache = path.join(dir, 'cache-runs-bundle');
    const modules = modulesLoadedBy(['status'], 0, bin, { XDG_CACHE_HOME: cache });
    expect(modules.filter((m) => m.includes('/dist/cli/') || m.includes('/node_modules/'))).toEqual([]);
    // The bundle ran (its code cache, named by the manifest's id, was written after the run).
    const { id } = JSON.parse(readFileSync(path.join(root, 'dist/bundle/manifest.json'), 'utf8')) as { id: string };
    expect(readdirSync(path.join(cache, 'provkey', 'code-cache')).filter((f) => f.startsWith(`${id}-status-`))).toHaveLength(1);
  });

  it('--help evaluates commander and the program only', () => {
    const modules = evaluatedBy(['--help']);
    expect(matching(modules, /^src\/cli\/program\.ts$/)).toHaveLength(1);
    expect(matching(modules, /^src\/(stores|targets|config|engine)\/|^src\/cli\/(io|globals)\.ts$|node_modules\/(yaml|valibot|chalk|cli-table3|ldapts|@inquirer|@azure|cli-progress)\//)).toEqual([]);
  });

  it('status on the file store evaluates the config parser and the file store, and no table, target or other store', () => {
    const modules = evaluatedBy(['status']);
    expect(matching(modules, /^src\/stores\/file\.ts$/)).toHaveLength(1);
    expect(matching(modules, /node_modules\/yaml\//).length).toBeGreaterThan(0);
    expect(matching(modules, /^src\/stores\/(vault|azure)|^src\/targets\/(scim|ldap)\/|node_modules\/(chalk|cli-table3|ldapts|@inquirer|@azure|cli-progress)\//)).toEqual([]);
  });

  it('an Azure-store run evaluates the Azure SDKs from their vendor file (the control for the cases above)', () => {
    process.env.PROVKEY_STARTUP_SECRET = 'not-a-real-secret';
    const modules = evaluatedBy(['--config', configWithStore('azure'), 'status'], 5);
    expect(matching(modules, /node_modules\/@azure\/keyvault-secrets\//).length).toBeGreaterThan(0);
    expect(matching(modules, /node_modules\/@azure\/identity\//).length).toBeGreaterThan(0);
  });

  it('generate evaluates no config parser', () => {
    const modules = evaluatedBy(['generate']);
    expect(matching(modules, /^src\/(config|stores)\/|node_modules\/(yaml|valibot)\//)).toEqual([]);
  });

  function builtinsLoadedBy(args: string[], stdio: 'pipe' | 'file' | 'null'): string[] {
    const list = path.join(dir, `builtins-${Math.random().toString(36).slice(2)}.txt`);
    const out = stdio === 'file' ? openSync(path.join(dir, 'out.txt'), 'w') : stdio === 'null' ? 'ignore' : 'pipe';
    const run = spawnSync(process.execPath, ['--require', BUILTINS_HOOK, traced, ...args], { cwd: dir, env: { ...process.env, PROVKEY_BUILTINS_LIST: list, NO_COLOR: '1' }, encoding: 'utf8', stdio: ['ignore', out, stdio === 'pipe' ? 'pipe' : out] });
    if (typeof out === 'number') closeSync(out);
    expect(run.status, run.stderr).toBe(0);
    return readFileSync(list, 'utf8').split('\n');
  }

  it('commander\'s node:child_process (and with it dgram) is loaded only when used', () => {
    const builtins = builtinsLoadedBy(['generate'], 'pipe');
    expect(builtins).not.toContain('NativeModule child_process');
    expect(builtins).toContain('NativeModule crypto'); // the control: generate uses node:crypto
  });

  it('status with stdout and stderr into a file or /dev/null loads no node:tty or child_process (cron\'s case)', () => {
    for (const stdio of ['file', 'null'] as const) {
      const builtins = builtinsLoadedBy(['status'], stdio);
      if (stdio === 'file') expect(readFileSync(path.join(dir, 'out.txt'), 'utf8')).toMatch(/^ *key +store .*\n *app /);
      for (const name of ['tty', 'child_process']) expect(builtins, `${stdio}: ${name}`).not.toContain(`NativeModule ${name}`);
      expect(builtins).toContain('NativeModule fs/promises'); // the control: status read its config
    }
  });
});

describe('--help and --version without the CLI', () => {
  // bin/provkey answers these alone on the line from dist/bundle/manifest.json (texts commander
  // printed at build time): the same bytes as the CLI itself, and nothing of the CLI loaded.
  for (const args of [['--help'], ['-h'], ['help'], ['--version'], ['-V']]) {
    it(`provkey ${args.join(' ')}: the CLI's own output, byte for byte, without loading it`, () => {
      const fast = spawnSync(process.execPath, ['--import', hook, bin, ...args], { cwd: dir, env: { ...process.env, PROVKEY_TRACE_LOADS: path.join(dir, 'fast-trace.txt') }, encoding: 'utf8' });
      const real = spawnSync(process.execPath, [unbundled, ...args], { cwd: dir, env: process.env, encoding: 'utf8' });
      expect(real.status, real.stderr).toBe(0);
      expect({ status: fast.status, stdout: fast.stdout, stderr: fast.stderr }).toEqual({ status: real.status, stdout: real.stdout, stderr: real.stderr });
      const modules = readFileSync(path.join(dir, 'fast-trace.txt'), 'utf8').split('\n');
      expect(modules.filter((m) => m.startsWith('file:') && !m.endsWith('/bin/provkey') && !m.endsWith('/trace-module-loads.mjs'))).toEqual([]);
    });
  }

  it('any other argument goes to the CLI (commander\'s own error for a wrong one)', () => {
    const fast = spawnSync(process.execPath, [bin, '--help', '--no-such-flag'], { cwd: dir, encoding: 'utf8' });
    const real = spawnSync(process.execPath, [unbundled, '--help', '--no-such-flag'], { cwd: dir, encoding: 'utf8' });
    expect({ status: fast.status, stdout: fast.stdout, stderr: fast.stderr }).toEqual({ status: real.status, stdout: real.stdout, stderr: real.stderr });
    const status = spawnSync(process.execPath, [bin, 'status', '--help'], { cwd: dir, encoding: 'utf8' });
    expect(status.status, status.stderr).toBe(0);
    expect(status.stdout).toContain('Usage: provkey status');
  });
});

describe('on a Node older than provkey needs', () => {
  // The host's own Node (Debian's, 20 here): found on the system PATH, not the project's Node 24.
  const systemNode = spawnSync('sh', ['-c', 'command -v node'], { env: { PATH: SYSTEM_PATH.join(':') }, encoding: 'utf8' }).stdout.trim();
  const version = systemNode ? spawnSync(systemNode, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim() : '';
  const old = /^(\d+)\.(\d+)/.exec(version);
  const isOld = old !== null && (Number(old[1]) < 22 || (Number(old[1]) === 22 && Number(old[2]) < 12));

  it.runIf(isOld)('--help, --version and a command all say which Node it needs, exit 2 (no answer from the manifest)', () => {
    for (const args of [['--help'], ['--version'], ['status']]) {
      const run = spawnSync(systemNode, [bin, ...args], { cwd: dir, encoding: 'utf8' });
      expect({ status: run.status, stdout: run.stdout, stderr: run.stderr }).toEqual({ status: 2, stdout: '', stderr: `provkey: Node.js ${version} is too old; provkey needs Node.js 22.12 or newer\n` });
    }
  });
});

describe("V8's code cache", () => {
  const cacheFiles = (cache: string) => readdirSync(path.join(cache, 'provkey', 'code-cache'));
  const generateHex = (env: NodeJS.ProcessEnv) => spawnSync(process.execPath, [bin, 'generate', '--format', 'hex', '--bytes', '16'], { cwd: dir, env: { ...process.env, NO_COLOR: '1', NODE_COMPILE_CACHE: '', ...env }, encoding: 'utf8' });

  it('a cache dir that cannot be created changes nothing: same output, nothing on stderr', () => {
    const home = path.join(dir, 'home-with-a-file-for-a-cache');
    mkdirSync(home);
    writeFileSync(path.join(home, '.cache'), 'not a directory\n');
    const run = generateHex({ HOME: home, XDG_CACHE_HOME: '' });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^[0-9a-f]{32}\n$/);
    expect(run.stderr).not.toMatch(/cache|warning/i);
  });

  it('is written under the user cache dir ($XDG_CACHE_HOME/provkey), one file per command, after runs that succeeded, up to its third generation', () => {
    const cache = path.join(dir, 'xdg-cache');
    const { id } = JSON.parse(readFileSync(path.join(root, 'dist/bundle/manifest.json'), 'utf8')) as { id: string };
    const name = (generation: number) => `${id}-generate-${process.version}-${process.arch}-g${generation}.bin`;
    expect(generateHex({ XDG_CACHE_HOME: cache }).status).toBe(0);
    const failed = spawnSync(process.execPath, [bin, 'get', 'no-such-key'], { cwd: dir, env: { ...process.env, XDG_CACHE_HOME: cache }, encoding: 'utf8' });
    expect(failed.status).not.toBe(0);
    expect(cacheFiles(cache)).toEqual([name(1)]); // the failed run wrote nothing
    // A first run may have been an unusual one: the next two rewrite it, each replacing the last.
    for (const generation of [2, 3]) {
      expect(generateHex({ XDG_CACHE_HOME: cache }).status).toBe(0);
      expect(cacheFiles(cache)).toEqual([name(generation)]);
    }
    const full = path.join(cache, 'provkey', 'code-cache', name(3));
    const written = readFileSync(full);
    chmodSync(full, 0o400); // a run that used the cache and wrote none leaves it as it is
    const again = generateHex({ XDG_CACHE_HOME: cache });
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^[0-9a-f]{32}\n$/);
    expect(cacheFiles(cache)).toEqual([name(3)]);
    expect(statSync(full).mode & 0o777).toBe(0o400);
    expect(readFileSync(full).equals(written)).toBe(true);
  });

  it('holds compiled code only: not the value the run generated', () => {
    const cache = path.join(dir, 'secret-free-cache');
    const run = generateHex({ XDG_CACHE_HOME: cache });
    expect(run.status, run.stderr).toBe(0);
    const hex = run.stdout.trim();
    const written = readFileSync(path.join(cache, 'provkey', 'code-cache', cacheFiles(cache)[0]!));
    expect(written.length).toBeGreaterThan(10_000);
    for (const encoded of [Buffer.from(hex, 'latin1'), Buffer.from(hex, 'utf16le'), Buffer.from(hex, 'hex'), Buffer.from(Buffer.from(hex, 'hex').toString('base64url'))]) {
      expect(written.includes(encoded.subarray(0, 12))).toBe(false);
    }
  });

  it('a damaged cache (or one of another V8) is refused by V8: the run compiles from source, then replaces it', () => {
    const cache = path.join(dir, 'damaged-cache');
    expect(generateHex({ XDG_CACHE_HOME: cache }).status).toBe(0);
    const [file] = cacheFiles(cache);
    const full = path.join(cache, 'provkey', 'code-cache', file!);
    writeFileSync(full, Buffer.alloc(4096, 7), { mode: 0o600 });
    const run = generateHex({ XDG_CACHE_HOME: cache });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^[0-9a-f]{32}\n$/);
    expect(run.stderr).not.toMatch(/cache|warning|error/i);
    expect(readFileSync(full).equals(Buffer.alloc(4096, 7))).toBe(false);
  });

  it('a cache file others may write is not used: the run starts from source and replaces it with its own', () => {
    const cache = path.join(dir, 'shared-cache');
    expect(generateHex({ XDG_CACHE_HOME: cache }).status).toBe(0);
    const [file] = cacheFiles(cache);
    const full = path.join(cache, 'provkey', 'code-cache', file!);
    // A cache V8 would accept: had it been used, no run would rewrite it (and its mode would stay).
    chmodSync(full, 0o666);
    const run = generateHex({ XDG_CACHE_HOME: cache });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^[0-9a-f]{32}\n$/);
    expect(statSync(full).mode & 0o777).toBe(0o600);
  });

  it('writing a cache removes the caches of other builds once they are a week old', () => {
    const cache = path.join(dir, 'pruned-cache');
    const codeCache = path.join(cache, 'provkey', 'code-cache');
    mkdirSync(codeCache, { recursive: true });
    const old = path.join(codeCache, 'aaaaaaaaaaaaaaaaaaaaaaaa-status-v24.0.0-x64.bin');
    const recent = path.join(codeCache, 'bbbbbbbbbbbbbbbbbbbbbbbb-status-v24.0.0-x64.bin');
    const other = path.join(codeCache, 'README');
    for (const file of [old, recent, other]) writeFileSync(file, 'x', { mode: 0o600 });
    const eightDaysAgo = new Date(Date.now() - 8 * 24 * 3600 * 1000);
    utimesSync(old, eightDaysAgo, eightDaysAgo);
    utimesSync(other, eightDaysAgo, eightDaysAgo);
    expect(generateHex({ XDG_CACHE_HOME: cache }).status).toBe(0);
    const { id } = JSON.parse(readFileSync(path.join(root, 'dist/bundle/manifest.json'), 'utf8')) as { id: string };
    expect(cacheFiles(cache).sort()).toEqual([`${id}-generate-${process.version}-${process.arch}-g1.bin`, 'README', path.basename(recent)].sort());
  });

  it("the vendor files a run requires (Azure's SDKs here) get Node's compile cache; a file-store run requires none", () => {
    const cache = path.join(dir, 'vendor-cache');
    process.env.PROVKEY_STARTUP_SECRET = 'not-a-real-secret';
    const fileStore = spawnSync(process.execPath, [bin, 'status'], { cwd: dir, env: { ...process.env, XDG_CACHE_HOME: cache, NODE_COMPILE_CACHE: '' }, encoding: 'utf8' });
    expect(fileStore.status, fileStore.stderr).toBe(0);
    expect(existsSync(path.join(cache, 'provkey', 'compile-cache'))).toBe(false);
    const azure = spawnSync(process.execPath, [bin, '--config', configWithStore('azure'), 'status'], { cwd: dir, env: { ...process.env, XDG_CACHE_HOME: cache, NODE_COMPILE_CACHE: '' }, encoding: 'utf8' });
    expect(azure.status, azure.stderr).toBe(5);
    expect(readdirSync(path.join(cache, 'provkey', 'compile-cache')).length).toBeGreaterThan(0);
  });

  it('NODE_DISABLE_COMPILE_CACHE=1 turns it off', () => {
    const cache = path.join(dir, 'disabled-cache');
    expect(generateHex({ XDG_CACHE_HOME: cache, NODE_DISABLE_COMPILE_CACHE: '1' }).status).toBe(0);
    expect(existsSync(path.join(cache, 'provkey'))).toBe(false);
  });
});
