// The LDAP target in Active Directory mode against a real Samba AD DC (test/harness/servers/
// samba.ts: Debian's samba 4.17, one domain per file, a fresh account per test): the Target
// contract (self and admin apply), AD's error codes, the domain's policy, the old-password
// window, the lockout guard counted from the DC's own badPwdCount, and --due.

import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import * as v from 'valibot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { targetSchema, type LdapTargetConfig } from '../../src/config/schema.js';
import { resolveSecretRef } from '../../src/config/secret-ref.js';
import { ConfigError } from '../../src/core/errors.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { AdapterContext } from '../../src/stores/context.js';
import { createLdapTarget } from '../../src/targets/ldap/ldap-target.js';
import type { SecretInUse, Target } from '../../src/targets/target.js';
import { describeTargetContract, summary, testUntil } from '../contract/target-contract.js';
import { replace, startSamba, type SambaServer } from '../harness/servers/samba.ts';
import { startTcpProxy } from '../harness/servers/tcp-proxy.ts';

/** Three categories (P, k, -) and long enough for minPwdLength 10; never contains an account name. */
function makeSecret(): SecretInUse {
  const value = `Pk-${randomBytes(21).toString('base64url')}`;
  return { value, fingerprint: fingerprint(value) };
}

function contextFor(env: Record<string, string> = {}): AdapterContext {
  const context: AdapterContext = {
    configDir: tmpdir(),
    env: { ...process.env, ...env },
    resolveSecret: (ref, field) => resolveSecretRef(ref, field, context),
    debug: () => undefined,
  };
  return context;
}

function adConfig(dc: SambaServer, dn: string, fields: Record<string, unknown> = {}): LdapTargetConfig {
  const config = v.parse(targetSchema, {
    type: 'ldap',
    directory: 'activeDirectory',
    urls: [dc.ldapsUrl],
    tls: { caFile: dc.caFile },
    bindDn: dn,
    searchBase: dc.usersDn,
    timeout: '5s',
    propagationTimeout: '3s',
    oldPasswordAllowedPeriod: '0s',
    apply: { mode: 'self', adminDn: dc.adminDn, adminPasswordRef: 'env:AD_ADMIN_PASSWORD' },
    ...fields,
  });
  if (config.type !== 'ldap') throw new Error('not ldap');
  return config;
}

function openAd(dc: SambaServer, dn: string, fields: Record<string, unknown> = {}): Promise<Target> {
  return createLdapTarget('ad-provisioner', adConfig(dc, dn, fields), contextFor({ AD_ADMIN_PASSWORD: dc.adminPassword }));
}

let accounts = 0;
async function freshAccount(dc: SambaServer): Promise<{ dn: string; initial: SecretInUse }> {
  const initial = makeSecret();
  const dn = await dc.createUser(`svc-${process.pid % 1000}-${++accounts}`, initial.value);
  return { dn, initial };
}

async function badPwdCount(dc: SambaServer, dn: string): Promise<number> {
  return Number((await dc.read(dn, ['badPwdCount'])).badPwdCount[0] ?? '0');
}

// --- one domain controller for the file (old password allowed period 0) --------------------

let dc: SambaServer;
beforeAll(async () => {
  dc = await startSamba();
});
afterAll(async () => {
  await dc?.stop();
});

for (const mode of ['self', 'admin'] as const) {
  describeTargetContract(`ldap activeDirectory (Samba AD DC): ${mode} apply, admin-reset rollback`, async () => {
    const { dn, initial } = await freshAccount(dc);
    // Through a forwarder the test can take down (the DC itself serves the whole file): admin over StartTLS, self over LDAPS.
    const proxy = await startTcpProxy({ host: dc.host, port: mode === 'admin' ? 389 : 636 });
    const url = `${mode === 'admin' ? 'ldap' : 'ldaps'}://${proxy.host}:${proxy.port}`;
    const target = await openAd(dc, dn, { urls: [url], startTls: true, tls: { caFile: dc.caFile, serverName: 'localhost' }, apply: { mode, adminDn: dc.adminDn, adminPasswordRef: 'env:AD_ADMIN_PASSWORD' }, rollback: 'admin-reset' });
    return {
      target,
      initial,
      makeSecret,
      accepts: async (secret) => (await dc.bindCode(dn, secret.value)).code === 0,
      takeDown: () => proxy.close(),
      cleanup: () => proxy.close(),
    };
  });
}

describe('ldap activeDirectory against Samba AD DC', () => {
  it('test: connect, bind, the account read as itself (no Who am I?), a search that skips referrals', async () => {
    const { dn, initial } = await freshAccount(dc);
    const t = await openAd(dc, dn);
    const result = await t.test(initial, { expect: 'accept' });
    expect(result.ok, summary(result)).toBe(true);
    expect(result.probes.map((p) => [p.name, p.outcome])).toEqual([
      ['connect', 'pass'],
      ['bind', 'pass'],
      ['whoami', 'pass'],
      ['search', 'pass'],
    ]);
    expect(result.probes.find((p) => p.name === 'whoami')!.detail).toMatch(/AD has no Who am I/);
    await t.close();
  });

  it('a wrong password is 49 with AD data 52e, one line; a locked account says so (775) even with the right password', async () => {
    const { dn, initial } = await freshAccount(dc);
    const t = await openAd(dc, dn, { negativeProbe: 'always' });
    const wrong = await t.test(makeSecret(), { expect: 'accept' });
    expect(wrong.verdict).toBe('rejected');
    const bind = wrong.probes.find((p) => p.name === 'bind')!;
    expect(bind.status).toBe(49);
    expect(bind.detail).toMatch(/^49 invalidCredentials \(AD data 52e\): invalid credentials \(wrong password\)$/);
    // Three failures reach lockoutThreshold 3 (two by the test, one by the harness).
    await t.test(makeSecret(), { expect: 'reject' });
    expect((await dc.bindCode(dn, makeSecret().value)).data).toBe('52e');
    expect(await badPwdCount(dc, dn)).toBe(3);
    // A fresh target (another run): this one's guard would not bind again after two failures.
    const later = await openAd(dc, dn);
    const locked = await later.test(initial, { expect: 'accept' });
    expect(locked.ok).toBe(false);
    expect(locked.probes.find((p) => p.name === 'bind')!.detail).toMatch(/AD data 775\): the account is locked out .*lockoutTime to 0/);
    // A reset does not unlock; lockoutTime 0 does.
    const next = makeSecret();
    const admin = await openAd(dc, dn, { apply: { mode: 'admin', adminDn: dc.adminDn, adminPasswordRef: 'env:AD_ADMIN_PASSWORD' } });
    expect(await admin.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
    expect((await dc.bindCode(dn, next.value)).data).toBe('775');
    await dc.modify(dn, [replace('lockoutTime', ['0'])]);
    expect((await dc.bindCode(dn, next.value)).code).toBe(0);
  });

  it('self change back to a password in the history: 19 with 0000052D, reported as "policy"', async () => {
    const { dn, initial } = await freshAccount(dc);
    const t = await openAd(dc, dn);
    const next = makeSecret();
    expect(await t.set({ next, current: initial, replace: false })).toMatchObject({ ok: true });
    const back = await t.set({ next: initial, current: next, replace: false });
    expect(back).toMatchObject({ ok: false, reason: 'policy' });
    expect(!back.ok && back.detail).toMatch(/19 constraintViolation \(AD 0000052D\): the domain's password policy refused .*in the password history/);
    expect((await dc.bindCode(dn, next.value)).code).toBe(0);
  });

  it("enforces the domain's minPwdLength and complexity itself before sending, also on an admin reset", async () => {
    const { dn, initial } = await freshAccount(dc);
    const t = await openAd(dc, dn, { apply: { mode: 'admin', adminDn: dc.adminDn, adminPasswordRef: 'env:AD_ADMIN_PASSWORD' } });
    const short = { value: 'Ab1-short', fingerprint: fingerprint('Ab1-short') };
    expect(await t.set({ next: short, current: initial, replace: true })).toMatchObject({ ok: false, reason: 'policy', detail: expect.stringMatching(/fewer than minPwdLength 10 \(domain DC=pk,DC=test\)/) });
    const simple = { value: 'alllowercaseletters', fingerprint: fingerprint('alllowercaseletters') };
    expect(await t.set({ next: simple, current: initial, replace: true })).toMatchObject({ ok: false, reason: 'policy', detail: expect.stringMatching(/3 of the 4 character categories/) });
    const name = dn.slice(3, dn.indexOf(','));
    const withName = { value: `Xy9-${name}-Zz`, fingerprint: fingerprint(`Xy9-${name}-Zz`) };
    expect(await t.set({ next: withName, current: initial, replace: true })).toMatchObject({ ok: false, reason: 'policy', detail: expect.stringMatching(/part of the account's name/) });
    expect((await dc.bindCode(dn, initial.value)).code).toBe(0);
  });

  it('fails early when the generation policy cannot satisfy the domain: too short, or hex under complexity', async () => {
    const { dn, initial } = await freshAccount(dc);
    const t = await openAd(dc, dn);
    await expect(t.checkGenerationPolicy!({ type: 'password', length: 8, lower: 1, upper: 1, digits: 1, symbols: 0, symbolSet: '', exclude: '' }, initial)).rejects.toThrow(
      /keys\.ad-provisioner\.format\.length: .* 8 characters, shorter than minPwdLength 10/,
    );
    await expect(t.checkGenerationPolicy!({ type: 'hex', bytes: 32 }, initial)).rejects.toThrow(ConfigError);
    await expect(t.checkGenerationPolicy!({ type: 'password', length: 20, lower: 1, upper: 0, digits: 1, symbols: 0, symbolSet: '', exclude: '' }, initial)).rejects.toThrow(/3 of 4 character categories/);
    await expect(t.checkGenerationPolicy!({ type: 'base64url', bytes: 32 }, initial)).resolves.toBeUndefined();
  });

  it('a fine-grained policy (PSO) applying to the account wins over the domain where readable (the admin); the account is told it could not read it', async () => {
    const { dn, initial } = await freshAccount(dc);
    const pso = `CN=pk-pso-${accounts},CN=Password Settings Container,CN=System,${dc.baseDn}`;
    await dc.add(pso, {
      objectClass: ['msDS-PasswordSettings'],
      'msDS-PasswordSettingsPrecedence': '1',
      'msDS-PasswordReversibleEncryptionEnabled': 'FALSE',
      'msDS-PasswordHistoryLength': '24',
      'msDS-PasswordComplexityEnabled': 'TRUE',
      'msDS-MinimumPasswordLength': '20',
      'msDS-MinimumPasswordAge': '0',
      'msDS-MaximumPasswordAge': '-25920000000000', // 30 days
      'msDS-LockoutThreshold': '5',
      'msDS-LockoutObservationWindow': '-18000000000',
      'msDS-LockoutDuration': '-18000000000',
      'msDS-PSOAppliesTo': dn,
    });
    const asAccount = await openAd(dc, dn, { apply: { mode: 'self' } });
    // As in Windows, the account sees msDS-ResultantPSO but may not read the PSO: the domain's values are used, and said to be so.
    await asAccount.checkGenerationPolicy!({ type: 'password', length: 16, lower: 1, upper: 1, digits: 1, symbols: 1, symbolSet: '-', exclude: '' }, initial);
    expect((asAccount as unknown as { effectivePolicy: { minLength: number; source: string } }).effectivePolicy).toMatchObject({
      minLength: 10,
      source: `domain DC=pk,DC=test (the fine-grained policy ${pso} applies but is not readable)`,
    });
    const asAdmin = await openAd(dc, dn, { apply: { mode: 'admin', adminDn: dc.adminDn, adminPasswordRef: 'env:AD_ADMIN_PASSWORD' } });
    await expect(asAdmin.checkGenerationPolicy!({ type: 'password', length: 16, lower: 1, upper: 1, digits: 1, symbols: 1, symbolSet: '-', exclude: '' })).rejects.toThrow(/minPwdLength 20 .*PSO/);
    const short = makeSecret(); // 31 characters: fine for the PSO too
    expect(await asAdmin.set({ next: short, current: initial, replace: true })).toMatchObject({ ok: true });
    const expires = await asAdmin.expiresAt!(short);
    expect((expires!.getTime() - Date.now()) / 86_400_000).toBeGreaterThan(29.9);
    expect((expires!.getTime() - Date.now()) / 86_400_000).toBeLessThan(30.01);
  });

  it('refuses plain ldap:// without StartTLS at config time', async () => {
    await expect(openAd(dc, `CN=x,${dc.usersDn}`, { urls: [dc.ldapUrl], startTls: false })).rejects.toThrow(/refuses password changes without TLS/);
  });

  it('lockoutThreshold 3: negativeProbe is "forbidden"; a set, tests and a rotation back cost no failed bind (badPwdCount)', async () => {
    const { dn, initial } = await freshAccount(dc);
    const t = await openAd(dc, dn);
    const next = makeSecret();
    expect(await t.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
    expect(t.capabilities.negativeProbe).toBe('forbidden');
    expect((await testUntil(t, next, 'accept')).ok).toBe(true);
    const again = makeSecret();
    expect(await t.set({ next: again, current: next, replace: true })).toMatchObject({ ok: true });
    expect((await t.test(again, { expect: 'accept' })).ok).toBe(true);
    expect(await badPwdCount(dc, dn)).toBe(0);
    expect((await dc.read(dn, ['lockoutTime'])).lockoutTime.filter((v) => v !== '0')).toEqual([]);
  });

  // identify (a resumed run), against what Samba 4.17 does: a lockout's lockoutTime outlives
  // lockoutDuration; a counted failure is charged even where provkey assumed the n-2 rule.
  it('identify: a lockout that lockoutDuration has ended is not a lockout (UF_LOCKOUT decides, not the lockoutTime left behind)', async () => {
    const { dn, initial } = await freshAccount(dc);
    for (let i = 0; i < 3; i++) expect((await dc.bindCode(dn, makeSecret().value)).code).toBe(49);
    expect((await dc.bindCode(dn, initial.value)).data).toBe('775');
    const domain = await dc.read(dc.baseDn, ['lockoutDuration', 'lockOutObservationWindow']);
    // lockOutObservationWindow may not exceed lockoutDuration: the window shrinks first and grows back last.
    await dc.modify(dc.baseDn, [replace('lockOutObservationWindow', ['-10000000'])]);
    await dc.modify(dc.baseDn, [replace('lockoutDuration', ['-10000000'])]);
    try {
      // Barrier: the DC itself says the lockout is over (1 s after it began).
      const computed = async () => Number((await dc.read(dn, ['msDS-User-Account-Control-Computed']))['msDS-User-Account-Control-Computed'][0] ?? '0');
      for (let i = 0; (await computed()) & 0x10; i++) {
        if (i > 200) throw new Error('the lockout did not end');
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(Number((await dc.read(dn, ['lockoutTime'])).lockoutTime[0] ?? '0')).toBeGreaterThan(0);
      const t = await openAd(dc, dn, { apply: { mode: 'admin', adminDn: dc.adminDn, adminPasswordRef: 'env:AD_ADMIN_PASSWORD' } });
      const never = { ...makeSecret(), createdAt: new Date().toISOString() };
      const held = { ...initial, createdAt: new Date(Date.now() - 60_000).toISOString() };
      const identified = await t.identify!([held, never]);
      expect(identified.verdicts[held.fingerprint], identified.detail).toBe('accepted');
      expect(identified.detail).toMatch(/has ended \(lockoutDuration\): not locked/);
    } finally {
      await dc.modify(dc.baseDn, [replace('lockoutDuration', domain.lockoutDuration)]);
      await dc.modify(dc.baseDn, [replace('lockOutObservationWindow', domain.lockOutObservationWindow)]);
    }
  });

  it('identify charges a failure the n-2 rule was assumed to make free (badPwdCount re-read), and the DC\'s lockoutThreshold wins over a higher passwordPolicy.maxFailure', async () => {
    const { dn } = await freshAccount(dc);
    // The account holds a password none of the candidates is (changed outside provkey); the
    // config claims lockoutThreshold 6 while the DC locks at 3 (before: four failures allowed).
    const open = () => openAd(dc, dn, { apply: { mode: 'admin', adminDn: dc.adminDn, adminPasswordRef: 'env:AD_ADMIN_PASSWORD' }, passwordPolicy: { maxFailure: 6 } });
    const at = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();
    const candidates = [{ ...makeSecret(), createdAt: at(30) }, { ...makeSecret(), createdAt: at(20) }, { ...makeSecret(), createdAt: at(10) }];
    const identified = await (await open()).identify!(candidates);
    // Two that count at lockoutThreshold 3 and badPwdCount 0 (the oldest's is charged): one clear of the limit.
    expect(await badPwdCount(dc, dn)).toBe(2);
    expect(identified.verdicts[candidates[0]!.fingerprint]).toBe('rejected');
    expect(identified.verdicts[candidates[2]!.fingerprint]).toBe('unknown');
    expect(identified.detail).toMatch(/counted toward lockoutThreshold/);
    // The next run reads badPwdCount 2: it binds nothing, not even the "free" oldest.
    const again = await (await open()).identify!(candidates);
    expect(Object.values(again.verdicts).filter((v) => v !== 'unknown'), again.detail).toEqual([]);
    expect(await badPwdCount(dc, dn)).toBe(2);
    expect((await dc.read(dn, ['lockoutTime'])).lockoutTime.filter((v) => v !== '0')).toEqual([]);
  });

  it('expiresAt is pwdLastSet + maxPwdAge (42 days in the template)', async () => {
    const { dn, initial } = await freshAccount(dc);
    const t = await openAd(dc, dn);
    const before = Date.now();
    const next = makeSecret();
    expect(await t.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
    const expires = await t.expiresAt!(next);
    const days = (expires!.getTime() - before) / 86_400_000;
    expect(days).toBeGreaterThan(41.99);
    expect(days).toBeLessThan(42.01);
  });
});

// --- AD's old password allowed period (default 60 minutes) ---------------------------------

describe('ldap activeDirectory: the old password allowed period (60 minutes, as AD ships)', () => {
  let windowed: SambaServer;
  beforeAll(async () => {
    windowed = await startSamba({ oldPasswordAllowedPeriod: 60 });
  });
  afterAll(async () => {
    await windowed?.stop();
  });

  it('a plain change leaves the old password binding; provkey changes twice (through a throw-away value) so it is refused at once, at no failed bind', async () => {
    const { dn, initial } = await freshAccount(windowed);
    // What the DC does by itself: after one change the previous password still binds.
    const manual = makeSecret();
    const raw = await openAd(windowed, dn, { oldPasswordAllowedPeriod: '0s' });
    expect(await raw.set({ next: manual, current: initial, replace: true })).toMatchObject({ ok: true });
    expect((await windowed.bindCode(dn, initial.value)).code).toBe(0);

    const t = await openAd(windowed, dn, { oldPasswordAllowedPeriod: '60m', negativeProbe: 'always' });
    const next = makeSecret();
    const applied = await t.set({ next, current: manual, replace: true });
    expect(applied).toMatchObject({ ok: true, detail: expect.stringMatching(/pushed two back/) });
    const rejected = await t.test(manual, { expect: 'reject' });
    expect(rejected.ok, summary(rejected)).toBe(true);
    expect((await t.test(next, { expect: 'accept' })).ok).toBe(true);
    // AD does not count binds with passwords from the history: the proof cost nothing.
    expect(await badPwdCount(windowed, dn)).toBe(0);
  });

  it('identify in a resumed run: the previous password still binds inside the window, so the newer candidate decides (it holds the newer one)', async () => {
    const { dn, initial } = await freshAccount(windowed);
    const held = { ...initial, createdAt: new Date(Date.now() - 60_000).toISOString() };
    const next = { ...makeSecret(), createdAt: new Date().toISOString() };
    const raw = await openAd(windowed, dn, { oldPasswordAllowedPeriod: '0s' });
    expect(await raw.set({ next, current: held, replace: true })).toMatchObject({ ok: true });
    expect((await windowed.bindCode(dn, held.value)).code).toBe(0);
    for (const apply of [{ mode: 'self' }, { mode: 'admin', adminDn: windowed.adminDn, adminPasswordRef: 'env:AD_ADMIN_PASSWORD' }]) {
      // self: no admin at all (pwdLastSet is read as the account itself, once it has bound).
      // A new target: the run that made the change was killed, and this one does not know it.
      const resumed = await openAd(windowed, dn, { oldPasswordAllowedPeriod: '60m', apply });
      const identified = await resumed.identify!([held, next]);
      expect(identified.verdicts, `${apply.mode}: ${identified.detail}`).toEqual({ [held.fingerprint]: 'rejected', [next.fingerprint]: 'accepted' });
    }
    expect(await badPwdCount(windowed, dn)).toBe(0);
  });

  it('identify in a resumed run inside the window: when the set never happened, the older candidate is the answer (one counted failure at most)', async () => {
    const { dn, initial } = await freshAccount(windowed);
    const held = { ...initial, createdAt: new Date(Date.now() - 60_000).toISOString() };
    const never = { ...makeSecret(), createdAt: new Date().toISOString() };
    const resumed = await openAd(windowed, dn, { oldPasswordAllowedPeriod: '60m' });
    const identified = await resumed.identify!([held, never]);
    expect(identified.verdicts, identified.detail).toEqual({ [held.fingerprint]: 'accepted', [never.fingerprint]: 'rejected' });
    expect(await badPwdCount(windowed, dn)).toBeLessThanOrEqual(1);
  });

  it('a later run retiring the previous password (revoke --previous) pushes it out of the window with two admin resets', async () => {
    const { dn, initial } = await freshAccount(windowed);
    const next = makeSecret();
    const raw = await openAd(windowed, dn, { oldPasswordAllowedPeriod: '0s' });
    expect(await raw.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
    expect((await windowed.bindCode(dn, initial.value)).code).toBe(0);
    const admin = await openAd(windowed, dn, { oldPasswordAllowedPeriod: '60m', apply: { mode: 'admin', adminDn: windowed.adminDn, adminPasswordRef: 'env:AD_ADMIN_PASSWORD' } });
    expect(await admin.retire({ old: initial, current: next })).toMatchObject({ ok: true, detail: expect.stringMatching(/pushed two back/) });
    expect((await windowed.bindCode(dn, initial.value)).code).toBe(49);
    expect((await windowed.bindCode(dn, next.value)).code).toBe(0);
    expect(await badPwdCount(windowed, dn)).toBe(0);
  });
});
