import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ProvkeyCli, bearerStatus, describeRun, eventually } from '../harness/cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

// The `store` applier: the app reads the provkey store itself (here: the SCIM test server's
// --accept-command runs test/harness/scim/store-reader.ts against the same file store), and
// provkey only waits until the app has picked a change up.
const storeReader = fileURLToPath(new URL('../harness/scim/store-reader.ts', import.meta.url));

let dir: string;
let server: ScimServer;
let cli: ProvkeyCli;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-store-applier-'));
  const config = path.join(dir, 'provkey.yaml');
  server = await startScimServer({
    reloadMs: 200,
    acceptCommand: `'${process.execPath}' '${storeReader}' --config '${config}' --key app`,
  });
  writeFileSync(
    config,
    [
      'keys:',
      '  app:',
      '    rotation: { interval: 30d, grace: 1h }',
      '    target:',
      '      type: scim',
      `      url: ${server.url}`,
      '      applier: { type: store }',
      '      propagationTimeout: 20s',
    ].join('\n'),
  );
  cli = new ProvkeyCli({ cwd: dir, config });
});
afterEach(() => cli.scanner.assertClean());
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('store applier: the app reads the store', () => {
  it('add, rotate with overlap, revoke the previous version, drill: the app follows the store', async () => {
    const added = await cli.run(['add', 'app']);
    expect(added.code, describeRun(added)).toBe(0);
    const first = await cli.reveal('app', 'first');
    expect(await bearerStatus(server.url, first)).toBe(200);

    const rotated = await cli.run(['rotate', 'app']);
    expect(rotated.code, describeRun(rotated)).toBe(0);
    const second = await cli.reveal('app', 'second');
    expect(second).not.toBe(first);
    expect(await bearerStatus(server.url, second)).toBe(200);
    // Overlap: the previous version is still accepted during its grace period.
    expect(await bearerStatus(server.url, first)).toBe(200);

    const revoked = await cli.run(['revoke', 'app', '--previous', '--yes']);
    expect(revoked.code, describeRun(revoked)).toBe(0);
    expect(await eventually(() => bearerStatus(server.url, first), 401)).toBe(401);
    expect(await bearerStatus(server.url, second)).toBe(200);

    const drill = await cli.json<{ ok: boolean; timeToContainMs: number; newFingerprint: string }>(['drill', 'compromise', 'app', '--yes', '--rto', '60s']);
    expect(drill.result.code, describeRun(drill.result)).toBe(0);
    expect(drill.data.ok).toBe(true);
    const third = await cli.reveal('app', 'third');
    expect(await bearerStatus(server.url, third)).toBe(200);
    expect(await bearerStatus(server.url, second)).toBe(401);

    const status = await cli.json<{ keys: { name: string; current: { fingerprint: string } }[] }>(['status']);
    expect(status.data.keys[0]!.current.fingerprint).toBe(drill.data.newFingerprint);
    expect((await cli.run(['audit', 'verify'])).code).toBe(0);
  });
});
