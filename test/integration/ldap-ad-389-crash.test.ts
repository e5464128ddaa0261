// Crash tests on the two new directories: provkey is killed with SIGKILL (PROVKEY_FAULT) at every
// step of a rotation of an LDAP key on Samba AD DC and on 389-DS, and the next `rotate` must
// converge with no lockout: the stored current password binds, the one before is refused, and
// the failed binds the server itself counted stay below its lockout threshold (Samba:
// badPwdCount and lockoutTime; 389-DS: its access log and accountUnlockTime).

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Attribute, Change, Client } from 'ldapts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodePasswordModifyRequest, PASSWORD_MODIFY_OID } from '../../src/targets/ldap/password-modify.js';
import { ProvkeyCli, describeRun } from '../harness/cli.ts';
import { startDirsrv, type DirsrvServer } from '../harness/servers/dirsrv.ts';
import { startSamba, type SambaServer } from '../harness/servers/samba.ts';
import { CONVERGENCE, FAULT_POINTS, learnStoredSecrets, type ResultsJson } from '../fault/fixture.ts';

const KEY = 'provisioner';
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

function cliFor(target: string[], format: string): { cli: ProvkeyCli; dir: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'provkey-dir-crash-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'provkey.yaml');
  writeFileSync(config, ['keys:', `  ${KEY}:`, `    format: ${format}`, '    rotation: { interval: 30d, grace: 0 }', '    target:', '      type: ldap', ...target.map((l) => `      ${l}`), ''].join('\n'));
  cli = new ProvkeyCli({ cwd: dir, config });
  return { cli, dir };
}

/**
 * Import, rotate killed at `point`, rotate again; returns the password the store holds at the end
 * and the one before the crash. `undecidable`: the run may not spend the failed bind that would
 * tell which password the account holds (no admin credential, failure limit 3), so the resumed
 * rotate must stop with "needs a human" (exit 3) and record no lockout; undefined is returned then.
 */
async function crashAndResume(c: ProvkeyCli, dir: string, initial: string, point: string, undecidable = false): Promise<{ current: string; before: string } | undefined> {
  c.scanner.addSecret(initial, 'initial');
  const imported = await c.run(['import', KEY], { input: `${initial}\n` });
  expect(imported.code, describeRun(imported)).toBe(0);
  const crashed = await c.run(['rotate', KEY], { env: { PROVKEY_FAULT: point } });
  expect(crashed.signal, describeRun(crashed)).toBe('SIGKILL');
  await learnStoredSecrets(c, dir);
  const { result, data } = await c.json<ResultsJson>(['rotate', KEY]);
  if (undecidable) {
    expect(result.code, describeRun(result)).toBe(3);
    expect(data.results[0]!.message).toContain('NEEDS A HUMAN');
    const status = await c.json<{ keys: { state: string }[] }>(['status']);
    expect(status.data.keys[0]!.state).not.toBe('lockout');
    return undefined;
  }
  expect(result.code, describeRun(result)).toBe(0);
  // Killed after a no-overlap finish, only the old version's proof was left: finishing it completes that rotation.
  const outcome = point === 'after-finish' ? 'resumed' : CONVERGENCE[point as keyof typeof CONVERGENCE].outcome;
  expect(data.results[0]).toMatchObject({ ok: true, outcome });
  return { current: await c.reveal(KEY, 'after the resumed rotate'), before: initial };
}

describe('SIGKILL during rotate: Samba AD DC (self apply, lockoutThreshold 3)', () => {
  let dc: SambaServer;
  beforeAll(async () => {
    dc = await startSamba();
  });
  afterAll(async () => {
    await dc?.stop();
  });

  it.each(FAULT_POINTS)('killed at %s: the next rotate converges; the DC counted fewer failed binds than lockoutThreshold', async (point) => {
    const initial = `Pk-${randomBytes(18).toString('base64url')}`;
    const dn = await dc.createUser(`svc-crash-${FAULT_POINTS.indexOf(point)}`, initial);
    const { cli: c, dir } = cliFor([
      'directory: activeDirectory', `urls: [${dc.ldapsUrl}]`, `tls: { caFile: ${dc.caFile} }`, `bindDn: "${dn}"`, `searchBase: "${dc.usersDn}"`,
      'oldPasswordAllowedPeriod: 0s', 'propagationTimeout: 2s',
    ], '{ type: password, length: 24 }');
    const { current, before } = (await crashAndResume(c, dir, initial, point))!;
    expect((await dc.bindCode(dn, current)).code).toBe(0);
    const state = await dc.read(dn, ['badPwdCount', 'lockoutTime']);
    expect(Number(state.badPwdCount[0] ?? '0')).toBeLessThan(3);
    expect(state.lockoutTime.filter((t) => t !== '0')).toEqual([]);
    expect((await dc.bindCode(dn, before)).code).toBe(49);
  });
});

describe('SIGKILL during rotate: 389-DS (self apply, passwordMaxFailure 3)', () => {
  let ds: DirsrvServer;
  beforeAll(async () => {
    ds = await startDirsrv();
  });
  afterAll(async () => {
    await ds?.stop();
  });

  /** The service account on a fresh known password, with no failure counted. */
  async function reset(): Promise<string> {
    const password = `Pk9-${randomBytes(18).toString('hex')}`; // hex: no letters beyond a-f, so no token of the account's names
    const temporary = `Pk9-${randomBytes(18).toString('hex')}`;
    await ds.modify(ds.serviceDn, [
      new Change({ operation: 'replace', modification: new Attribute({ type: 'userPassword', values: [temporary] }) }),
      new Change({ operation: 'replace', modification: new Attribute({ type: 'passwordRetryCount', values: ['0'] }) }),
    ]);
    const client = new Client({ url: ds.ldapsUrl, tlsOptions: { ca: [ds.caPem] } });
    try {
      await client.bind(ds.serviceDn, temporary);
      await client.exop(PASSWORD_MODIFY_OID, encodePasswordModifyRequest({ oldPassword: temporary, newPassword: password }));
    } finally {
      await client.unbind().catch(() => undefined);
    }
    return password;
  }

  it.each(FAULT_POINTS)('killed at %s: the next rotate converges; the access log shows fewer failed binds than passwordMaxFailure', async (point) => {
    const initial = await reset();
    const failedBefore = await ds.failedBinds(ds.serviceDn);
    const { cli: c, dir } = cliFor([
      'directory: 389ds', `urls: [${ds.ldapUrl}]`, `tls: { caFile: ${ds.caFile} }`, `bindDn: "${ds.serviceDn}"`, `searchBase: "${ds.peopleDn}"`,
      'passwordPolicy: { maxFailure: 3 }', 'propagationTimeout: 2s',
    ], '{ type: password, length: 24, exclude: "provisnecPROVISNEC" }');
    // Killed while "setting": without an admin credential nothing but a bind tells the old password
    // from the new, and the budget at passwordMaxFailure 3 is none (docs/ldap.md: configure an admin).
    const undecidable = point === 'before-set' || point === 'after-set';
    const resumed = await crashAndResume(c, dir, initial, point, undecidable);
    if (!resumed) {
      expect((await ds.failedBinds(ds.serviceDn)) - failedBefore).toBe(0);
      return;
    }
    const { current, before } = resumed;
    expect(await ds.bindCode(ds.serviceDn, current)).toBe(0);
    expect((await ds.failedBinds(ds.serviceDn)) - failedBefore).toBeLessThan(3);
    expect(await ds.bindCode(ds.serviceDn, before)).toBe(49);
  });
});
