// The password-policy side of the LDAP target, without a server: the ppolicy response control
// (values recorded from slapd 2.5), the policy entry, and the checks provkey runs against it.

import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { generateSecret, type GenerationPolicy } from '../../src/core/keygen.js';
import {
  decodePasswordPolicyResponse,
  failedBindBudget,
  generatedLength,
  mergePolicy,
  negativeProbeFor,
  normalizeDn,
  parseGeneralizedTime,
  parsePolicyEntry,
  passwordProblem,
  validateGenerationPolicy,
  type EffectivePolicy,
} from '../../src/targets/ldap/ppolicy.js';

/** Response control values slapd 2.5 sent (hex), with what each one was the answer to. */
const RECORDED = {
  // bind right after an admin reset under pwdMustChange, with pwdExpireWarning reached
  changeAfterResetWithWarning: '300aa00580030186a0810102',
  // bind 10000 s before pwdMaxAge, within pwdExpireWarning
  timeBeforeExpiration: '3006a00480022710',
  // bind with a wrong password after 5 failures
  accountLocked: '3003810101',
  // bind with an expired password, one grace login left after this one
  graceOneLeft: '3005a003810101',
  // bind with an expired password and no grace logins left
  passwordExpired: '3003810100',
  // self change back to a password in the history (19)
  passwordInHistory: '3003810108',
  // admin ("write") reset to a 5-character password (19)
  passwordTooShort: '3003810106',
  // successful bind, nothing to report
  empty: '3000',
};

describe('ppolicy response control', () => {
  it('decodes what slapd sent', () => {
    const decode = (hex: string) => decodePasswordPolicyResponse(Buffer.from(hex, 'hex'));
    expect(decode(RECORDED.changeAfterResetWithWarning)).toEqual({ timeBeforeExpiration: 100000, error: 2, errorName: 'changeAfterReset' });
    expect(decode(RECORDED.timeBeforeExpiration)).toEqual({ timeBeforeExpiration: 10000 });
    expect(decode(RECORDED.accountLocked)).toEqual({ error: 1, errorName: 'accountLocked' });
    expect(decode(RECORDED.graceOneLeft)).toEqual({ graceAuthNsRemaining: 1 });
    expect(decode(RECORDED.passwordExpired)).toEqual({ error: 0, errorName: 'passwordExpired' });
    expect(decode(RECORDED.passwordInHistory)).toEqual({ error: 8, errorName: 'passwordInHistory' });
    expect(decode(RECORDED.passwordTooShort)).toEqual({ error: 6, errorName: 'passwordTooShort' });
    expect(decode(RECORDED.empty)).toEqual({});
  });

  it('never throws on a malformed value', () => {
    for (const hex of ['', '30', '3005a0', 'ff0101', '3084ffffffff', '300381']) {
      expect(() => decodePasswordPolicyResponse(Buffer.from(hex, 'hex'))).not.toThrow();
    }
    expect(decodePasswordPolicyResponse(Buffer.from('3003810163', 'hex')).errorName).toBe('unknown(99)');
  });
});

describe('policy entry', () => {
  const entry = {
    dn: 'cn=default,ou=policies,dc=example,dc=com',
    objectClass: ['top', 'device', 'pwdPolicy'],
    pwdMinLength: '12',
    pwdCheckQuality: '2',
    pwdInHistory: '5',
    pwdMaxFailure: '5',
    pwdLockout: 'TRUE',
    pwdMaxAge: '7776000',
    pwdMustChange: 'FALSE',
    pwdAllowUserChange: 'TRUE',
    pwdCheckModule: [] as string[],
  };

  it('reads the attributes provkey uses, whatever their case', () => {
    expect(parsePolicyEntry(entry)).toEqual({
      minLength: 12,
      checkQuality: 2,
      inHistory: 5,
      maxFailure: 5,
      lockout: true,
      maxAge: 7776000,
      mustChange: false,
      allowUserChange: true,
    });
    expect(parsePolicyEntry({ dn: 'x', objectclass: 'pwdPolicy', PWDMINLENGTH: '20' })).toEqual({ minLength: 20 });
  });

  it('is not a policy unless it is a pwdPolicy', () => {
    expect(parsePolicyEntry({ dn: 'x', objectClass: ['organizationalUnit'], pwdMinLength: '12' })).toBeUndefined();
  });

  it('a check module counts unless 2.6 says pwdUseCheckModule FALSE', () => {
    const withModule = { ...entry, objectClass: [...entry.objectClass, 'pwdPolicyChecker'], pwdCheckModule: 'ppm.so' };
    expect(parsePolicyEntry(withModule)?.checkModule).toBe('ppm.so');
    expect(parsePolicyEntry({ ...withModule, pwdUseCheckModule: 'FALSE' })?.checkModule).toBeUndefined();
  });

  it('config values override the directory and say so', () => {
    const merged = mergePolicy({ policy: { minLength: 12, maxFailure: 5 }, source: 'cn=default' }, { minLength: 20, dn: 'cn=default' });
    expect(merged).toEqual({ policy: { minLength: 20, maxFailure: 5 }, source: 'cn=default + config overrides', fromDirectory: true });
    expect(mergePolicy(undefined, {}, 'not readable')).toEqual({ policy: {}, source: 'none', fromDirectory: false, note: 'not readable' });
    expect(mergePolicy(undefined, { maxFailure: 3 }).source).toBe('config (passwordPolicy)');
  });
});

describe('generation policy against the directory policy', () => {
  const effective = (policy: EffectivePolicy['policy']): EffectivePolicy => ({ policy, source: 'cn=default,ou=policies,dc=example,dc=com', fromDirectory: true });
  const password = { type: 'password', length: 16, lower: 1, upper: 1, digits: 1, symbols: 1, symbolSet: '-_.', exclude: '' } as const;

  it('computes the exact length of every format', () => {
    const policies: GenerationPolicy[] = [
      { ...password, length: 28 },
      { type: 'token', prefix: 'pk', randomLength: 43 },
      { type: 'base64url', bytes: 32 },
      { type: 'base64url', bytes: 31 },
      { type: 'hex', bytes: 20 },
    ];
    for (const policy of policies) expect(generatedLength(policy), policy.type).toBe(generateSecret(policy).length);
  });

  it('names the field to change when values are too short or too long', () => {
    expect(() => validateGenerationPolicy(password, effective({ minLength: 20 }), 'keys.ldap.format')).toThrow(ConfigError);
    expect(() => validateGenerationPolicy(password, effective({ minLength: 20 }), 'keys.ldap.format')).toThrow(
      'keys.ldap.format.length: the key\'s password values are 16 characters, shorter than pwdMinLength 20 of the directory\'s password policy (cn=default,ou=policies,dc=example,dc=com)',
    );
    expect(() => validateGenerationPolicy({ type: 'token', prefix: 'pk', randomLength: 43 }, effective({ maxLength: 32 }), 'keys.ldap.format')).toThrow(
      /^keys\.ldap\.format\.randomLength: .* 52 characters, longer than pwdMaxLength 32/,
    );
    expect(() => validateGenerationPolicy({ type: 'hex', bytes: 4, allowWeak: true }, effective({ minLength: 12 }), 'f')).toThrow(/^f\.bytes:/);
    expect(() => validateGenerationPolicy(password, effective({ minLength: 16, maxLength: 0 }), 'f')).not.toThrow();
  });

  it('a quality module needs a password with every class', () => {
    const strict = effective({ checkQuality: 2, checkModule: 'ppm.so' });
    expect(() => validateGenerationPolicy({ ...password, digits: 0 }, strict, 'f')).toThrow(/^f\.digits: .*ppm\.so/);
    expect(() => validateGenerationPolicy({ type: 'base64url', bytes: 32 }, strict, 'f')).toThrow(/^f\.type: /);
    expect(() => validateGenerationPolicy(password, strict, 'f')).not.toThrow();
    // pwdCheckQuality 0: the module is not consulted.
    expect(() => validateGenerationPolicy({ type: 'hex', bytes: 32 }, effective({ checkQuality: 0, checkModule: 'ppm.so' }), 'f')).not.toThrow();
  });

  it('judges one value without quoting it', () => {
    const value = 'Abc-123-xyz';
    const problem = passwordProblem(value, effective({ minLength: 12 }));
    expect(problem).toBe('the password has 11 characters, fewer than pwdMinLength 12 (cn=default,ou=policies,dc=example,dc=com)');
    expect(problem).not.toContain(value);
    expect(passwordProblem('', effective({}))).toMatch(/anonymous bind/);
    expect(passwordProblem(value, effective({ maxLength: 8 }))).toMatch(/more than pwdMaxLength 8/);
    expect(passwordProblem(value, effective({ minLength: 8 }))).toBeUndefined();
  });
});

describe('lockout guard', () => {
  it('forbids the negative probe when the failure limit is 3 or lower, unless asked', () => {
    expect(negativeProbeFor('auto', { maxFailure: 3 })).toBe('forbidden');
    expect(negativeProbeFor('auto', { maxFailure: 1, lockout: true })).toBe('forbidden');
    expect(negativeProbeFor('auto', { maxFailure: 4 })).toBe('costly');
    expect(negativeProbeFor('auto', { maxFailure: 3, lockout: false })).toBe('costly');
    expect(negativeProbeFor('auto', { maxFailure: 0 })).toBe('costly');
    expect(negativeProbeFor('auto', {})).toBe('costly');
    expect(negativeProbeFor('always', { maxFailure: 2 })).toBe('costly');
    expect(negativeProbeFor('never', {})).toBe('forbidden');
  });

  it('allows itself fewer failed binds than the policy', () => {
    expect(failedBindBudget({ maxFailure: 5 })).toBe(3);
    expect(failedBindBudget({ maxFailure: 3 })).toBe(1);
    expect(failedBindBudget({ maxFailure: 1 })).toBe(1);
    expect(failedBindBudget({})).toBe(1);
    expect(failedBindBudget({ maxFailure: 5, lockout: false })).toBe(5);
    expect(failedBindBudget({ maxFailure: 0 })).toBe(5);
  });
});

describe('small parsers', () => {
  it('GeneralizedTime as slapd writes it', () => {
    expect(parseGeneralizedTime('20261122233656Z')?.toISOString()).toBe('2026-11-22T23:36:56.000Z');
    expect(parseGeneralizedTime('20261122233656.243708Z')?.toISOString()).toBe('2026-11-22T23:36:56.244Z');
    expect(parseGeneralizedTime('202611222336+0100')?.toISOString()).toBe('2026-11-22T22:36:00.000Z');
    expect(parseGeneralizedTime('000001010000Z')).toBeDefined();
    expect(parseGeneralizedTime('yesterday')).toBeUndefined();
  });

  it('DNs compare without case or spaces', () => {
    expect(normalizeDn('CN=Provisioner, OU=Services,dc=Example , dc=com')).toBe('cn=provisioner,ou=services,dc=example,dc=com');
  });
});

describe('identify: what the directory lets provkey learn without a failed bind', () => {
  it('checks a candidate against stored userPassword values (slapd {SSHA} recorded), and says when it cannot', async () => {
    const { storedPasswordMatches, storedValueMatches } = await import('../../src/targets/ldap/password-hash.js');
    const { createHash } = await import('node:crypto');
    const salted = (algorithm: string, scheme: string, password: string, salt: Buffer) =>
      `{${scheme}}${Buffer.concat([createHash(algorithm).update(password).update(salt).digest(), salt]).toString('base64')}`;
    const salt = Buffer.from('a1b2c3d4', 'hex');
    expect(storedValueMatches('Pk-right-password', salted('sha1', 'SSHA', 'Pk-right-password', salt))).toBe(true);
    expect(storedValueMatches('Pk-wrong-password', salted('sha1', 'SSHA', 'Pk-right-password', salt))).toBe(false);
    expect(storedValueMatches('Pk-right-password', salted('sha512', 'SSHA512', 'Pk-right-password', salt))).toBe(true);
    expect(storedValueMatches('Pk-right-password', `{SHA256}${createHash('sha256').update('Pk-right-password').digest('base64')}`)).toBe(true);
    expect(storedValueMatches('Pk-right-password', '{ssha}' + salted('sha1', 'SSHA', 'Pk-right-password', salt).slice(6))).toBe(true);
    expect(storedValueMatches('plain', 'plain')).toBe(true);
    expect(storedValueMatches('plain', '{CLEARTEXT}plain')).toBe(true);
    expect(storedValueMatches('x', '{CRYPT}$6$salt$hash')).toBeUndefined();
    expect(storedValueMatches('x', '{PBKDF2_SHA256}AAAA')).toBeUndefined();
    expect(storedValueMatches('x', '{SSHA}AAAA')).toBeUndefined(); // too short to be a SHA-1 digest
    // Over all values: one unverifiable value makes a mismatch "cannot tell".
    expect(storedPasswordMatches('Pk-wrong-password', [salted('sha1', 'SSHA', 'Pk-right-password', salt)])).toBe(false);
    expect(storedPasswordMatches('Pk-wrong-password', [salted('sha1', 'SSHA', 'Pk-right-password', salt), '{CRYPT}$6$x$y'])).toBeUndefined();
    expect(storedPasswordMatches('Pk-right-password', ['{CRYPT}$6$x$y', salted('sha1', 'SSHA', 'Pk-right-password', salt)])).toBe(true);
    expect(storedPasswordMatches('anything', [])).toBeUndefined();
  });

  it('spends one failed bind per server per run at most, none at pwdMaxFailure <= 3 or when the limit is unknown', async () => {
    const { identifyBindBudget } = await import('../../src/targets/ldap/ppolicy.js');
    expect(identifyBindBudget({ maxFailure: 5, lockout: true })).toBe(1);
    expect(identifyBindBudget({ maxFailure: 3, lockout: true })).toBe(0);
    expect(identifyBindBudget({ maxFailure: 1 })).toBe(0);
    expect(identifyBindBudget({})).toBe(0);
    expect(identifyBindBudget({ maxFailure: 3, lockout: false })).toBe(1);
    expect(identifyBindBudget({ maxFailure: 0 })).toBe(1);
    // The integration's own failures count: leave two binds of room below the limit.
    expect(identifyBindBudget({ maxFailure: 5 }, 2)).toBe(1);
    expect(identifyBindBudget({ maxFailure: 5 }, 3)).toBe(0);
  });
});
