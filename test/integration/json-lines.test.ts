// --json output: one line per document when stdout is not a terminal (JSON Lines, so a cron
// log or a pipe gets one parseable line per run), pretty on a terminal (a real pty from
// util-linux `script`), and every document, errors included, carries schemaVersion.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun, PROVKEY_BIN, ProvkeyCli, runProvkey } from '../harness/cli.ts';

describe('--json documents', () => {
  let dir: string;
  let cli: ProvkeyCli;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'provkey-jsonl-'));
    writeFileSync(join(dir, 'provkey.yaml'), 'keys:\n  app:\n    target: { type: scim, url: "http://127.0.0.1:9/scim/v2", applier: { type: store } }\n');
    writeFileSync(join(dir, 'notes.txt'), 'nothing to see\n');
    cli = new ProvkeyCli({ cwd: dir, config: join(dir, 'provkey.yaml') });
  });
  afterAll(() => {
    cli?.scanner.assertClean();
    rmSync(dir, { recursive: true, force: true });
  });

  function oneDocument(text: string): Record<string, unknown> {
    expect(text.endsWith('\n')).toBe(true);
    expect(text.slice(0, -1)).not.toContain('\n');
    const doc = JSON.parse(text) as Record<string, unknown>;
    expect(doc.schemaVersion).toBe(1);
    return doc;
  }

  it('not on a terminal: each command prints exactly one line of JSON with schemaVersion', async () => {
    const status = await cli.run(['--json', 'status']);
    expect(status.code, describeRun(status)).toBe(0);
    expect(oneDocument(status.stdout).keys).toHaveLength(1);
    const scan = await cli.run(['--json', 'scan', 'notes.txt']);
    expect(scan.code, describeRun(scan)).toBe(0);
    expect(oneDocument(scan.stdout).findings).toEqual([]);
    const usage = await cli.run(['--json', 'rotate']);
    expect(usage.code).toBe(2);
    expect(usage.stdout).toBe('');
    expect(oneDocument(usage.stderr).error).toMatchObject({ code: 'usage.rotate', exitCode: 2 });
    const generated = cli.scanner.capture(await runProvkey(['--json', 'generate'], { cwd: dir }), 'stderr');
    const doc = oneDocument(generated.stdout);
    cli.scanner.addSecret(String(doc.value), 'generated');
    expect(doc.fingerprint).toMatch(/^sha256:/);
  });

  it('on a terminal: the same document, pretty', () => {
    const run = spawnSync('script', ['-qec', `${JSON.stringify(process.execPath)} ${JSON.stringify(PROVKEY_BIN)} --config provkey.yaml --json status`, '/dev/null'], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
    });
    expect(run.status, run.stderr).toBe(0);
    cli.scanner.record('stdout of provkey --json status on a pty', run.stdout);
    const text = run.stdout.replaceAll('\r\n', '\n');
    expect(text.split('\n').length).toBeGreaterThan(5);
    expect(text).toMatch(/^\{\n {2}"schemaVersion": 1,\n/);
    expect((JSON.parse(text) as { keys: unknown[] }).keys).toHaveLength(1);
  });
});
