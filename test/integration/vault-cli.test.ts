// End to end: the built CLI (bin/provkey → dist/) with a SCIM key kept in OpenBao, against the
// real SCIM test server (http applier). Vault runs under a token bound to docs/vault-policy.hcl;
// the root token is only used here to set up and to look at what provkey stored.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/core/fingerprint.js';
import { ProvkeyCli, bearerStatus, describeRun, eventually } from '../harness/cli.ts';
import { startOpenBao, type OpenBaoServer } from '../harness/servers/openbao.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MOUNT = 'secret';
const PREFIX = `e2e-${randomBytes(3).toString('hex')}`;
const KEY = 'entra-scim';

function shippedPolicy(mount: string, prefix: string): string {
  return readFileSync(path.join(repoRoot, 'docs/vault-policy.hcl'), 'utf8')
    .replaceAll('"secret/', `"${mount}/`)
    .replace(/(path "[^"]+\/)provkey\//g, `$1${prefix}/`);
}

interface StateDoc {
  versions: { id: string; label: string; fingerprint: string }[];
  state: Record<string, unknown>;
}

let dir: string;
let bao: OpenBaoServer;
let scim: ScimServer;
let cli: ProvkeyCli;
let token: string;
let adminToken: string;

async function vaultState(): Promise<{ kvVersion: number; doc: StateDoc }> {
  const r = await bao.api('GET', `${MOUNT}/data/${PREFIX}/${KEY}/state`);
  expect(r.status).toBe(200);
  return { kvVersion: r.body.data.metadata.version, doc: r.body.data.data };
}

/** A version's value as Vault holds it (root token), or its deletion marker. */
async function vaultValue(id: string): Promise<{ status: number; value?: string; deletionTime?: string; destroyed?: boolean }> {
  const r = await bao.api('GET', `${MOUNT}/data/${PREFIX}/${KEY}/value?version=${id}`);
  const value = r.body?.data?.data?.value as string | undefined;
  if (value) cli.scanner.addSecret(value, `${KEY} v${id} (from Vault)`);
  return { status: r.status, value, deletionTime: r.body?.data?.metadata?.deletion_time, destroyed: r.body?.data?.metadata?.destroyed };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-vault-cli-'));
  bao = await startOpenBao();
  token = await bao.createPolicyToken('provkey', shippedPolicy(MOUNT, PREFIX), { ttl: '1h', renewable: true });
  adminToken = `adm_${randomBytes(24).toString('base64url')}`;
  scim = await startScimServer({ adminToken, propagationMs: 300 });
  const config = path.join(dir, 'provkey.yaml');
  writeFileSync(
    config,
    [
      '# provkey with its keys in OpenBao',
      'stores:',
      '  vault:',
      '    type: vault',
      `    address: ${bao.addr}`,
      `    mount: ${MOUNT}`,
      `    prefix: ${PREFIX}`,
      'keys:',
      `  ${KEY}:`,
      '    store: vault',
      '    rotation: { interval: 30d, grace: 1h }',
      '    target:',
      '      type: scim',
      `      url: ${scim.url}`,
      `      applier: { type: http, url: ${scim.adminUrl}, authRef: env:SCIM_ADMIN_TOKEN }`,
      '      propagationTimeout: 20s',
      '',
    ].join('\n'),
  );
  cli = new ProvkeyCli({
    cwd: dir,
    config,
    env: { VAULT_TOKEN: token, SCIM_ADMIN_TOKEN: adminToken, HOME: dir, VAULT_ADDR: undefined, VAULT_NAMESPACE: undefined, VAULT_CACERT: undefined },
  });
  cli.scanner.addSecret(token, 'Vault token (provkey policy)');
  cli.scanner.addSecret(bao.rootToken, 'Vault root token');
  cli.scanner.addSecret(adminToken, 'SCIM admin token');
});

afterEach(() => cli.scanner.assertClean());

afterAll(async () => {
  await scim?.stop();
  await bao?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('provkey with a vault store (OpenBao) and a SCIM target', () => {
  it('add, rotate, status, revoke --previous, drill compromise: the target and Vault agree at every step', async () => {
    // add: version 1 is current in Vault and accepted by the SCIM server.
    const added = await cli.run(['add', KEY]);
    expect(added.code, describeRun(added)).toBe(0);
    let { doc } = await vaultState();
    expect(doc.versions.map((v) => [v.id, v.label])).toEqual([['1', 'current']]);
    const v1 = (await vaultValue('1')).value!;
    expect(doc.versions[0]!.fingerprint).toBe(fingerprint(v1));
    expect(await bearerStatus(scim.url, v1)).toBe(200);
    expect(await cli.reveal(KEY, 'v1 via get --reveal')).toBe(v1);

    // rotate with overlap: version 2 current, version 1 previous and still accepted.
    const rotated = await cli.run(['rotate', KEY]);
    expect(rotated.code, describeRun(rotated)).toBe(0);
    ({ doc } = await vaultState());
    expect(doc.versions.map((v) => [v.id, v.label])).toEqual([['1', 'previous'], ['2', 'current']]);
    const v2 = (await vaultValue('2')).value!;
    expect(v2).not.toBe(v1);
    expect(await bearerStatus(scim.url, v2)).toBe(200);
    expect(await bearerStatus(scim.url, v1)).toBe(200);
    // The label copy in the value secret's custom_metadata follows.
    const metadata = await bao.api('GET', `${MOUNT}/metadata/${PREFIX}/${KEY}/value`);
    expect(metadata.body.data.custom_metadata).toMatchObject({ current: '2', previous: '1' });

    const status = await cli.json<{ keys: { name: string; store: string; state: string; current: { fingerprint: string; versionId: string } }[] }>(['status']);
    expect(status.result.code, describeRun(status.result)).toBe(0);
    expect(status.data.keys).toHaveLength(1);
    expect(status.data.keys[0]).toMatchObject({ name: KEY, store: 'vault', state: 'ok', current: { fingerprint: fingerprint(v2), versionId: '2' } });

    // revoke the previous version: SCIM answers 401 for it, Vault soft-deleted it.
    const revoked = await cli.run(['revoke', KEY, '--previous', '--yes']);
    expect(revoked.code, describeRun(revoked)).toBe(0);
    expect(await eventually(() => bearerStatus(scim.url, v1), 401)).toBe(401);
    expect(await bearerStatus(scim.url, v2)).toBe(200);
    const gone = await vaultValue('1');
    expect(gone.status).toBe(404);
    expect(gone.deletionTime).toBeTruthy();
    expect(gone.destroyed).toBe(false);
    ({ doc } = await vaultState());
    expect(doc.versions.map((v) => [v.id, v.label])).toEqual([['1', 'revoked'], ['2', 'current']]);

    // drill: v2 is "leaked": replaced by v3 without overlap, rejected, soft-deleted in Vault.
    const drill = await cli.json<{ ok: boolean; leakedFingerprint: string; newFingerprint: string; timeToContainMs: number }>(['drill', 'compromise', KEY, '--yes', '--rto', '60s']);
    expect(drill.result.code, describeRun(drill.result)).toBe(0);
    expect(drill.data.ok).toBe(true);
    expect(drill.data.leakedFingerprint).toBe(fingerprint(v2));
    ({ doc } = await vaultState());
    expect(doc.versions.map((v) => [v.id, v.label])).toEqual([['1', 'revoked'], ['2', 'revoked'], ['3', 'current']]);
    expect(doc.state.claim).toBeUndefined();
    const v3 = (await vaultValue('3')).value!;
    expect(drill.data.newFingerprint).toBe(fingerprint(v3));
    expect(await bearerStatus(scim.url, v3)).toBe(200);
    expect(await eventually(() => bearerStatus(scim.url, v2), 401)).toBe(401);
    expect(await bearerStatus(scim.url, v1)).toBe(401);
    expect((await vaultValue('2')).deletionTime).toBeTruthy();
    expect(await cli.reveal(KEY, 'v3 via get --reveal')).toBe(v3);

    const history = await cli.run(['history', KEY]);
    expect(history.code, describeRun(history)).toBe(0);
    expect((await cli.run(['audit', 'verify'])).code).toBe(0);
  }, 120_000);

  it('a token without the policy: one clear line naming the path and capability, exit 6', async () => {
    const weak = await bao.createPolicyToken('nothing', `path "${MOUNT}/data/elsewhere/*" { capabilities = ["read"] }`);
    cli.scanner.addSecret(weak, 'Vault token without the provkey policy');
    const run = await cli.run(['rotate', KEY], { env: { VAULT_TOKEN: weak } });
    expect(run.code, describeRun(run)).toBe(6);
    expect(run.stderr).toContain(`[vault] permission denied on ${MOUNT}/data/${PREFIX}/${KEY}/state: the token's policy does not grant "read" (it has: deny); see docs/vault-policy.hcl`);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('a sealed Vault stops rotate with kind sealed and changes nothing', async () => {
    const before = await vaultState();
    await bao.seal();
    try {
      const run = await cli.json<{ ok: boolean; results: { outcome: string; message: string }[] }>(['rotate', KEY]);
      expect(run.result.code, describeRun(run.result)).toBe(7);
      expect(run.data.results[0]!.message).toBe(`[vault] Vault at ${bao.addr} is sealed: unseal it (bao/vault operator unseal), then run provkey again`);
    } finally {
      await bao.unseal();
    }
    expect((await vaultState()).kvVersion).toBe(before.kvVersion);
  });

  it('an unreachable Vault is reported as such by status, exit 5', async () => {
    const config = path.join(dir, 'unreachable.yaml');
    writeFileSync(config, readFileSync(path.join(dir, 'provkey.yaml'), 'utf8').replace(bao.addr, 'http://127.0.0.1:9'));
    const run = await cli.json<{ keys: { state: string; error: string }[] }>(['status'], { config });
    expect(run.result.code, describeRun(run.result)).toBe(5);
    expect(run.data.keys[0]).toMatchObject({ state: 'error', error: '[vault] cannot reach http://127.0.0.1:9: connection refused (ECONNREFUSED)' });
  });
});
