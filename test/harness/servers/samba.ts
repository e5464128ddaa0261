/**
 * Private Samba AD domain controllers (Debian's samba 4.17) for the provkey test harness.
 *
 * A domain is provisioned once into a cached template (~/.cache/provkey-test/samba-ad-*:
 * `samba-tool domain provision`, DNS off, only the ldap and kdc services), then copied per
 * run into a temp dir and started as one foreground process on its own 127.0.0.x (Samba's
 * LDAP ports are fixed at 389/636, so each instance needs its own address, added to `lo`),
 * with a CA and server certificate made for that address. Stopped with SIGTERM; the temp dir
 * and the address are released.
 *
 *   const dc = await startSamba();
 *   const account = await dc.createUser('svc-a', password);   // CN=svc-a,CN=Users,DC=pk,DC=test
 *   await dc.stop();
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Attribute, Change, Client } from 'ldapts';
import { builtAt, readAttributes, CACHE_DIR, cachedTemplate, ForegroundProcess, generateRunCerts, run, runOk, tail, waitUntilReady } from './directory-process.ts';
import { claimLoopbackAddress } from './loopback-address.ts';

export const SAMBA_REALM = 'PK.TEST';
export const SAMBA_BASE_DN = 'DC=pk,DC=test';
export const SAMBA_USERS_DN = `CN=Users,${SAMBA_BASE_DN}`;
const TEMPLATE_HOST = '127.0.0.2';
/** Fixed: it is in the cached template. Only the harness's own throw-away domains use it. */
const ADMIN_PASSWORD = 'Pk-Admin-Passw0rd-2026';

/** The domain's password settings in the template (samba-tool domain passwordsettings). */
export const SAMBA_TEMPLATE_POLICY = Object.freeze({
  complexity: true,
  historyLength: 5,
  minPwdLength: 10,
  minPwdAgeDays: 0,
  maxPwdAgeDays: 42,
  lockoutThreshold: 3,
  lockoutDurationMinutes: 30,
});

export interface StartSambaOptions {
  /**
   * smb.conf "old password allowed period" in minutes (Samba's default 60: the previous
   * password still binds that long after a change). Default 0 here, so tests that assert
   * rejection see it at once; tests of the window pass 60.
   */
  oldPasswordAllowedPeriod?: number;
  /**
   * Count the failed binds the DC itself counted toward lockoutThreshold (countedFailures): turns
   * on the DSDB audit log (`dsdb_audit:5`), which names every badPwdCount increment. A bind with
   * one of the two previous passwords (AD's n-2 rule) logs none, and a success resets badPwdCount
   * to 0, so reading the attribute alone cannot tell how many failures came before a success.
   */
  countFailedBinds?: boolean;
  startupTimeoutMs?: number;
}

export interface SambaServer {
  host: string;
  /** ldap://host (StartTLS; Samba refuses simple binds without TLS). */
  ldapUrl: string;
  ldapsUrl: string;
  caFile: string;
  caPem: string;
  baseDn: string;
  usersDn: string;
  adminDn: string;
  adminPassword: string;
  dir: string;
  pid: number;
  /** Creates an enabled user under CN=Users with `password` (as Administrator over LDAPS); returns its DN. */
  createUser(name: string, password: string): Promise<string>;
  /** Adds an entry as Administrator (e.g. a fine-grained password policy). */
  add(dn: string, attributes: Record<string, string | string[]>): Promise<void>;
  /** Modifications as Administrator (e.g. the domain's password settings on baseDn, lockoutTime on a user). */
  modify(dn: string, changes: Change[]): Promise<void>;
  /** Attributes of one entry as Administrator (strings). */
  read(dn: string, attributes: string[]): Promise<Record<string, string[]>>;
  /** Result code of a simple bind over LDAPS (0 accepted, 49 rejected) and the AD "data" code. */
  bindCode(dn: string, password: string): Promise<{ code: number; data?: string }>;
  /**
   * badPwdCount increments of `dn` since the DC started, from its own audit log, complete up to
   * this call (a marker change is logged and awaited first). Needs `countFailedBinds`.
   */
  countedFailures(dn: string): Promise<number>;
  logTail(): string;
  stop(): Promise<void>;
}

const SAMBA = '/usr/sbin/samba';
const SAMBA_TOOL = '/usr/bin/samba-tool';

export function sambaInstalled(): boolean {
  return existsSync(SAMBA) && existsSync(SAMBA_TOOL) && existsSync('/usr/share/samba/setup');
}

let installing: Promise<void> | undefined;

/** Installs Samba and 389-DS (test/harness/install/directories.sh) when missing. */
export function ensureDirectories(): Promise<void> {
  installing ??= (async () => {
    if (sambaInstalled() && existsSync('/usr/sbin/ns-slapd') && existsSync('/usr/sbin/dscreate')) return;
    const script = fileURLToPath(new URL('../install/directories.sh', import.meta.url));
    const r = await run('bash', [script], { timeoutMs: 900_000 });
    if (r.code !== 0) throw new Error(`directories install failed (exit ${r.code}):\n${tail(r.stdout + r.stderr, 40)}`);
  })();
  installing.catch(() => {
    installing = undefined;
  });
  return installing;
}

async function sambaVersion(): Promise<string> {
  const r = await runOk(SAMBA, ['--version']);
  return r.stdout.trim().replace(/[^A-Za-z0-9.-]+/g, '_');
}

async function buildTemplate(dir: string): Promise<void> {
  const empty = path.join(dir, 'empty.conf');
  await writeFile(empty, '');
  const options = [
    `interfaces=${TEMPLATE_HOST}`,
    'bind interfaces only=yes',
    'server services=ldap,kdc',
    `pid directory=${dir}/run`,
    `ncalrpc dir=${dir}/ncalrpc`,
    `winbindd socket directory=${dir}/winbindd`,
    `ntp signd socket directory=${dir}/ntp`,
    `log file=${dir}/log/log.%m`,
  ];
  await runOk(SAMBA_TOOL, [
    'domain', 'provision', '-s', empty, `--targetdir=${dir}`, `--realm=${SAMBA_REALM}`, '--domain=PK', '--host-name=dc1',
    '--server-role=dc', '--dns-backend=NONE', `--adminpass=${ADMIN_PASSWORD}`, `--host-ip=${TEMPLATE_HOST}`,
    ...options.map((o) => `--option=${o}`),
  ], { timeoutMs: 180_000 });
  const p = SAMBA_TEMPLATE_POLICY;
  await runOk(SAMBA_TOOL, [
    'domain', 'passwordsettings', 'set', '-s', path.join(dir, 'etc/smb.conf'), `--complexity=${p.complexity ? 'on' : 'off'}`,
    `--history-length=${p.historyLength}`, `--min-pwd-length=${p.minPwdLength}`, `--min-pwd-age=${p.minPwdAgeDays}`,
    `--max-pwd-age=${p.maxPwdAgeDays}`, `--account-lockout-threshold=${p.lockoutThreshold}`,
    `--account-lockout-duration=${p.lockoutDurationMinutes}`, `--reset-account-lockout-after=${p.lockoutDurationMinutes}`,
  ]);
}

/** The template's smb.conf, moved to `runDir` and `host`, with TLS and the old-password window. */
function runConfig(template: string, templateDir: string, runDir: string, host: string, tls: { certFile: string; keyFile: string; caFile: string }, oldPasswordPeriod: number): string {
  const moved = template.split(templateDir).join(runDir).split(TEMPLATE_HOST).join(host);
  const extra = [
    'tls enabled = yes',
    `tls certfile = ${tls.certFile}`,
    `tls keyfile = ${tls.keyFile}`,
    `tls cafile = ${tls.caFile}`,
    `old password allowed period = ${oldPasswordPeriod}`,
  ].map((l) => `\t${l}`);
  return moved.replace(/^\[global\]$/m, `[global]\n${extra.join('\n')}`);
}

function ldapsClient(host: string, caPem: string): Client {
  return new Client({ url: `ldaps://${host}`, tlsOptions: { ca: [caPem] }, timeout: 10_000, connectTimeout: 5000 });
}

/** Installs Samba if needed and builds the cached domain template (global set-up calls it once). */
export async function ensureSambaTemplate(): Promise<string> {
  await ensureDirectories();
  return cachedTemplate(`samba-ad-${await sambaVersion()}`, buildTemplate);
}

export async function startSamba(options: StartSambaOptions = {}): Promise<SambaServer> {
  const templateDir = await ensureSambaTemplate();
  const address = claimLoopbackAddress({ first: 100, last: 179 }, { alias: true });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'provkey-samba-'));
  let proc: ForegroundProcess | undefined;
  try {
    const host = address.host;
    await cp(templateDir, path.join(dir, 'dc'), { recursive: true });
    const runDir = path.join(dir, 'dc');
    const certs = await generateRunCerts(path.join(dir, 'tls'), host);
    const conf = path.join(runDir, 'etc/smb.conf');
    await writeFile(conf, runConfig(await readFile(conf, 'utf8'), await builtAt(templateDir), runDir, host, certs, options.oldPasswordAllowedPeriod ?? 0));
    proc = new ForegroundProcess(SAMBA, ['-s', conf, '-i', '-M', 'single', `--option=log level=${options.countFailedBinds ? '1 dsdb_audit:5' : '1'}`], { dir });
    const ready = async () => {
      const client = ldapsClient(host, certs.caPem);
      try {
        const root = await client.search('', { scope: 'base', attributes: ['defaultNamingContext'] });
        return root.searchEntries.length === 1;
      } finally {
        await client.unbind().catch(() => undefined);
      }
    };
    await waitUntilReady(`samba on ${host}`, proc, ready, options.startupTimeoutMs ?? 30_000);
    const running = proc;
    const audit = options.countFailedBinds ? new BadPasswordAudit(running) : undefined;
    const adminDn = `CN=Administrator,${SAMBA_USERS_DN}`;
    const asAdmin = async <T>(work: (client: Client) => Promise<T>): Promise<T> => {
      const client = ldapsClient(host, certs.caPem);
      try {
        await client.bind(adminDn, ADMIN_PASSWORD);
        return await work(client);
      } finally {
        await client.unbind().catch(() => undefined);
      }
    };
    let stopped = false;
    return {
      host,
      ldapUrl: `ldap://${host}`,
      ldapsUrl: `ldaps://${host}`,
      caFile: certs.caFile,
      caPem: certs.caPem,
      baseDn: SAMBA_BASE_DN,
      usersDn: SAMBA_USERS_DN,
      adminDn,
      adminPassword: ADMIN_PASSWORD,
      dir,
      pid: running.child.pid!,
      createUser: (name, password) =>
        asAdmin(async (client) => {
          const dn = `CN=${name},${SAMBA_USERS_DN}`;
          await client.add(dn, {
            objectClass: ['top', 'person', 'organizationalPerson', 'user'],
            sAMAccountName: name,
            userPrincipalName: `${name}@pk.test`,
            unicodePwd: Buffer.from(`"${password}"`, 'utf16le'),
            userAccountControl: '512',
          });
          return dn;
        }),
      add: (dn, attributes) => asAdmin((client) => client.add(dn, attributes)),
      modify: (dn, changes) => asAdmin((client) => client.modify(dn, changes)),
      read: (dn, attributes) => asAdmin((client) => readAttributes(client, dn, attributes)),
      bindCode: async (dn, password) => {
        const client = ldapsClient(host, certs.caPem);
        try {
          await client.bind(dn, password);
          return { code: 0 };
        } catch (error) {
          const e = error as { code?: number; message?: string };
          const data = /data ([0-9a-f]+)/i.exec(e.message ?? '')?.[1];
          return { code: e.code ?? -1, ...(data ? { data } : {}) };
        } finally {
          await client.unbind().catch(() => undefined);
        }
      },
      countedFailures: async (dn) => {
        if (!audit) throw new Error('countedFailures needs startSamba({ countFailedBinds: true })');
        // Single process (-M single): the DC logs in order, so once the marker change is read every earlier line is too.
        const nonce = `provkey-log-marker-${randomBytes(8).toString('hex')}`;
        const seen = audit.awaitLine(nonce);
        await asAdmin(async (client) => {
          await client.add(`CN=${nonce},${SAMBA_USERS_DN}`, { objectClass: ['top', 'contact'] });
          await client.del(`CN=${nonce},${SAMBA_USERS_DN}`);
        });
        await seen;
        return audit.increments(dn);
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

/** Reads the DC's DSDB audit lines as they arrive: badPwdCount increments per DN, and awaited markers. */
class BadPasswordAudit {
  readonly #counts = new Map<string, number>();
  readonly #waiting = new Map<string, () => void>();
  #partial = '';

  constructor(proc: ForegroundProcess) {
    const read = (data: Buffer) => {
      const lines = (this.#partial + data.toString('utf8')).split('\n');
      this.#partial = lines.pop() ?? '';
      for (const line of lines) this.#line(line);
    };
    proc.child.stdout!.on('data', read);
    proc.child.stderr!.on('data', read);
  }

  #line(line: string): void {
    // DSDB Change [Modify] at [...] status [Success] ... DN [CN=x,...] attributes [replace: badPwdCount [1] replace: badPasswordTime [...]]
    const change = /DSDB Change \[Modify\].*? status \[Success\].*? DN \[([^\]]+)\] attributes \[.*?replace: badPwdCount \[(\d+)\]/.exec(line);
    if (change && Number(change[2]) > 0) {
      const dn = change[1]!.toLowerCase();
      this.#counts.set(dn, (this.#counts.get(dn) ?? 0) + 1);
    }
    for (const [nonce, resolve] of this.#waiting) {
      if (line.includes(nonce)) {
        this.#waiting.delete(nonce);
        resolve();
      }
    }
  }

  awaitLine(nonce: string, timeoutMs = 15_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(nonce);
        reject(new Error(`the DC did not log the marker ${nonce} within ${timeoutMs} ms (is dsdb_audit:5 on?)`));
      }, timeoutMs);
      this.#waiting.set(nonce, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  increments(dn: string): number {
    return this.#counts.get(dn.toLowerCase()) ?? 0;
  }
}

/** An attribute change, for callers that do not import ldapts themselves. */
export function replace(type: string, values: Array<string | Buffer>): Change {
  return new Change({ operation: 'replace', modification: new Attribute({ type, values }) });
}

export { CACHE_DIR };
