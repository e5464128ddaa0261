// The single executable (bin/build/sea.mjs: an esbuild bundle of the CLI injected into Node
// 24), run as a host without a suitable Node would run it: only the system's directories on
// PATH, whose `node` is the old Node 20. --help, version, status and a rotation against the
// real SCIM server. A second build with evaluation tracing (same bundling, tests only) proves
// the bundle still evaluates adapter code only when a command uses it.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, secretFingerprint } from '../harness/cli.ts';
import { InstalledCli, REPO_ROOT, runCommand, SYSTEM_PATH } from '../harness/installed-cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const ADMIN_TOKEN = `scim-admin-${randomBytes(18).toString('base64url')}`;

describe('single executable (Node SEA)', () => {
  let dir: string;
  let executable: string;
  let traced: string;
  let server: ScimServer;
  let cli: InstalledCli;
  const config = () => path.join(dir, 'work', 'provkey.yaml');

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'provkey-sea-'));
    const { buildSea } = (await import(path.join(REPO_ROOT, 'bin/build/sea.mjs'))) as { buildSea: (o: { outDir: string; trace?: boolean }) => Promise<string> };
    executable = await buildSea({ outDir: path.join(dir, 'sea') });
    traced = await buildSea({ outDir: path.join(dir, 'sea-traced'), trace: true });
    mkdirSync(path.join(dir, 'work'));
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 50 });
    cli = new InstalledCli({ command: executable, path: SYSTEM_PATH, cwd: path.join(dir, 'work'), env: { SCIM_ADMIN_TOKEN: ADMIN_TOKEN } });
    cli.scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    cli?.scanner.assertClean();
  });

  it('the PATH it runs with has only an old Node (so nothing below can lean on it)', () => {
    const node = spawnSync('node', ['--version'], { encoding: 'utf8', env: { PATH: SYSTEM_PATH.join(':') } });
    if (node.status === 0) expect(Number(/^v(\d+)/.exec(node.stdout)![1])).toBeLessThan(22);
    const provkeyOnPath = spawnSync('sh', ['-c', 'command -v provkey'], { env: { PATH: SYSTEM_PATH.join(':') } });
    expect(provkeyOnPath.status).not.toBe(0);
  });

  it('--help and version: Node 24 inside, whatever the host has', async () => {
    const help = await cli.run(['--help']);
    expect(help.code, describeRun(help)).toBe(0);
    expect(help.stdout).toContain('Usage: provkey');
    expect(help.stderr).toBe('');
    const version = await cli.run(['version', '--json']);
    expect(version.code, describeRun(version)).toBe(0);
    const info = JSON.parse(version.stdout) as { kind: string; node: string; version: string; executable: string };
    expect(info).toMatchObject({ kind: 'sea', version: JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')).version, executable });
    expect(Number(info.node.split('.')[0])).toBeGreaterThanOrEqual(24);
  });

  it('status, add and rotate against the SCIM server', async () => {
    writeFileSync(config(), ['keys:', '  app:', '    rotation: { interval: 30d, grace: 1h }', '    target:', '      type: scim', `      url: ${JSON.stringify(server.url)}`, '      propagationTimeout: 5s',
      `      applier: { type: http, url: ${JSON.stringify(server.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }`, ''].join('\n'));
    const empty = await cli.run(['--config', config(), 'status']);
    expect(empty.code, describeRun(empty)).toBe(0);
    expect(empty.stdout).toContain('app');
    expect((await cli.run(['--config', config(), 'add', 'app'])).code).toBe(0);
    const first = await cli.reveal(['--config', config(), 'get', 'app']);
    const rotated = await cli.run(['--config', config(), '--json', 'rotate', 'app']);
    expect(rotated.code, describeRun(rotated)).toBe(0);
    const second = await cli.reveal(['--config', config(), 'get', 'app']);
    expect(second).not.toBe(first);
    expect(await bearerStatus(server.url, second)).toBe(200);
    const status = await cli.run(['--config', config(), '--json', 'status']);
    expect(JSON.parse(status.stdout).keys[0].current.fingerprint).toBe(secretFingerprint(second));
    const audit = await cli.run(['--config', config(), 'audit', 'verify']);
    expect(audit.code, describeRun(audit)).toBe(0);
    cli.scanner.record('audit log', readFileSync(path.join(dir, 'work', '.provkey', 'audit.jsonl'), 'utf8'));
  });

  describe('lazy loading inside the executable', () => {
    async function evaluatedBy(args: string[]): Promise<string[]> {
      const trace = path.join(dir, `trace-${randomBytes(4).toString('hex')}.txt`);
      writeFileSync(trace, '');
      const result = cli.scanner.capture(await runCommand(traced, args, { PATH: SYSTEM_PATH.join(':'), PROVKEY_TRACE_LOADS: trace }, { cwd: path.join(dir, 'work') }));
      expect([0, 1, 5], describeRun(result)).toContain(result.code);
      return readFileSync(trace, 'utf8').split('\n').filter(Boolean);
    }
    const matching = (modules: string[], pattern: RegExp) => modules.filter((m) => pattern.test(m));
    const ADAPTERS = /^src\/(stores\/(vault|azure)|targets\/(ldap|scim))|node_modules\/(ldapts|cli-progress|@inquirer)\//;

    it('--help evaluates no store, target, config or prompt code', async () => {
      const modules = await evaluatedBy(['--help']);
      expect(matching(modules, /^src\/cli\/program\.ts$/)).toHaveLength(1);
      expect(matching(modules, /^src\/(stores|targets|config)\/|node_modules\/(ldapts|yaml|valibot|@inquirer|cli-progress)\//)).toEqual([]);
    });

    it('status on SCIM keys evaluates the file store and no target or other store', async () => {
      const modules = await evaluatedBy(['--config', config(), 'status']);
      expect(matching(modules, /^src\/stores\/file\.ts$/)).toHaveLength(1);
      expect(matching(modules, ADAPTERS)).toEqual([]);
    });

    it('an LDAP key evaluates the LDAP code (the trace sees it when it is used)', async () => {
      const ldapConfig = path.join(dir, 'work', 'ldap.yaml');
      // Port 9 (discard) on loopback: nothing listens, so `add` opens the target and stops (exit 5).
      writeFileSync(ldapConfig, ['keys:', '  dir:', '    format: { type: password, length: 24 }', '    target:', '      type: ldap', '      urls: [ldap://127.0.0.1:9]', '      bindDn: cn=svc,dc=example,dc=org', '      searchBase: dc=example,dc=org', ''].join('\n'));
      const modules = await evaluatedBy(['--config', ldapConfig, '--state-dir', path.join(dir, 'ldap-state'), 'add', 'dir']);
      expect(matching(modules, /^src\/targets\/ldap\//).length).toBeGreaterThan(0);
      expect(matching(modules, /node_modules\/ldapts\//).length).toBeGreaterThan(0);
      expect(matching(modules, /^src\/stores\/(vault|azure)/)).toEqual([]);
    });
  });
});
