/**
 * Private 389 Directory Server instances (Debian's 389-ds-base 2.3) for the provkey test harness.
 *
 * An empty instance (suffix dc=pk,dc=test, mdb backend) is built once with `dscreate` into a
 * private PREFIX layout (no systemd; inside `unshare --net`, because dscreate briefly listens
 * on every interface) and cached in ~/.cache/provkey-test/dirsrv-*. Each run copies it into a
 * temp dir, moves its paths there, puts it on its own 127.0.0.x, replaces the certificate
 * with one made for that address, starts `ns-slapd -d 0` in the foreground and, as Directory
 * Manager, adds the entries and sets the global password policy the test asks for.
 *
 *   const ds = await startDirsrv({ policy: { passwordMustChange: 'on' } });
 *   // ds.ldapUrl (StartTLS), ds.ldapsUrl, ds.caFile, ds.serviceDn, ds.provkeyAdminDn ...
 *   await ds.stop();
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Attribute, Change, Client } from 'ldapts';
import { builtAt, readAttributes, cachedTemplate, ForegroundProcess, generateRunCerts, runOk, waitUntilReady } from './directory-process.ts';
import { claimLoopbackAddress } from './loopback-address.ts';
import { ensureDirectories } from './samba.ts';

const INSTANCE = 'pk';
export const DIRSRV_BASE_DN = 'dc=pk,dc=test';
const DM_DN = 'cn=Directory Manager';
/** Fixed: it is in the cached template. Only the harness's own throw-away instances use it. */
const DM_PASSWORD = 'Pk-DirMgr-Passw0rd-2026';
const LDAP_PORT = 1389;
const LDAPS_PORT = 1636;

/** The global password policy each run starts with (cn=config); `policy` overrides. */
export const DIRSRV_DEFAULT_POLICY: Readonly<Record<string, string>> = Object.freeze({
  passwordCheckSyntax: 'on',
  passwordMinLength: '12',
  passwordMinCategories: '3',
  passwordMinTokenLength: '3',
  passwordHistory: 'on',
  passwordInHistory: '5',
  passwordLockout: 'on',
  passwordMaxFailure: '3',
  passwordUnlock: 'on',
  passwordLockoutDuration: '1800',
  passwordResetFailureCount: '1800',
  passwordMustChange: 'off',
  passwordChange: 'on',
  passwordExp: 'on',
  passwordMaxAge: '7776000',
  passwordMinAge: '0',
});

export interface StartDirsrvOptions {
  /** Overrides of the global policy (cn=config attributes). */
  policy?: Partial<Record<string, string>>;
  servicePassword?: string;
  /**
   * Make uid=provkey-admin a password administrator (cn=config passwordAdminDN; default true):
   * its resets then bypass syntax and history checks, as OpenLDAP's "manage" does. Without it,
   * its resets are held to the policy (a rollback to the previous password is passwordInHistory).
   */
  passwordAdmin?: boolean;
  startupTimeoutMs?: number;
}

export interface DirsrvServer {
  host: string;
  ldapUrl: string;
  ldapsUrl: string;
  caFile: string;
  caPem: string;
  baseDn: string;
  peopleDn: string;
  adminDn: string;
  adminPassword: string;
  /** ou=staging (the service account may add, modify and delete there) and cn=provisioned,ou=groups (it may write member). */
  stagingDn: string;
  groupDn: string;
  /** uid=provisioner,ou=services: cn "provisioner", sn "service" (passwordMinTokenLength looks at these). */
  serviceDn: string;
  /** uid=provisioner-green,ou=services: the second account of a two-account key (random password). */
  serviceGreenDn: string;
  servicePassword: string;
  /** Has write access to userPassword under ou=services (a delegated admin, not a password administrator). */
  provkeyAdminDn: string;
  provkeyAdminPassword: string;
  dir: string;
  pid: number;
  modify(dn: string, changes: Change[]): Promise<void>;
  /**
   * Adds uid=UID,ou=services (cn and sn = UID) as Directory Manager; the provkey admin may reset it.
   * A UID of two letters has no three-letter run for passwordMinTokenLength to refuse.
   */
  addServiceAccount(uid: string, password: string): Promise<string>;
  read(dn: string, attributes: string[]): Promise<Record<string, string[]>>;
  /** Result code of a simple bind over LDAPS (0 accepted). */
  bindCode(dn: string, password: string): Promise<number>;
  /** Binds as `dn` this server refused (49 or 19), from its own access log. */
  failedBinds(dn: string): Promise<number>;
  logTail(): string;
  stop(): Promise<void>;
}

/**
 * Built under /tmp (dscreate starts ns-slapd as dirsrv, which cannot enter a 0700 home), then
 * copied into the cache dir; returns the path the files name.
 */
async function buildTemplate(cacheDir: string): Promise<string> {
  const p = await mkdtemp(path.join(os.tmpdir(), 'provkey-dirsrv-template-'));
  try {
    await buildAt(p);
    await runOk('cp', ['-a', `${p}/.`, cacheDir]);
    return p;
  } finally {
    await rm(p, { recursive: true, force: true });
  }
}

async function buildAt(p: string): Promise<void> {
  for (const d of ['etc/dirsrv', 'share/dirsrv/inf', 'var/lib/dirsrv', 'var/log/dirsrv', 'run/dirsrv', 'tmp', 'lock/dirsrv']) await mkdir(path.join(p, d), { recursive: true });
  await runOk('cp', ['-r', '/etc/dirsrv/schema', '/etc/dirsrv/config', path.join(p, 'etc/dirsrv/')]);
  // lib389 calls systemctl unless every path lives under PREFIX and with_systemd is 0.
  const defaults = (await readFile('/usr/share/dirsrv/inf/defaults.inf', 'utf8'))
    .split('\n')
    .map((line) => {
      if (/^with_systemd\s*=/.test(line)) return 'with_systemd = 0';
      if (/^prefix\s*=/.test(line)) return `prefix = ${p}`;
      const m = /^(\w+\s*=\s*)(\/(?:etc|var|run\/lock|run|tmp|dev\/shm))(\/.*)?$/.exec(line);
      if (!m) return line;
      const moved = { '/etc': 'etc', '/var': 'var', '/run/lock': 'lock', '/run': 'run', '/tmp': 'tmp', '/dev/shm': 'tmp' }[m[2]!]!;
      return `${m[1]}${p}/${moved}${m[3] ?? ''}`;
    })
    .join('\n');
  await writeFile(path.join(p, 'share/dirsrv/inf/defaults.inf'), defaults);
  await runOk('chown', ['-R', 'dirsrv:dirsrv', path.join(p, 'var'), path.join(p, 'run'), path.join(p, 'tmp'), path.join(p, 'lock')]);
  await chmod(p, 0o755);
  const inf = path.join(p, 'instance.inf');
  await writeFile(inf, [
    '[general]', 'systemd = False', 'start = False', 'strict_host_checking = False',
    '[slapd]', 'db_lib = mdb', `instance_name = ${INSTANCE}`, `port = ${LDAP_PORT}`, `secure_port = ${LDAPS_PORT}`,
    `root_password = ${DM_PASSWORD}`, 'self_sign_cert = True',
    '[backend-userroot]', `suffix = ${DIRSRV_BASE_DN}`, 'create_suffix_entry = True', '',
  ].join('\n'));
  await runOk('unshare', ['--net', 'sh', '-c', `ip link set lo up && dscreate from-file ${inf}`], { env: { ...process.env, PREFIX: p }, timeoutMs: 240_000 });
}

/** dse.ldif with continuation lines joined (paths may be folded across them). */
function unfold(ldif: string): string {
  return ldif.replace(/\r?\n /g, '');
}

function setAttr(ldif: string, entryDn: string, attr: string, value: string): string {
  const blocks = ldif.split(/\n\n/);
  return blocks
    .map((block) => {
      if (!block.toLowerCase().startsWith(`dn: ${entryDn.toLowerCase()}\n`)) return block;
      const lines = block.split('\n').filter((l) => !l.toLowerCase().startsWith(`${attr.toLowerCase()}:`));
      return [...lines, `${attr}: ${value}`].join('\n');
    })
    .join('\n\n');
}

function ldapsClient(host: string, caPem: string): Client {
  return new Client({ url: `ldaps://${host}:${LDAPS_PORT}`, tlsOptions: { ca: [caPem] }, timeout: 10_000, connectTimeout: 5000 });
}

function password(): string {
  // Three classes (passwordMinCategories 3) and no run of the account's names.
  return `Pk9-${randomBytes(18).toString('base64url')}`;
}

/** Installs 389-DS if needed and builds the cached instance template (global set-up calls it once). */
export async function ensureDirsrvTemplate(): Promise<string> {
  await ensureDirectories();
  const version = (await runOk('dpkg-query', ['-W', '-f=${Version}', '389-ds-base'])).stdout.trim().replace(/[^A-Za-z0-9.-]+/g, '_');
  return cachedTemplate(`dirsrv-${version}`, buildTemplate);
}

export async function startDirsrv(options: StartDirsrvOptions = {}): Promise<DirsrvServer> {
  const template = await ensureDirsrvTemplate();
  const address = claimLoopbackAddress({ first: 180, last: 249 });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'provkey-dirsrv-'));
  let proc: ForegroundProcess | undefined;
  try {
    const host = address.host;
    await chmod(dir, 0o755);
    const p = path.join(dir, 'ds');
    await runOk('cp', ['-a', template, p]);
    const from = await builtAt(template);
    const instanceDir = path.join(p, 'etc/dirsrv', `slapd-${INSTANCE}`);
    const dse = path.join(instanceDir, 'dse.ldif');
    let ldif = unfold(await readFile(dse, 'utf8')).split(from).join(p);
    for (const [attr, value] of [
      ['nsslapd-listenhost', host],
      ['nsslapd-securelistenhost', host],
      ['nsslapd-port', String(LDAP_PORT)],
      ['nsslapd-securePort', String(LDAPS_PORT)],
      ['nsslapd-ldapilisten', 'off'],
      ['nsslapd-localhost', host],
      // Unbuffered, so failedBinds() reads every refused bind as soon as it is answered.
      ['nsslapd-accesslog-logbuffering', 'off'],
    ] as const) ldif = setAttr(ldif, 'cn=config', attr, value);
    await writeFile(dse, ldif);
    await rm(path.join(instanceDir, 'dse.ldif.startOK'), { force: true });
    await rm(path.join(instanceDir, 'dse.ldif.bak'), { force: true });

    // The certificate dscreate made names "localhost" only: this run's names its address.
    const certs = await generateRunCerts(path.join(dir, 'tls'), host);
    const pwdfile = path.join(instanceDir, 'pwdfile.txt');
    const p12 = path.join(dir, 'tls', 'server.p12');
    await runOk('openssl', ['pkcs12', '-export', '-in', certs.certFile, '-inkey', certs.keyFile, '-name', 'Server-Cert', '-out', p12, '-passout', 'pass:pk']);
    await runOk('certutil', ['-D', '-d', instanceDir, '-n', 'Server-Cert', '-f', pwdfile]);
    await runOk('pk12util', ['-i', p12, '-d', instanceDir, '-k', pwdfile, '-W', 'pk']);
    await runOk('certutil', ['-A', '-d', instanceDir, '-n', 'provkey-test-ca', '-t', 'CT,,', '-a', '-i', certs.caFile, '-f', pwdfile]);
    await runOk('chown', ['-R', 'dirsrv:dirsrv', p]);

    const pidFile = path.join(p, 'run/dirsrv', `slapd-${INSTANCE}.pid`);
    proc = new ForegroundProcess('/usr/sbin/ns-slapd', ['-D', instanceDir, '-i', pidFile, '-d', '0'], { dir });
    const errorsLog = path.join(p, 'var/log/dirsrv', `slapd-${INSTANCE}`, 'errors');
    const ready = async () => {
      const client = ldapsClient(host, certs.caPem);
      try {
        await client.bind(DM_DN, DM_PASSWORD);
        return true;
      } finally {
        await client.unbind().catch(() => undefined);
      }
    };
    await waitUntilReady(`ns-slapd on ${host}`, proc, ready, options.startupTimeoutMs ?? 30_000).catch(async (error: Error) => {
      const errors = await readFile(errorsLog, 'utf8').catch(() => '');
      throw new Error(`${error.message}\n${errors.split('\n').slice(-20).join('\n')}`);
    });

    const asDm = async <T>(work: (client: Client) => Promise<T>): Promise<T> => {
      const client = ldapsClient(host, certs.caPem);
      try {
        await client.bind(DM_DN, DM_PASSWORD);
        return await work(client);
      } finally {
        await client.unbind().catch(() => undefined);
      }
    };
    const peopleDn = `ou=people,${DIRSRV_BASE_DN}`;
    const servicesDn = `ou=services,${DIRSRV_BASE_DN}`;
    const serviceDn = `uid=provisioner,${servicesDn}`;
    const provkeyAdminDn = `uid=provkey-admin,${servicesDn}`;
    const serviceGreenDn = `uid=provisioner-green,${servicesDn}`;
    const servicePassword = options.servicePassword ?? password();
    const provkeyAdminPassword = password();
    const policy: Record<string, string | undefined> = { ...DIRSRV_DEFAULT_POLICY, ...options.policy };
    if (options.passwordAdmin !== false) policy.passwordAdminDN = provkeyAdminDn;
    await asDm(async (client) => {
      await client.modify(DIRSRV_BASE_DN, [
        new Change({
          operation: 'add',
          modification: new Attribute({
            type: 'aci',
            values: [
              '(targetattr="*")(version 3.0; acl "provkey-test: users read"; allow (read, search, compare) userdn="ldap:///all";)',
              '(targetattr="userPassword")(version 3.0; acl "provkey-test: self password"; allow (write) userdn="ldap:///self";)',
            ],
          }),
        }),
      ]);
      await client.add(peopleDn, { objectClass: ['top', 'organizationalUnit'], ou: 'people' });
      for (const name of ['alice', 'bob']) {
        await client.add(`uid=${name},${peopleDn}`, { objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson'], uid: name, cn: name, sn: name });
      }
      // The provisioning write probe's staging OU and group, writable by the service account.
      await client.add(`ou=staging,${DIRSRV_BASE_DN}`, {
        objectClass: ['top', 'organizationalUnit'],
        ou: 'staging',
        aci: `(targetattr="*")(version 3.0; acl "provisioner writes staging"; allow (add, delete, write, read, search, compare) userdn="ldap:///${serviceDn}";)`,
      });
      await client.add(`ou=groups,${DIRSRV_BASE_DN}`, { objectClass: ['top', 'organizationalUnit'], ou: 'groups' });
      await client.add(`cn=provisioned,ou=groups,${DIRSRV_BASE_DN}`, {
        objectClass: ['top', 'groupOfNames'],
        cn: 'provisioned',
        member: `uid=alice,${peopleDn}`,
        aci: `(targetattr="member")(version 3.0; acl "provisioner manages members"; allow (write) userdn="ldap:///${serviceDn}";)`,
      });
      await client.add(servicesDn, {
        objectClass: ['top', 'organizationalUnit'],
        ou: 'services',
        aci: `(targetattr="userPassword || passwordExpirationTime || passwordRetryCount || accountUnlockTime || nsAccountLock")(version 3.0; acl "provkey-admin resets service passwords"; allow (read, search, compare, write) userdn="ldap:///${provkeyAdminDn}";)`,
      });
      await client.add(serviceDn, {
        objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson'],
        uid: 'provisioner', cn: 'provisioner', sn: 'service', userPassword: servicePassword,
      });
      // The second account of a two-account key: same rights as the first, a password nobody knows.
      await client.add(serviceGreenDn, {
        objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson'],
        uid: 'provisioner-green', cn: 'provisioner-green', sn: 'service', userPassword: password(),
      });
      await client.add(provkeyAdminDn, {
        objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson'],
        uid: 'provkey-admin', cn: 'provkey-admin', sn: 'admin', userPassword: provkeyAdminPassword,
      });
      // Last: under passwordMustChange, the passwords just set by Directory Manager would count as resets.
      await client.modify(
        'cn=config',
        Object.entries(policy).filter(([, v]) => v !== undefined).map(([type, value]) => new Change({ operation: 'replace', modification: new Attribute({ type, values: [value!] }) })),
      );
    });

    const running = proc;
    let stopped = false;
    return {
      host,
      ldapUrl: `ldap://${host}:${LDAP_PORT}`,
      ldapsUrl: `ldaps://${host}:${LDAPS_PORT}`,
      caFile: certs.caFile,
      caPem: certs.caPem,
      baseDn: DIRSRV_BASE_DN,
      peopleDn,
      adminDn: DM_DN,
      adminPassword: DM_PASSWORD,
      stagingDn: `ou=staging,${DIRSRV_BASE_DN}`,
      groupDn: `cn=provisioned,ou=groups,${DIRSRV_BASE_DN}`,
      serviceDn,
      serviceGreenDn,
      servicePassword,
      provkeyAdminDn,
      provkeyAdminPassword,
      dir,
      pid: running.child.pid!,
      modify: (dn, changes) => asDm((client) => client.modify(dn, changes)),
      addServiceAccount: async (uid, accountPassword) => {
        const dn = `uid=${uid},${servicesDn}`;
        await asDm((client) => client.add(dn, { objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson'], uid, cn: uid, sn: uid, userPassword: accountPassword }));
        return dn;
      },
      read: (dn, attributes) => asDm((client) => readAttributes(client, dn, attributes)),
      bindCode: async (dn, pw) => {
        const client = ldapsClient(host, certs.caPem);
        try {
          await client.bind(dn, pw);
          return 0;
        } catch (error) {
          return (error as { code?: number }).code ?? -1;
        } finally {
          await client.unbind().catch(() => undefined);
        }
      },
      failedBinds: async (dn) => {
        const log = await readFile(path.join(p, 'var/log/dirsrv', `slapd-${INSTANCE}`, 'access'), 'utf8').catch(() => '');
        const dnOf = new Map<string, string>();
        let failed = 0;
        for (const line of log.split('\n')) {
          const bind = /(conn=\d+ op=\d+) BIND dn="([^"]*)" method=128/.exec(line);
          if (bind) dnOf.set(bind[1]!, bind[2]!.toLowerCase());
          const refused = /(conn=\d+ op=\d+) RESULT err=(49|19) tag=97\b/.exec(line);
          if (refused && dnOf.get(refused[1]!) === dn.toLowerCase()) failed += 1;
        }
        return failed;
      },
      logTail: () => running.logTail(),
      async stop() {
        if (stopped) return;
        stopped = true;
        await running.stop();
        await rm(dir, { recursive: true, force: true });
        address.release();
      },
    };
  } catch (error) {
    await proc?.stop();
    await rm(dir, { recursive: true, force: true });
    address.release();
    throw error;
  }
}

export function dirsrvInstalled(): boolean {
  return existsSync('/usr/sbin/ns-slapd') && existsSync('/usr/sbin/dscreate');
}
