// Conventions people expect of a CLI: global flags in every command's help, --quiet,
// `provkey version`, and an `add` without `init` that says where the new store key is.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun, ProvkeyCli } from '../harness/cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const ADMIN_TOKEN = `scim-admin-${randomBytes(18).toString('base64url')}`;

describe('CLI conventions', () => {
  let server: ScimServer;
  let dir: string;
  let cli: ProvkeyCli;

  beforeAll(async () => {
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 50 });
    dir = mkdtempSync(path.join(tmpdir(), 'provkey-conventions-'));
    cli = new ProvkeyCli({ cwd: dir, env: { SCIM_ADMIN_TOKEN: ADMIN_TOKEN } });
    cli.scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
    cli.scanner.assertClean();
  });

  it('every command\'s help lists the global flags', async () => {
    for (const command of [['rotate'], ['status'], ['audit', 'verify'], ['import']]) {
      const help = await cli.run([...command, '--help']);
      expect(help.code, describeRun(help)).toBe(0);
      const globals = help.stdout.slice(help.stdout.indexOf('Global Options:'));
      expect(help.stdout, command.join(' ')).toContain('Global Options:');
      for (const flag of ['--config', '--state-dir', '--json', '--dry-run', '--quiet', '--verbose']) expect(globals, `${command.join(' ')} ${flag}`).toContain(flag);
    }
  });

  it('--quiet: no report on stdout, a requested value still printed', async () => {
    // A config with one key: with none, status is an error (checking nothing is never success).
    const config = path.join(dir, 'quiet.yaml');
    writeFileSync(config, `keys:\n  app:\n    target: { type: scim, url: "${server.url}", applier: { type: store } }\n`);
    const status = await cli.run(['--quiet', 'status'], { config });
    expect(status.code, describeRun(status)).toBe(0);
    expect(status.stdout).toBe('');
    expect((await cli.run(['status'], { config })).stdout).not.toBe('');
    const generated = await cli.run(['--quiet', 'generate']);
    expect(generated.code, describeRun(generated)).toBe(0);
    expect(generated.stdout.trim()).toMatch(/^pk_/);
    const json = await cli.run(['--quiet', '--json', 'status'], { config });
    expect(JSON.parse(json.stdout).keys.map((k: { name: string }) => k.name)).toEqual(['app']);
  });

  it('add --dry-run refuses what add refuses: a weak format, a key that already has a current version', async () => {
    // A directory of its own: the embedded store beside these configs is not the other tests' one.
    const own = mkdtempSync(path.join(dir, 'dry-run-'));
    const weak = path.join(own, 'weak.yaml');
    writeFileSync(weak, `keys:\n  app:\n    format: { type: password, length: 8 }\n    target: { type: scim, url: "${server.url}", applier: { type: store } }\n`);
    const planned = await cli.run(['add', 'app', '--dry-run'], { config: weak });
    const added = await cli.run(['add', 'app'], { config: weak });
    expect(planned.code, describeRun(planned)).toBe(2);
    expect(added.code, describeRun(added)).toBe(2);
    expect(planned.stderr).toContain('bits of entropy is under the 128-bit minimum');
    expect(planned.stderr.trim()).toBe(added.stderr.trim());
    expect(planned.stdout).not.toContain('would generate');

    // A key with a current version: add refuses, and so does its plan (which changes nothing).
    const exists = path.join(own, 'exists.yaml');
    writeFileSync(exists, `keys:\n  app:\n    target: { type: scim, url: "${server.url}", applier: { type: http, url: "${server.adminUrl}", authRef: "env:SCIM_ADMIN_TOKEN" } }\n`);
    const first = await cli.run(['add', 'app'], { config: exists });
    expect(first.code, describeRun(first)).toBe(0);
    const again = await cli.run(['add', 'app'], { config: exists });
    const againPlanned = await cli.run(['add', 'app', '--dry-run'], { config: exists });
    expect(again.code, describeRun(again)).toBe(2);
    expect(againPlanned.code, describeRun(againPlanned)).toBe(2);
    expect(againPlanned.stderr).toContain('already has a current version');
  });

  it('version: provkey\'s version and build, the Node it runs on', async () => {
    const { result, data } = await cli.json<{ version: string; commit: string; kind: string; node: string; platform: string }>(['version']);
    expect(result.code, describeRun(result)).toBe(0);
    expect(data).toMatchObject({ version: expect.stringMatching(/^\d+\.\d+\.\d+/), kind: 'npm', node: process.versions.node, platform: `${process.platform}-${process.arch}` });
    const human = await cli.run(['version']);
    expect(human.stdout).toMatch(new RegExp(`^provkey ${data.version.replaceAll('.', '\\.')} \\(`));
    expect(human.stdout).toContain(`node ${process.versions.node}`);
  });

  it('add without init says once where the new store key is and that it must be backed up', async () => {
    const keys = ['one', 'two'].map((name) => [`  ${name}:`, '    target:', '      type: scim', `      url: ${JSON.stringify(server.url)}`, '      propagationTimeout: 5s',
      `      applier: { type: http, url: ${JSON.stringify(server.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }`].join('\n'));
    writeFileSync(path.join(dir, 'provkey.yaml'), `keys:\n${keys.join('\n')}\n`);
    const first = await cli.run(['add', 'one']);
    expect(first.code, describeRun(first)).toBe(0);
    const keyFile = path.join(dir, '.provkey', 'store.key');
    expect(first.stderr).toContain(`created the store key ${keyFile}`);
    expect(first.stderr).toContain('back it up');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const second = await cli.run(['add', 'two']);
    expect(second.code, describeRun(second)).toBe(0);
    expect(second.stderr).not.toContain('created the store key');
  });
});
