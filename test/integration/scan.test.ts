// `provkey scan`: leaked tokens found in files and in git history, named by key and version
// from the real file store's metadata, against a real SCIM server (the versions come from
// real add/rotate/revoke/drill runs). Every provkey output is scanned for every secret.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun, runProvkey, secretFingerprint } from '../harness/cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';
import { ADMIN_TOKEN, ObserveWorkspace } from './observe-workspace.ts';

interface ScanJson {
  schemaVersion: number;
  ok: boolean;
  exitCode: number;
  scanned: { files: number; bytes: number; commits: number };
  findings: { path: string; line: number; column: number; commit?: string; fingerprint: string; key: string | null; versionId: string | null; label: string; live: boolean; contain: string | null }[];
  skipped: { path: string; reason: string }[];
}

function git(cwd: string, ...args: string[]): string {
  const run = spawnSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.test', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.test', GIT_CONFIG_GLOBAL: '/dev/null' },
  });
  expect(run.status, run.stderr).toBe(0);
  return run.stdout.trim();
}

/** A token of the right shape whose checksum is wrong: its last character changed. */
function lookAlike(token: string): string {
  const last = token.at(-1)!;
  return token.slice(0, -1) + (last === 'a' ? 'b' : 'a');
}

describe('provkey scan', () => {
  let server: ScimServer;
  let w: ObserveWorkspace;
  let tree: string;
  let outside: string;
  const v: Record<'revoked' | 'previous' | 'current' | 'stray', string> = { revoked: '', previous: '', current: '', stray: '' };

  beforeAll(async () => {
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 0 });
    w = new ObserveWorkspace(server).writeConfig({ app: { grace: '1h', prefix: 'acme' } });
    await w.ok(['add', 'app']);
    v.revoked = await w.reveal('app', 'app v1');
    await w.ok(['rotate', 'app']);
    await w.ok(['revoke', 'app', '--previous', '--yes']);
    v.previous = await w.reveal('app', 'app v2');
    await w.ok(['rotate', 'app']);
    v.current = await w.reveal('app', 'app v3');
    // A valid acme token that no store knows.
    // generate prints the value on stdout by design: only its stderr is scanned.
    const generated = w.cli.scanner.capture(await runProvkey(['generate', '--prefix', 'acme']), 'stderr');
    v.stray = w.cli.scanner.addSecret(generated.stdout.trim(), 'stray token');
    expect(v.stray).toMatch(/^acme_/);

    tree = mkdtempSync(join(tmpdir(), 'provkey-scan-tree-'));
    outside = mkdtempSync(join(tmpdir(), 'provkey-scan-outside-'));
    mkdirSync(join(tree, 'deploy', 'env'), { recursive: true });
    writeFileSync(join(tree, 'deploy', 'env', 'prod.env'), `# app\nSCIM_URL=https://x\nSCIM_TOKEN=${v.current}\n`);
    writeFileSync(join(tree, 'notes.md'), `old one: "${v.previous}" and\nthe first: ${v.revoked}; someone else's: ${v.stray}\n`);
    // Same shape, bad checksum; extended on the right; another prefix: none is a finding.
    writeFileSync(join(tree, 'lookalikes.txt'), `${lookAlike(v.current)}\n${v.current}x\npk${v.current.slice(4)}\n`);
    writeFileSync(join(tree, 'blob.bin'), Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0]), Buffer.from(v.current)]));
    writeFileSync(join(tree, 'huge.log'), `${'x'.repeat(70 * 1024)}\n${v.current}\n`);
    writeFileSync(join(outside, 'secret.txt'), v.current);
    symlinkSync(outside, join(tree, 'escape'));
    symlinkSync(join(outside, 'secret.txt'), join(tree, 'link.txt'));
  });

  afterAll(async () => {
    await w?.scanAndRemove();
    for (const dir of [tree, outside]) if (dir) rmSync(dir, { recursive: true, force: true });
    await server?.stop();
  });

  it('names each leaked token by key, version and label, with file, line and column; exit 3 for a live one', async () => {
    const { result, data } = await w.json<ScanJson>(['scan', tree, '--max-file-size', '64k']);
    expect(result.code, describeRun(result)).toBe(3);
    expect(data.schemaVersion).toBe(1);
    const found = data.findings.map((f) => ({ file: f.path.slice(tree.length + 1), line: f.line, column: f.column, fp: f.fingerprint, key: f.key, label: f.label, live: f.live }));
    expect(found).toEqual([
      { file: 'deploy/env/prod.env', line: 3, column: 12, fp: secretFingerprint(v.current), key: 'app', label: 'current', live: true },
      { file: 'notes.md', line: 1, column: 11, fp: secretFingerprint(v.previous), key: 'app', label: 'previous', live: true },
      { file: 'notes.md', line: 2, column: 12, fp: secretFingerprint(v.revoked), key: 'app', label: 'revoked', live: false },
      { file: 'notes.md', line: 2, column: 12 + v.revoked.length + 18, fp: secretFingerprint(v.stray), key: null, label: 'unknown', live: false },
    ]);
    expect(data.findings.map((f) => f.versionId)).toEqual(['3', '2', '1', null]);
    expect(data.skipped.map((s) => [s.path.slice(tree.length + 1), s.reason])).toEqual([
      ['blob.bin', 'binary'],
      ['escape', 'symlink'],
      ['huge.log', 'too_large'],
      ['link.txt', 'symlink'],
    ]);
    expect(data.scanned.files).toBe(3);
    expect(data.findings[0]!.contain).toBe(`provkey --config ${w.config} drill compromise app`);
    expect(data.findings[1]!.contain).toBe(`provkey --config ${w.config} revoke app --fingerprint ${secretFingerprint(v.previous)}`);
    expect(data.findings[2]!.contain).toBeNull();
  });

  it('human output prints fingerprints and the command that contains a live key, never a value', async () => {
    const result = await w.run(['scan', join(tree, 'deploy')]);
    expect(result.code, describeRun(result)).toBe(3);
    expect(result.stdout).toContain(`prod.env:3:12  ${secretFingerprint(v.current)}  app current (version 3)`);
    expect(result.stdout).toContain(`contain it: provkey --config ${w.config} drill compromise app`);
    expect(result.stdout).toContain('1 LIVE token(s) found');
  });

  it('scan --git finds a token that was committed and later deleted, with its commit', async () => {
    const repo = join(tree, 'repo');
    mkdirSync(repo);
    git(repo, 'init', '-q', '-b', 'main');
    writeFileSync(join(repo, 'README'), 'hello\n');
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'first');
    // CRLF, a bare CR inside a line and a body line that looks like a header: line 4 all the same.
    writeFileSync(join(repo, 'config.yml'), `a: 1\r\nold\rmac\r\n++ b: 2\r\ntoken: ${v.current}\r\n`);
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'oops');
    const leaked = git(repo, 'rev-parse', 'HEAD');
    git(repo, 'rm', '-q', 'config.yml');
    git(repo, 'commit', '-q', '-m', 'remove the token');
    git(repo, 'checkout', '-q', '-b', 'side');
    writeFileSync(join(repo, 'side.txt'), `${lookAlike(v.previous)} ${v.revoked}\n`);
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'side');

    const { result, data } = await w.json<ScanJson>(['scan', '--git', repo]);
    expect(result.code, describeRun(result)).toBe(3);
    expect(data.scanned.commits).toBe(4);
    expect(data.findings.map((f) => [f.commit, f.path, f.line, f.label])).toEqual([
      [leaked, 'config.yml', 4, 'current'],
      [git(repo, 'rev-parse', 'side'), 'side.txt', 1, 'revoked'],
    ]);
    // A line over the bound is dropped (bounded memory), the lines after it still counted right.
    writeFileSync(join(repo, 'min.js'), `${'x'.repeat(300_000)} ${v.current}\nkey=${v.current}\n`);
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'minified');
    const bounded = await w.json<ScanJson>(['scan', '--git', repo, '--max-file-size', '1k']);
    expect(bounded.data.findings.filter((f) => f.path === 'min.js').map((f) => [f.line, f.column])).toEqual([[2, 5]]);
    rmSync(repo, { recursive: true, force: true });

    // A symlink named on the command line is followed (the walk below it follows none).
    const named = await w.json<ScanJson>(['scan', join(tree, 'escape')]);
    expect(named.result.code, describeRun(named.result)).toBe(3);
    expect(named.data.findings.map((f) => [f.path, f.label])).toEqual([[join(tree, 'escape', 'secret.txt'), 'current']]);

    const notRepo = await w.run(['scan', '--git', outside]);
    expect(notRepo.code, describeRun(notRepo)).toBe(2);
    expect(notRepo.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('after the printed containment commands run, the same leaks exit 1 (found, none live)', async () => {
    const { data } = await w.json<ScanJson>(['scan', tree]);
    // huge.log repeats the current token (no size bound this time): one command per version.
    const commands = [...new Set(data.findings.flatMap((f) => (f.contain ? [f.contain] : [])))];
    expect(commands).toHaveLength(2);
    // The revoke of the previous version first: the drill afterwards retires every older version too.
    for (const command of commands.reverse()) {
      const argv = command.split(' ').slice(1);
      const ran = await w.run([...argv.slice(2), '--yes'], { config: argv[1]! });
      expect(ran.code, describeRun(ran)).toBe(0);
    }
    const after = await w.json<ScanJson>(['scan', tree]);
    expect(after.result.code, describeRun(after.result)).toBe(1);
    expect(after.data.findings.map((f) => f.label)).toEqual(['revoked', 'revoked', 'revoked', 'revoked', 'unknown']);
    await w.reveal('app', 'app after the drill');
  });

  it('a key its store still holds but the config no longer names is still identified, and still live', async () => {
    w.writeConfig({ app: { grace: '1h', prefix: 'acme' }, forgotten: { prefix: 'acme' } });
    await w.ok(['add', 'forgotten']);
    const value = await w.reveal('forgotten', 'forgotten v1');
    w.writeConfig({ app: { grace: '1h', prefix: 'acme' } });
    const dir = mkdtempSync(join(tmpdir(), 'provkey-scan-forgotten-'));
    try {
      writeFileSync(join(dir, 'backup.sql'), `INSERT INTO creds VALUES ('${value}');\n`);
      const { result, data } = await w.json<ScanJson & { findings: { inConfig: boolean; store: string | null }[] }>(['scan', dir]);
      expect(result.code, describeRun(result)).toBe(3);
      expect(data.findings.map((f) => [f.key, f.store, f.inConfig, f.label, f.live, f.contain])).toEqual([['forgotten', 'default', false, 'current', true, null]]);
      const human = await w.run(['scan', dir]);
      expect(human.stdout).toContain('forgotten current (version 1) in store "default", but not in the config');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a tree without tokens exits 0 and reads no store; a token whose store is unreachable exits 5; no path or nothing scanned exits 2', async () => {
    const clean = mkdtempSync(join(tmpdir(), 'provkey-scan-clean-'));
    try {
      writeFileSync(join(clean, 'a.txt'), 'acme_ nothing here acme_short\n');
      // Its only store is a Vault nobody listens for: reading it would fail the run.
      const unreachable = join(clean, 'unreachable.yaml');
      writeFileSync(
        unreachable,
        'stores:\n  v: { type: vault, address: "http://127.0.0.1:9", timeout: 2s }\nkeys:\n  app:\n    store: v\n    format: { type: token, prefix: acme }\n' +
          '    target: { type: scim, url: "http://127.0.0.1:9/scim/v2", applier: { type: store } }\n',
      );
      const env = { VAULT_TOKEN: 'not-a-real-token' };
      const noStore = await w.run(['scan', join(clean, 'a.txt')], { config: unreachable, env });
      expect(noStore.code, describeRun(noStore)).toBe(0);
      expect(noStore.stdout).toContain('no provkey token found');
      writeFileSync(join(clean, 'b.txt'), `${v.stray}\n`);
      const cannotTell = await w.run(['scan', join(clean, 'b.txt')], { config: unreachable, env });
      expect(cannotTell.code, describeRun(cannotTell)).toBe(5);
      expect(cannotTell.stderr).toContain('store "v" could not be read');

      const missing = await w.run(['scan', join(clean, 'nope')]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/^provkey: scan: .*nope: no such file or directory\n$/);
      const badPrefix = await w.run(['scan', clean, '--prefix', 'pk_']);
      expect(badPrefix.code).toBe(2);
      expect(badPrefix.stderr).toMatch(/^provkey: --prefix: "pk_" must be 1-16 letters/);
      const badSize = await w.run(['scan', clean, '--max-file-size', '10 MB']);
      expect(badSize.code).toBe(2);
      expect(badSize.stderr).toMatch(/^provkey: --max-file-size: "10 MB" is not a size/);
      const empty = mkdtempSync(join(clean, 'empty-'));
      expect((await w.run(['scan', empty])).code).toBe(2);
    } finally {
      rmSync(clean, { recursive: true, force: true });
    }
  });
});
