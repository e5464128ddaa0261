// Two-account (blue/green) rotation end to end, the built CLI against each real directory the
// harness starts (OpenLDAP slapd, Samba AD DC, 389-DS): add, rotate, rotate --due at the end of
// the grace period, rotate, drill compromise, revoke. A consumer loop (binding and searching
// with the pair it reads from the store through `provkey get --reveal --json`, continuously)
// runs through two rotations and a grace end and never fails: each phase waits for the loop to
// have bound with the pair that phase expects (barriers, no fixed head starts). Failed binds
// are counted from each server's own state; every output is scanned for every password.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'ldapts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/core/fingerprint.js';
import { ProvkeyCli, describeRun, runProvkey } from '../harness/cli.ts';
import { startDirsrv, type DirsrvServer } from '../harness/servers/dirsrv.ts';
import { replace, startSamba, type SambaServer } from '../harness/servers/samba.ts';
import { probeBind, randomPassword, slapdFailedBinds, startSlapd, type SlapdServer } from '../harness/servers/slapd.ts';

const KEY = 'bluegreen';

/** What the test needs of one directory. */
interface Directory {
  accounts: [string, string];
  targetLines(): string[];
  format: string;
  env: Record<string, string>;
  /** The consumer's connection: URL, whether to StartTLS, the CA. */
  client: { url: string; startTls: boolean; caPem: string };
  searchBase: string;
  /** Result code of a simple bind (0 accepted, 49 refused). */
  bindCode(dn: string, password: string): Promise<number>;
  /** Failed binds as `dn` the server itself counted since it started. */
  failedBinds(dn: string): Promise<number>;
  /** The account is locked by the server's own policy. */
  locked(dn: string): Promise<boolean>;
}

interface KeyResultJson {
  ok: boolean;
  exitCode: number;
  results: { outcome: string; message: string; fingerprint?: string; steps: { step: string; ok: boolean; detail?: string }[] }[];
}

const cleanups: Array<() => void> = [];
const clis: ProvkeyCli[] = [];
afterEach(() => {
  try {
    for (const cli of clis) cli.scanner.assertClean();
  } finally {
    clis.length = 0;
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  }
});

function cliFor(dir: Directory): ProvkeyCli {
  const work = mkdtempSync(path.join(tmpdir(), 'provkey-bluegreen-'));
  cleanups.push(() => rmSync(work, { recursive: true, force: true }));
  const config = path.join(work, 'provkey.yaml');
  writeFileSync(
    config,
    ['keys:', `  ${KEY}:`, `    format: ${dir.format}`, '    rotation: { interval: 30d, grace: 1s }', '    target:', '      type: ldap', ...dir.targetLines().map((l) => `      ${l}`), ''].join('\n'),
  );
  const cli = new ProvkeyCli({ cwd: work, config, env: dir.env });
  for (const value of Object.values(dir.env)) cli.scanner.addSecret(value, 'admin password');
  clis.push(cli);
  return cli;
}

/**
 * A consumer: reads the current (account, password) pair from the store, binds as that account
 * and searches the provisioning base, again and again until stopped. A store read that fails
 * (the store busy with a rotation) keeps the pair it had, as a real consumer would.
 */
class ConsumerLoop {
  readonly failures: string[] = [];
  /** Successful bind + search rounds per fingerprint. */
  readonly rounds = new Map<string, number>();
  #stopped = false;
  #done: Promise<void> | undefined;
  #waiters: Array<() => void> = [];

  constructor(
    private readonly cli: ProvkeyCli,
    private readonly dir: Directory,
  ) {}

  start(): void {
    this.#done = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#done;
  }

  /** Barrier: resolves once the loop has bound and searched with `value` (after this call). */
  async boundWith(value: string): Promise<void> {
    const fp = fingerprint(value);
    const before = this.rounds.get(fp) ?? 0;
    while ((this.rounds.get(fp) ?? 0) <= before) {
      if (this.failures.length > 0) throw new Error(`the consumer failed: ${this.failures.join('; ')}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  async #run(): Promise<void> {
    let pair: { account: string; value: string } | undefined;
    while (!this.#stopped) {
      // stdout is the revealed pair (that is its job); stderr is scanned like every other output.
      const read = this.cli.scanner.capture(await runProvkey(['--json', 'get', KEY, '--reveal'], this.cli.defaults), 'stderr');
      if (read.code === 0) {
        const parsed = JSON.parse(read.stdout) as { account?: string; value: string; fingerprint: string };
        this.cli.scanner.addSecret(parsed.value, `consumer read ${parsed.fingerprint}`);
        if (!parsed.account) this.failures.push('the stored version names no account');
        else pair = { account: parsed.account, value: parsed.value };
      }
      if (pair) {
        const problem = await this.#bindAndSearch(pair);
        if (problem) this.failures.push(`${fingerprint(pair.value)} on ${pair.account}: ${problem}`);
        else this.rounds.set(fingerprint(pair.value), (this.rounds.get(fingerprint(pair.value)) ?? 0) + 1);
      }
      for (const wake of this.#waiters.splice(0)) wake();
    }
    for (const wake of this.#waiters.splice(0)) wake();
  }

  async #bindAndSearch(pair: { account: string; value: string }): Promise<string | undefined> {
    const { url, startTls, caPem } = this.dir.client;
    const client = new Client({ url, timeout: 5000, ...(startTls ? {} : { tlsOptions: { ca: [caPem] } }) });
    try {
      if (startTls) await client.startTLS({ ca: [caPem], host: '127.0.0.1' });
      await client.bind(pair.account, pair.value);
      const found = await client.search(this.dir.searchBase, { scope: 'one', filter: '(objectClass=*)', attributes: ['cn'] });
      if (found.searchEntries.length === 0) return 'the search found nothing';
      return undefined;
    } catch (error) {
      return (error as Error).message.replaceAll(pair.value, '<password>');
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }
}

async function previousGraceUntil(cli: ProvkeyCli): Promise<number> {
  const history = await cli.json<{ versions: { label: string; graceUntil?: string }[] }>(['history', KEY]);
  const previous = history.data.versions.filter((v) => v.label === 'previous');
  expect(previous).toHaveLength(1);
  return Date.parse(previous[0]!.graceUntil!);
}

/** The whole lifecycle on one directory (see the file comment). */
async function lifecycle(dir: Directory): Promise<void> {
  const [blue, green] = dir.accounts;
  const cli = cliFor(dir);
  const failedBefore = [await dir.failedBinds(blue), await dir.failedBinds(green)];

  const added = await cli.run(['add', KEY]);
  expect(added.code, describeRun(added)).toBe(0);
  const p1 = await cli.reveal(KEY, 'p1');
  const got = await cli.json<{ account: string; fingerprint: string }>(['get', KEY]);
  expect(got.data).toMatchObject({ account: blue, fingerprint: fingerprint(p1) });
  expect(await dir.bindCode(blue, p1)).toBe(0);

  const consumer = new ConsumerLoop(cli, dir);
  let p2 = '';
  consumer.start();
  try {
    await consumer.boundWith(p1);

    // 1. rotate: a fresh password on green; blue (and every consumer still on it) untouched.
    const rotated = await cli.json<KeyResultJson>(['rotate', KEY]);
    expect(rotated.result.code, describeRun(rotated.result)).toBe(0);
    p2 = await cli.reveal(KEY, 'p2');
    expect((await cli.json<{ account: string }>(['get', KEY])).data.account).toBe(green);
    expect(await dir.bindCode(green, p2)).toBe(0);
    expect(await dir.bindCode(blue, p1)).toBe(0);
    await consumer.boundWith(p2);
    const status = await cli.json<{ keys: { current: { account?: string }; previous: unknown[] }[] }>(['status']);
    expect(status.data.keys[0]!.current.account).toBe(green);
    expect(status.data.keys[0]!.previous).toHaveLength(1);
    const human = await cli.run(['status']);
    expect(human.stdout).toContain(`${KEY}: current account ${green}`);

    // 2. rotate --due once the grace period is over (a wait for the clock, not for a race): blue gets an unknown password.
    const graceUntil = await previousGraceUntil(cli);
    while (Date.now() <= graceUntil) await new Promise((resolve) => setTimeout(resolve, graceUntil - Date.now() + 10));
    const due = await cli.json<KeyResultJson>(['rotate', '--due']);
    expect(due.result.code, describeRun(due.result)).toBe(0);
    expect(due.data.results.map((r) => r.outcome)).toEqual(['revoked']);
    expect(await dir.bindCode(blue, p1)).toBe(49);
    expect(await dir.bindCode(green, p2)).toBe(0);
    await consumer.boundWith(p2);

    // 3. rotate again: back to blue, set by an admin reset (its password was unknown).
    const back = await cli.json<KeyResultJson>(['rotate', KEY]);
    expect(back.result.code, describeRun(back.result)).toBe(0);
    const p3 = await cli.reveal(KEY, 'p3');
    expect((await cli.json<{ account: string }>(['get', KEY])).data.account).toBe(blue);
    expect(await dir.bindCode(blue, p3)).toBe(0);
    expect(await dir.bindCode(green, p2)).toBe(0);
    await consumer.boundWith(p3);
  } finally {
    await consumer.stop();
  }
  // The consumer never failed through two rotations and a grace end.
  expect(consumer.failures).toEqual([]);

  // 4. drill: p3 (on blue) leaked, p2 (on green) still in its grace period: both accounts hold a
  // live pair. Green gets the emergency pair at once, which replaces p2 there (proven by the
  // emergency pair's own set and test, no bind); blue gets an unknown password, proven by a 49.
  const p3 = await cli.reveal(KEY, 'p3 again');
  const drill = await cli.json<{ ok: boolean; leakedFingerprint: string; containmentProven: boolean; steps: { step: string; ok: boolean; detail?: string }[] }>(['drill', 'compromise', KEY, '--yes']);
  expect(drill.result.code, describeRun(drill.result)).toBe(0);
  expect(drill.data).toMatchObject({ ok: true, containmentProven: true, leakedFingerprint: fingerprint(p3) });
  const p4 = await cli.reveal(KEY, 'p4');
  const proofs = drill.data.steps.filter((s) => s.step.endsWith('prove-rejected'));
  expect(proofs.map((s) => [s.step, s.ok])).toEqual([['prove-rejected', true], ['previous:prove-rejected', true]]);
  expect(proofs[1]!.detail).toContain(`${fingerprint(p2)} replaced on ${green} by ${fingerprint(p4)}`);
  expect((await cli.json<{ account: string }>(['get', KEY])).data.account).toBe(green);
  expect(await dir.bindCode(blue, p3)).toBe(49);
  expect(await dir.bindCode(green, p2)).toBe(49);
  expect(await dir.bindCode(green, p4)).toBe(0);

  // 5. revoke: the current pair's account (green) gets an unknown password.
  const revoked = await cli.run(['revoke', KEY, '--yes']);
  expect(revoked.code, describeRun(revoked)).toBe(0);
  expect(await dir.bindCode(green, p4)).toBe(49);

  const history = await cli.run(['history', KEY]);
  expect(history.stdout).toContain(blue);
  expect(history.stdout).toContain(green);
  expect((await cli.run(['audit', 'verify'])).code).toBe(0);

  // Lockout budget, from the servers' own counts: the test's own 49 checks above are 2 on blue (p1,
  // p3) and 2 on green (p2, p4); provkey's proofs spent at most one per run per account (grace end and
  // drill on blue, revoke on green: the drill's proof of p2 spent none), and neither account is locked.
  const spent = [(await dir.failedBinds(blue)) - failedBefore[0]!, (await dir.failedBinds(green)) - failedBefore[1]!];
  expect(spent[0]).toBeLessThanOrEqual(2 + 2);
  expect(spent[1]).toBeLessThanOrEqual(2 + 1);
  expect(await dir.locked(blue)).toBe(false);
  expect(await dir.locked(green)).toBe(false);
}

/** Crashes (SIGKILL) at each step of a rotation, each converged by the next run; then a set the directory refuses. */
async function crashesAndRefusal(dir: Directory, missing: string): Promise<void> {
  const [blue, green] = dir.accounts;
  const failedBefore = [await dir.failedBinds(blue), await dir.failedBinds(green)];
  const cli = cliFor(dir);
  expect((await cli.run(['add', KEY])).code).toBe(0);
  for (const point of ['after-claim', 'before-set', 'after-set', 'after-test'] as const) {
    const before = await cli.json<{ account: string }>(['get', KEY]);
    const old = await cli.reveal(KEY, `before ${point}`);
    const crashed = await cli.run(['rotate', KEY], { env: { PROVKEY_FAULT: point } });
    expect(crashed.signal, describeRun(crashed)).toBe('SIGKILL');
    const resumed = await cli.json<KeyResultJson>(['rotate', KEY]);
    expect(resumed.result.code, describeRun(resumed.result)).toBe(0);
    const now = await cli.json<{ account: string }>(['get', KEY]);
    const current = await cli.reveal(KEY, `after ${point}`);
    // Whatever the crash left, the current pair binds, and the pair it replaced still does (grace).
    expect(await dir.bindCode(now.data.account, current), point).toBe(0);
    expect(await dir.bindCode(before.data.account, old), point).toBe(0);
    expect(now.data.account, point).toBe(before.data.account === blue ? green : blue);
  }

  // The second account does not exist: the directory refuses the set, and the key stays on the old pair.
  const broken: Directory = { ...dir, targetLines: () => dir.targetLines().map((l) => (l.startsWith('accounts:') ? `accounts: ["${blue}", "${missing}"]` : l)) };
  const other = cliFor(broken);
  expect((await other.run(['add', KEY])).code).toBe(0);
  const v1 = await other.reveal(KEY, 'v1');
  const refused = await other.json<KeyResultJson>(['rotate', KEY]);
  expect(refused.result.code, describeRun(refused.result)).not.toBe(0);
  expect(refused.data.results[0]!.outcome).toBe('rolled_back');
  expect((await other.json<{ account: string; fingerprint: string }>(['get', KEY])).data).toMatchObject({ account: blue, fingerprint: fingerprint(v1) });
  expect(await dir.bindCode(blue, v1)).toBe(0);
  other.scanner.assertClean();

  // Convergence asked each account about its own candidate: no failed bind beyond the budget.
  expect((await dir.failedBinds(blue)) - failedBefore[0]!).toBeLessThanOrEqual(1);
  expect((await dir.failedBinds(green)) - failedBefore[1]!).toBeLessThanOrEqual(1);
}

describe('two-account rotation against OpenLDAP (slapd)', () => {
  let srv: SlapdServer;
  beforeAll(async () => {
    srv = await startSlapd({ debugLevel: 'stats' });
  });
  afterAll(async () => {
    await srv?.stop();
  });

  const directory = (): Directory => ({
    accounts: [srv.serviceDn, srv.serviceGreenDn],
    targetLines: () => [
      `urls: [${srv.ldapUrl}]`,
      `tls: { caFile: ${srv.caFile} }`,
      `accounts: ["${srv.serviceDn}", "${srv.serviceGreenDn}"]`,
      `searchBase: "${srv.peopleDn}"`,
      `apply: { mode: admin, adminDn: "${srv.provkeyAdminDn}", adminPasswordRef: "env:LDAP_ADMIN" }`,
      'propagationTimeout: 2s',
    ],
    format: '{ type: password, length: 24 }',
    env: { LDAP_ADMIN: srv.provkeyAdminPassword },
    client: { url: srv.ldapUrl, startTls: true, caPem: srv.caPem },
    searchBase: srv.peopleDn,
    bindCode: (dn, pw) => probeBind(srv.ldapPort, dn, pw),
    failedBinds: (dn) => slapdFailedBinds(srv, dn),
    locked: async (dn) => {
      const client = new Client({ url: srv.ldapUrl, timeout: 5000 });
      try {
        await client.startTLS({ ca: [srv.caPem], host: '127.0.0.1' });
        await client.bind(srv.adminDn, srv.adminPassword);
        const entry = (await client.search(dn, { scope: 'base', attributes: ['pwdAccountLockedTime'] })).searchEntries[0] ?? {};
        return ([] as unknown[]).concat(entry.pwdAccountLockedTime ?? []).length > 0;
      } finally {
        await client.unbind().catch(() => undefined);
      }
    },
  });

  it('add, rotate, rotate --due (grace end), rotate, drill, revoke; a consumer loop never fails', async () => {
    await lifecycle(directory());
  });

  it('a rotation killed at each step converges on the right pair; a set the directory refuses rolls back to the old pair', async () => {
    await crashesAndRefusal(directory(), 'cn=provisioner-missing,ou=services,dc=example,dc=com');
  });

  it('a rotation within the grace period takes the account of the grace pair: that pair is revoked at once, not left listed as live', async () => {
    const dir = directory();
    const [blue, green] = dir.accounts;
    const cli = cliFor(dir);
    expect((await cli.run(['add', KEY])).code).toBe(0);
    const p1 = await cli.reveal(KEY, 'p1');
    const first = await cli.json<KeyResultJson>(['rotate', KEY]);
    expect(first.result.code, describeRun(first.result)).toBe(0);
    const p2 = await cli.reveal(KEY, 'p2');
    // p1 (blue) is still listed as previous: the next rotation's set on blue replaces it.
    const second = await cli.json<KeyResultJson>(['rotate', KEY]);
    expect(second.result.code, describeRun(second.result)).toBe(0);
    const p3 = await cli.reveal(KEY, 'p3');
    expect(second.data.results[0]!.message).toContain(`${fingerprint(p1)} (its account now holds ${fingerprint(p3)}) is revoked`);
    const history = await cli.json<{ versions: { label: string; fingerprint: string }[] }>(['history', KEY]);
    const labels = Object.fromEntries(history.data.versions.map((v) => [v.fingerprint, v.label]));
    expect(labels).toMatchObject({ [fingerprint(p1)]: 'revoked', [fingerprint(p2)]: 'previous', [fingerprint(p3)]: 'current' });
    const status = await cli.json<{ keys: { previous: unknown[]; attention?: unknown }[] }>(['status']);
    expect(status.data.keys[0]!.previous).toHaveLength(1);
    expect(await dir.bindCode(blue, p1)).toBe(49);
    expect(await dir.bindCode(blue, p3)).toBe(0);
    expect(await dir.bindCode(green, p2)).toBe(0);
    expect((await cli.run(['audit', 'verify'])).code).toBe(0);
  });

  it('config: accounts must be two distinct DNs, without bindDn, in admin mode (exit 2, one line)', async () => {
    const base = directory();
    const cases: Array<[string[], RegExp]> = [
      [[`accounts: ["${srv.serviceDn}"]`], /accounts: must list exactly two account DNs/],
      [[`accounts: ["${srv.serviceDn}", "CN=Provisioner, ou=services,dc=example,dc=com"]`], /accounts: the two accounts must be different DNs/],
      [[`accounts: ["${srv.serviceDn}", "${srv.serviceGreenDn}"]`, `bindDn: "${srv.serviceDn}"`], /bindDn: leave it out with accounts/],
      [[`accounts: ["${srv.serviceDn}", "not a dn"]`], /accounts\.1: not a DN/],
    ];
    for (const [lines, message] of cases) {
      const dir: Directory = { ...base, targetLines: () => [...base.targetLines().filter((l) => !l.startsWith('accounts:')), ...lines] };
      const run = await cliFor(dir).run(['add', KEY]);
      expect(run.code, describeRun(run)).toBe(2);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).toMatch(message);
    }
    const self: Directory = { ...base, targetLines: () => base.targetLines().map((l) => l.replace('mode: admin', 'mode: self')) };
    const refused = await cliFor(self).run(['add', KEY]);
    expect(refused.code, describeRun(refused)).toBe(2);
    expect(refused.stderr).toMatch(/apply\.mode: accounts needs apply\.mode admin/);
  });
});

describe('two-account rotation against Samba AD DC', () => {
  let dc: SambaServer;
  let accounts: [string, string];
  beforeAll(async () => {
    dc = await startSamba({ oldPasswordAllowedPeriod: 0 });
    // lockoutThreshold 3 makes the lockout guard forbid every proof by a failed bind; 6 allows one per run.
    await dc.modify(dc.baseDn, [replace('lockoutThreshold', ['6'])]);
    accounts = [await dc.createUser('svc-blue', `Pk-${randomPassword(20)}`), await dc.createUser('svc-green', `Pk-${randomPassword(20)}`)];
  });
  afterAll(async () => {
    await dc?.stop();
  });

  const directory = (): Directory => ({
    accounts,
    targetLines: () => [
      'directory: activeDirectory',
      `urls: [${dc.ldapsUrl}]`,
      `tls: { caFile: ${dc.caFile} }`,
      `accounts: ["${accounts[0]}", "${accounts[1]}"]`,
      `searchBase: "${dc.usersDn}"`,
      `apply: { mode: admin, adminDn: "${dc.adminDn}", adminPasswordRef: "env:AD_ADMIN" }`,
      'oldPasswordAllowedPeriod: 0s',
      'propagationTimeout: 2s',
    ],
    format: '{ type: password, length: 24 }',
    env: { AD_ADMIN: dc.adminPassword },
    client: { url: dc.ldapsUrl, startTls: false, caPem: dc.caPem },
    searchBase: dc.usersDn,
    bindCode: async (dn, pw) => (await dc.bindCode(dn, pw)).code,
    // What counts toward lockoutThreshold, as the DC counts it: badPwdCount (reset by a successful
    // bind; binds with the two previous passwords are not counted at all). The lock itself is
    // checked below from lockoutTime.
    failedBinds: async (dn) => Number((await dc.read(dn, ['badPwdCount'])).badPwdCount[0] ?? '0'),
    locked: async (dn) => Number((await dc.read(dn, ['lockoutTime'])).lockoutTime[0] ?? '0') !== 0,
  });

  it('add, rotate, rotate --due (grace end), rotate, drill, revoke; a consumer loop never fails', async () => {
    await lifecycle(directory());
  });

  it('a rotation killed at each step converges on the right pair; a set the directory refuses rolls back to the old pair', async () => {
    await crashesAndRefusal(directory(), `CN=svc-missing,${dc.usersDn}`);
  });
});

describe('two-account rotation against 389 Directory Server', () => {
  let ds: DirsrvServer;
  beforeAll(async () => {
    ds = await startDirsrv({ policy: { passwordMaxFailure: '6' } });
  });
  afterAll(async () => {
    await ds?.stop();
  });

  const directory = (): Directory => ({
    accounts: [ds.serviceDn, ds.serviceGreenDn],
    targetLines: () => [
      'directory: 389ds',
      `urls: [${ds.ldapsUrl}]`,
      `tls: { caFile: ${ds.caFile} }`,
      `accounts: ["${ds.serviceDn}", "${ds.serviceGreenDn}"]`,
      `searchBase: "${ds.peopleDn}"`,
      `apply: { mode: admin, adminDn: "${ds.provkeyAdminDn}", adminPasswordRef: "env:DS_ADMIN" }`,
      'passwordPolicy: { maxFailure: 6 }',
      'propagationTimeout: 2s',
    ],
    // passwordMinTokenLength 3: no 3-letter run of provisioner / service / green (docs/ldap.md).
    format: '{ type: password, length: 24, exclude: "provisnecgPROVISNECG" }',
    env: { DS_ADMIN: ds.provkeyAdminPassword },
    client: { url: ds.ldapsUrl, startTls: false, caPem: ds.caPem },
    searchBase: ds.peopleDn,
    bindCode: (dn, pw) => ds.bindCode(dn, pw),
    failedBinds: (dn) => ds.failedBinds(dn),
    locked: async (dn) => {
      const entry = await ds.read(dn, ['accountUnlockTime', 'passwordRetryCount']);
      return (entry.accountUnlockTime ?? []).length > 0;
    },
  });

  it('add, rotate, rotate --due (grace end), rotate, drill, revoke; a consumer loop never fails', async () => {
    await lifecycle(directory());
  });

  it('a rotation killed at each step converges on the right pair; a set the directory refuses rolls back to the old pair', async () => {
    await crashesAndRefusal(directory(), ds.serviceDn.replace('uid=provisioner,', 'uid=provisioner-missing,'));
  });
});
