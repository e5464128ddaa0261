// The npm package as an operator gets it: `npm pack` from a clean tree (no dist/; the
// prepack script builds it), the tarball installed into a temp prefix with
// `npm install -g --prefix`, and the installed `provkey` run from that prefix: --version,
// version, generate, status and a rotation against the real SCIM test server. provkey's
// engines say Node >= 22.12 and this host's system Node is 20, so the installed CLI (and npm)
// run on the project's own Node 24, first on PATH, as they would on an operator's host.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, secretFingerprint } from '../harness/cli.ts';
import { InstalledCli, PROJECT_NODE, REPO_ROOT, registryEnv, SYSTEM_PATH } from '../harness/installed-cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const ADMIN_TOKEN = `scim-admin-${randomBytes(18).toString('base64url')}`;
const NODE_PATH = [path.dirname(PROJECT_NODE), ...SYSTEM_PATH];

interface PackedFile {
  path: string;
}

/** The tree a fresh `git clone` of this worktree would have: tracked and new files, nothing ignored (no dist/). */
function copyCleanTree(into: string): void {
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO_ROOT, encoding: 'utf8' });
  expect(listed.status, listed.stderr).toBe(0);
  for (const file of listed.stdout.split('\0').filter(Boolean)) {
    const from = path.join(REPO_ROOT, file);
    if (!existsSync(from)) continue; // deleted in the worktree, not yet committed
    mkdirSync(path.dirname(path.join(into, file)), { recursive: true });
    copyFileSync(from, path.join(into, file));
  }
  // `npm ci` would install the dev dependencies the build needs (tsc); these are the same.
  symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(into, 'node_modules'));
}

function npm(args: string[], cwd: string): string {
  const run = spawnSync('npm', args, { cwd, encoding: 'utf8', env: { HOME: process.env.HOME ?? '/root', PATH: NODE_PATH.join(':'), NO_COLOR: '1', ...registryEnv() }, timeout: 180_000 });
  expect(run.status, `npm ${args.join(' ')}\n${run.stdout}\n${run.stderr}`).toBe(0);
  return run.stdout;
}

describe('npm pack → npm install -g → provkey', () => {
  let dir: string;
  let server: ScimServer;
  let packed: PackedFile[];
  let cli: InstalledCli;
  let installedRoot: string;
  const config = () => path.join(dir, 'work', 'provkey.yaml');

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'provkey-package-'));
    const tree = path.join(dir, 'tree');
    copyCleanTree(tree);
    expect(existsSync(path.join(tree, 'dist')), 'a clean tree has no dist/').toBe(false);
    // --json prints the manifest on stdout; the prepack build's own output goes there first.
    const out = npm(['pack', '--json', '--pack-destination', dir], tree);
    const manifest = JSON.parse(out.slice(out.indexOf('\n[') + 1)) as [{ filename: string; files: PackedFile[] }];
    packed = manifest[0].files;
    npm(['install', '-g', '--prefix', path.join(dir, 'prefix'), path.join(dir, manifest[0].filename), '--no-audit', '--no-fund', '--prefer-offline'], dir);
    installedRoot = path.join(dir, 'prefix', 'lib', 'node_modules', 'provkey');
    mkdirSync(path.join(dir, 'work'));
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 100 });
    cli = new InstalledCli({ command: path.join(dir, 'prefix', 'bin', 'provkey'), path: NODE_PATH, cwd: path.join(dir, 'work'), env: { SCIM_ADMIN_TOKEN: ADMIN_TOKEN } });
    cli.scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
  }, 240_000);

  afterAll(async () => {
    await server?.stop();
    cli?.scanner.assertClean();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ships the built CLI, its licence and nothing else', () => {
    const names = packed.map((f) => f.path).sort();
    expect(names).toContain('dist/cli/main.js');
    expect(names).toContain('dist/build.json');
    expect(names).toContain('bin/provkey');
    expect(names).toContain('LICENSE');
    const unexpected = names.filter((n) => !n.startsWith('dist/') && !['bin/provkey', 'LICENSE', 'README.md', 'package.json'].includes(n));
    expect(unexpected).toEqual([]);
    // The tsc output (.js), the bundle bin/provkey runs (.cjs) and the two JSON files beside them.
    expect(names.filter((n) => !n.endsWith('.js') && !/^dist\/bundle\/(vendor\/)?[a-z-]+\.cjs$/.test(n) && n.startsWith('dist/')).sort()).toEqual(['dist/build.json', 'dist/bundle/manifest.json']);
    expect(names).toContain('dist/bundle/provkey.cjs');
    const licence = readFileSync(path.join(installedRoot, 'LICENSE'), 'utf8');
    expect(licence).toContain('Apache License');
    expect(licence).toContain('Version 2.0, January 2004');
    expect(licence).toContain('END OF TERMS AND CONDITIONS');
    expect(JSON.parse(readFileSync(path.join(installedRoot, 'package.json'), 'utf8')).license).toBe('Apache-2.0');
  });

  it('--version and version name the package version and the Node it runs on', async () => {
    const pkgVersion = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')).version as string;
    const short = await cli.run(['--version']);
    expect(short.code, describeRun(short)).toBe(0);
    expect(short.stdout.trim()).toBe(pkgVersion);
    const long = await cli.run(['version', '--json']);
    expect(long.code, describeRun(long)).toBe(0);
    const info = JSON.parse(long.stdout) as { version: string; kind: string; node: string };
    expect(info).toMatchObject({ version: pkgVersion, kind: 'npm', node: spawnSync(PROJECT_NODE, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim() });
  });

  it('generate prints a checksummed token', async () => {
    const generated = await cli.run(['generate', '--prefix', 'acme']);
    expect(generated.code, describeRun(generated)).toBe(0);
    const token = generated.stdout.trim();
    expect(token).toMatch(/^acme_/);
    const checked = await cli.run(['check-token'], { input: token });
    expect(checked.code, describeRun(checked)).toBe(0);
  });

  it('add, status and rotate against the SCIM server', async () => {
    writeFileSync(
      config(),
      [
        'keys:',
        '  app:',
        '    rotation: { interval: 30d, grace: 1h }',
        '    target:',
        '      type: scim',
        `      url: ${JSON.stringify(server.url)}`,
        '      propagationTimeout: 5s',
        `      applier: { type: http, url: ${JSON.stringify(server.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }`,
        '',
      ].join('\n'),
    );
    const empty = await cli.run(['--config', config(), 'status', '--json']);
    expect(empty.code, describeRun(empty)).toBe(0);
    expect(JSON.parse(empty.stdout).keys[0]).toMatchObject({ name: 'app', current: null });

    const added = await cli.run(['--config', config(), 'add', 'app']);
    expect(added.code, describeRun(added)).toBe(0);
    const first = await cli.reveal(['--config', config(), 'get', 'app']);
    expect(await bearerStatus(server.url, first)).toBe(200);

    const rotated = await cli.run(['--config', config(), 'rotate', 'app', '--json']);
    expect(rotated.code, describeRun(rotated)).toBe(0);
    const second = await cli.reveal(['--config', config(), 'get', 'app']);
    expect(second).not.toBe(first);
    expect(await bearerStatus(server.url, second)).toBe(200);

    const status = await cli.run(['--config', config(), 'status', '--json']);
    expect(status.code, describeRun(status)).toBe(0);
    expect(JSON.parse(status.stdout).keys[0].current.fingerprint).toBe(secretFingerprint(second));
    // The store and audit log sit beside the config, in the installed CLI's default state dir.
    expect(existsSync(path.join(dir, 'work', '.provkey', 'store.enc'))).toBe(true);
    cli.scanner.record('audit log', readFileSync(path.join(dir, 'work', '.provkey', 'audit.jsonl'), 'utf8'));
  });
});
