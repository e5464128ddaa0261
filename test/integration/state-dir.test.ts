// State apart from a read-only config: the config directory is mode 0555 and the CLI runs as
// an unprivileged user (uid 65534 via setpriv: root would ignore the mode), as it does from a
// Kubernetes ConfigMap mount. With --state-dir / PROVKEY_STATE_DIR the store, its key and the
// audit log go there and a rotation against the real SCIM server works; without it, a command
// that writes stops with one exit-2 line that says what to do (never "internal error: mkdir").

import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, PROVKEY_BIN, SecretScanner, secretFingerprint, type RunResult } from '../harness/cli.ts';
import { PROJECT_NODE, runCommand, SYSTEM_PATH } from '../harness/installed-cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const ADMIN_TOKEN = `scim-admin-${randomBytes(18).toString('base64url')}`;
const NOBODY = 65534;

describe('state dir apart from a read-only config', () => {
  const scanner = new SecretScanner();
  let dir: string;
  let configDir: string;
  let stateDir: string;
  let config: string;
  let server: ScimServer;

  /** provkey as uid/gid 65534 with no supplementary groups. */
  async function asNobody(args: string[], env: Record<string, string> = {}, reveal = false): Promise<RunResult> {
    const run = await runCommand('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', PROJECT_NODE, PROVKEY_BIN, ...args], { PATH: SYSTEM_PATH.join(':'), HOME: dir, SCIM_ADMIN_TOKEN: ADMIN_TOKEN, ...env }, { cwd: dir });
    return scanner.capture(run, reveal ? 'stderr' : undefined);
  }

  beforeAll(async () => {
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 50 });
    scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
    dir = mkdtempSync(path.join(tmpdir(), 'provkey-state-'));
    chmodSync(dir, 0o755);
    configDir = path.join(dir, 'config');
    stateDir = path.join(dir, 'state');
    config = path.join(configDir, 'provkey.yaml');
    mkdirSync(configDir);
    writeFileSync(
      config,
      ['keys:', '  app:', '    rotation: { interval: 30d, grace: 1h }', '    target:', '      type: scim', `      url: ${JSON.stringify(server.url)}`, '      propagationTimeout: 5s',
        `      applier: { type: http, url: ${JSON.stringify(server.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }`, ''].join('\n'),
      { mode: 0o444 },
    );
    chmodSync(configDir, 0o555);
    mkdirSync(stateDir);
    chownSync(stateDir, NOBODY, NOBODY);
  });

  afterAll(async () => {
    await server?.stop();
    for (const file of ['audit.jsonl', 'store.enc']) if (dir && existsSync(path.join(stateDir, file))) scanner.record(file, readFileSync(path.join(stateDir, file), 'utf8'));
    if (dir) {
      chmodSync(configDir, 0o755);
      rmSync(dir, { recursive: true, force: true });
    }
    scanner.assertClean();
  });

  it('the test user really cannot write to the config directory (else this file proves nothing)', async () => {
    const probe = await runCommand('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'touch', path.join(configDir, 'probe')], { PATH: SYSTEM_PATH.join(':') });
    expect(probe.code, describeRun(probe)).not.toBe(0);
    expect(existsSync(path.join(configDir, 'probe'))).toBe(false);
  });

  it('without a state dir, a writing command stops with one exit-2 line naming the fix', async () => {
    const result = await asNobody(['--config', config, 'add', 'app']);
    expect(result.code, describeRun(result)).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines, describeRun(result)).toHaveLength(1);
    expect(lines[0]).toContain(path.join(configDir, '.provkey'));
    expect(lines[0]).toContain('PROVKEY_STATE_DIR');
    expect(lines[0]).not.toContain('internal error');
    // A state dir that cannot be created either: the same kind of answer, in JSON too.
    const json = await asNobody(['--config', config, '--json', 'rotate', '--due'], { PROVKEY_STATE_DIR: path.join(configDir, 'state') });
    expect(json.code, describeRun(json)).toBe(2);
    expect(JSON.parse(json.stderr).error.code).toBe('config.state_dir');
    expect(readdirSync(configDir)).toEqual(['provkey.yaml']);
  });

  it('a read-only command still works with the default state dir unwritable', async () => {
    const result = await asNobody(['--config', config, 'status', '--json']);
    expect(result.code, describeRun(result)).toBe(0);
    expect(JSON.parse(result.stdout).keys[0]).toMatchObject({ name: 'app', current: null });
  });

  it('with PROVKEY_STATE_DIR / --state-dir: add, rotate, status, audit verify; state written only there', async () => {
    const env = { PROVKEY_STATE_DIR: stateDir };
    const added = await asNobody(['--config', config, 'add', 'app'], env);
    expect(added.code, describeRun(added)).toBe(0);
    const rotated = await asNobody(['--config', config, 'rotate', 'app'], env);
    expect(rotated.code, describeRun(rotated)).toBe(0);
    const revealed = await asNobody(['--config', config, '--state-dir', stateDir, 'get', 'app', '--reveal'], {}, true);
    expect(revealed.code, describeRun(revealed)).toBe(0);
    const current = scanner.addSecret(revealed.stdout.trim(), 'app current');
    expect(await bearerStatus(server.url, current)).toBe(200);

    const status = await asNobody(['--config', config, '--state-dir', stateDir, 'status', '--json']);
    expect(status.code, describeRun(status)).toBe(0);
    expect(JSON.parse(status.stdout).keys[0].current.fingerprint).toBe(secretFingerprint(current));
    const verified = await asNobody(['--config', config, 'audit', 'verify'], env);
    expect(verified.code, describeRun(verified)).toBe(0);

    expect(readdirSync(stateDir).filter((f) => !f.startsWith('.')).sort()).toEqual(['audit.jsonl', 'store.enc', 'store.key']);
    expect(statSync(path.join(stateDir, 'store.key')).mode & 0o777).toBe(0o600);
    expect(readdirSync(configDir)).toEqual(['provkey.yaml']);
  });

  it('init --state-dir writes a config without state paths and the store key into the state dir', async () => {
    const initDir = mkdtempSync(path.join(dir, 'init-'));
    const initState = path.join(initDir, 'var', 'provkey');
    const result = scanner.capture(
      await runCommand(PROJECT_NODE, [PROVKEY_BIN, '--config', path.join(initDir, 'provkey.yaml'), '--state-dir', initState, 'init', '--key', 'app', '--url', server.url], { PATH: SYSTEM_PATH.join(':') }, { cwd: initDir }),
    );
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.stdout).toContain(path.join(initState, 'store.key'));
    expect(statSync(path.join(initState, 'store.key')).mode & 0o777).toBe(0o600);
    expect(existsSync(path.join(initDir, '.provkey'))).toBe(false);
    expect(readFileSync(path.join(initDir, 'provkey.yaml'), 'utf8')).not.toMatch(/^\s*(path|keyFile|audit):/m);
  });
});
