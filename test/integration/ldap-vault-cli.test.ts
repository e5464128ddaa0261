// End to end: the built CLI (bin/provkey → dist/) with LDAP keys kept in OpenBao (the vault
// store), against real OpenLDAP slapd instances. Vault runs under a token bound to
// docs/vault-policy.hcl; the root token is only used here to look at what provkey stored.
// After every command the directory is asked what happened (a bind with ldapts: 0 accepted,
// 49 rejected) and Vault is read back; everything the CLI printed is scanned for every
// password and token the test generated, read back or used.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from 'ldapts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/core/fingerprint.js';
import { PasswordPolicyControl } from '../../src/targets/ldap/ppolicy.js';
import { ProvkeyCli, describeRun, expectNoSecrets } from '../harness/cli.ts';
import { startOpenBao, type OpenBaoServer } from '../harness/servers/openbao.ts';
import { startSlapd, type SlapdServer } from '../harness/servers/slapd.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MOUNT = 'secret';
const PREFIX = `e2e-ldap-${randomBytes(3).toString('hex')}`;
/** The lifecycle key (default policy: pwdMaxFailure 5, so provkey may spend one failed bind). */
const KEY = 'ldap-provisioner';
/** The lockout-guard key, on a directory with pwdMaxFailure 3. */
const GUARDED = 'ldap-guarded';

function shippedPolicy(mount: string, prefix: string): string {
  return readFileSync(path.join(repoRoot, 'docs/vault-policy.hcl'), 'utf8')
    .replaceAll('"secret/', `"${mount}/`)
    .replace(/(path "[^"]+\/)provkey\//g, `$1${prefix}/`);
}

interface KeyResultJson {
  ok: boolean;
  exitCode: number;
  results: { outcome: string; message: string; fingerprint?: string; steps: { step: string; ok: boolean; detail?: string }[] }[];
}

interface DrillJson {
  ok: boolean;
  exitCode: number;
  leakedFingerprint: string;
  newFingerprint: string;
  timeToContainMs?: number;
  timeToRecoverMs?: number;
  containmentProven?: boolean;
  withinRto: boolean;
  steps: { step: string; ok: boolean; detail?: string }[];
}

interface StatusJson {
  keys: { name: string; store: string; target: string; state: string; current: { fingerprint: string; versionId: string } | null; lastTest?: { ok: boolean } }[];
}

let dir: string;
let config: string;
let bao: OpenBaoServer;
let srv: SlapdServer;
let guarded: SlapdServer;
let cli: ProvkeyCli;
let token: string;

// --- the directory's own view ------------------------------------------------------------

async function connect(server: SlapdServer): Promise<Client> {
  const client = new Client({ url: server.ldapUrl, timeout: 5000 });
  await client.startTLS({ ca: [server.caPem], host: '127.0.0.1' });
  return client;
}

/** One simple bind as the service account: 0 accepted, 49 rejected (with the ppolicy error, if any). */
async function bindAs(server: SlapdServer, password: string): Promise<{ code: number; ppolicy?: string }> {
  const client = await connect(server);
  const control = new PasswordPolicyControl();
  try {
    await client.bind(server.serviceDn, password, [control]);
    return { code: 0, ...(control.response?.errorName ? { ppolicy: control.response.errorName } : {}) };
  } catch (error) {
    return { code: (error as { code: number }).code, ...(control.response?.errorName ? { ppolicy: control.response.errorName } : {}) };
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** Binds and searches the provisioning base, as the integration would: 0 when both work. */
async function worksAs(server: SlapdServer, password: string): Promise<number> {
  const client = await connect(server);
  try {
    await client.bind(server.serviceDn, password);
    await client.search(server.peopleDn, { scope: 'sub', sizeLimit: 1, attributes: ['1.1'] });
    return 0;
  } catch (error) {
    return (error as { code: number }).code;
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

async function accountState(server: SlapdServer, attributes: string[]): Promise<Record<string, string[]>> {
  const client = await connect(server);
  try {
    await client.bind(server.adminDn, server.adminPassword);
    const entry = (await client.search(server.serviceDn, { scope: 'base', attributes })).searchEntries[0]!;
    return Object.fromEntries(attributes.map((a) => [a, ([] as string[]).concat((entry[a] as string | string[] | undefined) ?? [])]));
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

// --- Vault's own view (root token) ---------------------------------------------------------

interface StateDoc {
  versions: { id: string; label: string; fingerprint: string }[];
  state: Record<string, unknown>;
}

async function vaultState(key: string): Promise<StateDoc> {
  const r = await bao.api('GET', `${MOUNT}/data/${PREFIX}/${key}/state`);
  expect(r.status).toBe(200);
  return r.body.data.data as StateDoc;
}

const labels = (doc: StateDoc) => doc.versions.map((v) => [v.id, v.label]);

/** A version's value as Vault holds it, or its deletion marker. A value read joins the scanner's secrets. */
async function vaultValue(key: string, id: string): Promise<{ status: number; value?: string; deletionTime?: string; destroyed?: boolean }> {
  const r = await bao.api('GET', `${MOUNT}/data/${PREFIX}/${key}/value?version=${id}`);
  const value = r.body?.data?.data?.value as string | undefined;
  if (value) cli.scanner.addSecret(value, `${key} v${id} (from Vault)`);
  return { status: r.status, value, deletionTime: r.body?.data?.metadata?.deletion_time, destroyed: r.body?.data?.metadata?.destroyed };
}

/** The value of the version Vault's state labels current (and that it is the one the value secret's labels name). */
async function vaultCurrent(key: string): Promise<{ id: string; value: string; fingerprint: string }> {
  const current = (await vaultState(key)).versions.filter((v) => v.label === 'current');
  expect(current).toHaveLength(1);
  const { id } = current[0]!;
  const metadata = await bao.api('GET', `${MOUNT}/metadata/${PREFIX}/${key}/value`);
  expect(metadata.body.data.custom_metadata).toMatchObject({ current: id });
  const read = await vaultValue(key, id);
  expect(read.status).toBe(200);
  expect(current[0]!.fingerprint).toBe(fingerprint(read.value!));
  return { id, value: read.value!, fingerprint: fingerprint(read.value!) };
}

// --- set-up --------------------------------------------------------------------------------

const target = (server: SlapdServer, apply: string) => [
  '    target:',
  '      type: ldap',
  `      urls: [${server.ldapUrl}]`,
  `      tls: { caFile: ${server.caFile} }`,
  `      bindDn: "${server.serviceDn}"`,
  `      searchBase: "${server.peopleDn}"`,
  `      apply: ${apply}`,
  '      propagationTimeout: 5s',
];

function writeConfig(mainApply: string): void {
  writeFileSync(
    config,
    [
      '# provkey with LDAP keys in OpenBao',
      'stores:',
      '  vault:',
      '    type: vault',
      `    address: ${bao.addr}`,
      `    mount: ${MOUNT}`,
      `    prefix: ${PREFIX}`,
      'keys:',
      `  ${KEY}:`,
      '    description: LDAP provisioning service account',
      '    store: vault',
      '    format: { type: password, length: 24 }',
      '    rotation: { interval: 30d, grace: 0 }',
      ...target(srv, mainApply),
      `  ${GUARDED}:`,
      '    description: LDAP service account under a strict lockout policy',
      '    store: vault',
      '    format: { type: password, length: 24 }',
      '    rotation: { interval: 30d, grace: 0 }',
      ...target(guarded, '{ mode: self }'),
      '',
    ].join('\n'),
  );
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-ldap-vault-cli-'));
  config = path.join(dir, 'provkey.yaml');
  [bao, srv, guarded] = await Promise.all([startOpenBao(), startSlapd(), startSlapd({ policy: { pwdMaxFailure: '3' } })]);
  token = await bao.createPolicyToken('provkey', shippedPolicy(MOUNT, PREFIX), { ttl: '1h', renewable: true });
  // The admin credential is a file: reference (relative to the config's directory), never on a command line.
  writeFileSync(path.join(dir, 'ldap-admin.pw'), `${srv.provkeyAdminPassword}\n`, { mode: 0o600 });
  writeConfig('{ mode: self }');
  cli = new ProvkeyCli({
    cwd: dir,
    config,
    env: { VAULT_TOKEN: token, HOME: dir, VAULT_ADDR: undefined, VAULT_NAMESPACE: undefined, VAULT_CACERT: undefined },
  });
  cli.scanner.addSecret(token, 'Vault token (provkey policy)');
  cli.scanner.addSecret(bao.rootToken, 'Vault root token');
  for (const [server, name] of [[srv, 'main'], [guarded, 'guarded']] as const) {
    cli.scanner.addSecret(server.servicePassword, `${name} slapd: initial service password`);
    cli.scanner.addSecret(server.provkeyAdminPassword, `${name} slapd: provkey-admin password`);
    cli.scanner.addSecret(server.adminPassword, `${name} slapd: rootdn password`);
  }
});

afterEach(() => cli.scanner.assertClean());

afterAll(async () => {
  await Promise.all([srv?.stop(), guarded?.stop(), bao?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// --- the lifecycle -------------------------------------------------------------------------

describe('provkey CLI with an LDAP key in the vault store (OpenBao + OpenLDAP slapd)', () => {
  it('self apply: import, test, rotate, status, revoke --current; admin apply: add, drill compromise; slapd and Vault agree at every step', async () => {
    const initial = srv.servicePassword;

    // import: the account's password becomes version 1 in Vault, after a passing test.
    const imported = await cli.run(['import', KEY], { input: `${initial}\n` });
    expect(imported.code, describeRun(imported)).toBe(0);
    expect(imported.stdout).toContain(fingerprint(initial));
    expect(labels(await vaultState(KEY))).toEqual([['1', 'current']]);
    expect(await vaultCurrent(KEY)).toMatchObject({ id: '1', value: initial });
    expect(await worksAs(srv, initial)).toBe(0);

    const tested = await cli.run(['test', KEY]);
    expect(tested.code, describeRun(tested)).toBe(0);
    expect(tested.stdout).toMatch(/connect .*StartTLS/);
    expect(tested.stdout).toMatch(/whoami .*dn:cn=provisioner/);
    expect(await worksAs(srv, initial)).toBe(0);

    // rotate (self, no overlap): v2 current and binding, v1 revoked at slapd and soft-deleted in Vault.
    const rotated = await cli.json<KeyResultJson>(['rotate', KEY]);
    expect(rotated.result.code, describeRun(rotated.result)).toBe(0);
    expect(rotated.data.results[0]!.outcome).toBe('rotated');
    expect(rotated.data.results[0]!.steps.map((s) => s.step)).toEqual(expect.arrayContaining(['set', 'test', 'retire', 'prove-rejected']));
    expect(labels(await vaultState(KEY))).toEqual([['1', 'revoked'], ['2', 'current']]);
    const v2 = await vaultCurrent(KEY);
    expect(v2.id).toBe('2');
    expect(v2.value).toHaveLength(24);
    expect(v2.value).not.toBe(initial);
    expect(rotated.data.results[0]!.fingerprint).toBe(v2.fingerprint);
    expect(await cli.reveal(KEY, 'v2 via get --reveal')).toBe(v2.value);
    expect(await worksAs(srv, v2.value)).toBe(0);
    expect((await bindAs(srv, initial)).code).toBe(49);
    const v1 = await vaultValue(KEY, '1');
    expect(v1).toMatchObject({ status: 404, destroyed: false });
    expect(v1.deletionTime).toBeTruthy();

    // status: the vault store, and the fingerprint of the version Vault holds as current.
    const status = await cli.json<StatusJson>(['status', KEY]);
    expect(status.result.code, describeRun(status.result)).toBe(0);
    expect(status.data.keys).toHaveLength(1);
    expect(status.data.keys[0]).toMatchObject({ name: KEY, store: 'vault', target: 'ldap', state: 'ok', current: { fingerprint: v2.fingerprint, versionId: '2' } });

    // revoke --current: the account changes itself to an unknown password; v2 no longer binds
    // and is soft-deleted in Vault; the key has no current version left.
    const revoked = await cli.run(['revoke', KEY, '--current', '--yes']);
    expect(revoked.code, describeRun(revoked)).toBe(0);
    expect((await bindAs(srv, v2.value)).code).toBe(49);
    expect((await bindAs(srv, initial)).code).toBe(49);
    expect(labels(await vaultState(KEY))).toEqual([['1', 'revoked'], ['2', 'revoked']]);
    const gone = await vaultValue(KEY, '2');
    expect(gone).toMatchObject({ status: 404, destroyed: false });
    expect(gone.deletionTime).toBeTruthy();
    const empty = await cli.json<StatusJson>(['status', KEY]);
    expect(empty.data.keys[0]).toMatchObject({ store: 'vault', state: 'empty', current: null });

    // add: the account's password is unknown now, so the admin (provkey-admin, password from a
    // file: reference) sets the first new one.
    writeConfig(`{ mode: admin, adminDn: "${srv.provkeyAdminDn}", adminPasswordRef: "file:ldap-admin.pw" }`);
    const added = await cli.run(['add', KEY]);
    expect(added.code, describeRun(added)).toBe(0);
    expect(labels(await vaultState(KEY))).toEqual([['1', 'revoked'], ['2', 'revoked'], ['3', 'current']]);
    const v3 = await vaultCurrent(KEY);
    expect(v3.id).toBe('3');
    expect(added.stdout).toContain(v3.fingerprint);
    expect(await cli.reveal(KEY, 'v3 via get --reveal')).toBe(v3.value);
    expect(await worksAs(srv, v3.value)).toBe(0);
    expect((await bindAs(srv, v2.value)).code).toBe(49);

    // drill: v3 is "leaked": replaced by v4 with no overlap, proven rejected, soft-deleted in Vault.
    const drill = await cli.json<DrillJson>(['drill', 'compromise', KEY, '--yes', '--rto', '60s']);
    expect(drill.result.code, describeRun(drill.result)).toBe(0);
    expect(drill.data).toMatchObject({ ok: true, exitCode: 0, leakedFingerprint: v3.fingerprint, containmentProven: true, withinRto: true });
    expect(drill.data.timeToContainMs).toBeGreaterThan(0);
    expect(drill.data.timeToRecoverMs).toBeGreaterThan(0);
    expect(drill.data.steps.find((s) => s.step === 'prove-rejected')).toMatchObject({ ok: true, detail: expect.stringMatching(/^rejected/) });
    expect(labels(await vaultState(KEY))).toEqual([['1', 'revoked'], ['2', 'revoked'], ['3', 'revoked'], ['4', 'current']]);
    expect((await vaultState(KEY)).state.claim).toBeUndefined();
    const v4 = await vaultCurrent(KEY);
    expect(drill.data.newFingerprint).toBe(v4.fingerprint);
    expect(await cli.reveal(KEY, 'v4 via get --reveal')).toBe(v4.value);
    expect((await bindAs(srv, v3.value)).code).toBe(49);
    expect(await worksAs(srv, v4.value)).toBe(0);
    const leaked = await vaultValue(KEY, '3');
    expect(leaked).toMatchObject({ status: 404, destroyed: false });
    expect(leaked.deletionTime).toBeTruthy();
    for (const old of [initial, v2.value]) expect((await bindAs(srv, old)).code).toBe(49);

    const verified = await cli.run(['audit', 'verify']);
    expect(verified.code, describeRun(verified)).toBe(0);
  });

  it('lockout guard (pwdMaxFailure 3): drill compromise retires without a failed bind, says containment is not proven and exits 3', async () => {
    const initial = guarded.servicePassword;
    const imported = await cli.run(['import', GUARDED], { input: `${initial}\n` });
    expect(imported.code, describeRun(imported)).toBe(0);
    expect((await vaultCurrent(GUARDED)).value).toBe(initial);

    const drill = await cli.json<DrillJson>(['drill', 'compromise', GUARDED, '--yes']);
    // Issue 7 item 4: a drill that did not prove containment never exits 0, and has no time to contain.
    expect(drill.result.code, describeRun(drill.result)).toBe(3);
    expect(drill.data).toMatchObject({ ok: false, exitCode: 3, leakedFingerprint: fingerprint(initial), containmentProven: false });
    expect(drill.data.timeToContainMs).toBeUndefined();
    expect(drill.data.steps.find((s) => s.step === 'prove-rejected')).toMatchObject({ ok: true, detail: expect.stringMatching(/lockout guard/) });

    // Vault: the leaked version is revoked and soft-deleted, the new one is current.
    expect(labels(await vaultState(GUARDED))).toEqual([['1', 'revoked'], ['2', 'current']]);
    const next = await vaultCurrent(GUARDED);
    expect(drill.data.newFingerprint).toBe(next.fingerprint);
    const leaked = await vaultValue(GUARDED, '1');
    expect(leaked).toMatchObject({ status: 404, destroyed: false });
    expect(leaked.deletionTime).toBeTruthy();

    // provkey caused no failed bind: the account has no failure recorded...
    expect(await accountState(guarded, ['pwdFailureTime', 'pwdAccountLockedTime'])).toEqual({ pwdFailureTime: [], pwdAccountLockedTime: [] });
    // ...and ONE bind from here proves the leaked password is rejected; the directory counts
    // exactly that one (so the empty list above was not a policy that records nothing).
    expect((await bindAs(guarded, initial)).code).toBe(49);
    expect((await accountState(guarded, ['pwdFailureTime'])).pwdFailureTime).toHaveLength(1);
    expect(await worksAs(guarded, next.value)).toBe(0);
    expect(await cli.reveal(GUARDED, 'guarded v2 via get --reveal')).toBe(next.value);
  });

  it('secret scan: no password, token or admin credential in anything provkey printed', () => {
    // The scanner is live: a planted secret is found (and named by fingerprint only).
    const planted = `planted-${randomBytes(12).toString('hex')}`;
    expect(() => expectNoSecrets([{ where: 'planted output', text: `x ${planted} y` }], [planted])).toThrow(/1 secret leak/);

    // Everything provkey printed in this file: stdout and stderr of every run (get --reveal: its
    // stderr only, its stdout is the value by design). Every command of the lifecycle is in it.
    const printed = cli.scanner.outputs.map((o) => o.where).join('\n');
    for (const command of ['import', 'test', '--json rotate', '--json status', 'revoke', 'add', '--json drill compromise', 'audit verify']) {
      const run = `of "provkey --config ${config} ${command}`;
      expect(printed.includes(`${run} `) || printed.includes(`${run}"`), `no output of ${command}`).toBe(true);
    }
    expect(cli.scanner.outputs.length).toBeGreaterThanOrEqual(11);
    // 2 Vault tokens, 3 passwords per slapd, and every version value read back (main v2–v4, guarded v2).
    expect(cli.scanner.secretCount).toBeGreaterThanOrEqual(2 + 6 + 4);
    cli.scanner.assertClean();
  });
});
