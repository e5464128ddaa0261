import { readFileSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ProvkeyCli, describeRun } from '../harness/cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

// The edges a cron job or a careless admin hits: usage errors, a named config that is not
// there, an audit log cut short or deleted, a change that propagates just before the deadline.
let dir: string;
let server: ScimServer;
let cli: ProvkeyCli;
const adminToken = `admin-${Math.random().toString(36).slice(2)}-${Date.now()}`;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-edges-'));
  server = await startScimServer({ adminToken, propagationMs: 1500 });
  writeFileSync(path.join(dir, 'admin.token'), adminToken);
  writeFileSync(
    path.join(dir, 'provkey.yaml'),
    [
      'keys:',
      '  app:',
      '    rotation: { interval: 30d, grace: 1h }',
      '    target:',
      '      type: scim',
      `      url: ${server.url}`,
      '      propagationTimeout: 2s',
      `      applier: { type: http, url: ${server.adminUrl}, authRef: "file:admin.token" }`,
    ].join('\n'),
  );
  cli = new ProvkeyCli({ cwd: dir, config: path.join(dir, 'provkey.yaml') });
  cli.scanner.addSecret(adminToken, 'SCIM admin token');
});
afterEach(() => cli.scanner.assertClean());
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('usage errors are exit 2 everywhere, in the shape asked for', () => {
  it('an unknown option on a subcommand', async () => {
    const run = await cli.run(['status', '--bogus']);
    expect(run.code, describeRun(run)).toBe(2);
    expect(run.stderr).toContain("unknown option '--bogus'");
  });
  it('with --json the error is JSON on stderr', async () => {
    const run = await cli.run(['--json', 'generate', '--format', 'pin']);
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stderr)).toMatchObject({ error: { code: 'usage', exitCode: 2 } });
    expect(run.stdout).toBe('');
  });
  it('a config named by --config or PROVKEY_CONFIG that does not exist is an error, not an empty list', async () => {
    const named = await cli.run(['status'], { config: path.join(dir, 'nope.yaml') });
    expect(named.code).toBe(2);
    expect(named.stderr).toMatch(/nope\.yaml does not exist/);
    const viaEnv = await cli.run(['status', '--json'], { config: undefined, env: { PROVKEY_CONFIG: path.join(dir, 'nope.yaml') } });
    expect(viaEnv.code).toBe(2);
  });
});

describe('propagation', () => {
  it('a token that arrives 1.5 s into a 2 s propagation timeout is waited for, not rolled back', async () => {
    const added = await cli.run(['add', 'app']);
    expect(added.code, describeRun(added)).toBe(0);
    expect(added.stdout).toMatch(/accepted after \d+ attempt/);
  });
});

describe('revoke one version by fingerprint', () => {
  it('--fingerprint (bare hex too) revokes exactly that version and is not taken for --version', async () => {
    const before = await cli.json<{ versions: { fingerprint: string; label: string }[] }>(['history', 'app']);
    expect((await cli.run(['rotate', 'app'])).code).toBe(0);
    const previous = (await cli.json<{ versions: { fingerprint: string; label: string }[] }>(['history', 'app'])).data.versions.find((v) => v.label === 'previous')!;
    expect(before.data.versions.some((v) => v.fingerprint === previous.fingerprint)).toBe(true);
    const run = await cli.run(['revoke', 'app', '--fingerprint', previous.fingerprint.replace('sha256:', ''), '--yes']);
    expect(run.code, describeRun(run)).toBe(0);
    expect(run.stdout).toContain(`revoked ${previous.fingerprint}`);
    const after = await cli.json<{ versions: { fingerprint: string; label: string }[] }>(['history', 'app']);
    expect(after.data.versions.find((v) => v.fingerprint === previous.fingerprint)!.label).toBe('revoked');
  });
});

describe('audit verify finds a log cut short or deleted', () => {
  it('detects removed trailing lines and a deleted log, by comparing with the store', async () => {
    expect((await cli.run(['rotate', 'app'])).code).toBe(0);
    expect((await cli.run(['audit', 'verify'])).code).toBe(0);
    const log = path.join(dir, '.provkey/audit.jsonl');
    const original = readFileSync(log, 'utf8');
    const lines = original.trimEnd().split('\n');
    writeFileSync(log, `${lines.slice(0, -1).join('\n')}\n`);
    const cut = await cli.run(['audit', 'verify']);
    expect(cut.code, describeRun(cut)).toBe(3);
    expect(cut.stderr).toMatch(/lines are missing from the end of the log/);
    unlinkSync(log);
    const gone = await cli.run(['audit', 'verify']);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toMatch(/has no record of its writes: the log was deleted/);
    writeFileSync(log, original);
    expect((await cli.run(['audit', 'verify'])).code).toBe(0);
  });

  it('a damaged last line stops every change before it happens (exit 3)', async () => {
    const log = path.join(dir, '.provkey/audit.jsonl');
    const original = readFileSync(log, 'utf8');
    const before = readFileSync(path.join(dir, '.provkey/store.enc'));
    writeFileSync(log, `${original}{"seq":99,"at":"2026`);
    const run = await cli.run(['rotate', 'app']);
    expect(run.code, describeRun(run)).toBe(3);
    expect(run.stderr).toMatch(/audit log .* last line is damaged, so nothing was changed/);
    expect(readFileSync(path.join(dir, '.provkey/store.enc')).equals(before)).toBe(true);
    writeFileSync(log, original);
  });
});
