// provkey end to end (the built CLI, embedded file store) against Samba AD DC and 389 Directory
// Server started by the harness: import / test / rotate / drill / revoke as the account itself,
// add / rotate / revoke as an admin. After each command the directory is asked what happened;
// failed binds are counted from the servers' own state (Samba: badPwdCount and badPasswordTime;
// 389-DS: its access log), and every output is scanned for every password the test knows.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/core/fingerprint.js';
import { ProvkeyCli, describeRun } from '../harness/cli.ts';
import { startDirsrv, type DirsrvServer } from '../harness/servers/dirsrv.ts';
import { replace, startSamba, type SambaServer } from '../harness/servers/samba.ts';

const KEY = 'provisioner';

interface KeyResultJson {
  ok: boolean;
  exitCode: number;
  results: { outcome: string; message: string; fingerprint?: string; steps: { step: string; ok: boolean; detail?: string }[] }[];
}

const cleanups: Array<() => void> = [];
let cli: ProvkeyCli | undefined;
afterEach(() => {
  try {
    cli?.scanner.assertClean();
  } finally {
    cli = undefined;
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  }
});

function cliFor(target: string[], env: Record<string, string>, format = '{ type: password, length: 24 }'): ProvkeyCli {
  const dir = mkdtempSync(path.join(tmpdir(), 'provkey-dir-cli-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'provkey.yaml');
  writeFileSync(config, ['keys:', `  ${KEY}:`, `    format: ${format}`, '    rotation: { interval: 30d, grace: 0 }', '    target:', '      type: ldap', ...target.map((l) => `      ${l}`), ''].join('\n'));
  cli = new ProvkeyCli({ cwd: dir, config, env });
  for (const value of Object.values(env)) cli.scanner.addSecret(value, 'admin password');
  return cli;
}

// --- Samba AD DC, with AD's default old password allowed period (60 minutes) ----------------

describe('provkey CLI against Samba AD DC (directory: activeDirectory)', () => {
  let dc: SambaServer;
  beforeAll(async () => {
    dc = await startSamba({ oldPasswordAllowedPeriod: 60 });
  });
  afterAll(async () => {
    await dc?.stop();
  });

  /** Failed binds the DC counted for the account: badPwdCount now, and whether any was ever recorded (badPasswordTime). */
  async function counted(dn: string): Promise<{ badPwdCount: number; everFailed: boolean }> {
    const state = await dc.read(dn, ['badPwdCount', 'badPasswordTime']);
    return { badPwdCount: Number(state.badPwdCount[0] ?? '0'), everFailed: (state.badPasswordTime[0] ?? '0') !== '0' };
  }

  const target = (dn: string, mode: 'self' | 'admin') => [
    'directory: activeDirectory',
    `urls: [${dc.ldapsUrl}]`,
    `tls: { caFile: ${dc.caFile} }`,
    `bindDn: "${dn}"`,
    `searchBase: "${dc.usersDn}"`,
    `apply: { mode: ${mode}, adminDn: "${dc.adminDn}", adminPasswordRef: "env:AD_ADMIN" }`,
    'rollback: admin-reset',
    'oldPasswordAllowedPeriod: 60m',
  ];

  it('self: import, test, rotate, rotate --due, drill, revoke; each replaced password refused at once; no failed bind counted', async () => {
    const initial = `Pk-${randomBytes(18).toString('base64url')}`;
    const dn = await dc.createUser('svc-cli-self', initial);
    const cli = cliFor(target(dn, 'self'), { AD_ADMIN: dc.adminPassword });
    cli.scanner.addSecret(initial, 'initial');

    const imported = await cli.run(['import', KEY], { input: `${initial}\n` });
    expect(imported.code, describeRun(imported)).toBe(0);
    const tested = await cli.run(['test', KEY]);
    expect(tested.code, describeRun(tested)).toBe(0);
    expect(tested.stdout).toMatch(/whoami .*AD has no Who am I/);

    const rotated = await cli.json<KeyResultJson>(['rotate', KEY]);
    expect(rotated.result.code, describeRun(rotated.result)).toBe(0);
    const steps = rotated.data.results[0]!.steps;
    expect(steps.find((s) => s.step === 'set')!.detail).toMatch(/pushed two back/);
    // lockoutThreshold 3: the lockout guard forbids the negative probe; the DC's own view proves it instead.
    expect(steps.find((s) => s.step === 'prove-rejected')).toMatchObject({ ok: true, detail: expect.stringMatching(/lockout guard/) });
    const second = await cli.reveal(KEY, 'after rotate');
    expect((await dc.bindCode(dn, second)).code).toBe(0);
    expect(await dc.bindCode(dn, initial)).toEqual({ code: 49, data: '52e' });

    // Not due: pwdLastSet + maxPwdAge (42 days) is far.
    const notDue = await cli.json<KeyResultJson>(['rotate', '--due']);
    expect(notDue.data.results[0]!.outcome, describeRun(notDue.result)).toBe('skipped');
    // The domain's maxPwdAge drops to one day: the password now expires within the margin, so it is due.
    await dc.modify(dc.baseDn, [replace('maxPwdAge', ['-864000000000'])]);
    let dueRotated: string;
    try {
      const due = await cli.json<KeyResultJson>(['rotate', '--due']);
      expect(due.result.code, describeRun(due.result)).toBe(0);
      expect(due.data.results[0]!.outcome).toBe('rotated');
      dueRotated = await cli.reveal(KEY, 'after rotate --due');
    } finally {
      await dc.modify(dc.baseDn, [replace('maxPwdAge', ['-36288000000000'])]);
    }
    expect((await dc.bindCode(dn, dueRotated)).code).toBe(0);
    expect((await dc.bindCode(dn, second)).code).toBe(49);

    // lockoutThreshold 3: the guard forbids the failed bind that would prove the leaked password
    // refused, so the drill says NOT CONTAINED (exit 3) rather than claim a proof it did not make.
    const drill = await cli.json<{ ok: boolean; leakedFingerprint: string; newFingerprint: string; containmentProven: boolean }>(['drill', 'compromise', KEY, '--yes']);
    expect(drill.result.code, describeRun(drill.result)).toBe(3);
    expect(drill.data).toMatchObject({ ok: false, containmentProven: false, leakedFingerprint: fingerprint(dueRotated) });
    expect(drill.result.stdout).toContain('NOT CONTAINED');
    const third = await cli.reveal(KEY, 'after drill');
    expect((await dc.bindCode(dn, third)).code).toBe(0);
    // Contained at once, although AD accepts a previous password for 60 minutes.
    expect((await dc.bindCode(dn, dueRotated)).code).toBe(49);

    const revoked = await cli.run(['revoke', KEY, '--yes']);
    expect(revoked.code, describeRun(revoked)).toBe(0);
    // provkey's whole lifecycle, and the checks above (with the two passwords before the current one,
    // which AD does not count), left no failed bind on the DC.
    expect(await counted(dn)).toEqual({ badPwdCount: 0, everFailed: false });
    // Wrong passwords, not a lockout (the third counted failure is the one that reaches lockoutThreshold 3).
    for (const old of [third, dueRotated, second, initial]) expect(await dc.bindCode(dn, old)).toEqual({ code: 49, data: '52e' });
    expect((await cli.run(['audit', 'verify'])).code).toBe(0);
  });

  it('admin: add, rotate, revoke --yes; a locked-out account is reported in one line', async () => {
    const unknown = `Pk-${randomBytes(18).toString('base64url')}`;
    const dn = await dc.createUser('svc-cli-admin', unknown);
    const cli = cliFor(target(dn, 'admin'), { AD_ADMIN: dc.adminPassword });
    cli.scanner.addSecret(unknown, 'initial');

    const added = await cli.run(['add', KEY]);
    expect(added.code, describeRun(added)).toBe(0);
    const first = await cli.reveal(KEY, 'after add');
    expect((await dc.bindCode(dn, first)).code).toBe(0);
    expect((await dc.bindCode(dn, unknown)).code).toBe(49);

    const rotated = await cli.json<KeyResultJson>(['rotate', KEY]);
    expect(rotated.result.code, describeRun(rotated.result)).toBe(0);
    const second = await cli.reveal(KEY, 'after rotate');
    expect((await dc.bindCode(dn, second)).code).toBe(0);
    expect((await dc.bindCode(dn, first)).code, JSON.stringify(rotated.data.results[0]!.steps)).toBe(49);
    expect(await counted(dn)).toEqual({ badPwdCount: 0, everFailed: false });

    // Someone else locks the account out (three wrong passwords): the test says so in one line.
    for (let i = 0; i < 3; i++) expect((await dc.bindCode(dn, `Wrong-${randomBytes(9).toString('base64url')}`)).data).toBe('52e');
    const locked = await cli.run(['test', KEY]);
    expect(locked.code, describeRun(locked)).not.toBe(0);
    expect(locked.stdout + locked.stderr).toMatch(/AD data 775\): the account is locked out/);

    const revoked = await cli.run(['revoke', KEY, '--yes']);
    expect(revoked.code, describeRun(revoked)).toBe(0);
    // A reset does not clear a lockout (lockoutTime 0 does): unlocked, the old passwords are refused as wrong, not as locked.
    await dc.modify(dn, [replace('lockoutTime', ['0'])]);
    for (const old of [first, second]) expect(await dc.bindCode(dn, old)).toEqual({ code: 49, data: '52e' });
  });
});

// --- 389 Directory Server -----------------------------------------------------------------

describe('provkey CLI against 389 Directory Server', () => {
  let ds: DirsrvServer;
  beforeAll(async () => {
    ds = await startDirsrv({ policy: { passwordMustChange: 'on' } });
  });
  afterAll(async () => {
    await ds?.stop();
  });

  // passwordMinTokenLength 3 refuses any 3-letter run of "provisioner" / "service": leaving
  // those letters out of the alphabet keeps every generated value acceptable (docs/ldap.md).
  const format = '{ type: password, length: 24, exclude: "provisnecPROVISNEC" }';
  const target = (mode: 'self' | 'admin', url = ds.ldapUrl) => [
    'directory: 389ds',
    `urls: [${url}]`,
    `tls: { caFile: ${ds.caFile} }`,
    `bindDn: "${ds.serviceDn}"`,
    `searchBase: "${ds.peopleDn}"`,
    `apply: { mode: ${mode}, adminDn: "${ds.provkeyAdminDn}", adminPasswordRef: "env:DS_ADMIN" }`,
    'rollback: admin-reset',
    'passwordPolicy: { maxFailure: 3 }',
  ];

  it('self over StartTLS: import, test, rotate, drill, revoke; admin over LDAPS under passwordMustChange: add, rotate, revoke; no failed bind in the access log', async () => {
    const self = cliFor(target('self'), { DS_ADMIN: ds.provkeyAdminPassword }, format);
    self.scanner.addSecret(ds.servicePassword, 'initial');
    const imported = await self.run(['import', KEY], { input: `${ds.servicePassword}\n` });
    expect(imported.code, describeRun(imported)).toBe(0);
    const tested = await self.run(['test', KEY]);
    expect(tested.code, describeRun(tested)).toBe(0);
    expect(tested.stdout).toMatch(/whoami .*dn: ?uid=provisioner/);

    const rotated = await self.json<KeyResultJson>(['rotate', KEY]);
    expect(rotated.result.code, describeRun(rotated.result)).toBe(0);
    const second = await self.reveal(KEY, 'after rotate');
    expect(await ds.bindCode(ds.serviceDn, second)).toBe(0);

    // passwordMaxFailure 3: no failed bind may be spent on the proof, so the drill is NOT CONTAINED (exit 3).
    const drill = await self.json<{ ok: boolean; leakedFingerprint: string; containmentProven: boolean }>(['drill', 'compromise', KEY, '--yes']);
    expect(drill.result.code, describeRun(drill.result)).toBe(3);
    expect(drill.data).toMatchObject({ ok: false, containmentProven: false, leakedFingerprint: fingerprint(second) });
    const third = await self.reveal(KEY, 'after drill');
    expect(await ds.bindCode(ds.serviceDn, third)).toBe(0);
    expect(await ds.failedBinds(ds.serviceDn)).toBe(0);

    const revoked = await self.run(['revoke', KEY, '--yes']);
    expect(revoked.code, describeRun(revoked)).toBe(0);
    self.scanner.assertClean();

    // The same account, now managed by the admin over LDAPS (passwordMustChange: two steps).
    const admin = cliFor(target('admin', ds.ldapsUrl), { DS_ADMIN: ds.provkeyAdminPassword }, format);
    const added = await admin.run(['add', KEY]);
    expect(added.code, describeRun(added)).toBe(0);
    const first = await admin.reveal(KEY, 'admin add');
    const rotatedAdmin = await admin.json<KeyResultJson>(['rotate', KEY]);
    expect(rotatedAdmin.result.code, describeRun(rotatedAdmin.result)).toBe(0);
    const next = await admin.reveal(KEY, 'admin rotate');
    expect(await ds.bindCode(ds.serviceDn, next)).toBe(0);
    const searched = await admin.run(['test', KEY]);
    expect(searched.code, describeRun(searched)).toBe(0);
    // provkey spent no failed bind on the whole lifecycle (the access log is the server's own record).
    expect(await ds.failedBinds(ds.serviceDn)).toBe(0);
    // (passwordMaxFailure 3: a successful bind in between keeps the harness itself from locking the account.)
    for (const old of [ds.servicePassword, second]) expect(await ds.bindCode(ds.serviceDn, old)).toBe(49);
    expect(await ds.bindCode(ds.serviceDn, next)).toBe(0);
    for (const old of [third, first]) expect(await ds.bindCode(ds.serviceDn, old)).toBe(49);
    const revokedAdmin = await admin.run(['revoke', KEY, '--yes']);
    expect(revokedAdmin.code, describeRun(revokedAdmin)).toBe(0);
    expect(await ds.bindCode(ds.serviceDn, next)).not.toBe(0);
  });
});
