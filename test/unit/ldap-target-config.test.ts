// The LDAP target's config rules, wire encoding and judgements, without a server: URLs and
// the TLS rule, admin credentials each mode needs, RFC 3062 BER, result codes, verdicts,
// the failed-bind guard, the replication state. The real-server behaviour is in test/integration/ldap-target.test.ts.

import { tmpdir } from 'node:os';
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { targetSchema, type LdapTargetConfig } from '../../src/config/schema.js';
import { ConfigError } from '../../src/core/errors.js';
import { isLoopbackHost } from '../../src/core/loopback.js';
import type { AdapterContext } from '../../src/stores/context.js';
import { FailedBindGuard } from '../../src/targets/ldap/bind-guard.js';
import { parseLdapServers } from '../../src/targets/ldap/connection.js';
import { createLdapTarget } from '../../src/targets/ldap/ldap-target.js';
import { encodePasswordModifyRequest } from '../../src/targets/ldap/password-modify.js';
import { combineVerdicts, judgeBind, verdictOfFailure } from '../../src/targets/ldap/probes.js';
import { notBefore, ReplicaStates } from '../../src/targets/ldap/replication.js';
import { applyFailure, classifyLdapError, describeResultCode } from '../../src/targets/ldap/result-codes.js';

const context: AdapterContext = {
  configDir: tmpdir(),
  env: {},
  resolveSecret: async () => {
    throw new Error('no I/O at creation');
  },
  debug: () => undefined,
};

function config(fields: Record<string, unknown>): LdapTargetConfig {
  const parsed = v.parse(targetSchema, {
    type: 'ldap',
    urls: ['ldaps://ldap.example.com'],
    bindDn: 'cn=provisioner,ou=services,dc=example,dc=com',
    searchBase: 'ou=people,dc=example,dc=com',
    ...fields,
  });
  if (parsed.type !== 'ldap') throw new Error('not ldap');
  return parsed;
}

const create = (fields: Record<string, unknown>) => createLdapTarget('prov', config(fields), context);

describe('LDAP URLs and the TLS rule', () => {
  const rules = { startTls: true, allowPlain: false };

  it('ldaps:// and ldap:// with StartTLS are fine anywhere; ports default to 636 / 389', () => {
    expect(parseLdapServers(['ldaps://ldap1.example.com', 'ldap://ldap2.example.com:1389/'], rules, 'f')).toEqual([
      { url: 'ldaps://ldap1.example.com', host: 'ldap1.example.com', port: 636, security: 'ldaps' },
      { url: 'ldap://ldap2.example.com:1389', host: 'ldap2.example.com', port: 1389, security: 'starttls' },
    ]);
    expect(parseLdapServers(['ldap://[::1]:389'], rules, 'f')[0]).toMatchObject({ host: '::1', security: 'starttls' });
  });

  it('plain ldap:// is refused to a non-loopback host unless allowPlain says so', () => {
    const plain = { startTls: false, allowPlain: false };
    expect(() => parseLdapServers(['ldap://ldap.example.com'], plain, 'keys.k.target.urls')).toThrow(ConfigError);
    expect(() => parseLdapServers(['ldaps://ok.example.com', 'ldap://10.0.0.5'], plain, 'keys.k.target.urls')).toThrow(
      /^keys\.k\.target\.urls\.1: ldap:\/\/10\.0\.0\.5 without StartTLS sends the bind password in plain text .*allowPlain: true$/,
    );
    expect(parseLdapServers(['ldap://ldap.example.com'], { startTls: false, allowPlain: true }, 'f')[0]!.security).toBe('plain');
    for (const host of ['127.0.0.1', 'localhost', '[::1]', '127.8.9.10']) {
      expect(parseLdapServers([`ldap://${host}:389`], plain, 'f')[0]!.security).toBe('plain');
    }
    expect(isLoopbackHost('128.0.0.1')).toBe(false);
  });

  it('refuses what an LDAP URL must not carry here', () => {
    expect(() => parseLdapServers(['ldaps://cn=admin:secret@ldap.example.com'], rules, 'f')).toThrow(/^f\.0: must not contain credentials/);
    expect(() => parseLdapServers(['ldaps://ldap.example.com/dc=example,dc=com'], rules, 'f')).toThrow(/searchBase/);
    expect(() => parseLdapServers(['https://ldap.example.com'], rules, 'f')).toThrow(/scheme https: is not supported/);
    expect(() => parseLdapServers(['ldap.example.com'], rules, 'f')).toThrow(/not an LDAP URL/);
  });
});

describe('createLdapTarget: config checks, no I/O', () => {
  it('plain LDAP to another host fails at config time, naming the url', async () => {
    await expect(create({ urls: ['ldap://ldap.example.com'], startTls: false })).rejects.toThrow(/^keys\.prov\.target\.urls\.0: /);
    await expect(create({ urls: ['ldap://ldap.example.com'], startTls: false, allowPlain: true })).resolves.toBeDefined();
  });

  it('every path that needs an admin credential says so', async () => {
    await expect(create({ apply: { mode: 'admin' } })).rejects.toThrow(/^keys\.prov\.target\.apply\.adminDn: apply\.mode admin needs an admin credential/);
    await expect(create({ rollback: 'admin-reset' })).rejects.toThrow(/^keys\.prov\.target\.rollback: rollback: admin-reset needs an admin credential/);
    await expect(create({ revoke: { lockAccount: true } })).rejects.toThrow(/^keys\.prov\.target\.revoke\.lockAccount: /);
    await expect(create({ apply: { mode: 'self', adminDn: 'cn=admin,dc=example,dc=com' } })).rejects.toThrow(/apply\.adminPasswordRef: required with apply\.adminDn/);
    await expect(create({ apply: { mode: 'self', adminPasswordRef: 'env:X' } })).rejects.toThrow(/apply\.adminDn: required with apply\.adminPasswordRef/);
    const full = { mode: 'admin', adminDn: 'cn=provkey-admin,ou=services,dc=example,dc=com', adminPasswordRef: 'env:LDAP_ADMIN' };
    await expect(create({ apply: full, rollback: 'admin-reset', revoke: { lockAccount: true } })).resolves.toBeDefined();
  });

  it('durations and DNs', async () => {
    await expect(create({ timeout: '10' })).rejects.toThrow(/^keys\.prov\.target\.timeout: is not a duration/);
    await expect(create({ passwordPolicy: { maxAge: 'soon' } })).rejects.toThrow(/passwordPolicy\.maxAge/);
    await expect(create({ bindDn: ' ' })).rejects.toThrow(/bindDn: required \(the service account's DN\), or accounts/);
  });

  it('capabilities: no overlap, a costly negative probe, the propagation timeout', async () => {
    const target = await create({ propagationTimeout: '45s' });
    expect(target.capabilities).toEqual({ overlap: false, negativeProbe: 'costly', propagationTimeoutMs: 45_000 });
    expect(target.type).toBe('ldap');
  });
});

describe('RFC 3062 request value', () => {
  it('encodes userIdentity [0], oldPasswd [1], newPasswd [2], newPasswd always', () => {
    const self = encodePasswordModifyRequest({ user: 'cn=a', oldPassword: 'old', newPassword: 'new' });
    // SEQUENCE(16) { [0] "cn=a", [1] "old", [2] "new" }
    expect(self.toString('hex')).toBe('3010' + '8004636e3d61' + '81036f6c64' + '82036e6577');
    const admin = encodePasswordModifyRequest({ user: 'cn=a', newPassword: 'new' });
    expect(admin.toString('hex')).toBe('300b' + '8004636e3d61' + '82036e6577');
    expect(encodePasswordModifyRequest({ newPassword: 'new' }).toString('hex')).toBe('3005' + '82036e6577');
  });
});

describe('result codes', () => {
  const scrub = (text: string) => text.replaceAll('hunter2-secret', '[secret]');

  it('maps the codes a directory answers to kinds and one line', () => {
    expect(describeResultCode(49)).toEqual({ kind: 'rejected', status: 49, detail: '49 invalidCredentials' });
    expect(describeResultCode(49, '', { error: 1, errorName: 'accountLocked' }).detail).toMatch(/^49 invalidCredentials \(ppolicy: accountLocked\): the account is locked/);
    expect(describeResultCode(49, '', { error: 0, errorName: 'passwordExpired' }).detail).toMatch(/has expired \(pwdMaxAge\)/);
    expect(describeResultCode(19, 'Password is in history of old passwords', { error: 8, errorName: 'passwordInHistory' })).toEqual({
      kind: 'policy',
      status: 19,
      detail: '19 constraintViolation (ppolicy: passwordInHistory): the new password is one of the last pwdInHistory passwords',
    });
    expect(describeResultCode(50, 'no write access to parent')).toEqual({ kind: 'denied', status: 50, detail: '50 insufficientAccessRights: no write access to parent' });
    expect(describeResultCode(53, 'shadow context; no update referral')).toEqual({
      kind: 'error',
      status: 53,
      detail: '53 unwillingToPerform: shadow context; no update referral',
    });
    expect(describeResultCode(52).kind).toBe('unreachable');
    // slapd's answer to a change that sets the value the entry already has (recorded from 2.5):
    // the directory holds it; the ppolicy error it comes with (passwordInHistory) is not the story.
    expect(describeResultCode(19, 'Password is not being changed from existing value', { error: 8, errorName: 'passwordInHistory' })).toEqual({
      kind: 'policy',
      status: 19,
      detail: '19 constraintViolation: the directory already holds this password ("Password is not being changed from existing value")',
      alreadyHeld: true,
    });
    expect(describeResultCode(99).detail).toBe('99 resultCode99');
  });

  it('turns a failure into the ApplyResult reason the engine reports: 19 policy, 49/50 denied', () => {
    expect(applyFailure(describeResultCode(19, '', { error: 8, errorName: 'passwordInHistory' }), 'self change refused')).toEqual({
      ok: false,
      reason: 'policy',
      detail: 'self change refused: 19 constraintViolation (ppolicy: passwordInHistory): the new password is one of the last pwdInHistory passwords',
    });
    expect(applyFailure(describeResultCode(49), 'bind failed').reason).toBe('denied');
    expect(applyFailure(describeResultCode(50), 'reset refused').reason).toBe('denied');
    expect(applyFailure(describeResultCode(53), 'x').reason).toBe('error');
    expect(applyFailure({ kind: 'unreachable', status: 'ECONNREFUSED', detail: 'cannot reach the server (ECONNREFUSED)' }, 'x').reason).toBe('unreachable');
    // Not the directory we trust: as good as not reached, never a refusal.
    expect(applyFailure({ kind: 'tls', status: 'CERT_HAS_EXPIRED', detail: 'TLS' }, 'x').reason).toBe('unreachable');
    expect(verdictOfFailure({ kind: 'tls', status: 'CERT_HAS_EXPIRED', detail: 'TLS' })).toBe('unreachable');
    expect(verdictOfFailure({ kind: 'unreachable', status: 'ECONNREFUSED', detail: 'x' })).toBe('unreachable');
  });

  it('classifies what ldapts and the socket throw, and scrubs server messages', () => {
    const ldapts = Object.assign(new Error('Password fails quality checking policy hunter2-secret Code: 0x13'), { code: 19 });
    expect(classifyLdapError(ldapts, scrub, { error: 6, errorName: 'passwordTooShort' })).toEqual({
      kind: 'policy',
      status: 19,
      detail: '19 constraintViolation (ppolicy: passwordTooShort): the new password is shorter than pwdMinLength',
    });
    expect(classifyLdapError(Object.assign(new Error('odd hunter2-secret Code: 0x50'), { code: 80 }), scrub).detail).toBe('80 other: odd [secret]');
    expect(classifyLdapError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), scrub)).toMatchObject({ kind: 'unreachable', status: 'ECONNREFUSED' });
    expect(classifyLdapError(Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }), scrub)).toEqual({
      kind: 'tls',
      status: 'SELF_SIGNED_CERT_IN_CHAIN',
      detail: 'TLS: the server certificate is not signed by a trusted CA: set tls.caFile to the CA that issued it (SELF_SIGNED_CERT_IN_CHAIN)',
    });
    expect(classifyLdapError(Object.assign(new Error('x'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }), scrub).detail).toMatch(/tls\.serverName/);
    expect(classifyLdapError(new Error('BindRequest: Operation timed out'), scrub)).toMatchObject({ kind: 'unreachable', status: 'timeout' });
    expect(classifyLdapError(new Error('Connection closed before message response was received.'), scrub)).toMatchObject({ kind: 'unreachable', status: 'closed' });
  });
});

describe('verdicts', () => {
  it('accepting needs every server; one server still accepting defeats a rejection', () => {
    expect(combineVerdicts(['accepted', 'accepted'], 'accept')).toBe('accepted');
    expect(combineVerdicts(['accepted', 'rejected'], 'accept')).toBe('rejected');
    expect(combineVerdicts(['accepted', 'unreachable'], 'accept')).toBe('unreachable');
    expect(combineVerdicts(['rejected', 'rejected'], 'reject')).toBe('rejected');
    expect(combineVerdicts(['rejected', 'accepted'], 'reject')).toBe('accepted');
    expect(combineVerdicts(['rejected', 'error'], 'reject')).toBe('error');
  });

  it('judges a bind against the expectation', () => {
    expect(judgeBind({ ok: true, ms: 3 }, 'accept')).toEqual({ verdict: 'accepted', probe: { name: 'bind', outcome: 'pass', status: 0, ms: 3 } });
    expect(judgeBind({ ok: true, ms: 3 }, 'reject').probe).toMatchObject({ outcome: 'fail', detail: 'the server still accepts this password' });
    const rejected = { ok: false, ms: 2, failure: describeResultCode(49) };
    expect(judgeBind(rejected, 'reject')).toEqual({ verdict: 'rejected', probe: { name: 'bind', outcome: 'pass', status: 49, ms: 2, detail: '49 invalidCredentials' } });
    expect(judgeBind(rejected, 'accept').probe.outcome).toBe('fail');
    // An expired password on a grace login: accepted, but the test fails and says to rotate.
    const grace = judgeBind({ ok: true, ms: 1, ppolicy: { graceAuthNsRemaining: 1 } }, 'accept');
    expect(grace.verdict).toBe('accepted');
    expect(grace.probe).toMatchObject({ outcome: 'fail', detail: expect.stringMatching(/EXPIRED.*1 left; rotate now/) });
    expect(judgeBind({ ok: true, ms: 1, ppolicy: { timeBeforeExpiration: 90_000 } }, 'accept').probe).toMatchObject({ outcome: 'pass', detail: 'the password expires in 1d (pwdMaxAge)' });
  });
});

describe('failed-bind guard', () => {
  it('paces a rejected password per server and stops at the budget; a success resets it', () => {
    const guard = new FailedBindGuard(() => 2, 1000);
    expect(guard.check(1, 'a', 0)).toEqual({ ok: true });
    guard.failed(1, 'a', 0);
    expect(guard.check(1, 'a', 500)).toMatchObject({ ok: false, reason: expect.stringMatching(/at most once a second/) });
    expect(guard.check(1, 'b', 500)).toEqual({ ok: true });
    expect(guard.check(0, 'a', 500)).toEqual({ ok: true });
    expect(guard.check(1, 'a', 1000)).toEqual({ ok: true });
    guard.failed(1, 'a', 1000);
    expect(guard.check(1, 'a', 5000)).toMatchObject({ ok: false, reason: expect.stringMatching(/2 failed bind\(s\) in a row .* stops at 2/) });
    guard.succeeded(1);
    expect(guard.check(1, 'a', 5000)).toEqual({ ok: true });
    expect(guard.streak(1)).toBe(0);
  });
});

describe('failed-bind guard after a proven arrival', () => {
  it('lets the one bind with the new password through at the budget, never past it', () => {
    // pwdMaxFailure 3: budget 1. The previous password's 49 on a replica proved the change.
    const guard = new FailedBindGuard(() => 1, 1000);
    guard.failed(1, 'previous', 0);
    expect(guard.check(1, 'next', 0)).toMatchObject({ ok: false, reason: expect.stringMatching(/stops at 1/) });
    expect(guard.check(1, 'next', 0, { changeArrived: true })).toEqual({ ok: true });
    // If that bind fails too, nothing more is tried.
    guard.failed(1, 'next', 0);
    expect(guard.check(1, 'next', 5000, { changeArrived: true })).toMatchObject({ ok: false, reason: expect.stringMatching(/2 failed bind\(s\) in a row/) });
    // Pacing still applies to a password that just failed.
    const paced = new FailedBindGuard(() => 3, 1000);
    paced.failed(1, 'next', 0);
    expect(paced.check(1, 'next', 10, { changeArrived: true })).toMatchObject({ ok: false, reason: expect.stringMatching(/once a second/) });
  });
});

describe('replication state (entryCSN)', () => {
  const mark = '20261123002815.810533Z#000000#000#000000';

  it('a replica has the change at the change\'s entryCSN or a later one', () => {
    expect(notBefore(mark, mark)).toBe(true);
    expect(notBefore('20261123002815.810534Z#000000#000#000000', mark)).toBe(true);
    expect(notBefore('20261123002815.810533Z#000001#000#000000', mark)).toBe(true);
    expect(notBefore('20261123002816.000000Z#000000#000#000000', mark)).toBe(true);
    expect(notBefore('20261123002815.562259Z#000000#000#000000', mark)).toBe(false);
    expect(notBefore('20251231235959.999999Z#000000#001#000000', mark)).toBe(false);
  });

  it('what a server held at an entryCSN: a proven state replaces an assumed one, otherwise the first word stands', () => {
    const states = new ReplicaStates();
    states.know(1, mark, 'sha256:current', false);
    states.know(1, mark, 'sha256:next', false);
    expect(states.get(1, mark)).toEqual({ fingerprint: 'sha256:current', proven: false });
    states.know(1, mark, 'sha256:seen', true);
    expect(states.get(1, mark)).toEqual({ fingerprint: 'sha256:seen', proven: true });
    states.know(1, mark, 'sha256:other', false);
    expect(states.get(1, mark)).toEqual({ fingerprint: 'sha256:seen', proven: true });
    expect(states.get(2, mark)).toBeUndefined();
  });
});

describe('two-account keys (accounts: [A, B]): config checks and the account a new version goes to, no I/O', () => {
  const blue = 'cn=svc-blue,ou=services,dc=example,dc=com';
  const green = 'cn=svc-green,ou=services,dc=example,dc=com';
  const admin = { mode: 'admin', adminDn: 'cn=provkey-admin,dc=example,dc=com', adminPasswordRef: 'env:ADMIN' };
  const create = (fields: Record<string, unknown>) => createLdapTarget('prov', config({ bindDn: undefined, apply: admin, ...fields }), context);

  it('refuses one, three, equal or non-DN accounts, a bindDn beside them, and self mode', async () => {
    expect(() => config({ accounts: [blue] })).toThrow(/exactly two account DNs/);
    expect(() => config({ accounts: [blue, green, blue] })).toThrow(/exactly two account DNs/);
    expect(() => config({ accounts: [blue, 'x'.repeat(1025)] })).toThrow();
    await expect(create({ accounts: [blue, ' CN=svc-blue , ou=services,dc=example,dc=com'] })).rejects.toThrow(/^keys\.prov\.target\.accounts: the two accounts must be different DNs$/);
    await expect(create({ accounts: [blue, 'svc-green'] })).rejects.toThrow(/^keys\.prov\.target\.accounts\.1: not a DN/);
    await expect(create({ accounts: [blue, green], bindDn: blue })).rejects.toThrow(/^keys\.prov\.target\.bindDn: leave it out with accounts/);
    await expect(create({ accounts: [blue, green], apply: { ...admin, mode: 'self' } })).rejects.toThrow(/^keys\.prov\.target\.apply\.mode: accounts needs apply\.mode admin/);
    await expect(create({ accounts: [blue, green] })).resolves.toMatchObject({ type: 'ldap' });
  });

  it('alternates: the first account first, then the one the current version is not on; the target has overlap', async () => {
    const target = await create({ accounts: [blue, green] });
    expect(target.capabilities.overlap).toBe(true);
    expect(target.accountFor!()).toBe(blue);
    expect(target.accountFor!({ value: 'x', fingerprint: 'f', account: blue })).toBe(green);
    expect(target.accountFor!({ value: 'x', fingerprint: 'f', account: green.toUpperCase() })).toBe(blue);
    // A version from before the key had two accounts is the first account's (the old bindDn).
    expect(target.accountFor!({ value: 'x', fingerprint: 'f' })).toBe(green);
    // A version whose account the config no longer lists is never guessed.
    expect(() => target.accountFor!({ value: 'x', fingerprint: 'sha256:abc', account: 'cn=gone,dc=example,dc=com' })).toThrow(ConfigError);
    await target.close();
  });
});
