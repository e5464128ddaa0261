// Vendor-issued keys expire on the issuer's schedule (Atlassian SCIM keys after a year,
// Snowflake's after six months): `import --expires-at` records the expiry with the version,
// `status` warns as it nears, and `rotate --due` (and its dry-run plan) rotates before it,
// here against the real SCIM server.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, ProvkeyCli } from '../harness/cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const ADMIN_TOKEN = `scim-admin-${randomBytes(18).toString('base64url')}`;
const HOUR = 3_600_000;

interface StatusKey {
  name: string;
  current: { fingerprint: string } | null;
  due: boolean;
  nextRotationAt: string | null;
  expiresAt: string | null;
  warnings: string[];
}

describe('import --expires-at', () => {
  let server: ScimServer;
  let dir: string;
  let cli: ProvkeyCli;

  beforeAll(async () => {
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 50 });
  });
  afterAll(async () => server?.stop());
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'provkey-expiry-'));
    writeFileSync(
      path.join(dir, 'provkey.yaml'),
      ['keys:', '  vendor:', '    rotation: { interval: 30d, grace: 1h }', '    target:', '      type: scim', `      url: ${JSON.stringify(server.url)}`, '      propagationTimeout: 5s',
        `      applier: { type: http, url: ${JSON.stringify(server.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }`, ''].join('\n'),
    );
    cli = new ProvkeyCli({ cwd: dir, config: path.join(dir, 'provkey.yaml'), env: { SCIM_ADMIN_TOKEN: ADMIN_TOKEN } });
    cli.scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    cli.scanner.assertClean();
  });

  /** A token the vendor issued: the SCIM server accepts it before provkey ever sees it. */
  async function vendorToken(): Promise<string> {
    const token = cli.scanner.addSecret(`vendor_${randomBytes(32).toString('base64url')}`, 'vendor-issued token');
    const response = await fetch(server.adminUrl, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ action: 'add', token }) });
    expect(response.status).toBe(204);
    return token;
  }

  async function status(): Promise<StatusKey> {
    const { result, data } = await cli.json<{ keys: StatusKey[] }>(['status']);
    expect(result.code, describeRun(result)).toBe(0);
    return data.keys[0]!;
  }

  it('an expiry ten days out: stored with the version, status warns, not yet due', async () => {
    const expiresAt = new Date(Date.now() + 240 * HOUR).toISOString();
    const imported = await cli.run(['import', 'vendor', '--expires-at', expiresAt], { input: await vendorToken() });
    expect(imported.code, describeRun(imported)).toBe(0);
    const s = await status();
    expect(s.expiresAt).toBe(expiresAt);
    expect(s.due).toBe(false);
    // Rotated a margin (a tenth of the interval, at most a day) before the issuer's expiry, not after 30 days.
    expect(Date.parse(s.nextRotationAt!)).toBe(Date.parse(expiresAt) - 24 * HOUR);
    expect(s.warnings).toHaveLength(1);
    expect(s.warnings[0]).toContain('expires');
    const human = await cli.run(['status']);
    expect(human.code, describeRun(human)).toBe(0);
    expect(human.stderr).toMatch(/vendor: warning .*expires at/);
    const { data: history } = await cli.json<{ versions: { label: string; expiresAt?: string; origin: string }[] }>(['history', 'vendor']);
    expect(history.versions).toEqual([expect.objectContaining({ label: 'current', origin: 'imported', expiresAt })]);
  });

  it('an expiry within the margin: the dry-run plan and rotate --due rotate before it', async () => {
    const token = await vendorToken();
    const expiresAt = new Date(Date.now() + 12 * HOUR).toISOString();
    expect((await cli.run(['import', 'vendor', '--expires-at', expiresAt], { input: token })).code).toBe(0);
    expect((await status()).due).toBe(true);
    const { result: planned, data: plan } = await cli.json<{ plan: { key: string; wouldRotate: boolean }[] }>(['rotate', '--due', '--dry-run']);
    expect(planned.code, describeRun(planned)).toBe(0);
    expect(plan.plan).toEqual([expect.objectContaining({ key: 'vendor', wouldRotate: true })]);

    const { result, data } = await cli.json<{ results: { key: string; outcome: string }[] }>(['rotate', '--due']);
    expect(result.code, describeRun(result)).toBe(0);
    expect(data.results[0]).toMatchObject({ key: 'vendor', outcome: 'rotated' });
    const fresh = await cli.reveal('vendor');
    expect(fresh).not.toBe(token);
    expect(await bearerStatus(server.url, fresh)).toBe(200);
    // provkey's own version carries no issuer expiry: the warning is gone, the interval rules again.
    const after = await status();
    expect(after).toMatchObject({ due: false, expiresAt: null, warnings: [] });
  });

  it('a bad or past --expires-at is refused in one line (exit 2) and nothing is stored', async () => {
    const token = await vendorToken();
    for (const value of ['next year', '2020-01-01', '2027-13-45', new Date(Date.now() - HOUR).toISOString()]) {
      const result = await cli.run(['import', 'vendor', '--expires-at', value], { input: token });
      expect(result.code, describeRun(result)).toBe(2);
      expect(result.stderr.trim().split('\n'), describeRun(result)).toHaveLength(1);
      expect(result.stderr).toContain('--expires-at');
    }
    expect((await status()).current).toBeNull();
  });
});
