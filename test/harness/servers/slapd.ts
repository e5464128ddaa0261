/**
 * Private OpenLDAP slapd instances for the provkey test harness.
 *
 * Runs the Debian `slapd` binary (2.5, ppolicy overlay) as a foreground child
 * with its own slapd.conf, mdb database, self-signed CA + server certificate
 * and random ports on 127.0.0.1. Never touches the packaged service.
 *
 * Written with erasable TypeScript syntax only so Node 24 can run it directly
 * (type stripping); depends on node: built-ins only.
 *
 *   const srv = await startSlapd();
 *   // srv.ldapUrl (StartTLS-capable), srv.ldapsUrl, srv.caFile, srv.serviceDn ...
 *   await srv.stop();
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile, mkdir, chmod } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/** Structural stand-in for ldapts `Change` (no runtime dependency on ldapts). */
export interface ChangeLike {
  operation: 'add' | 'delete' | 'replace' | string;
  modification: { type: string; values: ReadonlyArray<string | Buffer> };
}

export interface StartSlapdOptions {
  /** Overrides for cn=default,ou=policies (attribute -> value). An empty string removes the attribute. */
  policy?: Partial<Record<string, string>>;
  /** Extra LDIF (content records, no changetype) appended to the slapadd input. */
  extraLdif?: string;
  /** Fixed credentials (random when omitted). Each must satisfy the policy if you intend to re-set it. */
  adminPassword?: string;
  servicePassword?: string;
  provkeyAdminPassword?: string;
  /**
   * Access level of cn=provkey-admin on userPassword of ou=services entries.
   * 'manage' (default) makes it a ppolicy "password administrator";
   * 'write' makes it an ordinary writer (ppolicy quality/history checks still apply to it).
   */
  provkeyAdminAccess?: 'write' | 'manage';
  /**
   * Configure the ppolicy overlay on the database (default true). The module (and so the
   * pwd* schema) is always loaded. Note a syncrepl consumer WITH the overlay counts bind
   * failures and locks accounts locally (independently of the primary), so polling a replica
   * with a not-yet-replicated password 5 times locks the account there; pass false for a
   * replica that should not enforce policy.
   */
  ppolicyOverlay?: boolean;
  /** Replace the whole ACL block (slapd.conf `access to` lines). Placeholders: {BASE} {SERVICE} {PKADMIN}. */
  acl?: string;
  /** Extra slapd.conf lines appended to the global section / to the database section. */
  extraGlobalConfig?: string;
  extraDatabaseConfig?: string;
  /**
   * slapd -d value. Default "none": only LDAP_DEBUG_ANY messages (errors, "slapd starting") reach
   * stderr — note `-d 0` prints nothing at all, not even "bind(...) failed errno=98".
   * Use "stats" for per-operation logging into logTail()/slapd.log.
   */
  debugLevel?: string;
  /** Startup (first successful bind) timeout. Default 20000 ms. */
  startupTimeoutMs?: number;
  /** Keep the temp dir after stop() (for debugging). Also enabled by PROVKEY_SLAPD_KEEP=1. */
  keepDir?: boolean;
  /** Echo slapd stderr to process.stderr. Also enabled by PROVKEY_SLAPD_LOG=1. */
  echoLog?: boolean;
  /** Parent for the temp dir (default os.tmpdir()). */
  tmpRoot?: string;
}

export interface SlapdServer {
  ldapUrl: string;
  ldapsUrl: string;
  host: string;
  ldapPort: number;
  ldapsPort: number;
  caPem: string;
  caFile: string;
  baseDn: string;
  /** rootdn */
  adminDn: string;
  adminPassword: string;
  serviceDn: string;
  /** A second service account (cn=provisioner-green) with the same rights, for two-account keys. */
  serviceGreenDn: string;
  servicePassword: string;
  provkeyAdminDn: string;
  provkeyAdminPassword: string;
  peopleDn: string;
  /** DNs of the seeded person entries under peopleDn. */
  peopleEntries: string[];
  policyDn: string;
  dir: string;
  /** pid of the slapd process. */
  pid: number;
  /** 'primary' | 'replica' (syncrepl consumer, read-only) | 'clone' (independent copy). */
  role: 'primary' | 'replica' | 'clone';
  stop(): Promise<void>;
  /**
   * Apply a modification as the rootdn (ACLs bypassed) via ldapmodify.
   * `changes` is either ldapts Change[] or LDIF modify lines ("replace: x\nx: y\n-\n...").
   * A string that starts with "dn:" is applied verbatim as complete LDIF (dn argument ignored).
   */
  modify(dn: string, changes: string | ReadonlyArray<ChangeLike>): Promise<void>;
  /** Apply complete LDIF change records as the rootdn (ldapmodify -a semantics for plain records). */
  ldapModify(ldif: string): Promise<void>;
  /** Last lines slapd wrote to stderr. */
  logTail(): string;
}

export interface SlapdInstallInfo {
  slapd: string;
  version: string;
  modulePath: string;
}

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

const SLAPD = '/usr/sbin/slapd';
const SLAPADD = '/usr/sbin/slapadd';
const LDAPMODIFY = '/usr/bin/ldapmodify';
const MODULE_PATH = '/usr/lib/ldap';
const SCHEMA_DIR = '/etc/ldap/schema';
const HOST = '127.0.0.1';

const BASE_DN = 'dc=example,dc=com';
const ADMIN_DN = `cn=admin,${BASE_DN}`;
const SERVICES_DN = `ou=services,${BASE_DN}`;
const SERVICE_DN = `cn=provisioner,${SERVICES_DN}`;
const PKADMIN_DN = `cn=provkey-admin,${SERVICES_DN}`;
/** The second account of a two-account (blue/green) key; its password is random and unknown to the tests. */
const SERVICE_GREEN_DN = `cn=provisioner-green,${SERVICES_DN}`;
const PEOPLE_DN = `ou=people,${BASE_DN}`;
const POLICIES_DN = `ou=policies,${BASE_DN}`;
const POLICY_DN = `cn=default,${POLICIES_DN}`;

export const DEFAULT_POLICY: Readonly<Record<string, string>> = Object.freeze({
  pwdAttribute: 'userPassword',
  pwdMinLength: '12',
  pwdCheckQuality: '2',
  pwdInHistory: '5',
  pwdMaxFailure: '5',
  pwdLockout: 'TRUE',
  pwdMaxAge: '7776000',
  pwdMustChange: 'FALSE',
  pwdAllowUserChange: 'TRUE',
  pwdSafeModify: 'FALSE',
});

// ---------------------------------------------------------------------------
// Install check
// ---------------------------------------------------------------------------

let ensurePromise: Promise<SlapdInstallInfo> | undefined;

function binariesPresent(): boolean {
  return [SLAPD, SLAPADD, LDAPMODIFY, '/usr/bin/ldapsearch', `${MODULE_PATH}/ppolicy.so`, `${MODULE_PATH}/back_mdb.so`].every((p) =>
    existsSync(p),
  ) && spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
}

/** Make sure slapd/ldap-utils/openssl are installed (runs test/harness/install/slapd.sh when not). */
export function ensureSlapd(): Promise<SlapdInstallInfo> {
  ensurePromise ??= (async () => {
    if (!binariesPresent()) {
      const script = fileURLToPath(new URL('../install/slapd.sh', import.meta.url));
      const r = await run('bash', [script], { timeoutMs: 600_000 });
      if (r.code !== 0 || !binariesPresent()) {
        throw new Error(`slapd install failed (exit ${r.code}):\n${tail(r.stdout + r.stderr, 40)}`);
      }
    }
    const v = await run(SLAPD, ['-VV']);
    const m = /slapd\s+(\S+)/.exec(v.stdout + v.stderr);
    return { slapd: SLAPD, version: m?.[1] ?? 'unknown', modulePath: MODULE_PATH };
  })();
  ensurePromise.catch(() => {
    ensurePromise = undefined;
  });
  return ensurePromise;
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: string[],
  opts: { input?: string; cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? { ...process.env, LDAPNOINIT: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

async function runOk(cmd: string, args: string[], opts: { input?: string; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${path.basename(cmd)} ${args.join(' ')} failed (exit ${r.code ?? r.signal}):\n${tail(r.stderr + r.stdout, 30)}`);
  }
  return r;
}

function tail(text: string, lines: number): string {
  return text.split('\n').filter((l) => l.length > 0).slice(-lines).join('\n');
}

/** 24 chars of [A-Za-z0-9_-] — satisfies pwdMinLength 12 and needs no quoting. */
export function randomPassword(length = 24): string {
  return randomBytes(length).toString('base64url').slice(0, length);
}

function ssha(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash('sha1').update(password, 'utf8').update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
}

function generalizedTime(d = new Date()): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** LDIF attribute line, base64 when the value is not SAFE-STRING. */
function ldifLine(attr: string, value: string | Buffer): string {
  const s = typeof value === 'string' ? value : undefined;
  const safe = s !== undefined && /^[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b\x0c\x0e-\x7f]*$/.test(s) && !s.endsWith(' ');
  if (s === '') return `${attr}:`;
  if (safe) return `${attr}: ${s}`;
  const buf = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return `${attr}:: ${buf.toString('base64')}`;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function twoFreePorts(): Promise<[number, number]> {
  for (;;) {
    const a = await freePort();
    const b = await freePort();
    if (a !== b) return [a, b];
  }
}

// --- minimal BER for a readiness simple bind (no dependency on ldapts) ------

function berLen(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n >>= 8;
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), berLen(body.length), body]);
}

function readTlv(buf: Buffer, off: number): { tag: number; start: number; end: number } | undefined {
  if (off + 2 > buf.length) return undefined;
  const tag = buf[off]!;
  let len = buf[off + 1]!;
  let p = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (p + n > buf.length) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  if (p + len > buf.length) return undefined;
  return { tag, start: p, end: p + len };
}

/** One LDAPv3 simple bind over plain TCP. Resolves with the LDAP result code. */
export function probeBind(port: number, dn: string, password: string, timeoutMs = 2000): Promise<number> {
  const req = tlv(
    0x30,
    Buffer.concat([
      tlv(0x02, Buffer.from([1])),
      tlv(0x60, Buffer.concat([tlv(0x02, Buffer.from([3])), tlv(0x04, Buffer.from(dn, 'utf8')), tlv(0x80, Buffer.from(password, 'utf8'))])),
    ]),
  );
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: HOST, port });
    let data = Buffer.alloc(0);
    const done = (err: Error | undefined, code?: number) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(code!);
    };
    const timer = setTimeout(() => done(new Error('bind probe timed out')), timeoutMs);
    sock.on('connect', () => sock.write(req));
    sock.on('error', (err) => done(err));
    sock.on('close', () => done(new Error('connection closed before bind response')));
    sock.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const msg = readTlv(data, 0);
      if (!msg) return;
      const id = readTlv(data, msg.start);
      const op = id && readTlv(data, id.end);
      const rc = op && readTlv(data, op.start);
      if (!op || op.tag !== 0x61 || !rc || rc.tag !== 0x0a) return done(new Error('unexpected bind response'));
      done(undefined, data[rc.start]!);
    });
  });
}

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

/**
 * Failed binds as `dn` that slapd itself logged (needs debugLevel "stats"). The log is flushed
 * every 500 ms, so a marker (a failed bind as a DN that does not exist) is the barrier: once it
 * is in the file, everything before it is too.
 */
export async function slapdFailedBinds(srv: SlapdServer, dn: string): Promise<number> {
  const logFile = path.join(srv.dir, 'slapd.log');
  const marker = `cn=fm-marker-${Date.now()}-${Math.random().toString(36).slice(2)},${srv.baseDn}`;
  await probeBind(srv.ldapPort, marker, 'not-a-password').catch(() => undefined);
  for (;;) {
    const log = await readFile(logFile, 'utf8').catch(() => '');
    if (log.includes(marker)) return countFailedBinds(log, dn);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function countFailedBinds(log: string, dn: string): number {
  const dnOf = new Map<string, string>();
  let failed = 0;
  for (const line of log.split('\n')) {
    const bind = /(conn=\d+ op=\d+) BIND dn="([^"]*)" method=128/.exec(line);
    if (bind) dnOf.set(bind[1]!, bind[2]!.toLowerCase());
    const refused = /(conn=\d+ op=\d+) RESULT tag=97 err=49\b/.exec(line);
    if (refused && dnOf.get(refused[1]!) === dn.toLowerCase()) failed += 1;
  }
  return failed;
}

export interface TestCa {
  caFile: string;
  caKeyFile: string;
  caPem: string;
}

/** Create a self-signed EC P-256 CA in `dir` (ca.pem / ca.key). Also handy for "wrong CA" tests. */
export async function generateCa(dir: string, commonName = 'provkey test CA'): Promise<TestCa> {
  await mkdir(dir, { recursive: true });
  const caFile = path.join(dir, 'ca.pem');
  const caKeyFile = path.join(dir, 'ca.key');
  await runOk('openssl', [
    'req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', caKeyFile, '-out', caFile, '-days', '3', '-subj', `/CN=${commonName} ${randomBytes(4).toString('hex')}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { caFile, caKeyFile, caPem: await readFile(caFile, 'utf8') };
}

/** A server certificate for 127.0.0.1 and localhost signed by `ca`, written into `dir` (server.pem / server.key). */
export async function generateServerCert(dir: string, ca: TestCa): Promise<{ certFile: string; keyFile: string }> {
  const keyFile = path.join(dir, 'server.key');
  const csrFile = path.join(dir, 'server.csr');
  const certFile = path.join(dir, 'server.pem');
  const extFile = path.join(dir, 'server.ext');
  await writeFile(
    extFile,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '',
    ].join('\n'),
  );
  await runOk('openssl', [
    'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', csrFile, '-subj', '/CN=127.0.0.1',
  ]);
  await runOk('openssl', [
    'x509', '-req', '-in', csrFile, '-CA', ca.caFile, '-CAkey', ca.caKeyFile, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-out', certFile, '-days', '2', '-extfile', extFile,
  ]);
  await chmod(keyFile, 0o600); // owned by the running user, who also runs slapd
  return { certFile, keyFile };
}

// ---------------------------------------------------------------------------
// Config + data
// ---------------------------------------------------------------------------

interface Creds {
  adminPassword: string;
  servicePassword: string;
  provkeyAdminPassword: string;
}

/** The write probe's staging OU (the service account may write there) and a group whose members it manages. */
export const STAGING_ACL = `
access to dn.subtree="ou=staging,{BASE}"
    by dn.exact="{SERVICE}" write
    by * none
access to dn.base="cn=provisioned,ou=groups,{BASE}" attrs=member
    by dn.exact="{SERVICE}" write
    by * none
access to dn.subtree="ou=groups,{BASE}"
    by dn.exact="{SERVICE}" read
    by * none
`;
export const STAGING_LDIF = [
  'dn: ou=staging,dc=example,dc=com', 'objectClass: organizationalUnit', 'ou: staging', '',
  'dn: ou=groups,dc=example,dc=com', 'objectClass: organizationalUnit', 'ou: groups', '',
  'dn: cn=provisioned,ou=groups,dc=example,dc=com', 'objectClass: groupOfNames', 'cn: provisioned', 'member: uid=alice,ou=people,dc=example,dc=com', '',
].join('\n');

export function defaultAcl(adminLevel: 'write' | 'manage'): string {
  // First matching `access to` wins; the rootdn bypasses all of this.
  return `
# userPassword of service accounts: self-change, provkey-admin reset, anonymous bind.
access to dn.subtree="ou=services,{BASE}" attrs=userPassword
    by self write
    by dn.exact="{PKADMIN}" ${adminLevel}
    by anonymous auth
    by * none
# userPassword anywhere else: self-change and bind only.
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
# ppolicy state of service accounts: provkey-admin may unlock (delete pwdAccountLockedTime).
access to dn.subtree="ou=services,{BASE}" attrs=pwdAccountLockedTime,pwdFailureTime,pwdReset,pwdGraceUseTime,pwdHistory
    by dn.exact="{PKADMIN}" manage
    by self read
    by * none
access to dn.subtree="ou=services,{BASE}"
    by self read
    by dn.exact="{PKADMIN}" read
    by * none
# the provisioning base
access to dn.subtree="ou=people,{BASE}"
    by dn.exact="{SERVICE}" read
    by dn.exact="{SERVICE_GREEN}" read
    by dn.exact="{PKADMIN}" read
    by self read
    by * none
# password policies: readable by any authenticated identity
access to dn.subtree="ou=policies,{BASE}"
    by users read
    by * none
access to dn.base="{BASE}"
    by users read
    by * none
access to *
    by * none
`;
}

function buildConfig(p: {
  dir: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  creds: Creds;
  opts: StartSlapdOptions;
  syncrepl?: { providerUrl: string; adminPassword: string };
}): string {
  const { dir, opts } = p;
  const acl = (opts.acl ?? defaultAcl(opts.provkeyAdminAccess ?? 'manage'))
    .replaceAll('{BASE}', BASE_DN)
    .replaceAll('{SERVICE_GREEN}', SERVICE_GREEN_DN)
    .replaceAll('{SERVICE}', SERVICE_DN)
    .replaceAll('{PKADMIN}', PKADMIN_DN);
  const lines = [
    '# generated by test/harness/servers/slapd.ts',
    `include ${SCHEMA_DIR}/core.schema`,
    `include ${SCHEMA_DIR}/cosine.schema`,
    `include ${SCHEMA_DIR}/nis.schema`,
    `include ${SCHEMA_DIR}/inetorgperson.schema`,
    '',
    `pidfile ${dir}/slapd.pid`,
    `argsfile ${dir}/slapd.args`,
    '',
    `modulepath ${MODULE_PATH}`,
    'moduleload back_mdb',
    // OpenLDAP 2.5: the ppolicy schema (pwdPolicy, pwdChangedTime, ...) is built into the module.
    'moduleload ppolicy',
    'moduleload syncprov',
    '',
    `TLSCACertificateFile ${p.caFile}`,
    `TLSCertificateFile ${p.certFile}`,
    `TLSCertificateKeyFile ${p.keyFile}`,
    'TLSVerifyClient never',
    '',
    'password-hash {SSHA}',
    '',
    '# rootDSE and subschema stay readable (global ACLs, used outside the database)',
    'access to dn.base="" by * read',
    'access to dn.base="cn=Subschema" by * read',
    '',
    opts.extraGlobalConfig ?? '',
    '',
    'database mdb',
    `suffix "${BASE_DN}"`,
    `rootdn "${ADMIN_DN}"`,
    `rootpw ${ssha(p.creds.adminPassword)}`,
    `directory ${dir}/db`,
    'maxsize 67108864',
    'index objectClass eq',
    'index cn,uid eq',
    'index entryCSN,entryUUID eq',
    '',
  ];
  if (p.syncrepl) {
    lines.push(
      `syncrepl rid=001 provider=${p.syncrepl.providerUrl} bindmethod=simple binddn="${ADMIN_DN}"` +
        ` credentials="${p.syncrepl.adminPassword}" searchbase="${BASE_DN}" scope=sub type=refreshAndPersist` +
        ' retry="1 +" timeout=3 network-timeout=3 schemachecking=off attrs="*,+"',
      '',
    );
  }
  lines.push(
    acl,
    '',
    'overlay syncprov',
    'syncprov-checkpoint 1 1',
    '',
    ...(opts.ppolicyOverlay === false
      ? ['# ppolicy overlay disabled (ppolicyOverlay: false)']
      : ['overlay ppolicy', `ppolicy_default "${POLICY_DN}"`, 'ppolicy_use_lockout', 'ppolicy_hash_cleartext']),
    '',
    opts.extraDatabaseConfig ?? '',
    '',
  );
  return lines.join('\n');
}

function buildLdif(creds: Creds, opts: StartSlapdOptions): string {
  const now = generalizedTime();
  const policy: Record<string, string> = { ...DEFAULT_POLICY };
  for (const [k, v] of Object.entries(opts.policy ?? {})) {
    if (v === undefined) continue;
    // case-insensitive override of the defaults
    const existing = Object.keys(policy).find((x) => x.toLowerCase() === k.toLowerCase());
    if (existing) delete policy[existing];
    if (v !== '') policy[k] = v;
  }
  const entries: string[][] = [
    [`dn: ${BASE_DN}`, 'objectClass: top', 'objectClass: dcObject', 'objectClass: organization', 'dc: example', 'o: Example Corp'],
    [`dn: ${SERVICES_DN}`, 'objectClass: organizationalUnit', 'ou: services'],
    [`dn: ${PEOPLE_DN}`, 'objectClass: organizationalUnit', 'ou: people'],
    [`dn: ${POLICIES_DN}`, 'objectClass: organizationalUnit', 'ou: policies'],
    [
      `dn: ${POLICY_DN}`,
      'objectClass: top',
      'objectClass: device',
      'objectClass: pwdPolicy',
      'cn: default',
      ...Object.entries(policy).map(([k, v]) => ldifLine(k, v)),
    ],
    [
      `dn: ${SERVICE_DN}`,
      'objectClass: applicationProcess',
      'objectClass: simpleSecurityObject',
      'cn: provisioner',
      'description: provkey test service account (SCIM/LDAP provisioning)',
      `userPassword: ${ssha(creds.servicePassword)}`,
      `pwdChangedTime: ${now}`,
    ],
    [
      `dn: ${SERVICE_GREEN_DN}`,
      'objectClass: applicationProcess',
      'objectClass: simpleSecurityObject',
      'cn: provisioner-green',
      'description: provkey test second service account (two-account rotation)',
      `userPassword: ${ssha(randomPassword())}`,
      `pwdChangedTime: ${now}`,
    ],
    [
      `dn: ${PKADMIN_DN}`,
      'objectClass: applicationProcess',
      'objectClass: simpleSecurityObject',
      'cn: provkey-admin',
      'description: provkey rotation administrator',
      `userPassword: ${ssha(creds.provkeyAdminPassword)}`,
      `pwdChangedTime: ${now}`,
    ],
    [
      `dn: uid=alice,${PEOPLE_DN}`,
      'objectClass: inetOrgPerson',
      'uid: alice',
      'cn: Alice Anderson',
      'sn: Anderson',
      'givenName: Alice',
      'mail: alice@example.com',
      'employeeNumber: 1001',
    ],
    [
      `dn: uid=bob,${PEOPLE_DN}`,
      'objectClass: inetOrgPerson',
      'uid: bob',
      'cn: Bob Brown',
      'sn: Brown',
      'givenName: Bob',
      'mail: bob@example.com',
      'employeeNumber: 1002',
    ],
  ];
  let ldif = entries.map((e) => e.join('\n')).join('\n\n') + '\n\n';
  if (opts.extraLdif) ldif += opts.extraLdif.trim() + '\n\n';
  return ldif;
}

function changesToLdif(dn: string, changes: string | ReadonlyArray<ChangeLike>): string {
  if (typeof changes === 'string') {
    if (/^\s*dn::?/i.test(changes)) return changes.trim() + '\n';
    return `${ldifLine('dn', dn)}\nchangetype: modify\n${changes.trim()}\n`;
  }
  const out = [ldifLine('dn', dn), 'changetype: modify'];
  for (const c of changes) {
    const type = c.modification.type;
    out.push(`${c.operation}: ${type}`);
    for (const v of c.modification.values) out.push(ldifLine(type, v));
    out.push('-');
  }
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------------------
// Process management
// ---------------------------------------------------------------------------

interface Internal {
  opts: StartSlapdOptions;
  ca: TestCa;
  creds: Creds;
}

const internals = new WeakMap<SlapdServer, Internal>();
const live = new Map<number, { pid: number; dir: string; keep: boolean }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const s of live.values()) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      if (!s.keep) {
        try {
          rmSync(s.dir, { recursive: true, force: true });
        } catch {
          /* ignore */
        }
      }
    }
  });
}

/*
 * slapd runs under a tiny sh watchdog: it prints slapd's pid, and when its stdin
 * (a pipe from this process) reaches EOF — stop() or this process dying for any
 * reason, even SIGKILL — it sends SIGTERM to slapd.
 */
const WATCHDOG = [
  'exec 3<&0',
  '"$0" "$@" </dev/null &',
  'pid=$!',
  'echo "$pid"',
  '( while read -r _ <&3; do :; done; kill -TERM "$pid" 2>/dev/null ) &',
  'w=$!',
  'wait "$pid"; rc=$?',
  'kill "$w" 2>/dev/null',
  'exit "$rc"',
].join('\n');

interface Spawned {
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  logTail(): string;
}

function spawnSlapd(args: string[], echo: boolean, logFile: string): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', WATCHDOG, SLAPD, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, LDAPNOINIT: '1' },
    });
    const lines: string[] = [];
    let partial = '';
    let logBuf = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      if (echo) process.stderr.write(d);
      logBuf += d;
      const parts = (partial + d).split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts);
      if (lines.length > 400) lines.splice(0, lines.length - 400);
    });
    const flushLog = () => {
      if (logBuf) {
        const b = logBuf;
        logBuf = '';
        writeFile(logFile, b, { flag: 'a' }).catch(() => {});
      }
    };
    const logTimer = setInterval(flushLog, 500);
    logTimer.unref();
    let exitedFlag = false;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
      child.on('close', (code, signal) => {
        exitedFlag = true;
        clearInterval(logTimer);
        flushLog();
        child.stdin?.destroy();
        res({ code, signal });
      });
    });
    child.stdin!.on('error', () => {});
    let out = '';
    let settled = false;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /^(\d+)\n/.exec(out);
      if (m && !settled) {
        settled = true;
        resolve({
          child,
          pid: Number(m[1]),
          exited,
          hasExited: () => exitedFlag,
          logTail: () => [...lines, partial].filter(Boolean).slice(-60).join('\n'),
        });
      }
    });
    child.on('error', (err) => {
      if (!settled) {
        settled = true;
        reject(err);
      }
    });
    exited.then(() => {
      if (!settled) {
        settled = true;
        reject(new Error(`slapd watchdog exited early:\n${lines.join('\n')}`));
      }
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves with the promise's value, or 'timeout'; never keeps the event loop alive on its own. */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** contextCSN values of the suffix entry (sorted), read as the rootdn with ldapsearch. */
async function readContextCsn(ldapUrl: string, rootPwFile: string): Promise<string[]> {
  const r = await run('/usr/bin/ldapsearch', ['-x', '-LLL', '-o', 'ldif-wrap=no', '-H', ldapUrl, '-D', ADMIN_DN, '-y', rootPwFile, '-s', 'base', '-b', BASE_DN, 'contextCSN'], {
    timeoutMs: 5000,
  });
  if (r.code !== 0) throw new Error(`ldapsearch contextCSN failed (exit ${r.code}): ${tail(r.stderr, 5)}`);
  return r.stdout
    .split('\n')
    .filter((l) => /^contextCSN: /i.test(l))
    .map((l) => l.slice('contextCSN: '.length).trim())
    .sort();
}

/**
 * Resolve once `replica`'s contextCSN equals `primary`'s (i.e. every change made on the primary
 * before this call has been replicated). Rejects after timeoutMs.
 */
export async function waitForReplication(primary: SlapdServer, replica: SlapdServer, timeoutMs = 10_000): Promise<void> {
  const want = await readContextCsn(primary.ldapUrl, path.join(primary.dir, '.rootpw'));
  const deadline = Date.now() + timeoutMs;
  let have: string[] = [];
  while (Date.now() < deadline) {
    have = await readContextCsn(replica.ldapUrl, path.join(replica.dir, '.rootpw')).catch(() => []);
    if (want.length > 0 && want.every((csn) => have.some((h) => h >= csn && h.split('#')[2] === csn.split('#')[2]))) return;
    await sleep(50);
  }
  throw new Error(`replication did not catch up within ${timeoutMs} ms (primary ${want.join(',')} / replica ${have.join(',') || '-'})`);
}

// ---------------------------------------------------------------------------
// startSlapd
// ---------------------------------------------------------------------------

interface StartInternal {
  ca?: TestCa;
  syncreplFrom?: SlapdServer;
  role: 'primary' | 'replica' | 'clone';
}

/** Start a private slapd (primary). Safe to call concurrently: each has its own dir and ports. */
export function startSlapd(opts: StartSlapdOptions = {}): Promise<SlapdServer> {
  return startInternal(opts, { role: 'primary' });
}

/**
 * Start a second server for multi-server tests, sharing the primary's CA (so one caFile
 * trusts both) and its credentials.
 *  - mode 'syncrepl' (default): a read-only syncrepl consumer (refreshAndPersist, retry 1s)
 *    of `primary`; it resolves once its contextCSN has caught up with the primary's (so the
 *    replica holds the primary's *current* data, including rotated passwords). Writes to it
 *    fail (the consumer has no update referral); password changes go to the primary and
 *    typically show up on the replica within milliseconds (see waitForReplication()).
 *  - mode 'clone': an independent server loaded with the same *initial* data/passwords; it
 *    never sees later changes (useful for "one server did not get the new password").
 * The returned credential fields are the primary's initial ones.
 */
export async function startSlapdReplica(
  primary: SlapdServer,
  opts: StartSlapdOptions & { mode?: 'syncrepl' | 'clone' } = {},
): Promise<SlapdServer> {
  const base = internals.get(primary);
  if (!base) throw new Error('startSlapdReplica: not a server returned by startSlapd()');
  const { mode, ...rest } = opts;
  const merged: StartSlapdOptions = {
    ...base.opts,
    adminPassword: primary.adminPassword,
    servicePassword: primary.servicePassword,
    provkeyAdminPassword: primary.provkeyAdminPassword,
    ...rest,
  };
  if ((mode ?? 'syncrepl') === 'syncrepl') {
    return startInternal(merged, { role: 'replica', ca: base.ca, syncreplFrom: primary });
  }
  return startInternal(merged, { role: 'clone', ca: base.ca });
}

async function startInternal(opts: StartSlapdOptions, internal: StartInternal): Promise<SlapdServer> {
  await ensureSlapd();
  installExitHook();
  const keep = opts.keepDir ?? process.env.PROVKEY_SLAPD_KEEP === '1';
  const echo = opts.echoLog ?? process.env.PROVKEY_SLAPD_LOG === '1';
  const timeoutMs = opts.startupTimeoutMs ?? 20_000;
  const dir = await mkdtemp(path.join(opts.tmpRoot ?? os.tmpdir(), `provkey-slapd-${internal.role}-`));
  try {
    await mkdir(path.join(dir, 'db'), { recursive: true });
    const creds: Creds = {
      adminPassword: opts.adminPassword ?? randomPassword(),
      servicePassword: opts.servicePassword ?? randomPassword(),
      provkeyAdminPassword: opts.provkeyAdminPassword ?? randomPassword(),
    };
    const ca = internal.ca ?? (await generateCa(path.join(dir, 'ca')));
    const { certFile, keyFile } = await generateServerCert(dir, ca);
    const caFile = path.join(dir, 'ca.pem');
    await writeFile(caFile, ca.caPem);

    const confFile = path.join(dir, 'slapd.conf');
    const rootPwFile = path.join(dir, '.rootpw');
    await writeFile(rootPwFile, creds.adminPassword, { mode: 0o600 });
    const syncrepl = internal.syncreplFrom
      ? { providerUrl: internal.syncreplFrom.ldapUrl, adminPassword: internal.syncreplFrom.adminPassword }
      : undefined;
    await writeFile(confFile, buildConfig({ dir, certFile, keyFile, caFile, creds, opts, syncrepl }), { mode: 0o600 });

    if (!syncrepl) {
      const ldifFile = path.join(dir, 'init.ldif');
      await writeFile(ldifFile, buildLdif(creds, opts), { mode: 0o600 });
      await runOk(SLAPADD, ['-q', '-f', confFile, '-b', BASE_DN, '-l', ldifFile]);
    } else {
      // validate the config early for a readable error
      await runOk('/usr/sbin/slaptest', ['-u', '-f', confFile]);
    }

    let lastErr = '';
    for (let attempt = 0; attempt < 6; attempt++) {
      const [ldapPort, ldapsPort] = await twoFreePorts();
      const ldapUrl = `ldap://${HOST}:${ldapPort}`;
      const ldapsUrl = `ldaps://${HOST}:${ldapsPort}`;
      const proc = await spawnSlapd(
        ['-d', opts.debugLevel ?? 'none', '-h', `${ldapUrl}/ ${ldapsUrl}/`, '-f', confFile],
        echo,
        path.join(dir, 'slapd.log'),
      );
      live.set(proc.pid, { pid: proc.pid, dir, keep });
      const ready = await waitReady(proc, ldapPort, creds, timeoutMs, syncrepl ? replicaCaughtUp(internal.syncreplFrom!, ldapUrl, rootPwFile) : undefined);
      if (ready === 'ok') {
        return makeServer({ proc, dir, keep, ldapUrl, ldapsUrl, ldapPort, ldapsPort, ca, caFile, creds, opts, role: internal.role });
      }
      // failed: make sure it is gone
      await killProc(proc);
      live.delete(proc.pid);
      lastErr = ready.error;
      if (!/Address already in use|errno=98/i.test(ready.log)) {
        throw new Error(`slapd failed to start (${dir}): ${ready.error}\n--- slapd stderr (tail) ---\n${ready.log}`);
      }
    }
    throw new Error(`slapd failed to start after port retries: ${lastErr}`);
  } catch (err) {
    if (!keep) await rm(dir, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}

/** Readiness predicate for a syncrepl consumer: its contextCSN has reached the provider's. */
function replicaCaughtUp(primary: SlapdServer, replicaUrl: string, replicaPwFile: string): () => Promise<string | true> {
  let want: string[] | undefined;
  return async () => {
    want ??= await readContextCsn(primary.ldapUrl, path.join(primary.dir, '.rootpw'));
    const have = await readContextCsn(replicaUrl, replicaPwFile).catch(() => [] as string[]);
    if (want.length > 0 && want.every((csn) => have.some((h) => h >= csn && h.split('#')[2] === csn.split('#')[2]))) return true;
    return `replica contextCSN ${have.join(',') || '(none)'} has not reached primary ${want.join(',')}`;
  };
}

async function waitReady(
  proc: Spawned,
  port: number,
  creds: Creds,
  timeoutMs: number,
  extraReady?: () => Promise<string | true>,
): Promise<'ok' | { error: string; log: string }> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let rootOk = false;
  while (Date.now() < deadline) {
    if (proc.hasExited()) {
      const r = await proc.exited;
      return { error: `slapd exited (code ${r.code ?? r.signal}) before accepting binds`, log: proc.logTail() };
    }
    try {
      if (!rootOk) {
        const rc = await probeBind(port, ADMIN_DN, creds.adminPassword);
        if (rc !== 0) return { error: `rootdn bind returned result code ${rc}`, log: proc.logTail() };
        rootOk = true;
      }
      if (!extraReady) return 'ok';
      const r = await extraReady();
      if (r === true) return 'ok';
      last = r;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(rootOk ? 100 : 50);
  }
  return { error: `timed out after ${timeoutMs} ms waiting for a successful bind (last: ${last})`, log: proc.logTail() };
}

async function killProc(proc: Spawned): Promise<void> {
  if (proc.hasExited()) return;
  proc.child.stdin?.end(); // watchdog sends SIGTERM to slapd
  if ((await within(proc.exited, 5000)) === 'timeout') {
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    proc.child.kill('SIGKILL');
    await within(proc.exited, 2000);
  }
}

function makeServer(p: {
  proc: Spawned;
  dir: string;
  keep: boolean;
  ldapUrl: string;
  ldapsUrl: string;
  ldapPort: number;
  ldapsPort: number;
  ca: TestCa;
  caFile: string;
  creds: Creds;
  opts: StartSlapdOptions;
  role: 'primary' | 'replica' | 'clone';
}): SlapdServer {
  const { proc, dir } = p;
  // Do not keep the test process alive just because a server is running;
  // the exit hook / watchdog cleans up.
  proc.child.unref();
  for (const s of [proc.child.stdin, proc.child.stdout, proc.child.stderr]) {
    (s as unknown as { unref?: () => void } | null)?.unref?.();
  }
  let stopping: Promise<void> | undefined;
  const ldapModify = async (ldif: string): Promise<void> => {
    const pwFile = path.join(dir, '.rootpw');
    await runOk(LDAPMODIFY, ['-x', '-H', p.ldapUrl, '-D', ADMIN_DN, '-y', pwFile, '-a'], { input: ldif });
  };
  const server: SlapdServer = {
    ldapUrl: p.ldapUrl,
    ldapsUrl: p.ldapsUrl,
    host: HOST,
    ldapPort: p.ldapPort,
    ldapsPort: p.ldapsPort,
    caPem: p.ca.caPem,
    caFile: p.caFile,
    baseDn: BASE_DN,
    adminDn: ADMIN_DN,
    adminPassword: p.creds.adminPassword,
    serviceDn: SERVICE_DN,
    serviceGreenDn: SERVICE_GREEN_DN,
    servicePassword: p.creds.servicePassword,
    provkeyAdminDn: PKADMIN_DN,
    provkeyAdminPassword: p.creds.provkeyAdminPassword,
    peopleDn: PEOPLE_DN,
    peopleEntries: [`uid=alice,${PEOPLE_DN}`, `uid=bob,${PEOPLE_DN}`],
    policyDn: POLICY_DN,
    dir,
    pid: proc.pid,
    role: p.role,
    stop() {
      stopping ??= (async () => {
        await killProc(proc);
        live.delete(proc.pid);
        if (!p.keep) await rm(dir, { recursive: true, force: true }).catch(() => {});
      })();
      return stopping;
    },
    modify: (dn, changes) => ldapModify(changesToLdif(dn, changes)),
    ldapModify,
    logTail: () => proc.logTail(),
  };
  internals.set(server, { opts: p.opts, ca: p.ca, creds: p.creds });
  return server;
}
