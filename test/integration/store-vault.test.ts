// The vault store against a real OpenBao dev server (test/harness/servers/openbao.ts): the
// SecretStore contract under the shipped least-privilege policy, plus what only a real Vault
// does: check-and-set races between processes, policy refusals, a sealed or unreachable server,
// rate limiting, AppRole login, token renewal, namespaces, soft delete and destroy.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as v from 'valibot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeSchema, type VaultStoreConfig } from '../../src/config/schema.js';
import { AdapterError, ConflictError } from '../../src/core/errors.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { Claim, VersionLabel } from '../../src/core/model.js';
import type { AdapterContext } from '../../src/stores/context.js';
import type { NewVersionMeta, SecretStore } from '../../src/stores/store.js';
import { createVaultStore, type VaultStoreInternals } from '../../src/stores/vault.js';
import { describeStoreContract } from '../contract/store-contract.js';
import { startTokenReviewDouble, type TokenReviewDouble } from '../harness/kubernetes-tokenreview-double.ts';
import { ensureOpenBao, startOpenBao, type OpenBaoServer } from '../harness/servers/openbao.ts';
import { TS_SOURCE_HOOK } from '../harness/ts-source-child.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MOUNT = 'provkv';
const PREFIX = `it-${randomBytes(3).toString('hex')}`;

/** docs/vault-policy.hcl as shipped, pointed at this test's mount and prefix. */
function shippedPolicy(mount: string, prefix: string): string {
  return readFileSync(path.join(repoRoot, 'docs/vault-policy.hcl'), 'utf8')
    .replaceAll('"secret/', `"${mount}/`)
    .replace(/(path "[^"]+\/)provkey\//g, `$1${prefix}/`);
}

function vaultConfig(fields: Record<string, unknown>): VaultStoreConfig {
  const config = v.parse(storeSchema, { type: 'vault', mount: MOUNT, prefix: PREFIX, timeout: '5s', ...fields });
  if (config.type !== 'vault') throw new Error('not a vault config');
  return config;
}

const debugLines: string[] = [];
function context(env: NodeJS.ProcessEnv, dir = tmpdir()): AdapterContext {
  return {
    configDir: dir,
    env: { HOME: dir, ...env },
    resolveSecret: async () => {
      throw new Error('not used by the vault store');
    },
    debug: (line) => debugLines.push(line),
  };
}

function meta(label: VersionLabel, secret: string): NewVersionMeta {
  const at = new Date().toISOString();
  return { label, fingerprint: fingerprint(secret), createdAt: at, labelledAt: at, origin: 'generated' };
}

function newSecret(): string {
  return `pk_vault_${randomBytes(18).toString('base64url')}`;
}

function claim(id: string): Claim {
  const now = new Date();
  return { id, operation: 'rotate', owner: { host: 'test', pid: process.pid }, startedAt: now.toISOString(), expiresAt: new Date(now.getTime() + 60_000).toISOString(), step: 'claimed', overlap: true };
}

async function failure(promise: Promise<unknown>): Promise<AdapterError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AdapterError);
  return error as AdapterError;
}

let bao: OpenBaoServer;
/** A token holding exactly docs/vault-policy.hcl (plus Vault's default policy). */
let token: string;
const stores: SecretStore[] = [];
const secretsSeen: string[] = [];

async function open(fields: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = { VAULT_TOKEN: token }, internals: VaultStoreInternals = {}): Promise<SecretStore> {
  const store = await createVaultStore('vault', vaultConfig({ address: bao.addr, ...fields }), context(env), internals);
  stores.push(store);
  return store;
}

beforeAll(async () => {
  bao = await startOpenBao({ audit: true });
  await bao.enableKv2(MOUNT);
  token = await bao.createPolicyToken('provkey', shippedPolicy(MOUNT, PREFIX), { ttl: '1h' });
  secretsSeen.push(token, bao.rootToken);
});

afterAll(async () => {
  for (const store of stores) await store.close();
  await bao?.stop();
});

describeStoreContract('vault (OpenBao KV v2, least-privilege token)', async () => ({ store: await open() }));

describe('vault store against OpenBao', () => {
  it('a write checked against the state this run last saw (no read before it) still loses to another process\'s write', async () => {
    // Two store instances are two provkey processes: neither sees the other's writes except through Vault.
    const [mine, theirs] = [await open(), await open()];
    const key = `seen-${randomBytes(4).toString('hex')}`;
    const a = newSecret();
    const first = await mine.addVersion(key, undefined, a, meta('current', a));
    const read = (await theirs.read(key))!;
    expect(read.revision).toBe(first.record.revision);
    const theirWrite = await theirs.update(key, read.revision, { versions: read.versions, state: { claim: claim('theirs') } });

    // `mine` still holds first.record as the last state it saw; the check-and-set refuses it.
    await expect(mine.update(key, first.record.revision, { versions: first.record.versions, state: { claim: claim('mine') } })).rejects.toBeInstanceOf(ConflictError);
    const b = newSecret();
    await expect(mine.addVersion(key, first.record.revision, b, meta('pending', b))).rejects.toBeInstanceOf(ConflictError);
    expect(await theirs.read(key)).toEqual(theirWrite);
    // With the revision it now reads, it writes.
    const now = (await mine.read(key))!;
    const mineWrite = await mine.update(key, now.revision, { versions: now.versions, state: {} });
    expect(await theirs.read(key)).toEqual(mineWrite);
    await mine.deleteKey(key);
  });

  it('many concurrent reads of one key share one request; of many keys, all answer', async () => {
    const store = await open();
    const keys = Array.from({ length: 12 }, (_, i) => `fleet-${i}-${randomBytes(3).toString('hex')}`);
    for (const key of keys) {
      const value = newSecret();
      await store.addVersion(key, undefined, value, meta('current', value));
    }
    const stateReads = () => bao.auditedRequests().filter((r) => r.operation === 'read' && keys.some((key) => r.path.endsWith(`/${key}/state`))).length;
    const before = stateReads();
    const records = await Promise.all([...keys, ...keys].map((key) => store.read(key)));
    expect(records.map((r) => r?.key)).toEqual([...keys, ...keys]);
    // Counted by OpenBao's own audit device: one read per key, the second asker shared it.
    expect(stateReads() - before).toBe(keys.length);
    for (const key of keys) await store.deleteKey(key);
  });

  it('lays a key out as <prefix>/<key>/value (versions) and <prefix>/<key>/state (cas), with a label copy', async () => {
    const store = await open();
    const key = `layout-${randomBytes(4).toString('hex')}`;
    const [a, b] = [newSecret(), newSecret()];
    const first = await store.addVersion(key, undefined, a, meta('current', a));
    const second = await store.addVersion(key, first.record.revision, b, meta('pending', b));
    expect([first.versionId, second.versionId]).toEqual(['1', '2']);

    const value = await bao.api('GET', `${MOUNT}/data/${PREFIX}/${key}/value?version=2`);
    expect(value.body.data.data).toEqual({ value: b, fingerprint: fingerprint(b) });
    const state = await bao.api('GET', `${MOUNT}/data/${PREFIX}/${key}/state`);
    expect(state.body.data.metadata.version).toBe(2);
    expect(state.body.data.data.versions.map((v: { id: string; label: string }) => [v.id, v.label])).toEqual([['1', 'current'], ['2', 'pending']]);
    expect(JSON.stringify(state.body.data.data)).not.toContain(a);
    expect(second.record.revision).toBe(`2.${state.body.data.data.incarnation}`);

    const metadata = await bao.api('GET', `${MOUNT}/metadata/${PREFIX}/${key}/value`);
    expect(metadata.body.data.max_versions).toBe(1000);
    expect(metadata.body.data.custom_metadata).toMatchObject({ 'managed-by': 'provkey', current: '1', pending: '2' });
    expect(await store.listKeys()).toContain(key);
    await store.deleteKey(key);
    expect((await bao.api('GET', `${MOUNT}/metadata/${PREFIX}/${key}/value`)).status).toBe(404);
  });

  it('a state write with a stale cas is refused by Vault itself (400 check-and-set) and reported as ConflictError', async () => {
    const store = await open();
    const key = `cas-${randomBytes(4).toString('hex')}`;
    const s = newSecret();
    const { record } = await store.addVersion(key, undefined, s, meta('current', s));
    // Another writer (root, by hand) moves the state on behind the store's back.
    const stateBefore = await bao.api('GET', `${MOUNT}/data/${PREFIX}/${key}/state`);
    const raw = await bao.api('POST', `${MOUNT}/data/${PREFIX}/${key}/state`, { options: { cas: 0 }, data: stateBefore.body.data.data });
    expect(raw.status).toBe(400);
    expect(raw.body.errors).toEqual(['check-and-set parameter did not match the current version']);
    await bao.api('POST', `${MOUNT}/data/${PREFIX}/${key}/state`, { options: { cas: 1 }, data: stateBefore.body.data.data });
    await expect(store.update(key, record.revision, { versions: record.versions, state: { claim: claim('late') } })).rejects.toBeInstanceOf(ConflictError);
    await store.deleteKey(key);
  });

  it('two processes claiming the same revision: exactly one wins, every round', async () => {
    const key = `race-${randomBytes(4).toString('hex')}`;
    const store = await open();
    const s = newSecret();
    await store.addVersion(key, undefined, s, meta('current', s));
    const dir = mkdtempSync(path.join(tmpdir(), 'provkey-vault-race-'));
    const script = path.join(dir, 'claim.mjs');
    writeFileSync(script, claimScript);
    try {
      for (let round = 0; round < 5; round++) {
        const before = (await store.read(key))!;
        // A barrier, not a head start: each process reads the record, says "ready" and blocks on
        // its stdin; when both are ready, the test releases them with one write each.
        let release!: () => void;
        const bothReady = new Promise<void>((resolve) => (release = resolve));
        let ready = 0;
        const children: ChildProcess[] = [];
        const run = (who: string) =>
          new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
            const child = spawn(process.execPath, ['--no-warnings', script], {
              env: {
                PATH: process.env.PATH,
                SRC: pathToFileURL(path.join(repoRoot, 'src/stores/vault.ts')).href,
                VAULT_TOKEN: token,
                ADDR: bao.addr,
                MOUNT,
                PREFIX,
                KEY: key,
                REVISION: before.revision,
                WHO: who,
              },
              stdio: ['pipe', 'pipe', 'pipe'],
            });
            children.push(child);
            let out = '';
            let err = '';
            let saidReady = false;
            child.stdout!.on('data', (d) => {
              out += d;
              if (!saidReady && out.includes('ready\n')) {
                saidReady = true;
                if (++ready === 2) release();
              }
            });
            child.stderr!.on('data', (d) => (err += d));
            child.stdin!.on('error', () => undefined);
            child.on('close', (code) => {
              release(); // a process that died before "ready" must not leave the other waiting forever
              resolve({ code, out: out.replace('ready\n', '').trim(), err });
            });
          });
        const running = Promise.all([run('a'), run('b')]);
        await bothReady;
        for (const child of children) child.stdin!.end('go\n');
        const results = await running;
        for (const r of results) expect(r.code, r.err).toBe(0);
        const outcomes = results.map((r) => r.out).sort();
        expect(outcomes).toEqual(['conflict', 'won']);
        const after = (await store.read(key))!;
        const winner = results.find((r) => r.out === 'won')!;
        expect(after.state.claim?.id).toBe(`claim-${results.indexOf(winner) === 0 ? 'a' : 'b'}`);
        // Release for the next round.
        await store.update(key, after.revision, { versions: after.versions, state: {} });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await store.deleteKey(key);
    }
  }, 60_000);

  it('eight store instances claiming at once from one revision: one winner, seven ConflictErrors', async () => {
    const key = `race8-${randomBytes(4).toString('hex')}`;
    const setup = await open();
    const s = newSecret();
    const { record } = await setup.addVersion(key, undefined, s, meta('current', s));
    const contenders = await Promise.all(Array.from({ length: 8 }, () => open()));
    const results = await Promise.allSettled(contenders.map((c, i) => c.update(key, record.revision, { versions: record.versions, state: { claim: claim(`c${i}`) } })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected' && r.reason instanceof ConflictError)).toHaveLength(7);
    await setup.deleteKey(key);
  });

  it('disableVersion soft-deletes exactly that KV version (deletion_time set, recoverable)', async () => {
    const store = await open();
    const key = `revoke-${randomBytes(4).toString('hex')}`;
    const [a, b] = [newSecret(), newSecret()];
    const first = await store.addVersion(key, undefined, a, meta('current', a));
    await store.addVersion(key, first.record.revision, b, meta('pending', b));
    await store.disableVersion(key, first.versionId);

    const v1 = await bao.api('GET', `${MOUNT}/data/${PREFIX}/${key}/value?version=1`);
    expect(v1.status).toBe(404);
    expect(v1.body.data.data).toBeNull();
    expect(v1.body.data.metadata.deletion_time).not.toBe('');
    expect(v1.body.data.metadata.destroyed).toBe(false);
    expect((await bao.api('GET', `${MOUNT}/data/${PREFIX}/${key}/value?version=2`)).status).toBe(200);
    const error = await failure(store.readSecret(key, first.versionId));
    expect(error.kind).toBe('not_found');
    expect(error.message).toMatch(/^\[vault\] version 1 of .* is disabled \(deleted at /);

    // Soft delete means an operator can undo it.
    expect((await bao.api('POST', `${MOUNT}/undelete/${PREFIX}/${key}/value`, { versions: [1] })).status).toBe(204);
    expect(await store.readSecret(key, first.versionId)).toBe(a);
    await store.deleteKey(key);
  });

  it('destroyOnRevoke: true destroys the version instead', async () => {
    const store = await open({ destroyOnRevoke: true });
    const key = `destroy-${randomBytes(4).toString('hex')}`;
    const a = newSecret();
    const { versionId } = await store.addVersion(key, undefined, a, meta('current', a));
    await store.disableVersion(key, versionId);
    const v1 = await bao.api('GET', `${MOUNT}/data/${PREFIX}/${key}/value?version=${versionId}`);
    expect(v1.status).toBe(404);
    expect(v1.body.data.metadata.destroyed).toBe(true);
    expect((await failure(store.readSecret(key, versionId))).message).toContain('(destroyed)');
    await store.deleteKey(key);
  });

  it('a writer that loses the race leaves no readable value behind', async () => {
    const store = await open();
    const key = `orphan-${randomBytes(4).toString('hex')}`;
    const [a, b, c] = [newSecret(), newSecret(), newSecret()];
    const { record } = await store.addVersion(key, undefined, a, meta('current', a));
    const results = await Promise.allSettled([
      store.addVersion(key, record.revision, b, meta('pending', b)),
      store.addVersion(key, record.revision, c, meta('pending', c)),
    ]);
    const lost = results.findIndex((r) => r.status === 'rejected');
    const loser = [b, c][lost]!;
    const versions = await bao.api('GET', `${MOUNT}/metadata/${PREFIX}/${key}/value`);
    const ids = Object.keys(versions.body.data.versions);
    expect(ids).toHaveLength(3);
    for (const id of ids) {
      const r = await bao.api('GET', `${MOUNT}/data/${PREFIX}/${key}/value?version=${id}`);
      if (r.status === 200) expect(r.body.data.data.value).not.toBe(loser);
      else expect(r.body.data.metadata.destroyed).toBe(true);
    }
    await store.deleteKey(key);
  });

  it('permission denied outside the policy\'s prefix: kind permission_denied naming the path and capability', async () => {
    const store = await open({ prefix: 'not-provkey' });
    const error = await failure(store.read('some-key'));
    expect(error.kind).toBe('permission_denied');
    expect(error.exitCode).toBe(6);
    expect(error.message).toBe(`[vault] permission denied on ${MOUNT}/data/not-provkey/some-key/state: the token's policy does not grant "read" (it has: deny); see docs/vault-policy.hcl`);
    expect(error.message).not.toContain(token);
  });

  it('permission denied on a write names create/update and what the token has', async () => {
    const readOnly = await bao.createPolicyToken('provkey-read', `path "${MOUNT}/data/${PREFIX}/*" { capabilities = ["read"] }`);
    secretsSeen.push(readOnly);
    const store = await open({}, { VAULT_TOKEN: readOnly });
    const s = newSecret();
    const error = await failure(store.addVersion(`ro-${randomBytes(4).toString('hex')}`, undefined, s, meta('current', s)));
    expect(error.kind).toBe('permission_denied');
    expect(error.message).toMatch(new RegExp(`permission denied on ${MOUNT}/data/${PREFIX}/ro-[0-9a-f]+/value: the token's policy does not grant "create/update" \\(it has: read\\)`));
    expect(error.message).not.toContain(s);
    expect(error.message).not.toContain(readOnly);
  });

  it('an unknown or revoked token is auth_failed, not permission_denied', async () => {
    const doomed = await bao.createPolicyToken('provkey', shippedPolicy(MOUNT, PREFIX));
    secretsSeen.push(doomed);
    const store = await open({}, { VAULT_TOKEN: doomed });
    expect(await store.read('anything')).toBeUndefined();
    expect((await bao.api('POST', 'auth/token/revoke', { token: doomed })).status).toBe(204);
    const error = await failure(store.read('anything'));
    expect(error.kind).toBe('auth_failed');
    expect(error.message).toContain('unknown, expired or revoked');
    expect(error.message).not.toContain(doomed);
    const none = await failure((await open({}, {})).read('anything'));
    expect(none.kind).toBe('auth_failed');
    expect(none.message).toContain('no Vault token: set VAULT_TOKEN');
  });

  it('reads the token from auth.tokenFile, and from ~/.vault-token', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'provkey-vault-token-'));
    try {
      writeFileSync(path.join(dir, 'token'), `${token}\n`, { mode: 0o600 });
      writeFileSync(path.join(dir, '.vault-token'), token, { mode: 0o600 });
      const fromFile = await createVaultStore('vault', vaultConfig({ address: bao.addr, auth: { method: 'token', tokenFile: 'token' } }), context({}, dir));
      stores.push(fromFile);
      expect(await fromFile.listKeys()).toBeInstanceOf(Array);
      const fromHome = await createVaultStore('vault', vaultConfig({ address: bao.addr }), context({ HOME: dir }, dir));
      stores.push(fromHome);
      expect(await fromHome.listKeys()).toBeInstanceOf(Array);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('AppRole: role_id and secret_id from files or env log in; a wrong secret_id is auth_failed', async () => {
    const { roleId, secretId } = await bao.enableAppRole('provkey-role', ['provkey']);
    secretsSeen.push(secretId);
    const dir = mkdtempSync(path.join(tmpdir(), 'provkey-vault-approle-'));
    try {
      writeFileSync(path.join(dir, 'role-id'), roleId);
      writeFileSync(path.join(dir, 'secret-id'), `${secretId}\n`, { mode: 0o600 });
      const fromFiles = await createVaultStore(
        'vault',
        vaultConfig({ address: bao.addr, auth: { method: 'approle', roleIdFile: 'role-id', secretIdFile: 'secret-id' } }),
        context({}, dir),
      );
      stores.push(fromFiles);
      const key = `approle-${randomBytes(4).toString('hex')}`;
      const s = newSecret();
      const { versionId } = await fromFiles.addVersion(key, undefined, s, meta('current', s));
      expect(await fromFiles.readSecret(key, versionId)).toBe(s);

      const fromEnv = await open({ auth: { method: 'approle' } }, { VAULT_ROLE_ID: roleId, VAULT_SECRET_ID: secretId });
      expect(await fromEnv.readSecret(key, versionId)).toBe(s);
      await fromEnv.deleteKey(key);

      const wrong = await open({ auth: { method: 'approle' } }, { VAULT_ROLE_ID: roleId, VAULT_SECRET_ID: 'not-the-secret-id' });
      const error = await failure(wrong.read(key));
      expect(error.kind).toBe('auth_failed');
      expect(error.message).toBe('[vault] AppRole login at auth/approle refused: invalid role or secret ID');
      const missing = await failure((await open({ auth: { method: 'approle' } }, { VAULT_ROLE_ID: roleId })).read(key));
      expect(missing.message).toContain('set VAULT_SECRET_ID');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('Kubernetes: posts the service-account JWT from jwtFile to auth/<mount>/login (refusal is auth_failed)', async () => {
    // A real login needs a Kubernetes TokenReview API; this proves the request and the error path.
    expect((await bao.api('POST', 'sys/auth/k8s-test', { type: 'kubernetes' })).status).toBe(204);
    const dir = mkdtempSync(path.join(tmpdir(), 'provkey-vault-k8s-'));
    try {
      const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const jwt = `${b64({ alg: 'RS256' })}.${b64({ sub: 'system:serviceaccount:prov:provkey' })}.${randomBytes(32).toString('base64url')}`;
      secretsSeen.push(jwt);
      writeFileSync(path.join(dir, 'sa-token'), jwt, { mode: 0o600 });
      const store = await createVaultStore('vault', vaultConfig({ address: bao.addr, auth: { method: 'kubernetes', mount: 'k8s-test', role: 'provkey', jwtFile: 'sa-token' } }), context({}, dir));
      stores.push(store);
      const error = await failure(store.read('k'));
      expect(error.kind).toBe('auth_failed');
      expect(error.message).toBe('[vault] Kubernetes login at auth/k8s-test as role provkey refused: invalid role name "provkey"');
      // With the role but no Kubernetes config, OpenBao answers 500: retried with backoff, then server_error.
      expect((await bao.api('POST', 'auth/k8s-test/role/provkey', { bound_service_account_names: ['provkey'], bound_service_account_namespaces: ['prov'], token_policies: ['provkey'] })).status).toBe(204);
      const retried = await createVaultStore('vault', vaultConfig({ address: bao.addr, auth: { method: 'kubernetes', mount: 'k8s-test', role: 'provkey', jwtFile: 'sa-token' } }), context({}, dir), { retryBaseMs: 50, maxAttempts: 3 });
      stores.push(retried);
      const linesBefore = debugLines.length;
      const serverError = await failure(retried.read('k'));
      expect(serverError.kind).toBe('server_error');
      expect(serverError.message).toMatch(/^\[vault\] Vault answered 500 to POST auth\/k8s-test\/login: could not load backend configuration \(3 attempts over \d+ ms\)$/);
      expect(debugLines.slice(linesBefore).filter((l) => l.startsWith('[vault] POST auth/k8s-test/login → 500'))).toHaveLength(3);
      const missing = await createVaultStore('vault', vaultConfig({ address: bao.addr, auth: { method: 'kubernetes', role: 'provkey', jwtFile: 'absent' } }), context({}, dir));
      expect((await failure(missing.read('k'))).message).toBe(`[vault] stores.vault.auth.jwtFile: cannot read the service-account token from ${path.join(dir, 'absent')} (ENOENT)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('renews a renewable token when half its TTL has passed, so a long run outlives the TTL', async () => {
    const short = await bao.createPolicyToken('provkey', shippedPolicy(MOUNT, PREFIX), { ttl: '4s', renewable: true });
    secretsSeen.push(short);
    const store = await open({}, { VAULT_TOKEN: short });
    const key = `renew-${randomBytes(4).toString('hex')}`;
    const s = newSecret();
    const { versionId } = await store.addVersion(key, undefined, s, meta('current', s));
    const started = Date.now();
    while (Date.now() - started < 7_000) {
      expect(await store.readSecret(key, versionId)).toBe(s);
      await new Promise((r) => setTimeout(r, 500));
    }
    // Well past the original 4 s, the token is alive because the store renewed it.
    const lookup = await bao.api('POST', 'auth/token/lookup', { token: short });
    expect(lookup.status).toBe(200);
    expect(lookup.body.data.ttl).toBeGreaterThan(0);
    expect(debugLines.some((l) => l.startsWith('[vault] renewed the token'))).toBe(true);
    await store.deleteKey(key);
  }, 30_000);

  it('AppRole: a short-lived login token is renewed, and replaced by a new login at its max TTL', async () => {
    const { roleId, secretId } = await bao.enableAppRole('provkey-short', ['provkey']);
    secretsSeen.push(secretId);
    expect((await bao.api('POST', 'auth/approle/role/provkey-short', { token_ttl: '2s', token_max_ttl: '4s', secret_id_num_uses: 0 })).status).toBe(204);
    const store = await open({ auth: { method: 'approle' } }, { VAULT_ROLE_ID: roleId, VAULT_SECRET_ID: secretId });
    const key = `short-${randomBytes(4).toString('hex')}`;
    const s = newSecret();
    const linesBefore = debugLines.length;
    const { versionId } = await store.addVersion(key, undefined, s, meta('current', s));
    const started = Date.now();
    while (Date.now() - started < 9_000) {
      expect(await store.readSecret(key, versionId)).toBe(s);
      await new Promise((r) => setTimeout(r, 300));
    }
    const lines = debugLines.slice(linesBefore);
    expect(lines.some((l) => l.startsWith('[vault] renewed the token'))).toBe(true);
    expect(lines.filter((l) => l.startsWith('[vault] AppRole login at auth/approle')).length).toBeGreaterThan(1);
    await store.deleteKey(key);
  }, 30_000);

  it('namespaces: X-Vault-Namespace scopes every request', async () => {
    expect((await bao.api('POST', 'sys/namespaces/team-a', {})).status).toBe(200);
    const headers = { 'X-Vault-Token': bao.rootToken, 'X-Vault-Namespace': 'team-a', 'content-type': 'application/json' };
    const mounted = await fetch(`${bao.addr}/v1/sys/mounts/${MOUNT}`, { method: 'POST', headers, body: JSON.stringify({ type: 'kv', options: { version: '2' } }) });
    expect(mounted.status).toBe(204);
    const policy = await fetch(`${bao.addr}/v1/sys/policies/acl/provkey`, { method: 'PUT', headers, body: JSON.stringify({ policy: shippedPolicy(MOUNT, PREFIX) }) });
    expect(policy.status).toBe(204);
    const created = await fetch(`${bao.addr}/v1/auth/token/create`, { method: 'POST', headers, body: JSON.stringify({ policies: ['provkey'], ttl: '1h' }) });
    const nsToken = ((await created.json()) as { auth: { client_token: string } }).auth.client_token;
    secretsSeen.push(nsToken);

    const inNamespace = await open({ namespace: 'team-a' }, { VAULT_TOKEN: nsToken });
    const key = `ns-${randomBytes(4).toString('hex')}`;
    const s = newSecret();
    let record: { revision: string } | undefined;
    for (let i = 0; i < 50 && !record; i++) {
      // A fresh KV v2 mount in a namespace is "upgrading" for a moment.
      record = await inNamespace.addVersion(key, undefined, s, meta('current', s)).then((r) => r.record, () => undefined);
      if (!record) await new Promise((r) => setTimeout(r, 100));
    }
    expect(record).toBeDefined();
    expect(await inNamespace.listKeys()).toContain(key);
    const rootView = await fetch(`${bao.addr}/v1/${MOUNT}/data/${PREFIX}/${key}/state`, { headers });
    expect(rootView.status).toBe(200);
    // The same path in the root namespace holds nothing.
    expect(await (await open()).read(key)).toBeUndefined();
    // VAULT_NAMESPACE works like the config field.
    expect(await (await open({}, { VAULT_TOKEN: nsToken, VAULT_NAMESPACE: 'team-a' })).read(key)).toEqual(await inNamespace.read(key));
  });

  it('reports a state deleted by hand as tampered instead of treating the key as new', async () => {
    const store = await open();
    const key = `tamper-${randomBytes(4).toString('hex')}`;
    const s = newSecret();
    await store.addVersion(key, undefined, s, meta('current', s));
    await bao.api('DELETE', `${MOUNT}/data/${PREFIX}/${key}/state`);
    const error = await failure(store.read(key));
    expect(error.kind).toBe('tampered');
    expect(error.message).toContain('was deleted outside provkey');
    await store.deleteKey(key);
  });

  it('refuses a key name that cannot be a Vault path segment', async () => {
    const store = await open();
    expect((await failure(store.read('../escape'))).kind).toBe('invalid');
  });

  it('no token or secret value appears in any message the store produced', () => {
    const all = debugLines.join('\n');
    for (const secret of secretsSeen) expect(all).not.toContain(secret);
  });
});

describe('vault store: Kubernetes auth login that succeeds (OpenBao + a TokenReview double of Kubernetes)', () => {
  // OpenBao's kubernetes auth method parses the JWT's claims (without checking the signature
  // when no pem_keys are configured), checks the role's bound service account name and
  // namespace, then asks the Kubernetes API (POST .../tokenreviews at kubernetes_host) whether
  // the token is valid. test/harness/kubernetes-tokenreview-double.ts answers that call.
  const K8S_MOUNT = 'k8s-ok';
  const saUid = randomUUID();
  let k8s: TokenReviewDouble;
  let jwt: string;
  let reviewerJwt: string;

  /** Looks like a legacy (secret-based) service-account token: RS256 header, k8s claims, a signature. */
  function serviceAccountJwt(namespace: string, name: string, uid: string): string {
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const header = { alg: 'RS256', kid: randomBytes(16).toString('base64url') };
    const claims = {
      iss: 'kubernetes/serviceaccount',
      'kubernetes.io/serviceaccount/namespace': namespace,
      'kubernetes.io/serviceaccount/secret.name': `${name}-token-${randomBytes(3).toString('hex').slice(0, 5)}`,
      'kubernetes.io/serviceaccount/service-account.name': name,
      'kubernetes.io/serviceaccount/service-account.uid': uid,
      sub: `system:serviceaccount:${namespace}:${name}`,
    };
    return `${b64(header)}.${b64(claims)}.${randomBytes(256).toString('base64url')}`;
  }

  beforeAll(async () => {
    jwt = serviceAccountJwt('provkey', 'provkey', saUid);
    reviewerJwt = serviceAccountJwt('kube-system', 'openbao-token-reviewer', randomUUID());
    secretsSeen.push(jwt, reviewerJwt);
    k8s = await startTokenReviewDouble({ jwt, reviewerJwt, namespace: 'provkey', serviceAccount: 'provkey', uid: saUid });
    expect((await bao.api('POST', `sys/auth/${K8S_MOUNT}`, { type: 'kubernetes' })).status).toBe(204);
    const config = await bao.api('POST', `auth/${K8S_MOUNT}/config`, {
      kubernetes_host: k8s.url,
      // OpenBao runs outside any pod: do not read /var/run/secrets/kubernetes.io/serviceaccount.
      disable_local_ca_jwt: true,
      // Required when disable_local_ca_jwt is true; unused, as the double speaks plain http.
      kubernetes_ca_cert: 'unused: kubernetes_host is plain http',
      token_reviewer_jwt: reviewerJwt,
    });
    expect(config.status, JSON.stringify(config.body)).toBe(204);
    const role = await bao.api('POST', `auth/${K8S_MOUNT}/role/provkey`, {
      bound_service_account_names: ['provkey'],
      bound_service_account_namespaces: ['provkey'],
      token_policies: ['provkey'], // docs/vault-policy.hcl, written by the top-level beforeAll
      token_ttl: '1h',
    });
    expect(role.status, JSON.stringify(role.body)).toBe(204);
  });

  afterAll(async () => {
    await k8s?.stop();
  });

  it('a service-account JWT from jwtFile logs in, the store writes and reads a key; a wrong JWT is auth_failed', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'provkey-vault-k8s-ok-'));
    try {
      writeFileSync(path.join(dir, 'sa-token'), `${jwt}\n`, { mode: 0o600 });
      const auth = { method: 'kubernetes', mount: K8S_MOUNT, role: 'provkey', jwtFile: 'sa-token' };
      const store = await createVaultStore('vault', vaultConfig({ address: bao.addr, auth }), context({}, dir));
      stores.push(store);
      const linesBefore = debugLines.length;
      const key = `k8s-${randomBytes(4).toString('hex')}`;
      const s = newSecret();
      secretsSeen.push(s);
      const { versionId, record } = await store.addVersion(key, undefined, s, meta('current', s));
      expect(await store.readSecret(key, versionId)).toBe(s);
      const read = await store.read(key);
      expect(read?.revision).toBe(record.revision);
      expect(read?.versions.map((ver) => [ver.id, ver.label])).toEqual([[versionId, 'current']]);
      // Written where the policy allows, under the token the Kubernetes login issued.
      const value = await bao.api('GET', `${MOUNT}/data/${PREFIX}/${key}/value`);
      expect(value.body.data.data.value).toBe(s);
      expect(debugLines.slice(linesBefore).filter((l) => l.startsWith(`[vault] Kubernetes login at auth/${K8S_MOUNT} as role provkey: token valid for 3600s`))).toHaveLength(1);

      // OpenBao asked "Kubernetes" about exactly the file's JWT, once, as the configured reviewer.
      expect(k8s.reviews).toEqual([{ token: jwt, audiences: [], bearer: reviewerJwt, authenticated: true }]);
      expect(k8s.unexpected).toEqual([]);

      // Same claims (so it passes the role's bindings) but a token Kubernetes does not know.
      const wrongJwt = serviceAccountJwt('provkey', 'provkey', saUid);
      secretsSeen.push(wrongJwt);
      writeFileSync(path.join(dir, 'wrong-token'), wrongJwt, { mode: 0o600 });
      const wrong = await createVaultStore('vault', vaultConfig({ address: bao.addr, auth: { ...auth, jwtFile: 'wrong-token' } }), context({}, dir));
      stores.push(wrong);
      const error = await failure(wrong.read(key));
      expect(error.kind).toBe('auth_failed');
      expect(error.message).toBe(`[vault] Kubernetes login at auth/${K8S_MOUNT} as role provkey refused: permission denied`);
      expect(k8s.reviews.slice(1)).toEqual([{ token: wrongJwt, audiences: [], bearer: reviewerJwt, authenticated: false }]);

      await store.deleteKey(key);
      const all = debugLines.join('\n');
      for (const secret of [jwt, wrongJwt, reviewerJwt, s]) expect(all).not.toContain(secret);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('vault store: server states', () => {
  let server: OpenBaoServer;
  let rootStoreToken: string;
  beforeAll(async () => {
    server = await startOpenBao();
    await server.enableKv2(MOUNT);
    rootStoreToken = await server.createPolicyToken('provkey', shippedPolicy(MOUNT, PREFIX));
  });
  afterAll(async () => {
    await server?.stop();
  });
  const openOn = async (fields: Record<string, unknown> = {}, internals: VaultStoreInternals = {}) => {
    const store = await createVaultStore('vault', vaultConfig({ address: server.addr, ...fields }), context({ VAULT_TOKEN: rootStoreToken }), internals);
    stores.push(store);
    return store;
  };

  it('a sealed server is kind sealed (503 "Vault is sealed"), and works again once unsealed', async () => {
    const store = await openOn();
    const key = `sealed-${randomBytes(4).toString('hex')}`;
    const s = newSecret();
    await store.addVersion(key, undefined, s, meta('current', s));
    await server.seal();
    try {
      const error = await failure(store.read(key));
      expect(error.kind).toBe('sealed');
      expect(error.message).toBe(`[vault] Vault at ${server.addr} is sealed: unseal it (bao/vault operator unseal), then run provkey again`);
    } finally {
      await server.unseal();
    }
    expect((await store.read(key))?.versions).toHaveLength(1);
    await store.deleteKey(key);
  });

  it('429 from a rate-limit quota is retried with backoff, then reported as throttled', async () => {
    const store = await openOn({}, { retryBaseMs: 300, maxAttempts: 5 });
    const key = `throttle-${randomBytes(4).toString('hex')}`;
    const s = newSecret();
    const { versionId } = await store.addVersion(key, undefined, s, meta('current', s));
    expect((await server.api('POST', 'sys/quotas/rate-limit/provkey-test', { path: `${MOUNT}/`, rate: 2, interval: '1s' })).status).toBe(204);
    try {
      // Six reads at 2 per second: some answers are 429 and the backoff rides them out.
      for (let i = 0; i < 6; i++) expect(await store.readSecret(key, versionId)).toBe(s);
      expect(debugLines.some((l) => / → 429 /.test(l))).toBe(true);

      expect((await server.api('POST', 'sys/quotas/rate-limit/provkey-test', { path: `${MOUNT}/`, rate: 1, interval: '60s' })).status).toBe(204);
      const strict = await openOn({}, { retryBaseMs: 50, maxAttempts: 3 });
      await strict.read(key).catch(() => undefined);
      const error = await failure(strict.read(key));
      expect(error.kind).toBe('throttled');
      expect(error.message).toMatch(/^\[vault\] Vault kept answering 429 \(rate limited\) to GET provkv\/data\/.*: 3 attempts over \d+ ms; try again later$/);
    } finally {
      await server.api('DELETE', 'sys/quotas/rate-limit/provkey-test');
    }
    await store.deleteKey(key);
  }, 30_000);
});

describe('vault store: unreachable and slow servers', () => {
  const closed: Server[] = [];
  afterAll(() => {
    for (const s of closed) s.close();
  });

  async function freePort(): Promise<number> {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    await new Promise<void>((r) => srv.close(() => r()));
    return port;
  }

  it('a closed port is kind unreachable, naming the address', async () => {
    const port = await freePort();
    const store = await createVaultStore('vault', vaultConfig({ address: `http://127.0.0.1:${port}` }), context({ VAULT_TOKEN: 'hvs.not-used-here-0000' }));
    const error = await failure(store.read('k'));
    expect(error.kind).toBe('unreachable');
    expect(error.message).toBe(`[vault] cannot reach http://127.0.0.1:${port}: connection refused (ECONNREFUSED)`);
    expect(error.message).not.toContain('hvs.not-used-here-0000');
    await store.close();
  });

  it('a server that accepts but never answers is kind timeout after the configured timeout', async () => {
    const blackHole = createServer(() => undefined);
    closed.push(blackHole);
    await new Promise<void>((r) => blackHole.listen(0, '127.0.0.1', () => r()));
    const port = (blackHole.address() as { port: number }).port;
    const store = await createVaultStore('vault', vaultConfig({ address: `http://127.0.0.1:${port}`, timeout: '400ms' }), context({ VAULT_TOKEN: 'hvs.not-used-here-0000' }));
    const started = Date.now();
    const error = await failure(store.read('k'));
    expect(error.kind).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(3000);
    expect(error.message).toContain('no answer from');
    await store.close();
  });

  it('refuses plain http to a non-loopback address unless allowInsecureHttp is set', async () => {
    await expect(createVaultStore('vault', vaultConfig({ address: 'http://vault.example.com:8200' }), context({}))).rejects.toThrow(
      'stores.vault.address: plain http:// to vault.example.com would send the Vault token unencrypted; use https://, or set stores.vault.allowInsecureHttp: true',
    );
    await expect(createVaultStore('vault', vaultConfig({ address: 'http://vault.example.com:8200', allowInsecureHttp: true }), context({}))).resolves.toBeDefined();
    await expect(createVaultStore('vault', vaultConfig({}), context({}))).rejects.toThrow('stores.vault.address: not set, and VAULT_ADDR is not set either');
  });
});

describe('vault store over TLS (the same bao binary, server -dev -dev-tls)', () => {
  // The harness starts plain-http dev servers; TLS needs -dev-tls, which writes its own CA.
  let child: ChildProcess | undefined;
  let certDir: string;
  let addr: string;
  let caFile: string;
  let tlsToken: string;
  const rootToken = `root-${randomBytes(12).toString('hex')}`;

  function api(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
    return new Promise((resolve, reject) => {
      const req = https.request(`${addr}/v1/${p}`, { method, ca: readFileSync(caFile), headers: { 'X-Vault-Token': rootToken, 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null }));
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  beforeAll(async () => {
    const bin = await ensureOpenBao();
    certDir = mkdtempSync(path.join(tmpdir(), 'provkey-bao-tls-'));
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    addr = `https://127.0.0.1:${port}`;
    caFile = path.join(certDir, 'vault-ca.pem');
    child = spawn(bin, ['server', '-dev', '-dev-tls', `-dev-tls-cert-dir=${certDir}`, `-dev-listen-address=127.0.0.1:${port}`, `-dev-root-token-id=${rootToken}`, '-dev-no-store-token', '-log-level=warn'], {
      env: { PATH: process.env.PATH, HOME: certDir, TMPDIR: certDir },
      stdio: 'ignore',
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (existsSync(caFile)) {
        const health = await api('GET', 'sys/health').catch(() => undefined);
        if (health?.status === 200) break;
      }
      if (Date.now() > deadline) throw new Error('bao -dev-tls did not become healthy');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await api('PUT', 'sys/policies/acl/provkey', { policy: shippedPolicy('secret', PREFIX) })).status).toBe(204);
    tlsToken = (await api('POST', 'auth/token/create', { policies: ['provkey'], ttl: '1h' })).body.auth.client_token;
  });
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const gone = new Promise<void>((r) => child!.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child!.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(timer);
    }
    if (certDir) rmSync(certDir, { recursive: true, force: true });
  });

  const openTls = async (fields: Record<string, unknown>, env: NodeJS.ProcessEnv = { VAULT_TOKEN: tlsToken }) => {
    const store = await createVaultStore('vault', vaultConfig({ address: addr, mount: 'secret', ...fields }), context(env));
    stores.push(store);
    return store;
  };

  it('verifies the server against tls.caFile and works', async () => {
    const store = await openTls({ tls: { caFile } });
    const key = `tls-${randomBytes(4).toString('hex')}`;
    const s = newSecret();
    const { versionId } = await store.addVersion(key, undefined, s, meta('current', s));
    expect(await store.readSecret(key, versionId)).toBe(s);
    await store.deleteKey(key);
    // VAULT_CACERT does the same when the config names no CA file.
    expect(await (await openTls({}, { VAULT_TOKEN: tlsToken, VAULT_CACERT: caFile })).read(key)).toBeUndefined();
  });

  it('refuses a certificate it cannot verify, even with VAULT_SKIP_VERIFY set in the environment', async () => {
    const saved = process.env.VAULT_SKIP_VERIFY;
    process.env.VAULT_SKIP_VERIFY = '1';
    try {
      const store = await openTls({}, { VAULT_TOKEN: tlsToken, VAULT_SKIP_VERIFY: '1' });
      const error = await failure(store.read('k'));
      expect(error.kind).toBe('unreachable');
      expect(error.message).toMatch(new RegExp(`^\\[vault\\] TLS: the certificate of ${addr.replaceAll('.', '\\.')} is not trusted \\((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\\); set stores\\.vault\\.tls\\.caFile`));
    } finally {
      if (saved === undefined) delete process.env.VAULT_SKIP_VERIFY;
      else process.env.VAULT_SKIP_VERIFY = saved;
    }
  });

  it('tls.serverName: checks the certificate against that name instead of the address', async () => {
    expect(await (await openTls({ tls: { caFile, serverName: 'localhost' } })).read('k')).toBeUndefined();
    const error = await failure((await openTls({ tls: { caFile, serverName: 'vault.example.com' } })).read('k'));
    expect(error.kind).toBe('unreachable');
    expect(error.message).toContain('(ERR_TLS_CERT_ALTNAME_INVALID)');
  });
});

/**
 * One claimer process: reads the key, says "ready" and waits on stdin until the test releases
 * every claimer at once, then tries to claim the key at the given revision. Runs the TypeScript source with Node's type stripping (.js → .ts resolve hook).
 */
const claimScript = `${TS_SOURCE_HOOK}const { createVaultStore } = await import(process.env.SRC);
const env = process.env;
const context = { configDir: '/', env: { VAULT_TOKEN: env.VAULT_TOKEN, HOME: '/nonexistent' }, resolveSecret: async () => '', debug: () => {} };
const store = await createVaultStore('vault', { type: 'vault', address: env.ADDR, mount: env.MOUNT, prefix: env.PREFIX, auth: { method: 'token' }, tls: {}, allowInsecureHttp: false, timeout: '10s', destroyOnRevoke: false }, context);
const record = await store.read(env.KEY);
if (record.revision !== env.REVISION) throw new Error('unexpected revision ' + record.revision);
// The barrier: tell the test this process is ready, then wait until it releases both at once.
process.stdout.write('ready\\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
process.stdin.pause();
const now = new Date();
try {
  await store.update(env.KEY, env.REVISION, { versions: record.versions, state: { claim: { id: 'claim-' + env.WHO, operation: 'rotate', owner: { host: 'race', pid: process.pid }, startedAt: now.toISOString(), expiresAt: new Date(now.getTime() + 60000).toISOString(), step: 'claimed', overlap: true } } });
  console.log('won');
} catch (error) {
  if (error?.kind !== 'conflict') throw error;
  console.log('conflict');
}
await store.close();
`;
