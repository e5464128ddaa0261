import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AdapterError, ConflictError } from '../../src/core/errors.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { Claim, LifecycleState, VersionLabel } from '../../src/core/model.js';
import type { NewVersionMeta, SecretStore } from '../../src/stores/store.js';

/**
 * The SecretStore contract (src/stores/store.ts) as a test suite. Every store runs it: the
 * file store in temp dirs, Vault and Azure against real servers. Key names carry a random
 * suffix and every test deletes what it created, so remote stores can share one server and
 * tests never assume the store holds nothing else.
 */
export function describeStoreContract(
  label: string,
  open: () => Promise<{ store: SecretStore; cleanup?: () => Promise<void> }>,
): void {
  describe(`SecretStore contract: ${label}`, () => {
    let store: SecretStore;
    let cleanup: (() => Promise<void>) | undefined;
    let created: string[];

    beforeEach(async () => {
      ({ store, cleanup } = await open());
      created = [];
    });

    afterEach(async () => {
      for (const key of created) await store.deleteKey(key).catch(() => undefined);
      await store.close();
      await cleanup?.();
    });

    /** A fresh, valid key name (config names are [a-z0-9._-]) unique to this test. */
    function keyName(what: string): string {
      const key = `contract-${what}-${randomBytes(5).toString('hex')}`;
      created.push(key);
      return key;
    }

    it('round-trips a version: meta, label, state and value', async () => {
      const key = keyName('roundtrip');
      const secret = newSecret();
      const state: LifecycleState = { lastRotatedAt: '2025-01-02T03:04:05.000Z' };
      const { record, versionId } = await store.addVersion(key, undefined, secret, meta('current', secret), state);

      expect(record.key).toBe(key);
      expect(typeof record.revision).toBe('string');
      expect(record.revision).not.toBe('');
      expect(record.versions).toEqual([{ id: versionId, ...meta('current', secret) }]);
      expect(record.state).toEqual(state);
      expect(await store.read(key)).toEqual(record);
      expect(await store.readSecret(key, versionId)).toBe(secret);
    });

    it('never returns a value from read or addVersion', async () => {
      const key = keyName('novalue');
      const secret = newSecret();
      const { record } = await store.addVersion(key, undefined, secret, meta('current', secret));
      expect(JSON.stringify(record)).not.toContain(secret);
      expect(JSON.stringify(await store.read(key))).not.toContain(secret);
    });

    it('keeps optional meta (graceUntil, imported origin)', async () => {
      const key = keyName('meta');
      const secret = newSecret();
      const full: NewVersionMeta = { ...meta('previous', secret), graceUntil: '2030-01-01T00:00:00.000Z', origin: 'imported' };
      const { versionId } = await store.addVersion(key, undefined, secret, full);
      expect((await store.read(key))?.versions).toEqual([{ id: versionId, ...full }]);
    });

    it('lists keys, sorted', async () => {
      const keys = [keyName('list-b'), keyName('list-a'), keyName('list-c')];
      for (const key of keys) await store.addVersion(key, undefined, 'v-' + key, meta('current', 'v-' + key));
      const listed = await store.listKeys();
      for (const key of keys) expect(listed).toContain(key);
      expect(listed).toEqual([...listed].sort());
    });

    it('reads an unknown key as undefined and its secret as not_found', async () => {
      const key = keyName('unknown');
      expect(await store.read(key)).toBeUndefined();
      await expectKind(store.readSecret(key, '1'), 'not_found');
      expect(await store.listKeys()).not.toContain(key);
    });

    it('changes the revision on every write', async () => {
      const key = keyName('revision');
      const first = await store.addVersion(key, undefined, 's1-' + key, meta('current', 's1-' + key));
      const second = await store.addVersion(key, first.record.revision, 's2-' + key, meta('pending', 's2-' + key));
      const third = await store.update(key, second.record.revision, { versions: second.record.versions, state: { lastRotatedAt: now() } });
      const revisions = [first.record.revision, second.record.revision, third.revision];
      expect(new Set(revisions).size).toBe(3);
      expect((await store.read(key))?.revision).toBe(third.revision);
    });

    it('refuses addVersion without a revision when the key exists', async () => {
      const key = keyName('exists');
      const { record } = await store.addVersion(key, undefined, 'a-' + key, meta('current', 'a-' + key));
      await expect(store.addVersion(key, undefined, 'b-' + key, meta('pending', 'b-' + key))).rejects.toBeInstanceOf(ConflictError);
      expect(await store.read(key)).toEqual(record);
    });

    it('refuses writes with a stale revision', async () => {
      const key = keyName('stale');
      const first = await store.addVersion(key, undefined, 'a-' + key, meta('current', 'a-' + key));
      const second = await store.update(key, first.record.revision, { versions: first.record.versions, state: { lastRotatedAt: now() } });

      await expect(store.update(key, first.record.revision, { versions: first.record.versions, state: {} })).rejects.toBeInstanceOf(ConflictError);
      await expect(store.addVersion(key, first.record.revision, 'b-' + key, meta('pending', 'b-' + key))).rejects.toBeInstanceOf(ConflictError);
      expect(await store.read(key)).toEqual(second);
    });

    it('lets exactly one of two concurrent updates from the same revision win', async () => {
      const key = keyName('race');
      const secret = newSecret();
      const { record } = await store.addVersion(key, undefined, secret, meta('current', secret));
      const claimA = claim('a');
      const claimB = claim('b');
      const results = await Promise.allSettled([
        store.update(key, record.revision, { versions: record.versions, state: { claim: claimA } }),
        store.update(key, record.revision, { versions: record.versions, state: { claim: claimB } }),
      ]);

      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(ConflictError);
      // The store holds the winner's claim, not a mix.
      const winner = (won[0] as PromiseFulfilledResult<{ state: LifecycleState }>).value;
      expect((await store.read(key))?.state).toEqual(winner.state);
    });

    it('lets exactly one of two concurrent addVersions from the same revision win', async () => {
      const key = keyName('race-add');
      const { record } = await store.addVersion(key, undefined, 'a-' + key, meta('current', 'a-' + key));
      const results = await Promise.allSettled([
        store.addVersion(key, record.revision, 'b-' + key, meta('pending', 'b-' + key)),
        store.addVersion(key, record.revision, 'c-' + key, meta('pending', 'c-' + key)),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(results.filter((r) => r.status === 'rejected' && r.reason instanceof ConflictError)).toHaveLength(1);
      expect((await store.read(key))?.versions).toHaveLength(2);
    });

    it('lets exactly one of two concurrent creations of a new key win', async () => {
      const key = keyName('race-create');
      const results = await Promise.allSettled([
        store.addVersion(key, undefined, 'a-' + key, meta('current', 'a-' + key)),
        store.addVersion(key, undefined, 'b-' + key, meta('current', 'b-' + key)),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(results.filter((r) => r.status === 'rejected' && r.reason instanceof ConflictError)).toHaveLength(1);
      expect((await store.read(key))?.versions).toHaveLength(1);
    });

    it('orders versions oldest to newest, each with its own value', async () => {
      const key = keyName('order');
      const secrets = [newSecret(), newSecret(), newSecret()];
      let revision: string | undefined;
      const ids: string[] = [];
      for (const [i, secret] of secrets.entries()) {
        const { record, versionId } = await store.addVersion(key, revision, secret, meta(i === 0 ? 'current' : 'pending', secret));
        revision = record.revision;
        ids.push(versionId);
      }
      expect(new Set(ids).size).toBe(3);
      const record = await store.read(key);
      expect(record?.versions.map((v) => v.id)).toEqual(ids);
      expect(record?.versions.map((v) => v.fingerprint)).toEqual(secrets.map(fingerprint));
      for (const [i, id] of ids.entries()) expect(await store.readSecret(key, id)).toBe(secrets[i]);
    });

    it('keeps the state of a key when addVersion is given none', async () => {
      const key = keyName('keepstate');
      const state: LifecycleState = { claim: claim('keep') };
      const { record } = await store.addVersion(key, undefined, 'a-' + key, meta('current', 'a-' + key), state);
      const second = await store.addVersion(key, record.revision, 'b-' + key, meta('pending', 'b-' + key));
      expect(second.record.state).toEqual(state);
    });

    it('round-trips lifecycle state, and update replaces it whole', async () => {
      const key = keyName('state');
      const secret = newSecret();
      const { record, versionId } = await store.addVersion(key, undefined, secret, meta('current', secret));
      const full: LifecycleState = {
        claim: { ...claim('state'), fromVersionId: versionId, pendingVersionId: versionId },
        lastTest: { ok: true, at: now(), versionId, fingerprint: fingerprint(secret) },
        lastRotatedAt: now(),
        lockout: { at: now(), detail: 'neither version binds' },
      };
      const claimed = await store.update(key, record.revision, { versions: record.versions, state: full });
      expect(claimed.state).toEqual(full);
      expect((await store.read(key))?.state).toEqual(full);

      // Releasing the claim: fields left out of the new state are gone, not merged back.
      const released = await store.update(key, claimed.revision, { versions: claimed.versions, state: { lastRotatedAt: full.lastRotatedAt } });
      expect(released.state).toEqual({ lastRotatedAt: full.lastRotatedAt });
      expect((await store.read(key))?.state).toEqual({ lastRotatedAt: full.lastRotatedAt });
    });

    it('changes labels through update (finish step of a rotation)', async () => {
      const key = keyName('labels');
      const [oldSecret, newSecretValue] = [newSecret(), newSecret()];
      const first = await store.addVersion(key, undefined, oldSecret, meta('current', oldSecret));
      const second = await store.addVersion(key, first.record.revision, newSecretValue, meta('pending', newSecretValue));
      const [oldVersion, newVersion] = second.record.versions;
      const at = now();
      const finished = await store.update(key, second.record.revision, {
        versions: [
          { ...oldVersion!, label: 'previous', labelledAt: at, graceUntil: '2030-01-01T00:00:00.000Z' },
          { ...newVersion!, label: 'current', labelledAt: at },
        ],
        state: { lastRotatedAt: at },
      });
      const expected = [
        { ...oldVersion, label: 'previous', labelledAt: at, graceUntil: '2030-01-01T00:00:00.000Z' },
        { ...newVersion, label: 'current', labelledAt: at },
      ];
      expect(finished.versions).toEqual(expected);
      expect((await store.read(key))?.versions).toEqual(expected);
      expect(await store.readSecret(key, newVersion!.id)).toBe(newSecretValue);
    });

    it('rejects an update that names a version that does not exist', async () => {
      const key = keyName('unknownid');
      const secret = newSecret();
      const { record } = await store.addVersion(key, undefined, secret, meta('current', secret));
      const bogus = { ...record.versions[0]!, id: `${record.versions[0]!.id}999`, label: 'pending' as const };
      await expect(store.update(key, record.revision, { versions: [...record.versions, bogus], state: {} })).rejects.toBeInstanceOf(AdapterError);
      expect(await store.read(key)).toEqual(record);
    });

    it('disables a version: its value is gone, its metadata stays', async () => {
      const key = keyName('disable');
      const [a, b] = [newSecret(), newSecret()];
      const first = await store.addVersion(key, undefined, a, meta('current', a));
      const second = await store.addVersion(key, first.record.revision, b, meta('pending', b));
      await store.disableVersion(key, first.versionId);

      const error = await expectKind(store.readSecret(key, first.versionId), 'not_found');
      expect(error.message).not.toContain(a);
      expect(await store.readSecret(key, second.versionId)).toBe(b);
      const record = await store.read(key);
      expect(record?.versions).toEqual(second.record.versions);
      // Disabling twice is harmless: revoke may be retried.
      await store.disableVersion(key, first.versionId);
      // And the key can still be written with the revision read afterwards.
      await store.update(key, record!.revision, { versions: record!.versions, state: {} });
    });

    it('deletes a key with all its versions', async () => {
      const key = keyName('delete');
      const other = keyName('delete-other');
      const { versionId } = await store.addVersion(key, undefined, 'a-' + key, meta('current', 'a-' + key));
      const { record: kept } = await store.addVersion(other, undefined, 'b-' + other, meta('current', 'b-' + other));
      await store.deleteKey(key);

      expect(await store.read(key)).toBeUndefined();
      expect(await store.listKeys()).not.toContain(key);
      await expectKind(store.readSecret(key, versionId), 'not_found');
      expect(await store.read(other)).toEqual(kept);
      // A deleted key can be created again from scratch.
      await store.addVersion(key, undefined, 'c-' + key, meta('current', 'c-' + key));
    });

    it('treats deleting an unknown key as done', async () => {
      await expect(store.deleteKey(keyName('never'))).resolves.toBeUndefined();
    });

    it('hands out copies: changing a returned record changes nothing stored', async () => {
      const key = keyName('copies');
      const { record } = await store.addVersion(key, undefined, 'a-' + key, meta('current', 'a-' + key), { claim: claim('copy') });
      const read = (await store.read(key))!;
      read.versions[0]!.label = 'revoked';
      read.state.claim!.step = 'tested';
      record.versions.pop();
      const again = await store.read(key);
      expect(again?.versions[0]?.label).toBe('current');
      expect(again?.state.claim?.step).toBe('claimed');
    });

    it('keeps keys independent: a write to one does not invalidate the revision of another', async () => {
      const [a, b] = [keyName('indep-a'), keyName('indep-b')];
      const { record: ra } = await store.addVersion(a, undefined, 'a-' + a, meta('current', 'a-' + a));
      await store.addVersion(b, undefined, 'b-' + b, meta('current', 'b-' + b));
      await expect(store.update(a, ra.revision, { versions: ra.versions, state: {} })).resolves.toBeDefined();
    });
  });
}

function newSecret(): string {
  return `pk_contract_${randomBytes(18).toString('base64url')}`;
}

function now(): string {
  return new Date().toISOString();
}

function meta(label: VersionLabel, secret: string): NewVersionMeta {
  return { label, fingerprint: fingerprint(secret), createdAt: '2025-01-01T00:00:00.000Z', labelledAt: '2025-01-01T00:00:00.000Z', origin: 'generated' };
}

function claim(id: string): Claim {
  return {
    id: `claim-${id}`,
    operation: 'rotate',
    owner: { host: 'contract-host', pid: 4242 },
    startedAt: '2025-01-01T00:00:00.000Z',
    expiresAt: '2025-01-01T00:10:00.000Z',
    step: 'claimed',
    overlap: true,
  };
}

async function expectKind(promise: Promise<unknown>, kind: AdapterError['kind']): Promise<AdapterError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AdapterError);
  expect((error as AdapterError).kind).toBe(kind);
  return error as AdapterError;
}
