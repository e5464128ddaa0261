// The LDAP provisioning write probe (`test --write`, drills) on all three directories the
// harness runs: OpenLDAP slapd, Samba AD DC and 389-DS. Under a staging OU the service account
// adds a throw-away entry, adds it to a group, modifies it and deletes it; each step is a probe
// with its result code. A leftover from an interrupted probe is removed first; an account that
// may not write fails the probe with the server's code. The directory itself is asked whether
// anything was left behind.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Attribute, Change, Client } from 'ldapts';
import * as v from 'valibot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { targetSchema } from '../../src/config/schema.js';
import { resolveSecretRef } from '../../src/config/secret-ref.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { AdapterContext } from '../../src/stores/context.js';
import { createLdapTarget } from '../../src/targets/ldap/ldap-target.js';
import type { ConnectionTest, SecretInUse, Target } from '../../src/targets/target.js';
import { EffectSeam, SessionAborted, type EffectCall, type Fault } from '../../src/engine/seam.js';
import { summary } from '../contract/target-contract.js';
import { ProvkeyCli, describeRun } from '../harness/cli.ts';
import { startDirsrv, type DirsrvServer } from '../harness/servers/dirsrv.ts';
import { replace, startSamba, type SambaServer } from '../harness/servers/samba.ts';
import { STAGING_ACL, STAGING_LDIF, startSlapd, type SlapdServer } from '../harness/servers/slapd.ts';

function contextFor(): AdapterContext {
  const context: AdapterContext = { configDir: tmpdir(), env: process.env, resolveSecret: (ref, field) => resolveSecretRef(ref, field, context), debug: () => undefined };
  return context;
}

async function open(fields: Record<string, unknown>): Promise<Target> {
  const config = v.parse(targetSchema, { type: 'ldap', timeout: '5s', propagationTimeout: '2s', ...fields });
  if (config.type !== 'ldap') throw new Error('not ldap');
  return createLdapTarget('writer', config, contextFor());
}

const WRITE_STEPS = ['write-cleanup', 'write-add', 'write-group', 'write-modify', 'write-delete'];

function expectWritesPassed(result: ConnectionTest): void {
  expect(result.ok, summary(result)).toBe(true);
  const writes = result.probes.filter((p) => p.name.startsWith('write'));
  expect(writes.map((p) => [p.name, p.outcome, p.status])).toEqual(WRITE_STEPS.map((n) => [n, 'pass', 0]));
  for (const p of writes) expect(p.ms).toBeGreaterThanOrEqual(0);
}

/** Entries under `base` whose cn says a probe made them, as the directory's admin sees them. */
async function leftovers(url: string, caPem: string, dn: string, password: string, base: string): Promise<string[]> {
  const client = new Client({ url, tlsOptions: { ca: [caPem] } });
  try {
    await client.bind(dn, password);
    return (await client.search(base, { scope: 'one', filter: '(cn=provkey-probe-*)', attributes: ['1.1'] })).searchEntries.map((e) => e.dn);
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** `member` values of `group`, as the directory's admin sees them. */
async function members(url: string, caPem: string, dn: string, password: string, group: string): Promise<string[]> {
  const client = new Client({ url, tlsOptions: { ca: [caPem] } });
  try {
    await client.bind(dn, password);
    const entry = (await client.search(group, { scope: 'base', attributes: ['member'] })).searchEntries[0];
    return ([] as unknown[]).concat(entry?.member ?? []).map((m) => String(m).toLowerCase());
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** As an admin: what a probe killed after its group step leaves behind (an entry that is a member of the group). */
async function leaveBehind(url: string, caPem: string, admin: { dn: string; password: string }, entryDn: string, entry: Record<string, string | string[]>, group: string): Promise<void> {
  const client = new Client({ url, tlsOptions: { ca: [caPem] } });
  try {
    await client.bind(admin.dn, admin.password);
    await client.add(entryDn, entry);
    await client.modify(group, [new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [entryDn] }) })]);
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** A refused group step: reported with the server's code, and the entry is still modified and deleted (nothing left). */
function expectGroupRefused(result: ConnectionTest, status: number): void {
  expect(result.ok, summary(result)).toBe(false);
  const writes = result.probes.filter((p) => p.name.startsWith('write'));
  expect(writes.map((p) => [p.name, p.outcome, p.status])).toEqual([
    ['write-cleanup', 'pass', 0],
    ['write-add', 'pass', 0],
    ['write-group', 'fail', status],
    ['write-modify', 'pass', 0],
    ['write-delete', 'pass', 0],
  ]);
  for (const p of writes) expect(typeof p.ms === 'number' && p.ms >= 0, `${p.name} has a time`).toBe(true);
}

// --- OpenLDAP ---------------------------------------------------------------------------------

/** The harness's usual ACL with a staging OU the service account may write and a group whose members it manages. */
const SLAPD_ACL = `${STAGING_ACL}access to dn.subtree="ou=services,{BASE}" attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to dn.subtree="ou=services,{BASE}"
    by self read
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

describe('write probe: OpenLDAP slapd', () => {
  let srv: SlapdServer;
  beforeAll(async () => {
    srv = await startSlapd({
      acl: SLAPD_ACL,
      extraLdif: [
        STAGING_LDIF,
        'dn: cn=readonly,ou=groups,dc=example,dc=com', 'objectClass: groupOfNames', 'cn: readonly', 'member: uid=alice,ou=people,dc=example,dc=com', '',
        'dn: cn=provkey-probe-deadbeef0001,ou=staging,dc=example,dc=com', 'objectClass: inetOrgPerson', 'cn: provkey-probe-deadbeef0001', 'sn: left over', '',
      ].join('\n'),
    });
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('adds, groups, modifies and deletes under the staging OU; the leftover of an interrupted probe is removed first', async () => {
    const t = await open({ urls: [srv.ldapUrl], tls: { caFile: srv.caFile }, bindDn: srv.serviceDn, searchBase: srv.peopleDn, writeProbe: { base: 'ou=staging,dc=example,dc=com', group: 'cn=provisioned,ou=groups,dc=example,dc=com' } });
    const secret: SecretInUse = { value: srv.servicePassword, fingerprint: fingerprint(srv.servicePassword) };
    const result = await t.test(secret, { expect: 'accept', write: true });
    expectWritesPassed(result);
    expect(result.probes.find((p) => p.name === 'write-cleanup')!.detail).toBe('removed 1 leftover probe entry from an interrupted run');
    expect(await leftovers(srv.ldapsUrl, srv.caPem, srv.adminDn, srv.adminPassword, 'ou=staging,dc=example,dc=com')).toEqual([]);
    // Without write access (the people base): the add fails with the server's 50, never a pass.
    const denied = await open({ urls: [srv.ldapUrl], tls: { caFile: srv.caFile }, bindDn: srv.serviceDn, searchBase: srv.peopleDn, writeProbe: { base: srv.peopleDn } });
    const refused = await denied.test(secret, { expect: 'accept', write: true });
    expect(refused.ok).toBe(false);
    expect(refused.probes.find((p) => p.name === 'write-add')).toMatchObject({ outcome: 'fail', status: 50 });
  });

  it('killed after its group step: the next probe removes the entry and its membership; a refused group step is 50, and the entry is still removed', async () => {
    const base = 'ou=staging,dc=example,dc=com';
    const group = 'cn=provisioned,ou=groups,dc=example,dc=com';
    const admin = { dn: srv.adminDn, password: srv.adminPassword };
    const left = `cn=provkey-probe-deadbeef0002,${base}`;
    await leaveBehind(srv.ldapsUrl, srv.caPem, admin, left, { objectClass: 'inetOrgPerson', cn: 'provkey-probe-deadbeef0002', sn: 'left over' }, group);
    const secret: SecretInUse = { value: srv.servicePassword, fingerprint: fingerprint(srv.servicePassword) };
    const t = await open({ urls: [srv.ldapUrl], tls: { caFile: srv.caFile }, bindDn: srv.serviceDn, searchBase: srv.peopleDn, writeProbe: { base, group } });
    const result = await t.test(secret, { expect: 'accept', write: true });
    expectWritesPassed(result);
    expect(result.probes.find((p) => p.name === 'write-cleanup')!.detail).toBe('removed 1 leftover probe entry from an interrupted run');
    expect(await leftovers(srv.ldapsUrl, srv.caPem, admin.dn, admin.password, base)).toEqual([]);
    expect(await members(srv.ldapsUrl, srv.caPem, admin.dn, admin.password, group)).toEqual(['uid=alice,ou=people,dc=example,dc=com']);

    const readonly = 'cn=readonly,ou=groups,dc=example,dc=com';
    const refusing = await open({ urls: [srv.ldapUrl], tls: { caFile: srv.caFile }, bindDn: srv.serviceDn, searchBase: srv.peopleDn, writeProbe: { base, group: readonly } });
    expectGroupRefused(await refusing.test(secret, { expect: 'accept', write: true }), 50);
    expect(await leftovers(srv.ldapsUrl, srv.caPem, admin.dn, admin.password, base)).toEqual([]);
    expect(await members(srv.ldapsUrl, srv.caPem, admin.dn, admin.password, readonly)).toEqual(['uid=alice,ou=people,dc=example,dc=com']);
  });

  it('each step is a call through the effect seam: an outage fails that step as unreachable; a kill abandons the session, and the next probe removes what it left', async () => {
    const base = 'ou=staging,dc=example,dc=com';
    const group = 'cn=provisioned,ou=groups,dc=example,dc=com';
    const admin = { dn: srv.adminDn, password: srv.adminPassword };
    const secret: SecretInUse = { value: srv.servicePassword, fingerprint: fingerprint(srv.servicePassword) };
    const t = await open({ urls: [srv.ldapUrl], tls: { caFile: srv.caFile }, bindDn: srv.serviceDn, searchBase: srv.peopleDn, writeProbe: { base, group } });
    const calls: EffectCall[] = [];
    expectWritesPassed(await new EffectSeam({ hook: (call) => void calls.push(call) }).target(t, 'writer').test(secret, { expect: 'accept', write: true }));
    expect(calls.map((c) => `${c.boundary}.${c.operation}`)).toEqual(['target.test', 'target.probe.cleanup', 'target.probe.add', 'target.probe.group', 'target.probe.modify', 'target.probe.delete']);

    const at = (operation: string, fault: Fault) => new EffectSeam({ hook: (call) => (call.operation === operation ? fault : undefined) }).target(t, 'writer');
    // The directory went away at the modify: that step fails as unreachable (never "rejected"); the delete still runs.
    const cut = await at('probe.modify', 'refused').test(secret, { expect: 'accept', write: true });
    expect(cut.ok).toBe(false);
    const modify = cut.probes.find((p) => p.name === 'write-modify')!;
    expect(modify).toMatchObject({ outcome: 'fail', status: 'ECONNREFUSED' });
    expect(modify.detail).toMatch(/^unreachable/);
    expect(cut.probes.find((p) => p.name === 'write-delete')).toMatchObject({ outcome: 'pass' });
    expect(await leftovers(srv.ldapsUrl, srv.caPem, admin.dn, admin.password, base)).toEqual([]);

    // Killed just after the group step: the entry and its membership stay on the real server...
    await expect(at('probe.group', 'kill-after').test(secret, { expect: 'accept', write: true })).rejects.toBeInstanceOf(SessionAborted);
    expect(await leftovers(srv.ldapsUrl, srv.caPem, admin.dn, admin.password, base)).toHaveLength(1);
    expect(await members(srv.ldapsUrl, srv.caPem, admin.dn, admin.password, group)).toHaveLength(2);
    // ...and the next normal probe removes both.
    const next = await t.test(secret, { expect: 'accept', write: true });
    expectWritesPassed(next);
    expect(next.probes.find((p) => p.name === 'write-cleanup')!.detail).toBe('removed 1 leftover probe entry from an interrupted run');
    expect(await leftovers(srv.ldapsUrl, srv.caPem, admin.dn, admin.password, base)).toEqual([]);
    expect(await members(srv.ldapsUrl, srv.caPem, admin.dn, admin.password, group)).toEqual(['uid=alice,ou=people,dc=example,dc=com']);
  });
});

// --- 389-DS -----------------------------------------------------------------------------------

describe('write probe: 389 Directory Server', () => {
  let ds: DirsrvServer;
  beforeAll(async () => {
    ds = await startDirsrv();
  });
  afterAll(async () => {
    await ds?.stop();
  });

  it('passes under ou=staging and leaves nothing behind; `provkey test --write` shows each step', async () => {
    const t = await open({ directory: '389ds', urls: [ds.ldapsUrl], tls: { caFile: ds.caFile }, bindDn: ds.serviceDn, searchBase: ds.peopleDn, writeProbe: { base: ds.stagingDn, group: ds.groupDn } });
    const secret: SecretInUse = { value: ds.servicePassword, fingerprint: fingerprint(ds.servicePassword) };
    expectWritesPassed(await t.test(secret, { expect: 'accept', write: true }));
    expect(await leftovers(ds.ldapsUrl, ds.caPem, ds.adminDn, ds.adminPassword, ds.stagingDn)).toEqual([]);

    const dir = mkdtempSync(path.join(tmpdir(), 'provkey-write-cli-'));
    try {
      const config = path.join(dir, 'provkey.yaml');
      writeFileSync(config, [
        'keys:', '  writer:', '    format: { type: password, length: 24, exclude: "provisnecPROVISNEC" }', '    target:', '      type: ldap', '      directory: 389ds',
        `      urls: [${ds.ldapsUrl}]`, `      tls: { caFile: ${ds.caFile} }`, `      bindDn: "${ds.serviceDn}"`, `      searchBase: "${ds.peopleDn}"`,
        `      writeProbe: { base: "${ds.stagingDn}", group: "${ds.groupDn}" }`, '',
      ].join('\n'));
      const cli = new ProvkeyCli({ cwd: dir, config });
      cli.scanner.addSecret(ds.servicePassword, 'service password');
      expect((await cli.run(['import', 'writer'], { input: `${ds.servicePassword}\n` })).code).toBe(0);
      const tested = await cli.run(['test', 'writer', '--write']);
      expect(tested.code, describeRun(tested)).toBe(0);
      for (const name of WRITE_STEPS) expect(tested.stdout).toMatch(new RegExp(`${name}\\b`));
      cli.scanner.assertClean();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('killed after its group step: the next probe removes the entry and its membership; a refused group step is 50, and the entry is still removed', async () => {
    const admin = { dn: ds.adminDn, password: ds.adminPassword };
    const left = `cn=provkey-probe-deadbeef0003,${ds.stagingDn}`;
    await leaveBehind(ds.ldapsUrl, ds.caPem, admin, left, { objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson'], cn: 'provkey-probe-deadbeef0003', sn: 'left over' }, ds.groupDn);
    const secret: SecretInUse = { value: ds.servicePassword, fingerprint: fingerprint(ds.servicePassword) };
    const t = await open({ directory: '389ds', urls: [ds.ldapsUrl], tls: { caFile: ds.caFile }, bindDn: ds.serviceDn, searchBase: ds.peopleDn, writeProbe: { base: ds.stagingDn, group: ds.groupDn } });
    const result = await t.test(secret, { expect: 'accept', write: true });
    expectWritesPassed(result);
    expect(result.probes.find((p) => p.name === 'write-cleanup')!.detail).toBe('removed 1 leftover probe entry from an interrupted run');
    expect(await leftovers(ds.ldapsUrl, ds.caPem, admin.dn, admin.password, ds.stagingDn)).toEqual([]);
    expect(await members(ds.ldapsUrl, ds.caPem, admin.dn, admin.password, ds.groupDn)).toEqual([`uid=alice,${ds.peopleDn}`.toLowerCase()]);

    // A group the account may read but not write (no ACI grants it).
    const readonly = `cn=readonly,ou=groups,${ds.baseDn}`;
    const client = new Client({ url: ds.ldapsUrl, tlsOptions: { ca: [ds.caPem] } });
    try {
      await client.bind(admin.dn, admin.password);
      await client.add(readonly, { objectClass: ['top', 'groupOfNames'], cn: 'readonly', member: `uid=alice,${ds.peopleDn}` });
    } finally {
      await client.unbind().catch(() => undefined);
    }
    const refusing = await open({ directory: '389ds', urls: [ds.ldapsUrl], tls: { caFile: ds.caFile }, bindDn: ds.serviceDn, searchBase: ds.peopleDn, writeProbe: { base: ds.stagingDn, group: readonly } });
    expectGroupRefused(await refusing.test(secret, { expect: 'accept', write: true }), 50);
    expect(await leftovers(ds.ldapsUrl, ds.caPem, admin.dn, admin.password, ds.stagingDn)).toEqual([]);
  });
});

// --- Samba AD DC ------------------------------------------------------------------------------

describe('write probe: Samba AD DC', () => {
  let dc: SambaServer;
  beforeAll(async () => {
    dc = await startSamba();
  });
  afterAll(async () => {
    await dc?.stop();
  });

  let writer: { dn: string; password: string; staging: string; group: string };
  beforeAll(async () => {
    const password = `Pk-${randomBytes(18).toString('base64url')}`;
    const dn = await dc.createUser('svc-writer', password);
    const staging = `OU=Staging,${dc.baseDn}`;
    const group = `CN=Provisioned,${staging}`;
    await dc.add(staging, { objectClass: ['top', 'organizationalUnit'], ou: 'Staging' });
    await dc.add(group, { objectClass: ['top', 'group'], sAMAccountName: 'Provisioned' });
    // Account Operators may create and delete users and manage groups in OUs (AD's default security descriptors).
    await dc.modify(`CN=Account Operators,CN=Builtin,${dc.baseDn}`, [replace('member', [dn])]);
    writer = { dn, password, staging, group };
  });
  const openWriter = (group: string) =>
    open({ directory: 'activeDirectory', oldPasswordAllowedPeriod: '0s', urls: [dc.ldapsUrl], tls: { caFile: dc.caFile }, bindDn: writer.dn, searchBase: dc.usersDn, writeProbe: { base: writer.staging, group } });

  it('a disabled throw-away user under OU=Staging, put into a group and removed again, as a member of Account Operators', async () => {
    const t = await openWriter(writer.group);
    const result = await t.test({ value: writer.password, fingerprint: fingerprint(writer.password) }, { expect: 'accept', write: true });
    expectWritesPassed(result);
    expect(await leftovers(dc.ldapsUrl, dc.caPem, dc.adminDn, dc.adminPassword, writer.staging)).toEqual([]);
  });

  it('killed after its group step: the next probe removes the user and its membership; a group step refused (a group that does not exist: 32) is reported, and the user is still removed', async () => {
    const admin = { dn: dc.adminDn, password: dc.adminPassword };
    const left = `CN=provkey-probe-deadbeef0004,${writer.staging}`;
    await leaveBehind(dc.ldapsUrl, dc.caPem, admin, left, { objectClass: ['top', 'person', 'organizationalPerson', 'user'], sAMAccountName: 'pkprobe-deadbeef0004', userAccountControl: '514' }, writer.group);
    expect(await members(dc.ldapsUrl, dc.caPem, admin.dn, admin.password, writer.group)).toEqual([left.toLowerCase()]);
    const secret: SecretInUse = { value: writer.password, fingerprint: fingerprint(writer.password) };
    const result = await (await openWriter(writer.group)).test(secret, { expect: 'accept', write: true });
    expectWritesPassed(result);
    expect(result.probes.find((p) => p.name === 'write-cleanup')!.detail).toBe('removed 1 leftover probe entry from an interrupted run');
    expect(await leftovers(dc.ldapsUrl, dc.caPem, admin.dn, admin.password, writer.staging)).toEqual([]);
    expect(await members(dc.ldapsUrl, dc.caPem, admin.dn, admin.password, writer.group)).toEqual([]);

    // Samba lets Account Operators change even Domain Admins (no AdminSDHolder): the refusal here is a missing group.
    expectGroupRefused(await (await openWriter(`CN=No Such Group,${writer.staging}`)).test(secret, { expect: 'accept', write: true }), 32);
    expect(await leftovers(dc.ldapsUrl, dc.caPem, admin.dn, admin.password, writer.staging)).toEqual([]);
  });
});
