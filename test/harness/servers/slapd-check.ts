/**
 * Standalone demonstration of the real slapd behaviour provkey relies on.
 *
 *   /work/main/node_modules/.bin/node test/harness/servers/slapd-check.ts
 *
 * Starts a private slapd (test/harness/servers/slapd.ts), exercises it with
 * ldapts and prints result codes plus the decoded ppolicy response control.
 * Exits non-zero if any expectation fails.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Attribute, BerReader, BerWriter, Change, Client, Control } from 'ldapts';
import { generateCa, startSlapd, startSlapdReplica, waitForReplication } from './slapd.ts';
import type { SlapdServer } from './slapd.ts';

// ---------------------------------------------------------------------------
// ppolicy control (draft-behera-ldap-password-policy)
// ---------------------------------------------------------------------------

const PPOLICY_OID = '1.3.6.1.4.1.42.2.27.8.5.1';
const WHOAMI_OID = '1.3.6.1.4.1.4203.1.11.3';
const PASSWD_MODIFY_OID = '1.3.6.1.4.1.4203.1.11.1';
const RELAX_OID = '1.3.6.1.4.1.4203.666.5.12';

const PPOLICY_ERRORS = [
  'passwordExpired',
  'accountLocked',
  'changeAfterReset',
  'passwordModNotAllowed',
  'mustSupplyOldPassword',
  'insufficientPasswordQuality',
  'passwordTooShort',
  'passwordTooYoung',
  'passwordInHistory',
  'passwordTooLong',
];

interface PpolicyResponse {
  timeBeforeExpiration?: number;
  graceAuthNsRemaining?: number;
  error?: number;
  errorName?: string;
}

function readTlv(buf: Buffer, off: number): { tag: number; start: number; end: number } {
  const tag = buf[off]!;
  let len = buf[off + 1]!;
  let p = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  return { tag, start: p, end: p + len };
}

function readUInt(buf: Buffer, start: number, end: number): number {
  let v = 0;
  for (let i = start; i < end; i++) v = v * 256 + buf[i]!;
  return v;
}

export function decodePpolicyValue(value: Buffer): PpolicyResponse {
  const out: PpolicyResponse = {};
  if (value.length === 0) return out;
  const seq = readTlv(value, 0);
  let p = seq.start;
  while (p < seq.end) {
    const t = readTlv(value, p);
    if (t.tag === 0xa0) {
      const w = readTlv(value, t.start);
      const n = readUInt(value, w.start, w.end);
      if (w.tag === 0x80) out.timeBeforeExpiration = n;
      else if (w.tag === 0x81) out.graceAuthNsRemaining = n;
    } else if (t.tag === 0x81) {
      out.error = readUInt(value, t.start, t.end);
      out.errorName = PPOLICY_ERRORS[out.error] ?? `unknown(${out.error})`;
    }
    p = t.end;
  }
  return out;
}

/**
 * Request control (no value). ldapts' ControlParser hands a response control whose OID it does
 * not know to the *request* control instance with the same OID (`requestControls.find(...)`),
 * calling its parseControl(reader) with the control value — so the decoded response ends up on
 * this object, even when the operation fails and ldapts throws.
 */
class PasswordPolicyControl extends Control {
  received = false;
  response: PpolicyResponse | undefined;
  constructor() {
    super(PPOLICY_OID, { critical: false });
  }
  protected override parseControl(reader: BerReader): void {
    this.received = true;
    this.response = decodePpolicyValue(reader.remainingBuffer);
  }
}

class RelaxControl extends Control {
  constructor() {
    super(RELAX_OID, { critical: true });
  }
}

// RFC 3062 PasswdModifyRequestValue ::= SEQUENCE { userIdentity [0], oldPasswd [1], newPasswd [2] } (all OPTIONAL)
function passwdModifyValue(p: { user?: string; oldPassword?: string; newPassword: string }): Buffer {
  const w = new BerWriter();
  w.startSequence();
  if (p.user !== undefined) w.writeString(p.user, 0x80);
  if (p.oldPassword !== undefined) w.writeString(p.oldPassword, 0x81);
  w.writeString(p.newPassword, 0x82);
  w.endSequence();
  return w.buffer;
}

// ---------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------

let failures = 0;

interface Outcome {
  code: number;
  name: string;
  message: string;
  value?: unknown;
}

async function outcome<T>(fn: () => Promise<T>): Promise<Outcome> {
  try {
    const value = await fn();
    return { code: 0, name: 'success', message: '', value };
  } catch (err) {
    const e = err as Error & { code?: unknown };
    return { code: typeof e.code === 'number' ? e.code : -1, name: e.constructor?.name ?? 'Error', message: `${e.message}${typeof e.code === 'string' ? ` [${e.code}]` : ''}` };
  }
}

function show(label: string, o: Outcome, expectCode: number | 'error' | RegExp, ctl?: PasswordPolicyControl, extra?: string): void {
  const ok = expectCode instanceof RegExp ? expectCode.test(o.message) : expectCode === 'error' ? o.code !== 0 : o.code === expectCode;
  if (!ok) failures++;
  const parts = [`${ok ? 'PASS' : 'FAIL'} ${label}`, `  result: ${o.code} ${o.name}${o.message ? ` "${o.message}"` : ''}`];
  if (ctl) parts.push(`  ppolicy control: ${ctl.received ? JSON.stringify(ctl.response) : '(none returned)'}`);
  if (extra) parts.push(`  ${extra}`);
  if (!ok) parts.push(`  expected: ${expectCode}`);
  console.log(parts.join('\n'));
}

async function withClient<T>(url: string, caPem: string | undefined, startTls: boolean, fn: (c: Client) => Promise<T>): Promise<T> {
  // NB: ldapts switches to *implicit* TLS whenever ClientOptions.tlsOptions has any defined value,
  // even for an ldap:// URL — so for StartTLS the CA must only be passed to startTLS().
  const secure = url.startsWith('ldaps:');
  const c = new Client({ url, ...(secure && caPem ? { tlsOptions: { ca: [caPem] } } : {}), timeout: 5000, connectTimeout: 5000 });
  try {
    if (startTls) await c.startTLS({ ca: caPem ? [caPem] : [] });
    return await fn(c);
  } finally {
    await c.unbind().catch(() => {});
  }
}

async function bindOnce(srv: SlapdServer, dn: string, password: string, ctl?: PasswordPolicyControl, url = srv.ldapUrl): Promise<Outcome> {
  return outcome(() => withClient(url, srv.caPem, url.startsWith('ldap:'), (c) => c.bind(dn, password, ctl ? [ctl] : undefined)));
}

async function passwdModify(
  srv: SlapdServer,
  as: { dn: string; password: string },
  req: { user?: string; oldPassword?: string; newPassword: string },
  ctl: PasswordPolicyControl,
  extraControls: Control[] = [],
): Promise<Outcome> {
  return outcome(() =>
    withClient(srv.ldapUrl, srv.caPem, true, async (c) => {
      await c.bind(as.dn, as.password);
      return c.exop(PASSWD_MODIFY_OID, passwdModifyValue(req), [ctl, ...extraControls]);
    }),
  );
}

async function readOperational(srv: SlapdServer, as: { dn: string; password: string }, dn: string, attrs: string[]): Promise<Record<string, unknown>> {
  return withClient(srv.ldapUrl, srv.caPem, true, async (c) => {
    await c.bind(as.dn, as.password);
    const r = await c.search(dn, { scope: 'base', attributes: attrs });
    const e = r.searchEntries[0] ?? {};
    return Object.fromEntries(attrs.map((a) => [a, (e as Record<string, unknown>)[a]]));
  });
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

const started = Date.now();
const srv = await startSlapd();
console.log(`slapd up in ${Date.now() - started} ms: ${srv.ldapUrl}  ${srv.ldapsUrl}  dir=${srv.dir} pid=${srv.pid}\n`);

const wrongCaDir = await mkdtemp(path.join(os.tmpdir(), 'provkey-wrongca-'));
let replica: SlapdServer | undefined;
try {
  const service = { dn: srv.serviceDn, password: srv.servicePassword };
  const pkadmin = { dn: srv.provkeyAdminDn, password: srv.provkeyAdminPassword };

  // 1. StartTLS bind + Who-am-I
  {
    const o = await outcome(() =>
      withClient(srv.ldapUrl, srv.caPem, true, async (c) => {
        await c.bind(service.dn, service.password);
        return c.exop(WHOAMI_OID);
      }),
    );
    show('StartTLS (CA trusted) bind as service account + Who-am-I', o, 0, undefined, `whoami: ${JSON.stringify(o.value)}`);
  }
  // 2. ldaps
  {
    const o = await outcome(() =>
      withClient(srv.ldapsUrl, srv.caPem, false, async (c) => {
        await c.bind(service.dn, service.password);
        return c.exop(WHOAMI_OID);
      }),
    );
    show('ldaps:// bind as service account + Who-am-I', o, 0, undefined, `whoami: ${JSON.stringify(o.value)}`);
  }
  // 3. wrong CA
  {
    const wrong = await generateCa(wrongCaDir, 'wrong CA');
    const o1 = await outcome(() => withClient(srv.ldapUrl, wrong.caPem, true, (c) => c.bind(service.dn, service.password)));
    const certErr = /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/;
    show('StartTLS with a wrong CA is rejected', o1, certErr);
    const o2 = await outcome(() => withClient(srv.ldapsUrl, wrong.caPem, false, (c) => c.bind(service.dn, service.password)));
    show('ldaps:// with a wrong CA is rejected', o2, certErr);
    const o3 = await outcome(() => withClient(srv.ldapsUrl, undefined, false, (c) => c.bind(service.dn, service.password)));
    show('ldaps:// with default (system) trust is rejected', o3, certErr);
    const o4 = await outcome(() => withClient(srv.ldapUrl, undefined, true, (c) => c.bind(service.dn, service.password)));
    show('StartTLS with default (system) trust is rejected', o4, certErr);
  }
  // 4. search under ou=people, the policy entry
  {
    const o = await outcome(() =>
      withClient(srv.ldapUrl, srv.caPem, true, async (c) => {
        await c.bind(service.dn, service.password);
        const people = await c.search(srv.peopleDn, { scope: 'one', filter: '(objectClass=inetOrgPerson)', attributes: ['uid', 'mail'] });
        const pol = await c.search(srv.policyDn, { scope: 'base', attributes: ['pwdMinLength', 'pwdInHistory', 'pwdMaxFailure', 'pwdMaxAge'] });
        const denied = await c.search(srv.provkeyAdminDn, { scope: 'base' }).then(
          (r) => `${r.searchEntries.length} entries`,
          (e: Error & { code?: number }) => `${e.code} ${e.constructor.name}`,
        );
        return { people: people.searchEntries.map((e) => `${e.dn} uid=${String(e.uid)}`), policy: pol.searchEntries[0], readOtherServiceEntry: denied };
      }),
    );
    show('service account searches ou=people and reads the policy', o, 0, undefined, JSON.stringify(o.value));
  }
  // 5. pwdChangedTime readable
  {
    const o = await outcome(() => readOperational(srv, service, srv.serviceDn, ['pwdChangedTime', 'pwdPolicySubentry', 'pwdHistory']));
    show('service account reads its own pwdChangedTime', o, 0, undefined, JSON.stringify(o.value));
  }

  // 6. self change old -> new (RFC 3062 with oldPasswd + newPasswd)
  const original = srv.servicePassword;
  const second = 'Rotated-Secret-0001-abcdefgh';
  {
    const ctl = new PasswordPolicyControl();
    const o = await passwdModify(srv, service, { user: srv.serviceDn, oldPassword: original, newPassword: second }, ctl);
    show('self password modify old->new (28 chars)', o, 0, ctl, `exop response: ${JSON.stringify(o.value)}`);
  }
  show('new password binds', await bindOnce(srv, srv.serviceDn, second), 0);
  show('old password no longer binds', await bindOnce(srv, srv.serviceDn, original), 49);
  {
    const o = await outcome(() => readOperational(srv, { dn: srv.serviceDn, password: second }, srv.serviceDn, ['pwdChangedTime', 'pwdHistory', 'userPassword']));
    show('pwdChangedTime after self change (userPassword not readable by self: "self write" includes read? shown below)', o, 0, undefined, JSON.stringify(o.value));
  }
  // 7. back to a history password
  {
    const ctl = new PasswordPolicyControl();
    const o = await passwdModify(srv, { dn: srv.serviceDn, password: second }, { oldPassword: second, newPassword: original }, ctl);
    show('self change back to previous (history) password', o, 19, ctl);
  }
  {
    const ctl = new PasswordPolicyControl();
    const o = await passwdModify(srv, { dn: srv.serviceDn, password: second }, { oldPassword: second, newPassword: second }, ctl);
    show('self change to the current password', o, 19, ctl);
  }
  // 8. too short
  {
    const ctl = new PasswordPolicyControl();
    const o = await passwdModify(srv, { dn: srv.serviceDn, password: second }, { oldPassword: second, newPassword: 'short-pw' }, ctl);
    show('self change to an 8-char password', o, 19, ctl);
  }
  // wrong oldPasswd (pwdSafeModify FALSE)
  {
    const ctl = new PasswordPolicyControl();
    const o = await passwdModify(srv, { dn: srv.serviceDn, password: second }, { oldPassword: 'not-the-old-password', newPassword: 'Another-Long-Secret-0002-xyz' }, ctl);
    show('self change with a WRONG oldPasswd', o, 'error', ctl);
  }
  // self change via plain LDAP modify (replace userPassword, cleartext -> hashed by ppolicy_hash_cleartext)
  const third = 'Plain-Modify-Secret-0003-abc';
  {
    const ctl = new PasswordPolicyControl();
    const o = await outcome(() =>
      withClient(srv.ldapUrl, srv.caPem, true, async (c) => {
        await c.bind(srv.serviceDn, second);
        await c.modify(srv.serviceDn, [new Change({ operation: 'replace', modification: new Attribute({ type: 'userPassword', values: [third] }) })], [ctl]);
      }),
    );
    show('self change via LDAP modify replace userPassword', o, 0, ctl);
    const stored = await outcome(() => readOperational(srv, { dn: srv.adminDn, password: srv.adminPassword }, srv.serviceDn, ['userPassword']));
    show('stored userPassword is hashed (read as rootdn)', stored, 0, undefined, JSON.stringify(stored.value));
  }

  // 9. admin reset by cn=provkey-admin (default provkeyAdminAccess 'manage')
  const fourth = 'Admin-Reset-Secret-0004-abcd';
  {
    const ctl = new PasswordPolicyControl();
    const o = await passwdModify(srv, pkadmin, { user: srv.serviceDn, newPassword: fourth }, ctl);
    show('admin reset by cn=provkey-admin (userIdentity + newPasswd, no oldPasswd)', o, 0, ctl);
  }
  show('password before the admin reset no longer binds', await bindOnce(srv, srv.serviceDn, third), 49);
  {
    const ctl = new PasswordPolicyControl();
    show('admin-reset password binds (ppolicy control requested)', await bindOnce(srv, srv.serviceDn, fourth, ctl), 0, ctl);
  }
  {
    const o = await outcome(() => readOperational(srv, pkadmin, srv.serviceDn, ['pwdChangedTime', 'pwdReset', 'pwdHistory']));
    show('provkey-admin reads pwdChangedTime/pwdReset/pwdHistory', o, 0, undefined, JSON.stringify(o.value));
  }
  {
    const ctl = new PasswordPolicyControl();
    const o = await passwdModify(srv, pkadmin, { user: srv.peopleEntries[0]!, newPassword: 'People-Reset-Secret-0005' }, ctl);
    show('provkey-admin reset of a person entry is denied', o, 50, ctl);
  }
  {
    const ctl = new PasswordPolicyControl();
    const o = await passwdModify(srv, service /* original, stale */, { newPassword: 'x'.repeat(20) }, ctl);
    show('password modify attempt with stale service credentials (bind fails first)', o, 49, ctl);
  }

  // 10. lockout after pwdMaxFailure (5) — start from a clean failure counter (a successful bind clears pwdFailureTime)
  const current = fourth;
  show('successful bind (clears pwdFailureTime)', await bindOnce(srv, srv.serviceDn, current), 0);
  {
    const codes: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const ctl = new PasswordPolicyControl();
      const o = await bindOnce(srv, srv.serviceDn, `wrong-password-${i}`, ctl);
      codes.push(`#${i}:${o.code}${ctl.received ? JSON.stringify(ctl.response) : ''}`);
    }
    console.log(`INFO  5 wrong binds -> ${codes.join(' ')}`);
    const ctl = new PasswordPolicyControl();
    const o = await bindOnce(srv, srv.serviceDn, current, ctl);
    show('correct password after 5 failures -> locked', o, 49, ctl);
    const ctl2 = new PasswordPolicyControl();
    const o2 = await bindOnce(srv, srv.serviceDn, current, ctl2, srv.ldapsUrl);
    show('locked bind over ldaps too', o2, 49, ctl2);
    const st = await outcome(() => readOperational(srv, pkadmin, srv.serviceDn, ['pwdAccountLockedTime', 'pwdFailureTime']));
    show('provkey-admin reads pwdAccountLockedTime', st, 0, undefined, JSON.stringify(st.value));
    const un = await outcome(() =>
      withClient(srv.ldapUrl, srv.caPem, true, async (c) => {
        await c.bind(pkadmin.dn, pkadmin.password);
        await c.modify(srv.serviceDn, [new Change({ operation: 'delete', modification: new Attribute({ type: 'pwdAccountLockedTime', values: [] }) })]);
      }),
    );
    show('provkey-admin unlocks (LDAP modify delete pwdAccountLockedTime, no Relax control)', un, 0);
    if (un.code !== 0) {
      const un2 = await outcome(() =>
        withClient(srv.ldapUrl, srv.caPem, true, async (c) => {
          await c.bind(pkadmin.dn, pkadmin.password);
          await c.modify(srv.serviceDn, [new Change({ operation: 'delete', modification: new Attribute({ type: 'pwdAccountLockedTime', values: [] }) })], [new RelaxControl()]);
        }),
      );
      show('provkey-admin unlocks (delete pwdAccountLockedTime WITH Relax control)', un2, 0);
    }
    show('bind works again after unlock', await bindOnce(srv, srv.serviceDn, current), 0);
    // lock again, then an admin password reset: does it clear the lock?
    for (let i = 1; i <= 5; i++) await bindOnce(srv, srv.serviceDn, `wrong-again-${i}`);
    const fifth = 'Reset-After-Lock-0005-abcdef';
    const r = await passwdModify(srv, pkadmin, { user: srv.serviceDn, newPassword: fifth }, new PasswordPolicyControl());
    show('admin reset of a locked account', r, 0);
    const ctl3 = new PasswordPolicyControl();
    const o3 = await bindOnce(srv, srv.serviceDn, fifth, ctl3);
    show('bind with the reset password on the (previously) locked account', o3, o3.code === 0 ? 0 : 49, ctl3, o3.code === 0 ? 'reset cleared the lock' : 'reset did NOT clear the lock');
    if (o3.code !== 0) await srv.modify(srv.serviceDn, 'delete: pwdAccountLockedTime\n');
  }
  const live = 'Reset-After-Lock-0005-abcdef';

  // 11. password administrator semantics: 'manage' (default) vs 'write'
  {
    const ctl = new PasswordPolicyControl();
    const o = await passwdModify(srv, pkadmin, { user: srv.serviceDn, newPassword: 'short' }, ctl);
    show("admin ('manage') reset to a 5-char password is ACCEPTED (password administrator bypasses quality)", o, 0, ctl);
    const ctl2 = new PasswordPolicyControl();
    const o2 = await passwdModify(srv, pkadmin, { user: srv.serviceDn, newPassword: live }, ctl2);
    show("admin ('manage') reset to a history password is ACCEPTED", o2, 0, ctl2);
    const w = await startSlapd({ provkeyAdminAccess: 'write' });
    try {
      const wadmin = { dn: w.provkeyAdminDn, password: w.provkeyAdminPassword };
      const c1 = new PasswordPolicyControl();
      show("admin ('write') reset to a 5-char password", await passwdModify(w, wadmin, { user: w.serviceDn, newPassword: 'short' }, c1), 19, c1);
      const c2 = new PasswordPolicyControl();
      show("admin ('write') reset to a 20-char password", await passwdModify(w, wadmin, { user: w.serviceDn, newPassword: 'Write-Admin-Reset-0001-abc' }, c2), 0, c2);
      const c3 = new PasswordPolicyControl();
      show("admin ('write') reset to a history password", await passwdModify(w, wadmin, { user: w.serviceDn, newPassword: w.servicePassword }, c3), 19, c3);
    } finally {
      await w.stop();
    }
  }

  // 12. rootdn modify helper
  {
    const o = await outcome(() => srv.modify(srv.serviceDn, 'replace: description\ndescription: modified by helper\n'));
    show('srv.modify() helper (LDIF) as rootdn', o, 0);
    const o2 = await outcome(() =>
      srv.modify(srv.serviceDn, [new Change({ operation: 'replace', modification: new Attribute({ type: 'description', values: ['modified via Change[]'] }) })]),
    );
    show('srv.modify() helper (ldapts Change[]) as rootdn', o2, 0);
  }

  // 13. replica (syncrepl)
  {
    const t0 = Date.now();
    replica = await startSlapdReplica(srv);
    console.log(`INFO  replica up (caught up) in ${Date.now() - t0} ms: ${replica.ldapUrl} ${replica.ldapsUrl}`);
    show('service account binds on replica with the CURRENT password (StartTLS, primary CA)', await bindOnce(replica, srv.serviceDn, live), 0);
    const next = 'Replicated-Secret-0006-abcdef';
    const o = await passwdModify(srv, { dn: srv.serviceDn, password: live }, { oldPassword: live, newPassword: next }, new PasswordPolicyControl());
    show('self change on primary', o, 0);
    const t1 = Date.now();
    let seen = -1;
    while (Date.now() - t1 < 10_000) {
      if ((await bindOnce(replica, srv.serviceDn, next)).code === 0) {
        seen = Date.now() - t1;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    show('new password accepted by replica', { code: seen >= 0 ? 0 : 49, name: seen >= 0 ? `after ${seen} ms` : 'not replicated', message: '' }, 0);
    show('old password rejected by replica', await bindOnce(replica, srv.serviceDn, live), 49);
    const w = await passwdModify(replica, { dn: srv.serviceDn, password: next }, { oldPassword: next, newPassword: 'Write-To-Replica-0007-abc' }, new PasswordPolicyControl());
    show('password modify sent to the replica (read-only consumer)', w, 'error');
    await srv.modify(srv.serviceDn, 'replace: description\ndescription: sync me\n');
    const t2 = Date.now();
    const wr = await outcome(() => waitForReplication(srv, replica!, 5000));
    show('waitForReplication(primary, replica)', wr, 0, undefined, `${Date.now() - t2} ms`);
    const cl = await startSlapdReplica(srv, { mode: 'clone' });
    try {
      show('clone: initial service password binds (independent copy)', await bindOnce(cl, srv.serviceDn, srv.servicePassword), 0);
      show('clone: primary\'s rotated password does not', await bindOnce(cl, srv.serviceDn, next), 49);
    } finally {
      await cl.stop();
    }
  }
} finally {
  await replica?.stop();
  await srv.stop();
  await rm(wrongCaDir, { recursive: true, force: true });
}
console.log(`\n${failures === 0 ? 'ALL CHECKS PASSED' : `${failures} CHECK(S) FAILED`} (${Date.now() - started} ms)`);
process.exitCode = failures === 0 ? 0 : 1;
