// Pure parts of the Active Directory and 389-DS support, with the answers Samba AD DC 4.17 and
// 389-DS 2.3 really gave (recorded from the harness servers).

import { describe, expect, it } from 'vitest';
import { classifyAdError } from '../../src/targets/ldap/ad-errors.js';
import { adPasswordProblem, fileTimeToDate, intervalSeconds, validateAdGenerationPolicy, type AdPolicy } from '../../src/targets/ldap/ad-policy.js';
import { parseDirsrvPolicy, tokenProblem } from '../../src/targets/ldap/dirsrv-policy.js';
import { describeResultCode } from '../../src/targets/ldap/result-codes.js';

const scrub = (text: string) => text;
const ldapError = (code: number, message: string) => Object.assign(new Error(`${message} Code: 0x${code.toString(16)}`), { code });

describe('AD answers as one line', () => {
  it.each([
    [19, '0000052D: Constraint violation - check_password_restrictions: the password is too short. It should be equal or longer than 10 characters!', 'policy', /AD 0000052D.*Samba says: shorter than minPwdLength$/],
    [19, '0000052D: Constraint violation - check_password_restrictions: the password was already used (in history)!', 'policy', /in the password history/],
    [19, "00000056: Constraint violation - check_password_restrictions: The old password specified doesn't match!", 'rejected', /AD 00000056\): the old password given with the change is wrong \(this counts toward lockoutThreshold\)$/],
    [49, '80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1', 'rejected', /^49 invalidCredentials \(AD data 52e\): invalid credentials \(wrong password\)$/],
    [49, '80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 775, v1db1', 'rejected', /AD data 775\): the account is locked out/],
    [8, '00002028: Strong Auth Required - simple bind requires TLS', 'denied', /use ldaps:\/\/ or StartTLS/],
  ])('%i %s', (code, message, kind, detail) => {
    const failure = classifyAdError(ldapError(code, message), scrub);
    expect(failure.kind).toBe(kind);
    expect(failure.status).toBe(code);
    expect(failure.detail).toMatch(detail);
    expect(failure.detail).not.toMatch(/\n/);
  });

  it('775 is flagged as a lockout', () => {
    expect(classifyAdError(ldapError(49, 'AcceptSecurityContext error, data 775, v1db1'), scrub).locked).toBe(true);
  });

  it('389-DS: a bind refused with 19 "Exceed password retry limit" is a lockout (rejected), not a policy error', () => {
    expect(describeResultCode(19, 'Exceed password retry limit. Please try later.')).toMatchObject({ kind: 'rejected', detail: expect.stringMatching(/389-DS: the account is locked/) });
    expect(describeResultCode(19, 'invalid password syntax').kind).toBe('policy');
  });
});

describe('AD policy values', () => {
  const policy: AdPolicy = { minLength: 10, complexity: true, historyLength: 5, lockoutThreshold: 3, minAge: 0, maxAge: 3_628_800, source: 'domain DC=pk,DC=test' };

  it('intervals and FILETIMEs as AD writes them', () => {
    expect(intervalSeconds('-36288000000000')).toBe(3_628_800); // 42 days
    expect(intervalSeconds('-9223372036854775808')).toBe(0); // never
    expect(intervalSeconds('0')).toBe(0);
    expect(fileTimeToDate('134405840989455260')!.toISOString()).toBe('2026-12-01T07:34:58.945Z');
    expect(fileTimeToDate('0')).toBeUndefined();
    expect(fileTimeToDate('9223372036854775807')).toBeUndefined();
  });

  it('length, three of four categories, and no part of the account name', () => {
    const account = { dn: 'CN=svc-prov,CN=Users,DC=pk,DC=test', samAccountName: 'svc-prov', displayName: 'Provisioning Service' };
    expect(adPasswordProblem('Ab1-short', policy, account)).toMatch(/fewer than minPwdLength 10/);
    expect(adPasswordProblem('onlylowercaseletters', policy, account)).toMatch(/3 of the 4/);
    expect(adPasswordProblem('X9-SVC-PROV-tail', policy, account)).toMatch(/part of the account's name/);
    expect(adPasswordProblem('X9-service-tail', policy, account)).toMatch(/part of the account's name/); // "Service" of displayName
    expect(adPasswordProblem('Pk-7aQz_4mVb2xW', policy, account)).toBeUndefined();
  });

  it('a generation policy that cannot satisfy the domain fails early, naming the field', () => {
    expect(() => validateAdGenerationPolicy({ type: 'hex', bytes: 32 }, policy, 'keys.k.format')).toThrow(/keys\.k\.format\.type: hex values/);
    expect(() => validateAdGenerationPolicy({ type: 'base64url', bytes: 4 }, policy, 'keys.k.format')).toThrow(/keys\.k\.format\.bytes: .*6 characters, shorter than minPwdLength 10/);
    expect(() => validateAdGenerationPolicy({ type: 'token', prefix: 'pk', randomLength: 43 }, policy, 'keys.k.format')).not.toThrow();
  });
});

describe('389-DS policy', () => {
  it('password* attributes of cn=config as a DirectoryPolicy', () => {
    const policy = parseDirsrvPolicy({
      dn: 'cn=config',
      passwordCheckSyntax: 'on',
      passwordMinLength: '12',
      passwordHistory: 'on',
      passwordInHistory: '5',
      passwordLockout: 'on',
      passwordMaxFailure: '3',
      passwordMustChange: 'off',
      passwordExp: 'on',
      passwordMaxAge: '7776000',
      passwordMinTokenLength: '3',
    });
    expect(policy).toEqual({ minLength: 12, checkQuality: 2, inHistory: 5, maxAge: 7_776_000, lockout: true, maxFailure: 3, mustChange: false, minTokenLength: 3 });
    expect(parseDirsrvPolicy({ dn: 'cn=config', cn: 'config' })).toBeUndefined();
  });

  it('passwordMinTokenLength: any 3-letter run of uid/cn/sn, case-insensitive', () => {
    const policy = { minTokenLength: 3, accountTokens: ['provisioner', 'service'] };
    expect(tokenProblem('Zz9-abc-RVIce', policy, 'cn=config')).toMatch(/passwordMinTokenLength 3/);
    expect(tokenProblem('Zz9-xPROz', policy, 'cn=config')).toMatch(/uid\/cn\/sn/);
    expect(tokenProblem('Zz9-abc-def-ghk', policy, 'cn=config')).toBeUndefined();
    expect(tokenProblem('provisioner', { minTokenLength: 0, accountTokens: ['provisioner'] }, '')).toBeUndefined();
  });
});
