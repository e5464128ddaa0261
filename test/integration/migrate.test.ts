// `provkey migrate` end to end with the built CLI: keys move from the embedded file store to
// OpenBao (and back) with their history, the copy is verified, provkey.yaml is rewritten with
// its comments kept, and only then is the source retired. The SCIM test server proves the
// moved key still works where it matters.

import { randomBytes } from 'node:crypto';
import { hostname, tmpdir } from 'node:os';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { KeyRecord } from '../../src/core/model.js';
import { createFileStore } from '../../src/stores/file.js';
import type { SecretStore } from '../../src/stores/store.js';
import { ProvkeyCli, bearerStatus, describeRun, eventually } from '../harness/cli.ts';
import { startOpenBao, type OpenBaoServer } from '../harness/servers/openbao.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MOUNT = 'secret';
const PREFIX = `mig-${randomBytes(3).toString('hex')}`;

function shippedPolicy(mount: string, prefix: string): string {
  return readFileSync(path.join(repoRoot, 'docs/vault-policy.hcl'), 'utf8')
    .replaceAll('"secret/', `"${mount}/`)
    .replace(/(path "[^"]+\/)provkey\//g, `$1${prefix}/`);
}

let dir: string;
let config: string;
let bao: OpenBaoServer;
let scim: ScimServer;
let cli: ProvkeyCli;
let fileStore: SecretStore;

function scimKey(name: string, extra: string[] = []): string[] {
  return [
    `  ${name}:`,
    ...extra,
    '    rotation: { interval: 30d, grace: 1h }',
    '    target:',
    '      type: scim',
    `      url: ${scim.url}`,
    `      applier: { type: http, url: ${scim.adminUrl}, authRef: env:SCIM_ADMIN_TOKEN }`,
    '      propagationTimeout: 20s',
  ];
}

async function vaultRecord(key: string): Promise<{ status: number; versions?: KeyRecord['versions']; state?: KeyRecord['state'] }> {
  const r = await bao.api('GET', `${MOUNT}/data/${PREFIX}/${key}/state`);
  return { status: r.status, versions: r.body?.data?.data?.versions, state: r.body?.data?.data?.state };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-migrate-'));
  bao = await startOpenBao();
  const token = await bao.createPolicyToken('provkey', shippedPolicy(MOUNT, PREFIX), { ttl: '1h' });
  const readonlyToken = await bao.createPolicyToken('provkey-readonly', `path "${MOUNT}/data/${PREFIX}-ro/*" { capabilities = ["read"] }`);
  const adminToken = `adm_${randomBytes(24).toString('base64url')}`;
  scim = await startScimServer({ adminToken, propagationMs: 200 });
  config = path.join(dir, 'provkey.yaml');
  writeFileSync(
    config,
    [
      '# Keys start in the embedded file store; the vault store is where they are going.',
      'stores:',
      '  vault:',
      '    type: vault',
      `    address: ${bao.addr}  # OpenBao dev server`,
      `    mount: ${MOUNT}`,
      `    prefix: ${PREFIX}`,
      '  vault-readonly:',
      '    type: vault',
      `    address: ${bao.addr}`,
      `    prefix: ${PREFIX}-ro`,
      '    auth: { method: token, tokenFile: readonly.token }',
      'keys:',
      '  # The production SCIM token for Entra ID.',
      ...scimKey('entra-scim'),
      ...scimKey('okta-scim', ['    description: second key, moved in the same run']),
      ...scimKey('busy-scim', ['    store: default  # explicit']),
      '',
    ].join('\n'),
  );
  cli = new ProvkeyCli({ cwd: dir, config, env: { VAULT_TOKEN: token, SCIM_ADMIN_TOKEN: adminToken, HOME: dir, VAULT_ADDR: undefined } });
  writeFileSync(path.join(dir, 'readonly.token'), readonlyToken, { mode: 0o600 });
  cli.scanner.addSecret(token, 'Vault token');
  cli.scanner.addSecret(readonlyToken, 'read-only Vault token');
  cli.scanner.addSecret(bao.rootToken, 'Vault root token');
  cli.scanner.addSecret(adminToken, 'SCIM admin token');
  // The test's own writes go through the audit log like provkey's (the store announces each
  // generation there), or every later run would rightly refuse a store ahead of its log.
  const journal = new AuditLog(path.join(dir, '.provkey/audit.jsonl'), { key: (options) => fileStore.auditKey!(options) });
  fileStore = await createFileStore('default', { type: 'file', path: '.provkey/store.enc', keyFile: '.provkey/store.key' }, {
    configDir: dir,
    env: {},
    resolveSecret: async () => '',
    debug: () => undefined,
    journal,
  });
});

afterEach(() => cli.scanner.assertClean());

afterAll(async () => {
  await scim?.stop();
  await bao?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('provkey migrate: file store → OpenBao', () => {
  const values: Record<string, string> = {};

  it('builds a history in the file store: revoked, previous and current versions', async () => {
    for (const args of [['add', 'entra-scim'], ['rotate', 'entra-scim'], ['revoke', 'entra-scim', '--previous', '--yes']]) {
      const run = await cli.run(args);
      expect(run.code, describeRun(run)).toBe(0);
    }
    values.v2 = await cli.reveal('entra-scim', 'entra v2');
    const rotated = await cli.run(['rotate', 'entra-scim']);
    expect(rotated.code, describeRun(rotated)).toBe(0);
    values.v3 = await cli.reveal('entra-scim', 'entra v3');
    for (const args of [['add', 'okta-scim'], ['add', 'busy-scim']]) {
      const run = await cli.run(args);
      expect(run.code, describeRun(run)).toBe(0);
    }
    values.okta = await cli.reveal('okta-scim', 'okta v1');
    const record = (await fileStore.read('entra-scim'))!;
    expect(record.versions.map((v) => v.label)).toEqual(['revoked', 'previous', 'current']);
  });

  it('--dry-run plans: what moves with its value, what only as metadata; nothing changes', async () => {
    const before = readFileSync(config, 'utf8');
    const plan = await cli.json<{ dryRun: boolean; results: { outcome: string; versions: { fromId: string; label: string; copy: string; fingerprint: string }[]; message: string }[] }>(
      ['migrate', 'entra-scim', '--to', 'vault', '--dry-run'],
    );
    expect(plan.result.code, describeRun(plan.result)).toBe(0);
    expect(plan.data.dryRun).toBe(true);
    expect(plan.data.results[0]!.outcome).toBe('planned');
    expect(plan.data.results[0]!.versions.map((v) => [v.fromId, v.label, v.copy])).toEqual([
      ['1', 'revoked', 'metadata'],
      ['2', 'previous', 'value'],
      ['3', 'current', 'value'],
    ]);
    expect(plan.data.results[0]!.message).toContain('would copy 3 version(s) from "default" to "vault" (2 with their value, 1 metadata only)');
    expect(readFileSync(config, 'utf8')).toBe(before);
    expect((await vaultRecord('entra-scim')).status).toBe(404);
  });

  it('refuses without --yes when nobody can be asked', async () => {
    const run = await cli.run(['migrate', 'entra-scim', '--to', 'vault']);
    expect(run.code, describeRun(run)).toBe(2);
    expect(run.stderr).toContain('without --yes');
    expect((await vaultRecord('entra-scim')).status).toBe(404);
  });

  it('refuses a key with a live claim, and an unknown destination store', async () => {
    const busy = (await fileStore.read('busy-scim'))!;
    const now = new Date();
    const claimed = await fileStore.update('busy-scim', busy.revision, {
      versions: busy.versions,
      state: { ...busy.state, claim: { id: 'live', operation: 'rotate', owner: { host: hostname(), pid: process.pid }, startedAt: now.toISOString(), expiresAt: new Date(now.getTime() + 600_000).toISOString(), step: 'setting', overlap: true } },
    });
    const run = await cli.json<{ results: { outcome: string; message: string }[] }>(['migrate', 'busy-scim', '--to', 'vault', '--yes']);
    expect(run.result.code, describeRun(run.result)).toBe(1);
    expect(run.data.results[0]!.message).toMatch(/^key busy-scim is being changed right now \(rotate since .*, pid \d+ on .*\); try again when it is done$/);
    expect((await vaultRecord('busy-scim')).status).toBe(404);
    expect((await fileStore.read('busy-scim'))!.revision).toBe(claimed.revision);
    expect(readFileSync(config, 'utf8')).toContain('    store: default  # explicit');

    const unknown = await cli.run(['migrate', 'busy-scim', '--to', 'nowhere', '--yes']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--to: no store named "nowhere" under stores (known: default, vault, vault-readonly)');
  });

  it('a copy that fails half-way is removed and the source left exactly as it was', async () => {
    const before = (await fileStore.read('entra-scim'))!;
    const text = readFileSync(config, 'utf8');
    const run = await cli.json<{ results: { outcome: string; message: string; configRewritten: boolean }[] }>(['migrate', 'entra-scim', '--to', 'vault-readonly', '--yes']);
    expect(run.result.code, describeRun(run.result)).toBe(6); // permission denied at the destination
    expect(run.data.results[0]!.outcome).toBe('failed');
    expect(run.data.results[0]!.message).toBe(
      `[vault] permission denied on ${MOUNT}/data/${PREFIX}-ro/entra-scim/value: the token's policy does not grant "create/update" (it has: read); see docs/vault-policy.hcl; the copy failed and was removed; the key is unchanged in the source`,
    );
    // The source claim was taken and released: same versions and state, no claim left.
    const after = (await fileStore.read('entra-scim'))!;
    expect(after.versions).toEqual(before.versions);
    expect(after.state).toEqual(before.state);
    expect(readFileSync(config, 'utf8')).toBe(text);
    expect((await bao.api('GET', `${MOUNT}/metadata/${PREFIX}-ro/entra-scim/value`)).status).toBe(404);
  });

  it('moves two keys with their history, verifies, rewrites provkey.yaml (comments kept), retires the source', async () => {
    const before = (await fileStore.read('entra-scim'))!;
    const run = await cli.json<{
      ok: boolean;
      results: { key: string; outcome: string; configRewritten: boolean; sourceRetired: boolean; versions: { fromId: string; toId: string; copy: string; fingerprint: string }[] }[];
    }>(['migrate', 'entra-scim', 'okta-scim', '--to', 'vault', '--yes']);
    expect(run.result.code, describeRun(run.result)).toBe(0);
    expect(run.data.results.map((r) => [r.key, r.outcome, r.configRewritten, r.sourceRetired])).toEqual([
      ['entra-scim', 'migrated', true, true],
      ['okta-scim', 'migrated', true, true],
    ]);

    // Vault holds the same history: ids, labels, fingerprints, dates.
    const moved = await vaultRecord('entra-scim');
    expect(moved.status).toBe(200);
    expect(moved.versions!.map((v) => [v.id, v.label, v.fingerprint, v.createdAt])).toEqual(before.versions.map((v) => [v.id, v.label, v.fingerprint, v.createdAt]));
    expect(moved.versions![1]!.graceUntil).toBe(before.versions[1]!.graceUntil);
    expect(moved.state!.claim).toBeUndefined();
    expect(moved.state!.lastRotatedAt).toBe(before.state.lastRotatedAt);
    // Live values moved; the revoked one never did (its placeholder slot is destroyed).
    const v1 = await bao.api('GET', `${MOUNT}/data/${PREFIX}/entra-scim/value?version=1`);
    expect(v1.status).toBe(404);
    expect(v1.body.data.metadata.destroyed).toBe(true);
    expect((await bao.api('GET', `${MOUNT}/data/${PREFIX}/entra-scim/value?version=2`)).body.data.data.value).toBe(values.v2);
    expect((await bao.api('GET', `${MOUNT}/data/${PREFIX}/entra-scim/value?version=3`)).body.data.data.value).toBe(values.v3);
    expect((await bao.api('GET', `${MOUNT}/data/${PREFIX}/okta-scim/value?version=1`)).body.data.data.value).toBe(values.okta);

    // provkey.yaml now says where the keys are, with every comment still there.
    const text = readFileSync(config, 'utf8');
    expect(text).toContain('# Keys start in the embedded file store; the vault store is where they are going.');
    expect(text).toContain('  # The production SCIM token for Entra ID.');
    expect(text).toContain('# OpenBao dev server');
    expect(text).toMatch(/ {2}entra-scim:\n(?: {4}.*\n)*? {4}store: vault\n/);
    expect(text).toMatch(/ {2}okta-scim:\n(?: {4}.*\n)*? {4}store: vault\n/);
    expect(text).toContain('    store: default  # explicit');

    // The source is retired; the file store still holds the key that was not moved.
    expect(await fileStore.read('entra-scim')).toBeUndefined();
    expect(await fileStore.read('okta-scim')).toBeUndefined();
    expect(await fileStore.listKeys()).toEqual(['busy-scim']);

    const status = await cli.json<{ keys: { name: string; store: string; current: { fingerprint: string } }[] }>(['status', 'entra-scim', 'okta-scim']);
    expect(status.result.code, describeRun(status.result)).toBe(0);
    expect(status.data.keys.map((k) => [k.name, k.store, k.current.fingerprint])).toEqual([
      ['entra-scim', 'vault', fingerprint(values.v3!)],
      ['okta-scim', 'vault', fingerprint(values.okta!)],
    ]);
    expect(await cli.reveal('entra-scim', 'entra v3 from vault')).toBe(values.v3);
    // The target never noticed: current and previous still work.
    expect(await bearerStatus(scim.url, values.v3!)).toBe(200);
    expect(await bearerStatus(scim.url, values.v2!)).toBe(200);

    const history = await cli.run(['history', 'entra-scim']);
    expect(history.stdout).toContain('key.migrated');
    expect((await cli.run(['audit', 'verify'])).code).toBe(0);
  });

  it('the moved key rotates and revokes on its new store', async () => {
    const rotated = await cli.run(['rotate', 'entra-scim']);
    expect(rotated.code, describeRun(rotated)).toBe(0);
    const v4 = await cli.reveal('entra-scim', 'entra v4');
    const record = await vaultRecord('entra-scim');
    expect(record.versions!.map((v) => [v.id, v.label])).toEqual([['1', 'revoked'], ['2', 'previous'], ['3', 'previous'], ['4', 'current']]);
    expect(await bearerStatus(scim.url, v4)).toBe(200);
    const revoked = await cli.run(['revoke', 'entra-scim', '--previous', '--yes']);
    expect(revoked.code, describeRun(revoked)).toBe(0);
    expect(await eventually(() => bearerStatus(scim.url, values.v3!), 401)).toBe(401);
    expect(await bearerStatus(scim.url, values.v2!)).toBe(401);
    expect((await bao.api('GET', `${MOUNT}/data/${PREFIX}/entra-scim/value?version=3`)).body.data.metadata.deletion_time).toBeTruthy();
  });

  it('and back: vault → file keeps the history too (revoked versions as metadata only)', async () => {
    const before = await vaultRecord('entra-scim');
    const run = await cli.json<{ results: { outcome: string; versions: { copy: string }[] }[] }>(['migrate', 'entra-scim', '--to', 'default', '--yes']);
    expect(run.result.code, describeRun(run.result)).toBe(0);
    expect(run.data.results[0]!.versions.map((v) => v.copy)).toEqual(['metadata', 'metadata', 'metadata', 'value']);
    const back = (await fileStore.read('entra-scim'))!;
    expect(back.versions.map((v) => [v.label, v.fingerprint])).toEqual(before.versions!.map((v) => [v.label, v.fingerprint]));
    expect((await vaultRecord('entra-scim')).status).toBe(404);
    expect((await bao.api('GET', `${MOUNT}/metadata/${PREFIX}/entra-scim/value`)).status).toBe(404);
    expect(readFileSync(config, 'utf8')).toMatch(/ {2}entra-scim:\n(?: {4}.*\n)*? {4}store: default\n/);
    const status = await cli.json<{ keys: { store: string; current: { fingerprint: string } }[] }>(['status', 'entra-scim']);
    expect(status.data.keys[0]!.store).toBe('default');
    expect(status.data.keys[0]!.current.fingerprint).toBe(before.versions!.at(-1)!.fingerprint);
  });

  it('refuses to overwrite a different key of the same name in the destination', async () => {
    // okta-scim is on vault now; put an unrelated key of the same name into the file store.
    const placeholder = `pk_other_${randomBytes(16).toString('base64url')}`;
    cli.scanner.addSecret(placeholder, 'unrelated value');
    const at = new Date().toISOString();
    await fileStore.addVersion('okta-scim', undefined, placeholder, { label: 'current', fingerprint: fingerprint(placeholder), createdAt: at, labelledAt: at, origin: 'imported' });
    const run = await cli.json<{ results: { message: string }[] }>(['migrate', 'okta-scim', '--to', 'default', '--yes']);
    expect(run.result.code, describeRun(run.result)).toBe(1);
    expect(run.data.results[0]!.message).toBe('store "default" already holds a different key named okta-scim (1 version(s)); remove it there or migrate to another store');
    expect((await vaultRecord('okta-scim')).status).toBe(200);
    expect(readFileSync(config, 'utf8')).toMatch(/ {2}okta-scim:\n(?: {4}.*\n)*? {4}store: vault\n/);
  });
});
