// The `store` consumer (docs/consumers.md): the consumer reads the store itself, and provkey
// waits for its readiness probe. Here the consumer is a small agent that, like External
// Secrets, reads the key's newest enabled version from the embedded store each time it is asked,
// and its probe URL reports the fingerprint it holds. A frozen agent (one that stopped syncing)
// never reports the new fingerprint: the rotation is rolled back and nothing changes.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, ProvkeyCli, readStoredVersions, secretFingerprint } from '../harness/cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const ADMIN_TOKEN = `scim-admin-${randomBytes(18).toString('base64url')}`;

describe('store consumer with a readiness probe', () => {
  let scim: ScimServer;
  let agent: http.Server;
  let agentUrl = '';
  let dir: string;
  /** While true the agent stops syncing: it keeps reporting what it last held. */
  let frozen = false;
  let held: string | undefined;

  beforeAll(async () => {
    scim = await startScimServer({ adminToken: ADMIN_TOKEN });
    dir = mkdtempSync(join(tmpdir(), 'provkey-store-consumer-'));
    agent = http.createServer((_req, res) => {
      void (async () => {
        if (!frozen) {
          const versions = (await readStoredVersions(dir, 'app')).filter((v) => v.value !== null && ['current', 'pending'].includes(v.label));
          held = versions.at(-1)?.fingerprint ?? held;
        }
        res.writeHead(200, { 'content-type': 'text/plain' }).end(held ?? 'nothing yet');
      })();
    });
    await new Promise<void>((resolve) => agent.listen(0, '127.0.0.1', () => resolve()));
    agentUrl = `http://127.0.0.1:${(agent.address() as { port: number }).port}/ready`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => agent?.close(() => resolve()));
    await scim?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('rotate waits for the agent to hold the new fingerprint; a frozen agent rolls the rotation back', async () => {
    writeFileSync(
      join(dir, 'provkey.yaml'),
      [
        'keys:',
        '  app:',
        '    target:',
        '      type: scim',
        `      url: ${JSON.stringify(scim.url)}`,
        `      applier: { type: http, url: ${JSON.stringify(scim.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }`,
        '    consumers:',
        `      - { type: store, name: external-secrets, probe: { url: ${JSON.stringify(agentUrl)} }, timeout: 2s }`,
        '',
      ].join('\n'),
    );
    const cli = new ProvkeyCli({ cwd: dir, config: join(dir, 'provkey.yaml'), env: { SCIM_ADMIN_TOKEN: ADMIN_TOKEN } });
    cli.scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
    try {
      for (const args of [['add', 'app'], ['rotate', 'app']]) {
        const run = await cli.run(args);
        expect(run.code, describeRun(run)).toBe(0);
        const current = await cli.reveal('app');
        expect(held).toBe(secretFingerprint(current));
      }
      const { data } = await cli.json<{ keys: { consumers: { name: string; lastProof: { ok: boolean; fingerprint: string } }[] }[] }>(['status']);
      const v2 = await cli.reveal('app', 'v2');
      expect(data.keys[0]!.consumers[0]).toMatchObject({ name: 'external-secrets', lastProof: { ok: true, fingerprint: secretFingerprint(v2) } });

      frozen = true;
      const accepted = await scim.acceptedDigests();
      const failed = await cli.run(['rotate', 'app']);
      expect(failed.code, describeRun(failed)).toBe(1);
      expect(failed.stdout + failed.stderr).toContain('does not report');
      expect(await cli.reveal('app', 'still v2')).toBe(v2);
      expect(await bearerStatus(scim.url, v2)).toBe(200);
      expect((await scim.acceptedDigests()).sort()).toEqual([...accepted].sort());
      frozen = false;
    } finally {
      for (const v of await readStoredVersions(dir, 'app')) if (v.value !== null) cli.scanner.addSecret(v.value, `app v${v.id}`);
      for (const file of [join(dir, '.provkey', 'audit.jsonl')]) if (existsSync(file)) cli.scanner.record(file, readFileSync(file, 'utf8'));
      cli.scanner.assertClean();
    }
  });
});
