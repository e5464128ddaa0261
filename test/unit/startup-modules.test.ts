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

function modulesLoadedBy(args: string[]): string[] {
  const trace = path.join(dir, `trace-${Math.random().toString(36).slice(2)}.txt`);
  const run = spawnSync(process.execPath, ['--import', hook, bin, ...args], {
    cwd: dir,
    env: { ...process.env, PROVKEY_TRACE_LOADS: trace, NO_COLOR: '1' },
    encoding: 'utf8',
  });
  expect(run.status, run.stderr).toBe(0);
  return readFileSync(trace, 'utf8').split('\n');
}

const heavy = ['ldapts', 'undici', 'cli-progress', '@inquirer'];
const loaded = (modules: string[], name: string) => modules.filter((m) => m.includes(`/node_modules/${name}`));

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-startup-'));
  writeFileSync(
    path.join(dir, 'provkey.yaml'),
    'keys:\n  app:\n    target:\n      type: scim\n      url: http://127.0.0.1:9/scim/v2\n      applier: { type: store }\n',
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

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
});
