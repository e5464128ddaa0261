// The LDAP target against a real 389 Directory Server (test/harness/servers/dirsrv.ts: Debian's
// 389-ds-base 2.3, one instance per describe block): the Target contract (self over StartTLS,
// admin over LDAPS under passwordMustChange), and what 389-DS does differently: its policy in
// cn=config, 19 with the ppolicy control, "Exceed password retry limit", passwordMinTokenLength,
// 53 after a reset, 13 without TLS. Failed binds are counted from passwordRetryCount.

import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { Attribute, Change, Client } from 'ldapts';
import * as v from 'valibot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { targetSchema, type LdapTargetConfig } from '../../src/config/schema.js';
import { resolveSecretRef } from '../../src/config/secret-ref.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { AdapterContext } from '../../src/stores/context.js';
import { tokenProblem } from '../../src/targets/ldap/dirsrv-policy.js';
import { encodePasswordModifyRequest, PASSWORD_MODIFY_OID } from '../../src/targets/ldap/password-modify.js';
import { createLdapTarget } from '../../src/targets/ldap/ldap-target.js';
import type { SecretInUse, Target } from '../../src/targets/target.js';
import { describeTargetContract, summary, testUntil } from '../contract/target-contract.js';
import { startDirsrv, type DirsrvServer, type StartDirsrvOptions } from '../harness/servers/dirsrv.ts';
import { startTcpProxy } from '../harness/servers/tcp-proxy.ts';

const ACCOUNT_TOKENS = { minTokenLength: 3, accountTokens: ['provisioner', 'service'] };

/** Three categories, 12+ characters, and (like provkey itself) never a 3-letter run of the account's names. */
function makeSecret(): SecretInUse {
  for (;;) {
    const value = `Pk9-${randomBytes(21).toString('base64url')}`;
    if (!tokenProblem(value, ACCOUNT_TOKENS, '')) return { value, fingerprint: fingerprint(value) };
  }
}

function asSecret(value: string): SecretInUse {
  return { value, fingerprint: fingerprint(value) };
}

function contextFor(env: Record<string, string>): AdapterContext {
  const context: AdapterContext = {
    configDir: tmpdir(),
    env: { ...process.env, ...env },
    resolveSecret: (ref, field) => resolveSecretRef(ref, field, context),
    debug: () => undefined,
  };
  return context;
}

function config(ds: DirsrvServer, fields: Record<string, unknown>): LdapTargetConfig {
  const parsed = v.parse(targetSchema, {
    type: 'ldap',
    directory: '389ds',
    urls: [ds.ldapUrl],
    tls: { caFile: ds.caFile },
    bindDn: ds.serviceDn,
    searchBase: ds.peopleDn,
    timeout: '5s',
    propagationTimeout: '3s',
    apply: { mode: 'self', adminDn: ds.provkeyAdminDn, adminPasswordRef: 'env:DS_ADMIN_PASSWORD' },
    ...fields,
  });
  if (parsed.type !== 'ldap') throw new Error('not ldap');
  return parsed;
}

function open389(ds: DirsrvServer, fields: Record<string, unknown> = {}, adminPassword = ds.provkeyAdminPassword): Promise<Target> {
  return createLdapTarget('ds-provisioner', config(ds, fields), contextFor({ DS_ADMIN_PASSWORD: adminPassword }));
}

async function retryCount(ds: DirsrvServer): Promise<number> {
  return Number((await ds.read(ds.serviceDn, ['passwordRetryCount'])).passwordRetryCount[0] ?? '0');
}

/**
 * Puts the service account on a known, fully usable password, unlocked: Directory Manager
 * resets it to a temporary value (a plain modify: no policy check), then the account changes
 * that to `password` itself, so a passwordMustChange set-up does not leave it restricted.
 */
async function resetAccount(ds: DirsrvServer, password: string): Promise<void> {
  const temporary = makeSecret().value;
  await ds.modify(ds.serviceDn, [
    new Change({ operation: 'replace', modification: new Attribute({ type: 'userPassword', values: [temporary] }) }),
    new Change({ operation: 'replace', modification: new Attribute({ type: 'passwordRetryCount', values: ['0'] }) }),
  ]);
  await ds.modify(ds.serviceDn, [new Change({ operation: 'delete', modification: new Attribute({ type: 'accountUnlockTime', values: [] }) })]).catch(() => undefined);
  const client = new Client({ url: ds.ldapsUrl, tlsOptions: { ca: [ds.caPem] } });
  try {
    await client.bind(ds.serviceDn, temporary);
    // RFC 3062 (a plain modify as self leaves passwordExpirationTime expired under passwordMustChange).
    await client.exop(PASSWORD_MODIFY_OID, encodePasswordModifyRequest({ oldPassword: temporary, newPassword: password }));
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** A Directory Manager reset, which under passwordMustChange leaves the account able only to change its password. */
async function dmReset(ds: DirsrvServer, password: string): Promise<void> {
  await ds.modify(ds.serviceDn, [new Change({ operation: 'replace', modification: new Attribute({ type: 'userPassword', values: [password] }) })]);
}

/** One instance per block; each contract test starts from a fresh known password. */
function contractOn(label: string, options: StartDirsrvOptions, fields: (ds: DirsrvServer) => Record<string, unknown>): void {
  describe(label, () => {
    let ds: DirsrvServer;
    beforeAll(async () => {
      ds = await startDirsrv(options);
    });
    afterAll(async () => {
      await ds?.stop();
    });
    describeTargetContract(label, async () => {
      const initial = makeSecret();
      await resetAccount(ds, initial.value);
      // Through a forwarder the test can take down (the instance serves the whole block).
      const wanted = fields(ds);
      const real = new URL(((wanted.urls as string[] | undefined) ?? [ds.ldapUrl])[0]!);
      const proxy = await startTcpProxy({ host: real.hostname, port: Number(real.port) });
      const target = await open389(ds, { ...wanted, urls: [`${real.protocol}//${proxy.host}:${proxy.port}`], tls: { caFile: ds.caFile, serverName: 'localhost' } });
      return {
        target,
        initial,
        makeSecret,
        accepts: async (secret) => (await ds.bindCode(ds.serviceDn, secret.value)) === 0,
        takeDown: () => proxy.close(),
        cleanup: () => proxy.close(),
      };
    });
  });
}

// As in the OpenLDAP contract, passwordMaxFailure 5 (the limit of 3 has its own tests below), and
// 389-DS's default password storage (PBKDF2-SHA512 on 2.3), which identify checks against the
// candidates locally without a bind (pbkdf2-hash.ts).
const CONTRACT_POLICY = { passwordMaxFailure: '5' };
contractOn('ldap 389ds: StartTLS, self apply, admin-reset rollback', { policy: CONTRACT_POLICY }, () => ({ rollback: 'admin-reset', passwordPolicy: { maxFailure: 5 } }));
contractOn('ldap 389ds: ldaps, admin apply under passwordMustChange (two-step), admin-reset rollback', { policy: { ...CONTRACT_POLICY, passwordMustChange: 'on' } }, (ds) => ({
  urls: [ds.ldapsUrl],
  apply: { mode: 'admin', adminDn: ds.provkeyAdminDn, adminPasswordRef: 'env:DS_ADMIN_PASSWORD' },
  rollback: 'admin-reset',
  passwordPolicy: { maxFailure: 5 },
}));

describe('ldap target against 389 Directory Server', () => {
  let ds: DirsrvServer;
  let initial: SecretInUse;
  beforeAll(async () => {
    ds = await startDirsrv();
  });
  afterAll(async () => {
    await ds?.stop();
  });
  async function fresh(fields: Record<string, unknown> = {}): Promise<Target> {
    initial = makeSecret();
    await resetAccount(ds, initial.value);
    return open389(ds, fields);
  }

  it('RFC 3062 and Who am I? work: connect, bind, whoami, search all pass', async () => {
    const t = await fresh();
    const result = await t.test(initial, { expect: 'accept' });
    expect(result.ok, summary(result)).toBe(true);
    expect(result.probes.map((p) => [p.name, p.outcome])).toEqual([['connect', 'pass'], ['bind', 'pass'], ['whoami', 'pass'], ['search', 'pass']]);
  });

  it('reads the policy from cn=config as Directory Manager; the lockout guard then forbids the negative probe (passwordMaxFailure 3)', async () => {
    const t = await fresh({ apply: { mode: 'admin', adminDn: ds.adminDn, adminPasswordRef: 'env:DS_ADMIN_PASSWORD' } });
    const dm = await createLdapTarget('ds-provisioner', config(ds, { apply: { mode: 'self', adminDn: ds.adminDn, adminPasswordRef: 'env:DS_ADMIN_PASSWORD' } }), contextFor({ DS_ADMIN_PASSWORD: ds.adminPassword }));
    await dm.checkGenerationPolicy!({ type: 'password', length: 24, lower: 1, upper: 1, digits: 1, symbols: 1, symbolSet: '-_', exclude: '' });
    const effective = (dm as unknown as { effectivePolicy: { policy: Record<string, unknown>; source: string } }).effectivePolicy;
    expect(effective.source).toBe('389-DS cn=config');
    expect(effective.policy).toMatchObject({ minLength: 12, inHistory: 5, maxFailure: 3, lockout: true, mustChange: false, minTokenLength: 3, accountTokens: ['provisioner', 'provisioner', 'service'] });
    expect(dm.capabilities.negativeProbe).toBe('forbidden');
    await expect(dm.checkGenerationPolicy!({ type: 'hex', bytes: 4 })).rejects.toThrow(/keys\.ds-provisioner\.format\.bytes: .*8 characters, shorter than pwdMinLength 12/);
    await t.close();
  });

  it('a self change back to a password in the history is 19 with the ppolicy control: passwordInHistory', async () => {
    const t = await fresh();
    const next = makeSecret();
    expect(await t.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
    const back = await t.set({ next: initial, current: next, replace: true });
    expect(back).toMatchObject({ ok: false, reason: 'policy', detail: expect.stringMatching(/19 constraintViolation \(ppolicy: passwordInHistory\)/) });
  });

  it('a password with too few character categories is 19 insufficientPasswordQuality', async () => {
    const t = await fresh();
    const weak = asSecret(`zq${randomBytes(12).toString('hex').replace(/[0-9]/g, 'x')}`);
    const result = await t.set({ next: weak, current: initial, replace: true });
    expect(result).toMatchObject({ ok: false, reason: 'policy', detail: expect.stringMatching(/19 constraintViolation \(ppolicy: insufficientPasswordQuality\)/) });
    expect(await ds.bindCode(ds.serviceDn, initial.value)).toBe(0);
  });

  it('passwordMinTokenLength: a value with a 3-letter run of uid/cn/sn is refused by provkey before it is sent', async () => {
    const t = await fresh();
    await t.test(initial, { expect: 'accept' }); // reads the account's names
    const runs = asSecret(`Zz9-${randomBytes(8).toString('hex')}-RVIce`); // "rvi", "vic", "ice" of sn "service"
    const result = await t.set({ next: runs, current: initial, replace: true });
    expect(result).toMatchObject({ ok: false, reason: 'policy', detail: expect.stringMatching(/3 consecutive characters of the account's uid\/cn\/sn, which passwordMinTokenLength 3 refuses/) });
    // Not sent: the account is unchanged and the server saw no refused change.
    expect(await ds.bindCode(ds.serviceDn, initial.value)).toBe(0);
    expect(await ds.bindCode(ds.serviceDn, runs.value)).toBe(49);
  });

  it('the 4th bind after 3 failures is 19 "Exceed password retry limit" even with the right password: reported as a lockout', async () => {
    const t = await fresh();
    for (let i = 0; i < 3; i++) expect(await ds.bindCode(ds.serviceDn, makeSecret().value)).toBe(49);
    expect(await retryCount(ds)).toBe(3);
    const result = await t.test(initial, { expect: 'accept' });
    expect(result.ok).toBe(false);
    expect(result.verdict).toBe('rejected');
    expect(result.probes.find((p) => p.name === 'bind')!.detail).toMatch(/^19 constraintViolation \(ppolicy: accountLocked\): the account is locked .*\(389-DS: the account is locked after passwordMaxFailure failed binds/);
  });

  it("identify with 389-DS's default storage scheme (PBKDF2-SHA512): the stored hash answers, read as the provkey admin; no failed bind at passwordMaxFailure 3", async () => {
    expect((await ds.read('cn=config', ['passwordStorageScheme'])).passwordStorageScheme).toEqual(['PBKDF2-SHA512']);
    const t = await fresh();
    expect((await ds.read(ds.serviceDn, ['userPassword'])).userPassword[0]).toMatch(/^\{PBKDF2-SHA512\}10000\$/);
    const failedBefore = await ds.failedBinds(ds.serviceDn);
    // A set that never happened (killed before it reached the directory): the old one is held.
    const never = makeSecret();
    const before = await (await open389(ds)).identify!([never, initial]);
    expect(before.verdicts, before.detail).toEqual({ [never.fingerprint]: 'rejected', [initial.fingerprint]: 'accepted' });
    expect(before.detail).toMatch(/userPassword matches/);
    // A set that did (killed after): a new target, as the resumed run would be.
    const next = makeSecret();
    expect(await t.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
    const after = await (await open389(ds)).identify!([initial, next]);
    expect(after.verdicts, after.detail).toEqual({ [initial.fingerprint]: 'rejected', [next.fingerprint]: 'accepted' });
    expect((await ds.failedBinds(ds.serviceDn)) - failedBefore).toBe(0);
  });

  it('identify reads a 389-DS lockout (accountUnlockTime) as the admin: every version rejected, with no bind at all', async () => {
    await fresh();
    for (let i = 0; i < 3; i++) expect(await ds.bindCode(ds.serviceDn, makeSecret().value)).toBe(49);
    expect((await ds.read(ds.serviceDn, ['accountUnlockTime'])).accountUnlockTime).toHaveLength(1);
    const failedBefore = await ds.failedBinds(ds.serviceDn);
    const other = makeSecret();
    const identified = await (await open389(ds)).identify!([initial, other]);
    expect(identified.verdicts, identified.detail).toEqual({ [initial.fingerprint]: 'rejected', [other.fingerprint]: 'rejected' });
    expect(identified.detail).toMatch(/locked .*accountUnlockTime/);
    expect((await ds.failedBinds(ds.serviceDn)) - failedBefore).toBe(0);
  });

  it('each PBKDF2 scheme 389-DS writes (pwdchan {PBKDF2-SHA256}/{PBKDF2-SHA1}, legacy {PBKDF2_SHA256}) is checked locally: live hashes from this server', async () => {
    const { storedPasswordMatches } = await import('../../src/targets/ldap/password-hash.js');
    const setScheme = (scheme: string) => ds.modify('cn=config', [new Change({ operation: 'replace', modification: new Attribute({ type: 'passwordStorageScheme', values: [scheme] }) })]);
    try {
      for (const [scheme, prefix] of [['PBKDF2-SHA256', '{PBKDF2-SHA256}'], ['PBKDF2-SHA1', '{PBKDF2-SHA1}'], ['PBKDF2', '{PBKDF2-SHA1}'], ['PBKDF2_SHA256', '{PBKDF2_SHA256}'], ['PBKDF2-SHA512', '{PBKDF2-SHA512}']] as const) {
        await setScheme(scheme);
        const password = makeSecret();
        await resetAccount(ds, password.value);
        const stored = (await ds.read(ds.serviceDn, ['userPassword'])).userPassword;
        expect(stored[0]!.startsWith(prefix), `${scheme}: ${stored[0]!.slice(0, 20)}`).toBe(true);
        expect(storedPasswordMatches(password.value, stored), scheme).toBe(true);
        expect(storedPasswordMatches(makeSecret().value, stored), scheme).toBe(false);
      }
    } finally {
      await setScheme('PBKDF2-SHA512');
    }
  });

  it('passwordMaxFailure 3 from the config: a rotation and its tests cost no failed bind (passwordRetryCount stays 0)', async () => {
    const t = await fresh({ passwordPolicy: { maxFailure: 3 } });
    expect(t.capabilities.negativeProbe).toBe('forbidden');
    const next = makeSecret();
    expect(await t.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
    expect((await testUntil(t, next, 'accept')).ok).toBe(true);
    expect(await t.retire({ old: initial, current: next })).toMatchObject({ ok: true });
    expect(await retryCount(ds)).toBe(0);
  });

  it('after an admin reset under passwordMustChange every operation but a password change is 53: the test shows it on the search', async () => {
    await ds.modify('cn=config', [new Change({ operation: 'replace', modification: new Attribute({ type: 'passwordMustChange', values: ['on'] }) })]);
    try {
      const t = await fresh();
      const reset = makeSecret();
      await dmReset(ds, reset.value);
      const result = await t.test(reset, { expect: 'accept' });
      expect(result.ok).toBe(false);
      const search = result.probes.find((p) => p.name === 'search')!;
      expect(search.status).toBe(53);
      // provkey's own admin apply copes: a reset to a throw-away value, then the account's own change.
      const admin389 = await open389(ds, { apply: { mode: 'admin', adminDn: ds.provkeyAdminDn, adminPasswordRef: 'env:DS_ADMIN_PASSWORD' } });
      const next = makeSecret();
      expect(await admin389.set({ next, current: reset, replace: true })).toMatchObject({ ok: true });
      expect((await admin389.test(next, { expect: 'accept' })).ok).toBe(true);
    } finally {
      await ds.modify('cn=config', [new Change({ operation: 'replace', modification: new Attribute({ type: 'passwordMustChange', values: ['off'] }) })]);
    }
  });

  it('the extended operation over plain LDAP (allowed to loopback) is 13 confidentialityRequired: "denied"', async () => {
    const t = await fresh({ startTls: false });
    const result = await t.set({ next: makeSecret(), current: initial, replace: true });
    expect(result).toMatchObject({ ok: false, reason: 'denied', detail: expect.stringMatching(/13 confidentialityRequired/) });
    expect(await ds.bindCode(ds.serviceDn, initial.value)).toBe(0);
  });
});
