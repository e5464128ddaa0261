import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProvkeyCli, describeRun, type RunResult } from '../harness/cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

// Item 11 of issue 7: an exec hook that echoes the token base64-encoded and its first 24
// characters got both printed and written into the audit log's rollback reasons.
const HOOK = fileURLToPath(new URL('../harness/hooks/echo-derived.mjs', import.meta.url));
let dir: string;
let server: ScimServer;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-derived-'));
  server = await startScimServer({});
});
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Every form of `token` the hook printed, and a few more a scanner must not find. */
function derivedForms(token: string): string[] {
  const b64 = Buffer.from(token).toString('base64');
  return [token, b64, b64.replace(/=+$/, '').slice(0, 40), token.slice(0, 24), token.slice(0, 12), Buffer.from(token).toString('hex').slice(0, 40)];
}

describe('derived forms of a secret are redacted in output and audit', () => {
  it('an exec hook echoing the token base64-encoded and its 24-character prefix', async () => {
    const seen = path.join(dir, 'seen.txt');
    writeFileSync(
      path.join(dir, 'provkey.yaml'),
      [
        'keys:',
        '  app:',
        '    target:',
        '      type: scim',
        `      url: ${server.url}`,
        `      applier: { type: exec, command: ${JSON.stringify([process.execPath, HOOK, seen])} }`,
      ].join('\n'),
    );
    const cli = new ProvkeyCli({ cwd: dir, config: path.join(dir, 'provkey.yaml') });
    const runs: RunResult[] = [await cli.run(['add', 'app']), await cli.run(['--json', 'add', 'app']), await cli.run(['--verbose', 'add', 'app'])];
    for (const run of runs) expect(run.code, describeRun(run)).not.toBe(0);
    // The hook really ran and really saw tokens: the assertions below are about real echoes.
    const tokens = readFileSync(seen, 'utf8').trim().split('\n');
    expect(tokens.length).toBeGreaterThanOrEqual(3);
    for (const token of tokens) cli.scanner.addSecret(token, 'generated token');
    // The failure is reported, with the hook's words around the redacted token.
    expect(runs[0]!.stdout + runs[0]!.stderr).toMatch(/rejected \[sha256:[0-9a-f]{12}\]/);
    const audit = path.join(dir, '.provkey/audit.jsonl');
    expect(existsSync(audit)).toBe(true);
    const texts = [...runs.flatMap((r) => [r.stdout, r.stderr]), readFileSync(audit, 'utf8')];
    for (const token of tokens) {
      for (const form of derivedForms(token)) {
        for (const text of texts) expect(text.includes(form), `a derived form of a token appears in output or audit`).toBe(false);
      }
    }
    cli.scanner.record('audit log', readFileSync(audit, 'utf8'));
    cli.scanner.assertClean();
  });
});
