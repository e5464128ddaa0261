import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ProvkeyCli, bearerStatus, describeRun } from '../harness/cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

// Item 7 of issue 7, end to end: an older, authentic store.enc copied back (a value revoked two
// rotations ago would be current again) is refused by every command that opens the store, and
// audit verify says why; the anchor in a second place finds a log and store put back together.
let dir: string;
let anchorDir: string;
let server: ScimServer;
let cli: ProvkeyCli;
const adminToken = `admin-${Math.random().toString(36).slice(2)}-${Date.now()}`;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-replay-'));
  anchorDir = mkdtempSync(path.join(tmpdir(), 'provkey-replay-anchor-'));
  server = await startScimServer({ adminToken });
  writeFileSync(path.join(dir, 'admin.token'), adminToken, { mode: 0o600 });
  writeFileSync(
    path.join(dir, 'provkey.yaml'),
    [
      'audit:',
      `  anchor: ${path.join(anchorDir, 'audit-head.json')}`,
      'keys:',
      '  app:',
      '    rotation: { interval: 30d, grace: 0 }',
      '    target:',
      '      type: scim',
      `      url: ${server.url}`,
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
  rmSync(anchorDir, { recursive: true, force: true });
});

const storeFile = () => path.join(dir, '.provkey/store.enc');
const auditFile = () => path.join(dir, '.provkey/audit.jsonl');

describe('a put-back store is refused', () => {
  it('an older store.enc copied back: status, rotate, get and audit verify all exit 3; the revoked value stays revoked', async () => {
    expect((await cli.run(['add', 'app'])).code).toBe(0);
    const first = await cli.reveal('app', 'first value');
    const oldStore = readFileSync(storeFile());
    const oldLog = readFileSync(auditFile());
    for (let i = 0; i < 2; i++) {
      const rotated = await cli.run(['rotate', 'app']);
      expect(rotated.code, describeRun(rotated)).toBe(0);
    }
    expect(await bearerStatus(server.url, first)).toBe(401);
    const verified = await cli.run(['audit', 'verify']);
    expect(verified.code, describeRun(verified)).toBe(0);

    const newStore = readFileSync(storeFile());
    const newLog = readFileSync(auditFile());
    writeFileSync(storeFile(), oldStore);
    for (const args of [['status'], ['rotate', 'app'], ['get', 'app', '--reveal']]) {
      const run = await cli.run(args);
      expect(run.code, describeRun(run)).toBe(3);
      expect(run.stderr).toMatch(/older copy of the store was put back \(rollback\)/);
    }
    const audit = await cli.run(['audit', 'verify']);
    expect(audit.code, describeRun(audit)).toBe(3);
    expect(audit.stderr).toMatch(/rollback/);
    expect(await bearerStatus(server.url, first)).toBe(401);

    // Both files put back together (a consistent older pair): only the anchor can tell.
    writeFileSync(auditFile(), oldLog);
    const both = await cli.run(['status']);
    expect(both.code, describeRun(both)).toBe(3);
    expect(both.stderr).toMatch(/anchor .* records line \d+: lines were cut from the end of the log, or an older log was put back/);

    // The newest files back: everything agrees again.
    writeFileSync(storeFile(), newStore);
    writeFileSync(auditFile(), newLog);
    const restored = await cli.run(['status']);
    expect(restored.code, describeRun(restored)).toBe(0);
  });

  it('a backup restored on purpose is accepted only by a person (audit accept-store), and audited', async () => {
    const backup = readFileSync(storeFile());
    expect((await cli.run(['rotate', 'app'])).code).toBe(0);
    expect((await cli.run(['rotate', 'app'])).code).toBe(0);
    writeFileSync(storeFile(), backup);
    expect((await cli.run(['status'])).code).toBe(3);
    const unconfirmed = await cli.run(['audit', 'accept-store', 'default']);
    expect(unconfirmed.code, describeRun(unconfirmed)).toBe(2);
    const accepted = await cli.run(['audit', 'accept-store', 'default', '--yes']);
    expect(accepted.code, describeRun(accepted)).toBe(0);
    expect(accepted.stdout).toMatch(/accepted store "default" at generation \d+ \(the log said \d+\)/);
    const lines = readFileSync(auditFile(), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { event: string; mac?: string });
    expect(lines.at(-1)).toMatchObject({ event: 'store.accepted', mac: expect.any(String) });
    for (const args of [['status'], ['audit', 'verify'], ['rotate', 'app']]) {
      const run = await cli.run(args);
      expect(run.code, describeRun(run)).toBe(0);
    }
  });
});
