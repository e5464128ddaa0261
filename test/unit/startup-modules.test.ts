import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Cron runs and admins pay start-up on every call: a command must load no store or target
// SDK it does not use. This runs the built CLI (the tsc output, dist/cli/main.js, one file per
// module) and lists every module it resolved; the bundle bin/provkey starts is checked below
// with a traced build of the same bundling (bin/build/bundle.mjs).
const root = path.resolve(import.meta.dirname, '../..');
const bin = path.join(root, 'bin/provkey');
const unbundled = path.join(root, 'dist/cli/main.js');
const hook = path.join(root, 'test/harness/trace-module-loads.mjs');
let dir: string;

function modulesLoadedBy(args: string[], expectedStatus = 0, entry = unbundled): string[] {
  const trace = path.join(dir, `trace-${Math.random().toString(36).slice(2)}.txt`);
  const run = spawnSync(process.execPath, ['--import', hook, entry, ...args], {
    cwd: dir,
    env: { ...process.env, PROVKEY_TRACE_LOADS: trace, NO_COLOR: '1' },
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
    // The same bundling as `npm run build`, with each module reporting its evaluation.
    const { bundleEsm } = (await import(path.join(root, 'bin/build/bundle.mjs'))) as { bundleEsm: (o: { outdir: string; trace: boolean }) => Promise<string> };
    traced = await bundleEsm({ outdir: path.join(dir, 'bundle-traced'), trace: true });
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
    const modules = modulesLoadedBy(['--help'], 0, bin);
    expect(modules.some((m) => m.endsWith('/dist/bundle/provkey.js'))).toBe(true);
    expect(modules.filter((m) => m.includes('/dist/cli/') || m.includes('/node_modules/'))).toEqual([]);
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

  it('generate evaluates no config parser', () => {
    const modules = evaluatedBy(['generate']);
    expect(matching(modules, /^src\/(config|stores)\/|node_modules\/(yaml|valibot)\//)).toEqual([]);
  });
});

describe("Node's compile cache", () => {
  it('a cache dir that cannot be created changes nothing: same output, nothing on stderr', () => {
    const home = path.join(dir, 'home-with-a-file-for-a-cache');
    mkdirSync(home);
    writeFileSync(path.join(home, '.cache'), 'not a directory\n');
    const env = { ...process.env, HOME: home, XDG_CACHE_HOME: '', NODE_COMPILE_CACHE: '', NO_COLOR: '1' };
    const run = spawnSync(process.execPath, [bin, 'generate', '--format', 'hex', '--bytes', '16'], { cwd: dir, env, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^[0-9a-f]{32}\n$/);
    expect(run.stderr).not.toMatch(/cache|warning/i);
  });

  it('is written under the user cache dir ($XDG_CACHE_HOME/provkey)', () => {
    const cache = path.join(dir, 'xdg-cache');
    const run = spawnSync(process.execPath, [bin, '--version'], { cwd: dir, env: { ...process.env, XDG_CACHE_HOME: cache, NODE_COMPILE_CACHE: '' }, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(readdirSync(path.join(cache, 'provkey', 'compile-cache')).length).toBeGreaterThan(0);
  });
});
