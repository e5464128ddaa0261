// provkey end to end against a real OpenLDAP slapd: the built CLI (bin/provkey → dist/) with an
// LDAP key in the default embedded file store. After every command the directory itself is
// asked what happened (a bind with ldapts: 0 accepted, 49 rejected), and everything the CLI
// printed is scanned for every password the test generated, read back or used.

import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Attribute, Change, Client, Control } from 'ldapts';
import { afterEach, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/core/fingerprint.js';
import { PasswordPolicyControl } from '../../src/targets/ldap/ppolicy.js';
import { ProvkeyCli, describeRun, readStoredVersions } from '../harness/cli.ts';
import { startSlapd, startSlapdReplica, type SlapdServer, type StartSlapdOptions } from '../harness/servers/slapd.ts';

const KEY = 'ldap-provisioner';

interface KeyResultJson {
  ok: boolean;
  exitCode: number;
  results: { outcome: string; message: string; fingerprint?: string; steps: { step: string; ok: boolean; detail?: string }[] }[];
}

// --- the directory's own view ------------------------------------------------------------

async function connect(srv: SlapdServer, url = srv.ldapUrl): Promise<Client> {
  const client = new Client({ url, timeout: 5000 });
  await client.startTLS({ ca: [srv.caPem], host: '127.0.0.1' });
  return client;
}

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

/** Binds and searches the provisioning base, as the integration would: 0 when both work. */
async function worksAs(srv: SlapdServer, password: string): Promise<number> {
  const client = await connect(srv);
  try {
    await client.bind(srv.serviceDn, password);
    await client.search(srv.peopleDn, { scope: 'sub', sizeLimit: 1, attributes: ['1.1'] });
    return 0;
  } catch (error) {
    return (error as { code: number }).code;
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

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

/**
 * Failed binds as the service account that this server logged (started with debugLevel
 * 'stats'). pwdFailureTime does not count them: a successful bind clears it, and a consumer
 * also holds the failures replicated from its provider.
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

/** Whether one pwdHistory value (time#syntax#length#{SSHA}…) is the hash of `password`. */
function historyHolds(entry: string, password: string): boolean {
  const hash = /#\{SSHA\}(.+)$/.exec(entry)?.[1];
  if (!hash) return false;
  const raw = Buffer.from(hash, 'base64');
  const digest = createHash('sha1').update(password, 'utf8').update(raw.subarray(20)).digest();
  return digest.equals(raw.subarray(0, 20));
}

class Relax extends Control {
  constructor() {
    super('1.3.6.1.4.1.4203.666.5.12', { critical: true });
  }
}

async function backdatePasswordChange(srv: SlapdServer, when: Date): Promise<void> {
  const client = await connect(srv);
  try {
    await client.bind(srv.adminDn, srv.adminPassword);
    const value = when.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
    await client.modify(srv.serviceDn, [new Change({ operation: 'replace', modification: new Attribute({ type: 'pwdChangedTime', values: [value] }) })], [new Relax()]);
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

// --- set-up --------------------------------------------------------------------------------

const cleanups: Array<() => Promise<void> | void> = [];
let cli: ProvkeyCli | undefined;
afterEach(async () => {
  try {
    cli?.scanner.assertClean();
  } finally {
    cli = undefined;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  }
});

/** A slapd, a temp dir with provkey.yaml for one LDAP key, and a CLI whose output is scanned. */
async function setUp(
  target: (srv: SlapdServer) => string[],
  serverOptions: StartSlapdOptions = {},
): Promise<{ srv: SlapdServer; cli: ProvkeyCli; dir: string }> {
  const srv = await startSlapd(serverOptions);
  cleanups.push(() => srv.stop());
  const dir = mkdtempSync(path.join(tmpdir(), 'provkey-ldap-cli-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'provkey.yaml');
  writeFileSync(
    config,
    [
      'keys:',
      `  ${KEY}:`,
      '    description: LDAP provisioning service account',
      '    format: { type: password, length: 24 }',
      '    rotation: { interval: 30d, grace: 0 }',
      '    target:',
      '      type: ldap',
      ...target(srv).map((line) => `      ${line}`),
      '',
    ].join('\n'),
  );
  cli = new ProvkeyCli({ cwd: dir, config, env: { PROVKEY_LDAP_ADMIN: srv.provkeyAdminPassword } });
  cli.scanner.addSecret(srv.servicePassword, 'initial service password');
  cli.scanner.addSecret(srv.provkeyAdminPassword, 'provkey-admin password');
  cli.scanner.addSecret(srv.adminPassword, 'rootdn password');
  return { srv, cli, dir };
}

const common = (srv: SlapdServer, urls = [srv.ldapUrl]) => [
  `urls: [${urls.join(', ')}]`,
  `tls: { caFile: ${srv.caFile} }`,
  `bindDn: "${srv.serviceDn}"`,
  `searchBase: "${srv.peopleDn}"`,
];
const adminCredential = (srv: SlapdServer) => `adminDn: "${srv.provkeyAdminDn}", adminPasswordRef: "env:PROVKEY_LDAP_ADMIN"`;

// --- the lifecycle -------------------------------------------------------------------------

describe('provkey CLI with an LDAP key (OpenLDAP slapd)', () => {
  it('self apply: import, test, rotate, status, rotate --due before pwdMaxAge, drill, revoke with lock', async () => {
    const { srv, cli } = await setUp((s) => [
      ...common(s),
      `apply: { mode: self, ${adminCredential(s)} }`,
      'rollback: admin-reset',
      'revoke: { lockAccount: true }',
      'propagationTimeout: 5s',
    ]);
    const initial = srv.servicePassword;

    const imported = await cli.run(['import', KEY], { input: `${initial}\n` });
    expect(imported.code, describeRun(imported)).toBe(0);
    expect(imported.stdout).toContain(fingerprint(initial));

    const tested = await cli.run(['test', KEY]);
    expect(tested.code, describeRun(tested)).toBe(0);
    expect(tested.stdout).toMatch(/connect .*StartTLS/);
    expect(tested.stdout).toMatch(/whoami .*dn:cn=provisioner/);

    const rotated = await cli.json<KeyResultJson>(['rotate', KEY]);
    expect(rotated.result.code, describeRun(rotated.result)).toBe(0);
    expect(rotated.data.results[0]!.outcome).toBe('rotated');
    const steps = rotated.data.results[0]!.steps.map((s) => s.step);
    expect(steps).toEqual(expect.arrayContaining(['set', 'test', 'retire', 'prove-rejected']));
    const second = await cli.reveal(KEY, 'after rotate');
    expect(second).toHaveLength(24);
    expect(await worksAs(srv, second)).toBe(0);
    expect((await bindAs(srv, initial)).code).toBe(49);

    const status = await cli.json<{ keys: { name: string; target: string; state: string; current: { fingerprint: string }; lastTest: { ok: boolean } }[] }>(['status']);
    expect(status.result.code, describeRun(status.result)).toBe(0);
    expect(status.data.keys[0]).toMatchObject({ name: KEY, target: 'ldap', state: 'ok', current: { fingerprint: fingerprint(second) }, lastTest: { ok: true } });

    // --due: not due by the interval, but the directory expires the password in half a day.
    const notDue = await cli.json<KeyResultJson>(['rotate', '--due']);
    expect(notDue.data.results[0]!.outcome, describeRun(notDue.result)).toBe('skipped');
    await backdatePasswordChange(srv, new Date(Date.now() - 89.5 * 86_400_000));
    const due = await cli.json<KeyResultJson>(['rotate', '--due']);
    expect(due.result.code, describeRun(due.result)).toBe(0);
    expect(due.data.results[0]!.outcome).toBe('rotated');
    const third = await cli.reveal(KEY, 'after rotate --due');
    expect(await worksAs(srv, third)).toBe(0);
    expect((await bindAs(srv, second)).code).toBe(49);

    const drill = await cli.json<{ ok: boolean; exitCode: number; leakedFingerprint: string; newFingerprint: string; timeToContainMs: number }>(['drill', 'compromise', KEY, '--yes']);
    expect(drill.result.code, describeRun(drill.result)).toBe(0);
    expect(drill.data).toMatchObject({ ok: true, leakedFingerprint: fingerprint(third) });
    expect(drill.data.timeToContainMs).toBeGreaterThan(0);
    const fourth = await cli.reveal(KEY, 'after drill');
    expect(drill.data.newFingerprint).toBe(fingerprint(fourth));
    expect(await worksAs(srv, fourth)).toBe(0);
    expect((await bindAs(srv, third)).code).toBe(49);

    const revoked = await cli.run(['revoke', KEY, '--yes']);
    expect(revoked.code, describeRun(revoked)).toBe(0);
    expect(await bindAs(srv, fourth)).toEqual({ code: 49, ppolicy: 'accountLocked' });
    expect((await accountState(srv, ['pwdAccountLockedTime'])).pwdAccountLockedTime).toEqual(['000001010000Z']);
    for (const old of [initial, second, third]) expect((await bindAs(srv, old)).code).toBe(49);

    const after = await cli.json<{ keys: { state: string; current: unknown }[] }>(['status']);
    expect(after.data.keys[0]).toMatchObject({ state: 'empty', current: null });
    expect((await cli.run(['audit', 'verify'])).code).toBe(0);
  });

  it('admin apply under pwdMustChange, lockout guard (pwdMaxFailure 3): add, rotate, revoke, add again; no failed bind recorded', async () => {
    const { srv, cli } = await setUp(
      (s) => [...common(s, [s.ldapsUrl]), `apply: { mode: admin, ${adminCredential(s)} }`, 'rollback: admin-reset'],
      { policy: { pwdMustChange: 'TRUE', pwdMaxFailure: '3' } },
    );

    // add: the account's current password is unknown to provkey; the admin path sets the first one.
    const added = await cli.run(['add', KEY]);
    expect(added.code, describeRun(added)).toBe(0);
    const first = await cli.reveal(KEY, 'after add');
    expect(await worksAs(srv, first)).toBe(0);
    expect((await bindAs(srv, srv.servicePassword)).code).toBe(49);

    const rotated = await cli.json<KeyResultJson>(['rotate', KEY]);
    expect(rotated.result.code, describeRun(rotated.result)).toBe(0);
    const proof = rotated.data.results[0]!.steps.find((s) => s.step === 'prove-rejected');
    expect(proof).toMatchObject({ ok: true, detail: expect.stringMatching(/lockout guard/) });
    const second = await cli.reveal(KEY, 'after rotate');
    // pwdMustChange: the account changed the admin's temporary password itself, so it can search.
    expect(await worksAs(srv, second)).toBe(0);
    expect((await accountState(srv, ['pwdFailureTime', 'pwdReset']))).toEqual({ pwdFailureTime: [], pwdReset: [] });

    const revoked = await cli.run(['revoke', KEY, '--yes']);
    expect(revoked.code, describeRun(revoked)).toBe(0);
    expect((await accountState(srv, ['pwdFailureTime'])).pwdFailureTime).toEqual([]);
    expect((await bindAs(srv, second)).code).toBe(49);

    const readded = await cli.run(['add', KEY]);
    expect(readded.code, describeRun(readded)).toBe(0);
    const third = await cli.reveal(KEY, 'after add again');
    expect(await worksAs(srv, third)).toBe(0);
  });

  it('a server that never gets the change: rotate rolls back (admin-reset) and the current password still works everywhere', async () => {
    const { srv, cli } = await setUp((s) => [
      ...common(s),
      `apply: { mode: self, ${adminCredential(s)} }`,
      'rollback: admin-reset',
      'propagationTimeout: 2s',
    ]);
    const clone = await startSlapdReplica(srv, { mode: 'clone' });
    cleanups.push(() => clone.stop());
    // Point the key at both servers: the clone never sees provkey's change.
    const config = path.join(cli.defaults.cwd!, 'provkey.yaml');
    writeFileSync(config, readFileSync(config, 'utf8').replace(`urls: [${srv.ldapUrl}]`, `urls: [${srv.ldapUrl}, ${clone.ldapUrl}]`));

    const imported = await cli.run(['import', KEY], { input: srv.servicePassword });
    expect(imported.code, describeRun(imported)).toBe(0);
    const rotated = await cli.json<KeyResultJson>(['rotate', KEY]);
    expect(rotated.result.code, describeRun(rotated.result)).toBe(1);
    expect(rotated.data.results[0]!.outcome).toBe('rolled_back');
    expect(rotated.data.results[0]!.message).toMatch(/not reached this server yet/);
    expect((await bindAs(srv, srv.servicePassword)).code).toBe(0);
    expect((await bindAs(clone, srv.servicePassword, clone.ldapUrl)).code).toBe(0);
    expect((await cli.reveal(KEY, 'still current'))).toBe(srv.servicePassword);
    // Waiting for the clone cost no failed bind there: it was asked with the previous password.
    expect((await accountState(clone, ['pwdFailureTime'])).pwdFailureTime).toEqual([]);
  });

  it('a syncrepl replica under the lockout guard (pwdMaxFailure 3): two rotations succeed without a failed bind on either server', async () => {
    const { srv, cli, dir } = await setUp((s) => [...common(s), 'propagationTimeout: 10s'], { policy: { pwdMaxFailure: '3' }, debugLevel: 'stats' });
    const replica = await startSlapdReplica(srv);
    cleanups.push(() => replica.stop());
    const config = path.join(dir, 'provkey.yaml');
    writeFileSync(config, readFileSync(config, 'utf8').replace(`urls: [${srv.ldapUrl}]`, `urls: [${srv.ldapUrl}, ${replica.ldapsUrl}]`));

    expect((await cli.run(['import', KEY], { input: srv.servicePassword })).code).toBe(0);
    let previous = srv.servicePassword;
    for (const round of [1, 2]) {
      const rotated = await cli.json<KeyResultJson>(['rotate', KEY]);
      expect(rotated.result.code, describeRun(rotated.result)).toBe(0);
      expect(rotated.data.results[0]!.outcome).toBe('rotated');
      expect(rotated.data.results[0]!.steps.find((s) => s.step === 'prove-rejected')).toMatchObject({ ok: true, detail: expect.stringMatching(/lockout guard/) });
      const now = await cli.reveal(KEY, `after rotation ${round}`);
      expect(await worksAs(srv, now)).toBe(0);
      expect((await bindAs(srv, now, replica.ldapUrl)).code).toBe(0);
      expect((await bindAs(srv, previous, replica.ldapUrl)).code).toBe(49);
      previous = now;
    }
    // The test's own two binds with the old password above were the only failures: cleared by the next good bind.
    expect((await bindAs(srv, previous)).code).toBe(0);
    expect((await bindAs(srv, previous, replica.ldapUrl)).code).toBe(0);
    expect((await accountState(srv, ['pwdFailureTime'])).pwdFailureTime).toEqual([]);
    expect((await accountState(srv, ['pwdFailureTime'], replica.ldapUrl)).pwdFailureTime).toEqual([]);
    // The servers' own logs: provkey caused none on the primary; on the replica only the test's two.
    expect(await failedBinds(srv)).toBe(0);
    expect(await failedBinds(replica)).toBe(2);
  });

  it('the default policy with a syncrepl replica: a rotation costs at most one failed bind per server (the negative probe)', async () => {
    const { srv, cli, dir } = await setUp((s) => [...common(s), 'propagationTimeout: 10s'], { debugLevel: 'stats' });
    const replica = await startSlapdReplica(srv);
    cleanups.push(() => replica.stop());
    const config = path.join(dir, 'provkey.yaml');
    writeFileSync(config, readFileSync(config, 'utf8').replace(`urls: [${srv.ldapUrl}]`, `urls: [${srv.ldapUrl}, ${replica.ldapsUrl}]`));

    expect((await cli.run(['import', KEY], { input: srv.servicePassword })).code).toBe(0);
    const rotated = await cli.json<KeyResultJson>(['rotate', KEY]);
    expect(rotated.result.code, describeRun(rotated.result)).toBe(0);
    expect(rotated.data.results[0]!.steps.find((s) => s.step === 'prove-rejected')).toMatchObject({ ok: true, detail: expect.stringMatching(/^rejected/) });
    expect(await failedBinds(srv)).toBe(1);
    expect(await failedBinds(replica)).toBe(1);
    const now = await cli.reveal(KEY, 'after rotate');
    expect((await bindAs(srv, now, replica.ldapUrl)).code).toBe(0);
  });

  it('a retry after a rolled-back rotation generates a fresh password; the failed one is erased and never sent again', async () => {
    const { srv, cli, dir } = await setUp((s) => [...common(s), `apply: { mode: self, ${adminCredential(s)} }`, 'rollback: admin-reset', 'propagationTimeout: 2s']);
    const clone = await startSlapdReplica(srv, { mode: 'clone' });
    cleanups.push(() => clone.stop());
    const config = path.join(dir, 'provkey.yaml');
    const single = readFileSync(config, 'utf8');
    // ldaps: a lagging ldaps server's connection is closed before any operation on it, which
    // must not leave its socket open (the CLI would never exit).
    writeFileSync(config, single.replace(`urls: [${srv.ldapUrl}]`, `urls: [${srv.ldapUrl}, ${clone.ldapsUrl}]`));
    const initial = srv.servicePassword;
    expect((await cli.run(['import', KEY], { input: initial })).code).toBe(0);

    // The clone never gets the change: the rotation rolls back.
    const failed = await cli.json<KeyResultJson>(['rotate', KEY], { timeoutMs: 20_000 });
    expect(failed.result.code, describeRun(failed.result)).toBe(1);
    expect(failed.data.results[0]!.outcome).toBe('rolled_back');
    const failedFingerprint = failed.data.results[0]!.fingerprint!;
    expect(failedFingerprint).toMatch(/^sha256:/);

    // The retry, with the clone taken out of the key.
    writeFileSync(config, single);
    const retried = await cli.json<KeyResultJson>(['rotate', KEY]);
    expect(retried.result.code, describeRun(retried.result)).toBe(0);
    expect(retried.data.results[0]!.outcome).toBe('rotated');
    const retriedFingerprint = retried.data.results[0]!.fingerprint!;
    expect(retriedFingerprint).not.toBe(failedFingerprint);
    expect(retried.result.stdout).not.toContain(failedFingerprint);
    const now = await cli.reveal(KEY, 'after the retry');
    expect(fingerprint(now)).toBe(retriedFingerprint);

    const history = await cli.json<{ versions: { id: string; fingerprint: string; label: string }[] }>(['history', KEY]);
    expect(history.data.versions.map((v) => [v.fingerprint, v.label])).toEqual([
      [fingerprint(initial), 'revoked'],
      [failedFingerprint, 'failed'],
      [retriedFingerprint, 'current'],
    ]);
    // The failed value is erased from the store: there is nothing left that could be sent again.
    const stored = await readStoredVersions(dir, KEY);
    expect(stored.find((v) => v.fingerprint === failedFingerprint)).toMatchObject({ label: 'failed', value: null });

    // The directory's own record: pwdHistory holds every password the account had, and the
    // failed one exactly once (set by the first run, then replaced by the rollback). The retry
    // was a self change, which pwdInHistory would have refused for any value in it.
    const { pwdHistory } = await accountState(srv, ['pwdHistory']);
    expect(pwdHistory.filter((h) => historyHolds(h, initial))).toHaveLength(2);
    expect(pwdHistory.filter((h) => historyHolds(h, now))).toHaveLength(0);
    expect(pwdHistory.filter((h) => !historyHolds(h, initial))).toHaveLength(1);
    expect(await worksAs(srv, now)).toBe(0);
  });

  it('config errors are one line naming the field, exit 2, nothing touched', async () => {
    const { cli } = await setUp(() => ['urls: [ldap://ldap.example.com]', 'startTls: false', 'bindDn: "cn=x,dc=example,dc=com"', 'searchBase: "dc=example,dc=com"']);
    const result = await cli.run(['test', KEY]);
    expect(result.code, describeRun(result)).toBe(2);
    expect(result.stderr).toMatch(/keys\.ldap-provisioner\.target\.urls\.0: ldap:\/\/ldap\.example\.com without StartTLS .*allowPlain: true/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
