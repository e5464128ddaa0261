import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Cron runs and admins pay start-up on every call: a command must load no store or target
// SDK it does not use. This runs the built CLI and lists every module it resolved.
const root = path.resolve(import.meta.dirname, '../..');
const bin = path.join(root, 'bin/provkey');
const hook = path.join(root, 'test/harness/trace-module-loads.mjs');
let dir: string;

function modulesLoadedBy(args: string[], expectedStatus = 0): string[] {
  const trace = path.join(dir, `trace-${Math.random().toString(36).slice(2)}.txt`);
  const run = spawnSync(process.execPath, ['--import', hook, bin, ...args], {
    cwd: dir,
    env: { ...process.env, PROVKEY_TRACE_LOADS: trace, NO_COLOR: '1' },
    encoding: 'utf8',
  });
  expect(run.status, run.stderr).toBe(expectedStatus);
  return readFileSync(trace, 'utf8').split('\n');
}

const heavy = ['ldapts', 'undici', 'cli-progress', '@inquirer', '@azure'];
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
  it('--help loads no store, target or prompt library', () => {
    const modules = modulesLoadedBy(['--help']);
    expect(modules.some((m) => m.includes('/node_modules/commander/'))).toBe(true);
    for (const name of [...heavy, 'yaml', 'valibot']) expect(loaded(modules, name), name).toEqual([]);
  });

  it('generate loads no config, store or target code', () => {
    const modules = modulesLoadedBy(['generate']);
    for (const name of [...heavy, 'yaml', 'valibot']) expect(loaded(modules, name), name).toEqual([]);
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
