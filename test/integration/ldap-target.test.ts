// The LDAP target against a real OpenLDAP slapd (test/harness/servers/slapd.ts: Debian's slapd
// 2.5 with the ppolicy overlay, TLS with its own CA): the Target contract on three set-ups,
// then what a directory does that a token endpoint does not: password history, rollback per
// mode, the lockout guard, revoke (+ lock), TLS verification, replicas, policy and expiry.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Attribute, Change, Client, Control } from 'ldapts';
import * as v from 'valibot';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { targetSchema, type LdapTargetConfig } from '../../src/config/schema.js';
import { resolveSecretRef } from '../../src/config/secret-ref.js';
import { ConfigError } from '../../src/core/errors.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { AdapterContext } from '../../src/stores/context.js';
import { createLdapTarget, keptNext } from '../../src/targets/ldap/ldap-target.js';
import { PasswordPolicyControl } from '../../src/targets/ldap/ppolicy.js';
import type { SecretInUse, Target } from '../../src/targets/target.js';
import { describeTargetContract, summary, testUntil, type TargetUnderTest } from '../contract/target-contract.js';
import { generateCa, startSlapd, startSlapdReplica, waitForReplication, type SlapdServer, type StartSlapdOptions } from '../harness/servers/slapd.ts';

// --- helpers -----------------------------------------------------------------------------

/** A SHA-512 crypt(3) hash ({CRYPT} in slapd), made by openssl from stdin (never argv). */
function cryptHash(password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', ['passwd', '-6', '-stdin'], { encoding: 'utf8' }, (error, stdout) => (error ? reject(error) : resolve(stdout.trim())));
    child.stdin!.end(`${password}\n`);
  });
}

/** A password the harness policy (pwdMinLength 12) accepts; fresh every call. */
function makeSecret(): SecretInUse {
  const value = `Pk-${randomBytes(21).toString('base64url')}`;
  return { value, fingerprint: fingerprint(value) };
}

function asSecret(value: string): SecretInUse {
  return { value, fingerprint: fingerprint(value) };
}

function ldapConfig(fields: Record<string, unknown>): LdapTargetConfig {
  const config = v.parse(targetSchema, { type: 'ldap', timeout: '5s', propagationTimeout: '5s', ...fields });
  if (config.type !== 'ldap') throw new Error('not an ldap config');
  return config;
}

function contextFor(dir: string, env: Record<string, string> = {}): AdapterContext {
  const context: AdapterContext = {
    configDir: dir,
    env: { ...process.env, ...env },
    resolveSecret: (ref, field) => resolveSecretRef(ref, field, context),
    debug: () => undefined,
  };
  return context;
}

/** The standard target fields for a harness server: StartTLS with its CA, the provisioner account. */
function baseFields(srv: SlapdServer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    urls: [srv.ldapUrl],
    tls: { caFile: srv.caFile },
    bindDn: srv.serviceDn,
    searchBase: srv.peopleDn,
    ...extra,
  };
}

const ADMIN_APPLY = (mode: 'self' | 'admin', srv: SlapdServer) => ({ mode, adminDn: srv.provkeyAdminDn, adminPasswordRef: 'env:LDAP_ADMIN_PASSWORD' });

async function openTarget(srv: SlapdServer, fields: Record<string, unknown>, name = 'ldap-provisioner'): Promise<Target> {
  return createLdapTarget(name, ldapConfig(baseFields(srv, fields)), contextFor(tmpdir(), { LDAP_ADMIN_PASSWORD: srv.provkeyAdminPassword }));
}

class Relax extends Control {
  constructor() {
    super('1.3.6.1.4.1.4203.666.5.12', { critical: true });
  }
}

/** A StartTLS connection trusting the server's CA (the test's own view, independent of the target). */
async function connect(srv: SlapdServer, url = srv.ldapUrl): Promise<Client> {
  if (url.startsWith('ldaps:')) return new Client({ url, tlsOptions: { ca: [srv.caPem] }, timeout: 5000 });
  const client = new Client({ url, timeout: 5000 });
  await client.startTLS({ ca: [srv.caPem], host: '127.0.0.1' });
  return client;
}

/** The result code of a simple bind as the service account (0 accepted, 49 rejected), and the ppolicy error. */
async function bindAs(srv: SlapdServer, password: string, url = srv.ldapUrl): Promise<{ code: number; ppolicy?: string }> {
  const client = await connect(srv, url);
  const control = new PasswordPolicyControl();
  try {
    await client.bind(srv.serviceDn, password, [control]);
    return { code: 0, ...(control.response?.errorName ? { ppolicy: control.response.errorName } : {}) };
  } catch (error) {
    return { code: (error as { code: number }).code, ...(control.response?.errorName ? { ppolicy: control.response.errorName } : {}) };
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** Operational attributes of the service account, read as the rootdn. */
async function accountState(srv: SlapdServer, attributes: string[], url = srv.ldapUrl): Promise<Record<string, string[]>> {
  const client = await connect(srv, url);
  try {
    await client.bind(srv.adminDn, srv.adminPassword);
    const entry = (await client.search(srv.serviceDn, { scope: 'base', attributes })).searchEntries[0]!;
    return Object.fromEntries(attributes.map((a) => [a, ([] as string[]).concat((entry[a] as string | string[] | undefined) ?? [])]));
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** A modification as the rootdn with the Relax control (so pwdChangedTime can be back-dated). */
async function relaxModify(srv: SlapdServer, changes: Change[]): Promise<void> {
  const client = await connect(srv);
  try {
    await client.bind(srv.adminDn, srv.adminPassword);
    await client.modify(srv.serviceDn, changes, [new Relax()]);
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

function generalizedTime(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

/**
 * Failed binds as the service account that this server logged (start it with debugLevel
 * 'stats'). pwdFailureTime is no count of what provkey cost: a successful bind clears it, and a
 * consumer also holds the failures replicated from its provider. The log is the server's own
 * record of every bind it refused.
 */
async function failedBinds(srv: SlapdServer): Promise<number> {
  // The harness writes slapd's stderr to slapd.log every 500 ms.
  await new Promise((resolve) => setTimeout(resolve, 700));
  const log = await readFile(path.join(srv.dir, 'slapd.log'), 'utf8').catch(() => '');
  const dnOf = new Map<string, string>();
  let failed = 0;
  for (const line of log.split('\n')) {
    const bind = /(conn=\d+ op=\d+) BIND dn="([^"]*)" method=128/.exec(line);
    if (bind) dnOf.set(bind[1]!, bind[2]!.toLowerCase());
    const refused = /(conn=\d+ op=\d+) RESULT tag=97 err=49\b/.exec(line);
    if (refused && dnOf.get(refused[1]!) === srv.serviceDn.toLowerCase()) failed += 1;
  }
  return failed;
}

/** The harness ACL, with entryCSN of the service accounts hidden from everyone but the rootdn. */
const ACL_WITHOUT_ENTRYCSN = `
access to dn.subtree="ou=services,{BASE}" attrs=entryCSN
    by * none
access to dn.subtree="ou=services,{BASE}" attrs=userPassword
    by self write
    by dn.exact="{PKADMIN}" manage
    by anonymous auth
    by * none
access to dn.subtree="ou=services,{BASE}" attrs=pwdAccountLockedTime,pwdFailureTime,pwdReset,pwdGraceUseTime,pwdHistory
    by dn.exact="{PKADMIN}" manage
    by self read
    by * none
access to dn.subtree="ou=services,{BASE}"
    by self read
    by dn.exact="{PKADMIN}" read
    by * none
access to dn.subtree="ou=people,{BASE}"
    by dn.exact="{SERVICE}" read
    by * none
access to dn.subtree="ou=policies,{BASE}"
    by users read
    by * none
access to dn.base="{BASE}"
    by users read
    by * none
access to *
    by * none
`;

// --- the Target contract -----------------------------------------------------------------

async function underTest(
  options: { server?: StartSlapdOptions; fields: (srv: SlapdServer, replica?: SlapdServer) => Record<string, unknown>; replica?: boolean },
): Promise<TargetUnderTest> {
  const srv = await startSlapd(options.server ?? {});
  const replica = options.replica ? await startSlapdReplica(srv) : undefined;
  const target = await openTarget(srv, options.fields(srv, replica));
  const servers = replica ? [srv.ldapUrl, replica.ldapsUrl] : [srv.ldapUrl];
  return {
    target,
    initial: asSecret(srv.servicePassword),
    makeSecret,
    accepts: async (secret) => {
      if (replica) await waitForReplication(srv, replica, 10_000);
      const codes = await Promise.all(servers.map(async (url) => (await bindAs(srv, secret.value, url)).code));
      return codes.every((c) => c === 0);
    },
    async takeDown() {
      await replica?.stop();
      await srv.stop();
    },
    async cleanup() {
      await replica?.stop();
      await srv.stop();
    },
  };
}

describeTargetContract('ldap: StartTLS, self apply, admin-reset rollback', () =>
  underTest({ fields: (srv) => ({ apply: ADMIN_APPLY('self', srv), rollback: 'admin-reset' }) }),
);

describeTargetContract('ldap: ldaps, admin apply under pwdMustChange (two-step), admin-reset rollback', () =>
  underTest({
    server: { policy: { pwdMustChange: 'TRUE' } },
    fields: (srv) => ({ urls: [srv.ldapsUrl], apply: ADMIN_APPLY('admin', srv), rollback: 'admin-reset' }),
  }),
);

describeTargetContract('ldap: primary + syncrepl replica (ldaps), self apply', () =>
  underTest({
    replica: true,
    // Every change must reach both servers before a test passes.
    fields: (srv, replica) => ({ urls: [srv.ldapUrl, replica!.ldapsUrl], apply: ADMIN_APPLY('self', srv), rollback: 'admin-reset', propagationTimeout: '10s' }),
  }),
);

// --- what a directory does -----------------------------------------------------------------

describe('ldap target against slapd', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  async function server(options: StartSlapdOptions = {}): Promise<SlapdServer> {
    const srv = await startSlapd(options);
    cleanups.push(() => srv.stop());
    return srv;
  }
  async function target(srv: SlapdServer, fields: Record<string, unknown> = {}): Promise<Target> {
    const t = await openTarget(srv, fields);
    cleanups.push(() => t.close());
    return t;
  }

  it('runs connect, bind, Who am I? and a search, each with its result code', async () => {
    const srv = await server();
    const t = await target(srv);
    const result = await t.test(asSecret(srv.servicePassword), { expect: 'accept' });
    expect(result.ok, summary(result)).toBe(true);
    expect(result.probes.map((p) => [p.name, p.outcome, p.status])).toEqual([
      ['connect', 'pass', 0],
      ['bind', 'pass', 0],
      ['whoami', 'pass', 0],
      ['search', 'pass', 0],
    ]);
    expect(result.probes[0]!.detail).toMatch(/StartTLS, TLSv1\.[23]/);
    expect(result.probes[2]!.detail).toBe(`dn:${srv.serviceDn}`);

    const wrong = await t.test(makeSecret(), { expect: 'reject' });
    expect(wrong.ok, summary(wrong)).toBe(true);
    expect(wrong.probes.map((p) => [p.name, p.outcome, p.status])).toEqual([
      ['connect', 'pass', 0],
      ['bind', 'pass', 49],
    ]);
  });

  it('a self change back to a password in the history gets 19 / passwordInHistory, reported as "policy"', async () => {
    const srv = await server();
    const t = await target(srv);
    const initial = asSecret(srv.servicePassword);
    const next = makeSecret();
    expect(await t.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
    const back = await t.set({ next: initial, current: next, replace: true });
    expect(back).toMatchObject({ ok: false, reason: 'policy' });
    expect(back.ok ? '' : back.detail).toMatch(/19 constraintViolation \(ppolicy: passwordInHistory\)/);
    expect((await bindAs(srv, next.value)).code).toBe(0);
    expect(JSON.stringify(back)).not.toContain(initial.value);
  });

  it('enforces pwdMinLength itself, even where an admin with manage rights would bypass it', async () => {
    const srv = await server();
    const t = await target(srv, { apply: ADMIN_APPLY('admin', srv) });
    const short = asSecret('Short-pw-9');
    const result = await t.set({ next: short, current: asSecret(srv.servicePassword), replace: true });
    expect(result).toMatchObject({ ok: false, reason: 'policy' });
    expect(result.ok ? '' : result.detail).toMatch(/10 characters, fewer than pwdMinLength 12 \(cn=default,ou=policies,dc=example,dc=com\)/);
    expect((await bindAs(srv, srv.servicePassword)).code).toBe(0);
  });

  it('admin apply under pwdMustChange: the account ends on a fully usable password (search works)', async () => {
    const srv = await server({ policy: { pwdMustChange: 'TRUE' } });
    const t = await target(srv, { apply: ADMIN_APPLY('admin', srv) });
    const next = makeSecret();
    const applied = await t.set({ next, current: asSecret(srv.servicePassword), replace: true });
    expect(applied, JSON.stringify(applied)).toMatchObject({ ok: true });
    expect(applied.ok && applied.detail).toMatch(/temporary password, then changed .* by the account itself/);
    const result = await t.test(next, { expect: 'accept' });
    expect(result.ok, summary(result)).toBe(true);
    expect((await accountState(srv, ['pwdReset'])).pwdReset).toEqual([]);
  });

  it('admin apply with mustChange: false in the config while the directory says TRUE: pwdReset is cleared', async () => {
    const srv = await server({ policy: { pwdMustChange: 'TRUE' } });
    const t = await target(srv, { apply: ADMIN_APPLY('admin', srv), passwordPolicy: { mustChange: false } });
    const next = makeSecret();
    expect(await t.set({ next, current: asSecret(srv.servicePassword), replace: true })).toMatchObject({ ok: true });
    const result = await t.test(next, { expect: 'accept' });
    expect(result.ok, summary(result)).toBe(true);
  });

  it('a pending pwdReset shows in the test: bind passes, the search fails with 50', async () => {
    const srv = await server({ policy: { pwdMustChange: 'TRUE' } });
    const t = await target(srv);
    const reset = makeSecret();
    // An admin reset outside provkey (e.g. a help-desk tool): the account must change its password.
    await srv.modify(srv.serviceDn, `replace: userPassword\nuserPassword: ${reset.value}\n-\nreplace: pwdReset\npwdReset: TRUE\n`);
    const result = await t.test(reset, { expect: 'accept' });
    expect(result.ok).toBe(false);
    expect(result.verdict).toBe('accepted');
    const search = result.probes.find((p) => p.name === 'search')!;
    expect(search).toMatchObject({ outcome: 'fail', status: 50 });
    expect(search.detail).toMatch(/pwdMustChange/);
    expect(result.probes.find((p) => p.name === 'bind')!.detail).toMatch(/must change its password/);
  });

  describe('rollback', () => {
    it('admin-reset: the admin puts the old password back past the history; next is rejected; pwdReset stays clear', async () => {
      const srv = await server({ policy: { pwdMustChange: 'TRUE' } });
      const t = await target(srv, { apply: ADMIN_APPLY('self', srv), rollback: 'admin-reset' });
      const initial = asSecret(srv.servicePassword);
      const next = makeSecret();
      expect(await t.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
      const undone = await t.rollback({ next, current: initial });
      expect(undone, JSON.stringify(undone)).toMatchObject({ ok: true });
      expect(keptNext(undone)).toBe(false);
      expect((await bindAs(srv, initial.value)).code).toBe(0);
      expect((await bindAs(srv, next.value)).code).toBe(49);
      const check = await t.test(initial, { expect: 'accept' });
      expect(check.ok, summary(check)).toBe(true);
    });

    it('admin-reset with an admin that only has "write": the history refuses, and the message says what to grant', async () => {
      const srv = await server({ provkeyAdminAccess: 'write' });
      const t = await target(srv, { apply: ADMIN_APPLY('self', srv), rollback: 'admin-reset' });
      const initial = asSecret(srv.servicePassword);
      const next = makeSecret();
      expect(await t.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
      const undone = await t.rollback({ next, current: initial });
      expect(undone).toMatchObject({ ok: false, reason: 'policy' });
      expect(undone.ok ? '' : undone.detail).toMatch(/passwordInHistory.*"manage" on userPassword/);
    });

    it('keep-new: when next binds, it is kept (the engine keeps it as current)', async () => {
      const srv = await server();
      const t = await target(srv, { rollback: 'keep-new' });
      const initial = asSecret(srv.servicePassword);
      const next = makeSecret();
      expect(await t.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
      const undone = await t.rollback({ next, current: initial });
      expect(undone, JSON.stringify(undone)).toMatchObject({ ok: true, kept: 'next' });
      expect(keptNext(undone)).toBe(true);
      expect((await bindAs(srv, next.value)).code).toBe(0);
      expect((await bindAs(srv, initial.value)).code).toBe(49);
    });

    it('keep-new: a set the directory refused leaves nothing to undo; a set that never arrived neither', async () => {
      const srv = await server();
      const t = await target(srv, { rollback: 'keep-new' });
      const initial = asSecret(srv.servicePassword);
      const refused = asSecret('too-short');
      expect(await t.set({ next: refused, current: initial, replace: true })).toMatchObject({ ok: false, reason: 'policy' });
      expect(await t.rollback({ next: refused, current: initial })).toMatchObject({ ok: true, detail: expect.stringMatching(/never took/) });
      // A resumed run (fresh process): the target asks the directory which password works.
      const fresh = await target(srv, { rollback: 'keep-new' });
      const neverSet = makeSecret();
      const undone = await fresh.rollback({ next: neverSet, current: initial });
      expect(undone).toMatchObject({ ok: true, detail: expect.stringMatching(/still binds: nothing to undo/) });
      expect(keptNext(undone)).toBe(false);
      expect((await bindAs(srv, initial.value)).code).toBe(0);
    });

    it('keep-new with the directory down: "unreachable", never "neither binds"', async () => {
      const srv = await server();
      const t = await target(srv, { rollback: 'keep-new' });
      const initial = asSecret(srv.servicePassword);
      // (One good test first: the target reads its CA file once, and stop() removes it.)
      expect((await t.test(initial, { expect: 'accept' })).ok).toBe(true);
      await srv.stop();
      const undone = await t.rollback({ next: makeSecret(), current: initial });
      expect(undone, JSON.stringify(undone)).toMatchObject({ ok: false, reason: 'unreachable' });
    });

    it('keep-new with an admin credential: when neither binds, the admin puts the old one back', async () => {
      const srv = await server();
      const t = await target(srv, { rollback: 'keep-new', apply: ADMIN_APPLY('self', srv) });
      const initial = asSecret(srv.servicePassword);
      const stray = makeSecret();
      // Someone else changed the password meanwhile: neither provkey version binds.
      await srv.modify(srv.serviceDn, `replace: userPassword\nuserPassword: ${stray.value}\n`);
      const undone = await t.rollback({ next: makeSecret(), current: initial });
      expect(undone, JSON.stringify(undone)).toMatchObject({ ok: true, detail: expect.stringMatching(/admin reset back to/) });
      expect((await bindAs(srv, initial.value)).code).toBe(0);
    });
  });

  describe('identify: which password an interrupted set left on the account (pwdMaxFailure 3, failed binds counted by slapd)', () => {
    /** A version as the store hands it to identify: value, fingerprint and when it was generated. */
    function version(value: string, createdAt: Date): SecretInUse {
      return { ...asSecret(value), createdAt: createdAt.toISOString() };
    }
    const minutesAgo = (n: number) => new Date(Date.now() - n * 60_000);

    /**
     * "Killed after set started": `arrived` false = before the password modify reached the
     * directory (it still holds the current password), true = after (it holds the new one). The
     * new run is a fresh target, which knows nothing of the dead run.
     */
    async function interruptedSet(srv: SlapdServer, arrived: boolean): Promise<{ current: SecretInUse; next: SecretInUse }> {
      const current = version(srv.servicePassword, minutesAgo(60 * 24 * 30));
      const next = version(makeSecret().value, new Date());
      if (arrived) {
        const dying = await openTarget(srv, {});
        expect(await dying.set({ next, current, replace: true })).toMatchObject({ ok: true });
        await dying.close();
      }
      return { current, next };
    }

    async function expectNoFailedBind(srv: SlapdServer): Promise<void> {
      expect((await accountState(srv, ['pwdFailureTime', 'pwdAccountLockedTime']))).toEqual({ pwdFailureTime: [], pwdAccountLockedTime: [] });
      expect(await failedBinds(srv)).toBe(0);
    }

    for (const arrived of [false, true]) {
      const when = arrived ? 'after the modify reached the directory' : 'before the modify reached the directory';

      it(`${when}, with an admin credential: the stored userPassword tells, one bind that cannot fail confirms it, no failed bind`, async () => {
        const srv = await server({ policy: { pwdMaxFailure: '3' }, debugLevel: 'stats' });
        const { current, next } = await interruptedSet(srv, arrived);
        const t = await target(srv, { apply: ADMIN_APPLY('self', srv) });
        const held = arrived ? next : current;
        const other = arrived ? current : next;
        // Both orders: the evidence decides, not the guess.
        for (const candidates of [[next, current], [current, next]]) {
          const found = await t.identify!(candidates);
          expect(found.verdicts, found.detail).toEqual({ [held.fingerprint]: 'accepted', [other.fingerprint]: 'rejected' });
          expect(found.detail).toContain(`userPassword matches ${held.fingerprint}`);
          expect(found.detail).toContain('0 failed bind(s)');
          expect(found.detail).not.toContain(held.value);
        }
        await expectNoFailedBind(srv);
        expect((await bindAs(srv, held.value)).code).toBe(0);
      });

      it(`${when}, without an admin credential: no bind at all, every version "unknown"`, async () => {
        const srv = await server({ policy: { pwdMaxFailure: '3' }, debugLevel: 'stats' });
        const { current, next } = await interruptedSet(srv, arrived);
        for (const fields of [{}, { passwordPolicy: { maxFailure: 3 } }]) {
          const t = await target(srv, fields);
          const found = await t.identify!([next, current]);
          expect(found.verdicts, found.detail).toEqual({ [next.fingerprint]: 'unknown', [current.fingerprint]: 'unknown' });
          expect(found.detail).toMatch(fields.passwordPolicy ? /pwdMaxFailure 3 leaves no failed bind/ : /pwdMaxFailure is not known/);
        }
        await expectNoFailedBind(srv);
      });
    }

    it('pwdMaxFailure 5 (from the config), no admin: at most one failed bind per run; the right guess costs none', async () => {
      const srv = await server({ debugLevel: 'stats' });
      const { current, next } = await interruptedSet(srv, false);
      const wrongFirst = await target(srv, { passwordPolicy: { maxFailure: 5 } });
      const guessed = await wrongFirst.identify!([next, current]);
      expect(guessed.verdicts, guessed.detail).toEqual({ [next.fingerprint]: 'rejected', [current.fingerprint]: 'unknown' });
      expect(guessed.detail).toMatch(/not tried: the failed-bind budget of 1 per server per run is spent/);
      expect((await accountState(srv, ['pwdFailureTime'])).pwdFailureTime).toHaveLength(1);
      expect(await failedBinds(srv)).toBe(1);
      // The same run asking again spends nothing more.
      expect((await wrongFirst.identify!([next, current])).verdicts[current.fingerprint]).toBe('unknown');
      expect(await failedBinds(srv)).toBe(1);

      const rightFirst = await target(srv, { passwordPolicy: { maxFailure: 5 } });
      const found = await rightFirst.identify!([current, next]);
      expect(found.verdicts[current.fingerprint], found.detail).toBe('accepted');
      expect(await failedBinds(srv)).toBe(1);
    });

    it('a stored scheme provkey cannot check ({CRYPT}): pwdChangedTime rules out the version generated after it, at no failed bind', async () => {
      const srv = await server({ policy: { pwdMaxFailure: '5' }, debugLevel: 'stats' });
      const current = version(srv.servicePassword, minutesAgo(120));
      const crypt = await cryptHash(current.value);
      await srv.modify(srv.serviceDn, `replace: userPassword\nuserPassword: {CRYPT}${crypt}\n`);
      await relaxModify(srv, [new Change({ operation: 'replace', modification: new Attribute({ type: 'pwdChangedTime', values: [generalizedTime(minutesAgo(90))] }) })]);
      const next = version(makeSecret().value, new Date());
      const t = await target(srv, { apply: ADMIN_APPLY('self', srv) });
      // The guess says "next"; the directory's own clock says it was never set, so "current" is bound first.
      const found = await t.identify!([next, current]);
      expect(found.verdicts, found.detail).toEqual({ [next.fingerprint]: 'rejected', [current.fingerprint]: 'accepted' });
      expect(found.detail).toMatch(/userPassword uses a scheme provkey cannot check/);
      expect(found.detail).toMatch(new RegExp(`${next.fingerprint} was generated after the password last changed`));
      expect(await failedBinds(srv)).toBe(0);
    });

    it('a locked account: every version "rejected" from pwdAccountLockedTime, without a bind', async () => {
      const srv = await server({ policy: { pwdMaxFailure: '3' }, debugLevel: 'stats' });
      const { current, next } = await interruptedSet(srv, false);
      await srv.modify(srv.serviceDn, 'replace: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n');
      const t = await target(srv, { apply: ADMIN_APPLY('self', srv) });
      const found = await t.identify!([next, current]);
      expect(found.verdicts, found.detail).toEqual({ [next.fingerprint]: 'rejected', [current.fingerprint]: 'rejected' });
      expect(found.detail).toMatch(/the account is locked/);
      expect(await failedBinds(srv)).toBe(0);
    });

    it('a directory that is down: every version "unreachable", never "rejected"', async () => {
      const srv = await server({ policy: { pwdMaxFailure: '3' } });
      const { current, next } = await interruptedSet(srv, false);
      const t = await target(srv, { apply: ADMIN_APPLY('self', srv) });
      // (One good test first: the target reads its CA file once, and stop() removes it.)
      expect((await t.test(current, { expect: 'accept' })).ok).toBe(true);
      await srv.stop();
      const found = await t.identify!([next, current]);
      expect(found.verdicts, found.detail).toEqual({ [next.fingerprint]: 'unreachable', [current.fingerprint]: 'unreachable' });
      expect(found.detail).toMatch(/ECONNREFUSED/);
    });

    it('"Password is not being changed from existing value" is the directory holding it, not a history violation', async () => {
      // An admin with only "write" is held to the policy, so slapd checks the value against the current one.
      const srv = await server({ provkeyAdminAccess: 'write', policy: { pwdMaxFailure: '3' }, debugLevel: 'stats' });
      const { current, next } = await interruptedSet(srv, false);
      // The resumed run rolls back a set that never arrived: putting `current` back is a no-op.
      const t = await target(srv, { apply: ADMIN_APPLY('self', srv), rollback: 'admin-reset' });
      const undone = await t.rollback({ next, current });
      expect(undone, JSON.stringify(undone)).toMatchObject({ ok: true, detail: expect.stringMatching(/already holds .*nothing to undo/) });
      expect(JSON.stringify(undone)).not.toMatch(/passwordInHistory|pwdInHistory/);
      expect((await bindAs(srv, current.value)).code).toBe(0);
      expect(await failedBinds(srv)).toBe(0);
    });

    it('a resumed admin set whose change had arrived is not applied twice', async () => {
      const srv = await server({ policy: { pwdMaxFailure: '3', pwdMustChange: 'TRUE' }, debugLevel: 'stats' });
      const current = asSecret(srv.servicePassword);
      const next = makeSecret();
      const dying = await openTarget(srv, { apply: ADMIN_APPLY('admin', srv) });
      expect(await dying.set({ next, current, replace: true })).toMatchObject({ ok: true });
      await dying.close();
      const before = (await accountState(srv, ['pwdHistory'])).pwdHistory!.length;
      const resumed = await target(srv, { apply: ADMIN_APPLY('admin', srv) });
      expect(await resumed.set({ next, current, replace: true })).toMatchObject({ ok: true, detail: expect.stringMatching(/already holds/) });
      expect((await accountState(srv, ['pwdHistory'])).pwdHistory).toHaveLength(before);
      const check = await resumed.test(next, { expect: 'accept' });
      expect(check.ok, summary(check)).toBe(true);
      expect(await failedBinds(srv)).toBe(0);
    });
  });

  describe('lockout guard', () => {
    it('pwdMaxFailure 3: negativeProbe is "forbidden" once the policy is read; a rotation costs no failed bind', async () => {
      const srv = await server({ policy: { pwdMaxFailure: '3' } });
      const t = await target(srv);
      const initial = asSecret(srv.servicePassword);
      const next = makeSecret();
      expect(await t.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
      expect(t.capabilities.negativeProbe).toBe('forbidden');
      const accepted = await testUntil(t, next, 'accept');
      expect(accepted.ok, summary(accepted)).toBe(true);
      expect(await t.retire({ old: initial, current: next })).toMatchObject({ ok: true });
      expect((await accountState(srv, ['pwdFailureTime'])).pwdFailureTime).toEqual([]);
    });

    it('pwdMaxFailure 3 from the config alone, and the explicit settings', async () => {
      const srv = await server();
      expect((await target(srv, { passwordPolicy: { maxFailure: 3 } })).capabilities.negativeProbe).toBe('forbidden');
      expect((await target(srv, { passwordPolicy: { maxFailure: 3 }, negativeProbe: 'always' })).capabilities.negativeProbe).toBe('costly');
      expect((await target(srv, { negativeProbe: 'never' })).capabilities.negativeProbe).toBe('forbidden');
      const t = await target(srv);
      expect(t.capabilities.negativeProbe).toBe('costly');
      // pwdMaxFailure 5 on the server: read with the first bind, still "costly".
      await t.test(asSecret(srv.servicePassword), { expect: 'accept' });
      expect(t.capabilities.negativeProbe).toBe('costly');
    });
  });

  describe('revoke', () => {
    it('admin reset to an unknown password and lock: the old password gets 49 (accountLocked), proven by a reject test', async () => {
      const srv = await server();
      const t = await target(srv, { apply: ADMIN_APPLY('self', srv), revoke: { lockAccount: true } });
      const initial = asSecret(srv.servicePassword);
      const retired = await t.retire({ old: initial });
      expect(retired, JSON.stringify(retired)).toMatchObject({ ok: true, detail: expect.stringMatching(/locked/) });
      expect(await bindAs(srv, initial.value)).toEqual({ code: 49, ppolicy: 'accountLocked' });
      expect((await accountState(srv, ['pwdAccountLockedTime'])).pwdAccountLockedTime).toEqual(['000001010000Z']);
      const proof = await t.test(initial, { expect: 'reject' });
      expect(proof.ok, summary(proof)).toBe(true);
      // An admin reset (provkey add, admin mode) unlocks the account again.
      const fresh = makeSecret();
      const admin = await target(srv, { apply: ADMIN_APPLY('admin', srv) });
      expect(await admin.set({ next: fresh, replace: true })).toMatchObject({ ok: true });
      expect((await bindAs(srv, fresh.value)).code).toBe(0);
    });

    it('self mode without an admin: the account changes itself to an unknown password', async () => {
      const srv = await server();
      const t = await target(srv);
      const initial = asSecret(srv.servicePassword);
      expect(await t.retire({ old: initial })).toMatchObject({ ok: true, detail: expect.stringMatching(/unknown random password/) });
      expect((await bindAs(srv, initial.value)).code).toBe(49);
      // Retiring again is harmless: the old password already does not bind.
      expect(await t.retire({ old: initial })).toMatchObject({ ok: true, detail: expect.stringMatching(/already does not bind/) });
    });

    it('retire with a "current" that is the retired value itself is a revoke, not a no-op', async () => {
      const srv = await server();
      const t = await target(srv, { apply: ADMIN_APPLY('self', srv) });
      const initial = asSecret(srv.servicePassword);
      expect(await t.retire({ old: initial, current: { ...initial, versionId: 'same-version' } })).toMatchObject({ ok: true, detail: expect.stringMatching(/admin reset/) });
      expect((await bindAs(srv, initial.value)).code).toBe(49);
    });

    it('retire with the current version given is a no-op: the account already runs on it', async () => {
      const srv = await server();
      const t = await target(srv);
      const initial = asSecret(srv.servicePassword);
      expect(await t.retire({ old: makeSecret(), current: initial })).toMatchObject({ ok: true, detail: expect.stringMatching(/nothing to do/) });
      expect((await bindAs(srv, initial.value)).code).toBe(0);
    });
  });

  describe('TLS', () => {
    let wrongCaDir: string;
    beforeAll(() => {
      wrongCaDir = mkdtempSync(path.join(tmpdir(), 'provkey-wrong-ca-'));
    });
    afterAll(() => rmSync(wrongCaDir, { recursive: true, force: true }));

    it('a wrong CA is never a pass: StartTLS and ldaps both end in "unreachable" (never "rejected") with what to fix', async () => {
      const srv = await server();
      const wrong = await generateCa(wrongCaDir, 'not the server CA');
      for (const url of [srv.ldapUrl, srv.ldapsUrl]) {
        const t = await target(srv, { urls: [url], tls: { caFile: wrong.caFile } });
        const result = await t.test(asSecret(srv.servicePassword), { expect: 'accept' });
        expect(result.ok).toBe(false);
        expect(result.verdict).toBe('unreachable');
        expect(result.probes[0]).toMatchObject({ name: 'connect', outcome: 'fail', status: 'SELF_SIGNED_CERT_IN_CHAIN' });
        expect(result.probes[0]!.detail).toMatch(/tls\.caFile/);
        expect(result.probes.slice(1).every((p) => p.outcome === 'skipped')).toBe(true);
        const applied = await t.set({ next: makeSecret(), current: asSecret(srv.servicePassword), replace: true });
        expect(applied).toMatchObject({ ok: false, reason: 'unreachable' });
      }
      // No CA at all: the system trust store does not know a private CA either.
      const system = await target(srv, { tls: {} });
      expect((await system.test(asSecret(srv.servicePassword), { expect: 'accept' })).verdict).toBe('unreachable');
      expect((await bindAs(srv, srv.servicePassword)).code).toBe(0);
    });

    it('the certificate must name the server: a wrong serverName fails, the right one passes', async () => {
      const srv = await server();
      const wrongName = await target(srv, { tls: { caFile: srv.caFile, serverName: 'ldap.example.org' } });
      const result = await wrongName.test(asSecret(srv.servicePassword), { expect: 'accept' });
      expect(result.probes[0]).toMatchObject({ outcome: 'fail', status: 'ERR_TLS_CERT_ALTNAME_INVALID' });
      const rightName = await target(srv, { urls: [srv.ldapsUrl], tls: { caFile: srv.caFile, serverName: 'localhost' } });
      const ok = await rightName.test(asSecret(srv.servicePassword), { expect: 'accept' });
      expect(ok.ok, summary(ok)).toBe(true);
    });

    it('plain LDAP to loopback works without TLS only when startTls is off; to another host it is refused at config time', async () => {
      const srv = await server();
      const plain = await target(srv, { startTls: false });
      const result = await plain.test(asSecret(srv.servicePassword), { expect: 'accept' });
      expect(result.ok, summary(result)).toBe(true);
      expect(result.probes[0]!.detail).toMatch(/plain LDAP/);
      await expect(openTarget(srv, { urls: ['ldap://ldap.example.com'], startTls: false })).rejects.toThrow(ConfigError);
      await expect(openTarget(srv, { urls: ['ldap://ldap.example.com'], startTls: false })).rejects.toThrow(/urls\.0: .*plain text.*allowPlain/);
    });

    it('an unreachable server is "unreachable", for the test and for set', async () => {
      const srv = await server();
      const t = await target(srv, { urls: ['ldap://127.0.0.1:1'] });
      const result = await t.test(asSecret(srv.servicePassword), { expect: 'accept' });
      expect(result).toMatchObject({ verdict: 'unreachable', ok: false });
      expect(result.probes[0]).toMatchObject({ name: 'connect', outcome: 'fail', status: 'ECONNREFUSED' });
      expect(await t.set({ next: makeSecret(), current: asSecret(srv.servicePassword), replace: true })).toMatchObject({ ok: false, reason: 'unreachable' });
    });

    it('a server that accepts the connection and never answers (slow past the timeout) is "unreachable", never "rejected"', async () => {
      const srv = await server({ policy: { pwdMaxFailure: '3' } });
      // A listener that takes the TCP connection and says nothing: StartTLS and binds time out.
      const held = new Set<net.Socket>();
      const silent = net.createServer((socket) => {
        held.add(socket);
        socket.on('close', () => held.delete(socket));
      });
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      cleanups.push(async () => {
        for (const socket of held) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      });
      const port = (silent.address() as net.AddressInfo).port;
      const t = await target(srv, { urls: [`ldap://127.0.0.1:${port}`], timeout: '1s', apply: ADMIN_APPLY('self', srv) });
      const current = asSecret(srv.servicePassword);
      const next = makeSecret();
      const result = await t.test(current, { expect: 'accept' });
      expect(result, summary(result)).toMatchObject({ verdict: 'unreachable', ok: false });
      expect((await t.test(next, { expect: 'reject' })).verdict).toBe('unreachable');
      expect(await t.set({ next, current, replace: true })).toMatchObject({ ok: false, reason: 'unreachable' });
      expect(await t.rollback({ next, current })).toMatchObject({ ok: false, reason: 'unreachable' });
      const found = await t.identify!([next, current]);
      expect(found.verdicts, found.detail).toEqual({ [next.fingerprint]: 'unreachable', [current.fingerprint]: 'unreachable' });
    });
  });

  describe('replicas', () => {
    it('waits until a syncrepl replica accepts the change; probes are named per server', async () => {
      const srv = await server();
      const replica = await startSlapdReplica(srv);
      cleanups.push(() => replica.stop());
      const initial = asSecret(srv.servicePassword);

      // primary + syncrepl replica: the test passes on both, probes named per server.
      const t = await target(srv, { urls: [srv.ldapUrl, replica.ldapsUrl] });
      const next = makeSecret();
      expect(await t.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
      const accepted = await testUntil(t, next, 'accept');
      expect(accepted.ok, summary(accepted)).toBe(true);
      expect(accepted.probes.map((p) => p.name)).toEqual(expect.arrayContaining(['connect-1', 'bind-1', 'search-1', 'connect-2', 'bind-2', 'search-2']));
      const rejected = await t.test(initial, { expect: 'reject' });
      expect(rejected.ok, summary(rejected)).toBe(true);
    });

    it('a server that never gets the change is never accepted, and asking it costs no failed bind', async () => {
      const srv = await server({ debugLevel: 'stats' });
      const clone = await startSlapdReplica(srv, { mode: 'clone' });
      cleanups.push(() => clone.stop());
      const initial = asSecret(srv.servicePassword);
      const t = await target(srv, { urls: [srv.ldapUrl, clone.ldapUrl], propagationTimeout: '2s' });
      const next = makeSecret();
      expect(await t.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
      const waited = await testUntil(t, next, 'accept');
      expect(waited.ok).toBe(false);
      expect(waited.verdict).toBe('rejected');
      expect(waited.probes.find((p) => p.name === 'bind-1')).toMatchObject({ outcome: 'pass', status: 0 });
      expect(waited.probes.find((p) => p.name === 'replication-2')).toMatchObject({ outcome: 'fail', detail: expect.stringMatching(/not reached this server yet/) });
      // The clone was watched through a connection bound before the change: no failure counted.
      expect((await accountState(clone, ['pwdFailureTime'])).pwdFailureTime).toEqual([]);
      expect(await failedBinds(clone)).toBe(0);
    });

    it('pwdMaxFailure 3: the change is seen on the replica by entryCSN, and two rotations cost no failed bind on either server', async () => {
      const srv = await server({ policy: { pwdMaxFailure: '3' }, debugLevel: 'stats' });
      const replica = await startSlapdReplica(srv);
      cleanups.push(() => replica.stop());
      const t = await target(srv, { urls: [srv.ldapUrl, replica.ldapsUrl], propagationTimeout: '10s' });
      let current = asSecret(srv.servicePassword);
      for (const round of [1, 2]) {
        const next = makeSecret();
        expect(await t.set({ next, current, replace: true }), `set ${round}`).toMatchObject({ ok: true });
        expect(t.capabilities.negativeProbe).toBe('forbidden');
        const accepted = await testUntil(t, next, 'accept');
        expect(accepted.ok, `round ${round}: ${summary(accepted)}`).toBe(true);
        expect(accepted.probes.find((p) => p.name === 'replication-2')).toMatchObject({ outcome: 'pass', detail: expect.stringMatching(/entryCSN/) });
        expect(accepted.probes.find((p) => p.name === 'bind-2')).toMatchObject({ outcome: 'pass', status: 0 });
        current = next;
      }
      expect(await failedBinds(srv)).toBe(0);
      expect(await failedBinds(replica)).toBe(0);
      expect((await accountState(srv, ['pwdFailureTime'])).pwdFailureTime).toEqual([]);
      expect((await accountState(srv, ['pwdFailureTime'], replica.ldapUrl)).pwdFailureTime).toEqual([]);
      expect((await bindAs(srv, current.value, replica.ldapUrl)).code).toBe(0);
    });

    it('admin apply with no previous version: a lagging server is told by an entryCSN older than the change, at no failed bind', async () => {
      const srv = await server({ debugLevel: 'stats' });
      const clone = await startSlapdReplica(srv, { mode: 'clone' });
      cleanups.push(() => clone.stop());
      const t = await target(srv, { urls: [srv.ldapUrl, clone.ldapUrl], apply: ADMIN_APPLY('admin', srv), propagationTimeout: '2s' });
      const first = makeSecret();
      expect(await t.set({ next: first, replace: true })).toMatchObject({ ok: true });
      const waited = await testUntil(t, first, 'accept');
      expect(waited.ok).toBe(false);
      expect(waited.probes.find((p) => p.name === 'replication-2')).toMatchObject({
        outcome: 'fail',
        detail: expect.stringMatching(/entryCSN .* is older than the change's .*: the change has not reached this server yet/),
      });
      expect(waited.probes.find((p) => p.name === 'bind-2')).toMatchObject({ outcome: 'skipped' });
      expect(await failedBinds(clone)).toBe(0);
    });

    describe('where entryCSN cannot be read (the fallback: the previous password, bound once)', () => {
      it('one failed bind on the replica proves the change; the negative probe then counts it instead of binding again', async () => {
        const srv = await server({ acl: ACL_WITHOUT_ENTRYCSN, debugLevel: 'stats' });
        const replica = await startSlapdReplica(srv);
        cleanups.push(() => replica.stop());
        const t = await target(srv, { urls: [srv.ldapUrl, replica.ldapsUrl], propagationTimeout: '10s' });
        const initial = asSecret(srv.servicePassword);
        const next = makeSecret();
        expect(await t.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
        const accepted = await testUntil(t, next, 'accept');
        expect(accepted.ok, summary(accepted)).toBe(true);
        expect(accepted.probes.find((p) => p.name === 'replication-2')).toMatchObject({ outcome: 'pass', status: 49, detail: expect.stringMatching(/previous password .* is rejected/) });
        expect(await failedBinds(replica)).toBe(1);

        const proof = await t.test(initial, { expect: 'reject' });
        expect(proof.ok, summary(proof)).toBe(true);
        expect(proof.probes.find((p) => p.name === 'bind-1')).toMatchObject({ outcome: 'pass', status: 49 });
        expect(proof.probes.find((p) => p.name === 'bind-2')).toMatchObject({ outcome: 'pass', status: 49, ms: 0, detail: expect.stringMatching(/not bound again/) });
        expect(proof.probes.some((p) => p.name === 'connect-2')).toBe(false);
        // One failed bind per server for the whole rotation: the negative probe on the primary, the replication check on the replica.
        expect(await failedBinds(srv)).toBe(1);
        expect(await failedBinds(replica)).toBe(1);

        // Only that fingerprint: any other password is really bound.
        const other = await t.test(makeSecret(), { expect: 'reject' });
        expect(other.probes.find((p) => p.name === 'bind-2')).toMatchObject({ outcome: 'pass', status: 49, detail: expect.not.stringMatching(/not bound again/) });
        expect(await failedBinds(replica)).toBe(2);

        // Only until the next change: then the old password is asked again.
        const third = makeSecret();
        expect(await t.set({ next: third, current: next, replace: true })).toMatchObject({ ok: true });
        expect((await testUntil(t, third, 'accept')).ok).toBe(true);
        const again = await t.test(initial, { expect: 'reject' });
        expect(again.ok, summary(again)).toBe(true);
        expect(again.probes.find((p) => p.name === 'bind-2')!.detail).not.toMatch(/not bound again/);
      });

      it('pwdMaxFailure 3: that one failed bind does not stop the new password from being tried, so the rotation succeeds', async () => {
        const srv = await server({ acl: ACL_WITHOUT_ENTRYCSN, policy: { pwdMaxFailure: '3' }, debugLevel: 'stats' });
        const replica = await startSlapdReplica(srv);
        cleanups.push(() => replica.stop());
        const t = await target(srv, { urls: [srv.ldapUrl, replica.ldapsUrl], propagationTimeout: '10s' });
        const initial = asSecret(srv.servicePassword);
        const next = makeSecret();
        expect(await t.set({ next, current: initial, replace: true })).toMatchObject({ ok: true });
        const accepted = await testUntil(t, next, 'accept');
        expect(accepted.ok, summary(accepted)).toBe(true);
        expect(accepted.probes.find((p) => p.name === 'bind-2')).toMatchObject({ outcome: 'pass', status: 0 });
        expect(await failedBinds(srv)).toBe(0);
        expect(await failedBinds(replica)).toBe(1);
        // The successful bind that followed cleared it again.
        expect((await accountState(srv, ['pwdFailureTime'], replica.ldapUrl)).pwdFailureTime).toEqual([]);
      });
    });

    it('without the previous password (a resumed run) failed binds on a lagging server stay under the budget', async () => {
      const srv = await server();
      const clone = await startSlapdReplica(srv, { mode: 'clone' });
      cleanups.push(() => clone.stop());
      const t = await target(srv, { urls: [srv.ldapUrl, clone.ldapUrl], propagationTimeout: '4s' });
      const next = makeSecret();
      // Changed by an earlier run: this target instance does not know the previous password.
      await srv.modify(srv.serviceDn, `replace: userPassword\nuserPassword: ${next.value}\n`);
      const waited = await testUntil(t, next, 'accept');
      expect(waited.ok).toBe(false);
      const failures = (await accountState(clone, ['pwdFailureTime'])).pwdFailureTime;
      // pwdMaxFailure 5: provkey allows itself 3 in a row, at most one a second.
      expect(failures.length).toBeGreaterThan(0);
      expect(failures.length).toBeLessThanOrEqual(3);
      expect(waited.probes.find((p) => p.name === 'bind-2')?.detail).toMatch(/not tried|invalidCredentials/);
    });
  });

  describe('password policy', () => {
    it('refuses a generation policy shorter than pwdMinLength, naming the field', async () => {
      const srv = await server({ policy: { pwdMinLength: '20' } });
      const t = await target(srv, { apply: ADMIN_APPLY('self', srv) });
      const format = { type: 'password', length: 16, lower: 1, upper: 1, digits: 1, symbols: 1, symbolSet: '-_', exclude: '' } as const;
      await expect(t.checkGenerationPolicy!(format)).rejects.toThrow(ConfigError);
      await expect(t.checkGenerationPolicy!(format)).rejects.toThrow(
        /^keys\.ldap-provisioner\.format\.length: .* 16 characters, shorter than pwdMinLength 20 .*\(cn=default,ou=policies,dc=example,dc=com\)$/,
      );
      await expect(t.checkGenerationPolicy!({ ...format, length: 24 })).resolves.toBeUndefined();
      await expect(t.checkGenerationPolicy!({ type: 'hex', bytes: 8 })).rejects.toThrow(/format\.bytes: .* 16 characters/);
    });

    it('reads the policy as the account when there is no admin (given the current password), and config values override it', async () => {
      const srv = await server({ policy: { pwdMinLength: '20' } });
      const format = { type: 'password', length: 16, lower: 1, upper: 1, digits: 1, symbols: 1, symbolSet: '-_', exclude: '' } as const;
      const selfOnly = await target(srv);
      // Without a credential nothing can be read: the policy is then checked at set().
      await expect(selfOnly.checkGenerationPolicy!(format)).resolves.toBeUndefined();
      await expect(
        (selfOnly as Target & { checkGenerationPolicy(p: typeof format, c?: SecretInUse): Promise<void> }).checkGenerationPolicy(format, asSecret(srv.servicePassword)),
      ).rejects.toThrow(/pwdMinLength 20/);
      const stricter = await target(srv, { passwordPolicy: { minLength: 40 }, apply: ADMIN_APPLY('self', srv) });
      await expect(stricter.checkGenerationPolicy!({ ...format, length: 32 })).rejects.toThrow(/pwdMinLength 40 .*config overrides/);
    });

    it('a quality module whose rules provkey cannot read asks for every character class', async () => {
      const srv = await server({
        extraLdif: [
          'dn: cn=strict,ou=policies,dc=example,dc=com',
          'objectClass: device',
          'objectClass: pwdPolicy',
          'objectClass: pwdPolicyChecker',
          'cn: strict',
          'pwdAttribute: userPassword',
          'pwdCheckQuality: 2',
          'pwdMinLength: 16',
          'pwdCheckModule: ppm.so',
        ].join('\n'),
      });
      const t = await target(srv, { apply: ADMIN_APPLY('self', srv), passwordPolicy: { dn: 'cn=strict,ou=policies,dc=example,dc=com' } });
      const format = { type: 'password', length: 24, lower: 1, upper: 1, digits: 1, symbols: 0, symbolSet: '-_', exclude: '' } as const;
      await expect(t.checkGenerationPolicy!(format)).rejects.toThrow(/format\.symbols: .*quality module ppm\.so/);
      await expect(t.checkGenerationPolicy!({ type: 'token', prefix: 'pk', randomLength: 43 })).rejects.toThrow(/format\.type: .*use type: password/);
      await expect(t.checkGenerationPolicy!({ ...format, symbols: 1 })).resolves.toBeUndefined();
    });

    it('expiresAt is pwdChangedTime + pwdMaxAge; an expired password is due now', async () => {
      const srv = await server();
      const initial = asSecret(srv.servicePassword);
      const admin = await target(srv, { apply: ADMIN_APPLY('self', srv) });
      const changed = new Date(Date.now() - 80 * 86_400_000);
      await relaxModify(srv, [new Change({ operation: 'replace', modification: new Attribute({ type: 'pwdChangedTime', values: [generalizedTime(changed)] }) })]);
      const expected = Math.floor(changed.getTime() / 1000) * 1000 + 7_776_000_000;
      expect((await admin.expiresAt!(initial))?.getTime()).toBe(expected);
      const self = await target(srv);
      expect((await self.expiresAt!(initial))?.getTime()).toBe(expected);
      // Past pwdMaxAge: the bind fails with ppolicy passwordExpired, so the rotation is due now.
      await relaxModify(srv, [new Change({ operation: 'replace', modification: new Attribute({ type: 'pwdChangedTime', values: ['20200101000000Z'] }) })]);
      const fresh = await target(srv);
      const due = await fresh.expiresAt!(initial);
      expect(due!.getTime()).toBeLessThanOrEqual(Date.now());
      // (A new target: the one above just saw this password fail and waits a second before retrying it.)
      const test = await (await target(srv)).test(initial, { expect: 'accept' });
      expect(test.probes.find((p) => p.name === 'bind')).toMatchObject({ status: 49, detail: expect.stringMatching(/ppolicy: passwordExpired/) });
    });
  });
});
