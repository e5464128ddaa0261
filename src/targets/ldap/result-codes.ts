import type { ApplyResult } from '../target.js';
import type { PasswordPolicyResponse } from './ppolicy.js';
import { isTlsErrorCode as isSharedTlsErrorCode, isUnreachableCode } from '../network-errors.js';

/**
 * LDAP result codes (RFC 4511 §A.2), network and TLS failures, turned into one clear line and
 * a kind the target maps to a verdict or an ApplyResult reason. Pure: unit-tested with the
 * codes and ppolicy errors slapd really answers.
 */

export type LdapFailureKind =
  /** The credential was refused (49): the answer a revoked password must get. */
  | 'rejected'
  /** The password policy refused the change (19 constraintViolation, ppolicy errors). */
  | 'policy'
  /** The identity may not do this (50 insufficientAccess, 8 strongerAuthRequired, 13 confidentialityRequired). */
  | 'denied'
  /** No answer: refused, reset, timed out. */
  | 'unreachable'
  /** Reached something, but not a server whose certificate we trust. */
  | 'tls'
  /** Anything else the server said (53 unwillingToPerform, 32 noSuchObject, …). */
  | 'error';

export interface LdapFailure {
  kind: LdapFailureKind;
  /** The LDAP result code, or the Node/TLS error code (ECONNREFUSED, SELF_SIGNED_CERT_IN_CHAIN). */
  status: number | string;
  /** One line, no secret: "49 invalidCredentials (ppolicy: accountLocked)". */
  detail: string;
  /**
   * slapd's "Password is not being changed from existing value" (19, ppolicy passwordInHistory):
   * the value sent is the one the account already has. Not a history violation: proof that the
   * directory holds it (a resumed set that had already arrived, a rollback to a password that
   * was never replaced).
   */
  alreadyHeld?: true;
}

/** slapd ppolicy's text when a change would set the password the entry already has. */
const ALREADY_HELD = /password is not being changed from existing value/i;

const RESULT_CODES: Record<number, string> = {
  0: 'success',
  1: 'operationsError',
  2: 'protocolError',
  3: 'timeLimitExceeded',
  4: 'sizeLimitExceeded',
  7: 'authMethodNotSupported',
  8: 'strongerAuthRequired',
  10: 'referral',
  11: 'adminLimitExceeded',
  12: 'unavailableCriticalExtension',
  13: 'confidentialityRequired',
  16: 'noSuchAttribute',
  17: 'undefinedAttributeType',
  19: 'constraintViolation',
  20: 'attributeOrValueExists',
  21: 'invalidAttributeSyntax',
  32: 'noSuchObject',
  34: 'invalidDNSyntax',
  48: 'inappropriateAuthentication',
  49: 'invalidCredentials',
  50: 'insufficientAccessRights',
  51: 'busy',
  52: 'unavailable',
  53: 'unwillingToPerform',
  54: 'loopDetect',
  64: 'namingViolation',
  65: 'objectClassViolation',
  80: 'other',
};

export function resultCodeName(code: number): string {
  return RESULT_CODES[code] ?? `resultCode${code}`;
}

/** What each ppolicy error (draft-behera-ldap-password-policy §6.2) means for a provisioning account. */
const PPOLICY_MEANINGS: Record<string, string> = {
  passwordExpired: 'the password has expired (pwdMaxAge); an admin reset or a rotation before expiry is needed',
  accountLocked: 'the account is locked (pwdAccountLockedTime: too many failed binds under pwdMaxFailure, or locked by an admin)',
  changeAfterReset: 'an admin reset the password and pwdMustChange requires the account to change it before anything else',
  passwordModNotAllowed: 'the policy does not let the account change its own password (pwdAllowUserChange: FALSE)',
  mustSupplyOldPassword: 'the policy requires the old password (pwdSafeModify: TRUE)',
  insufficientPasswordQuality: 'the new password fails the quality check (pwdCheckQuality / pwdCheckModule)',
  passwordTooShort: 'the new password is shorter than pwdMinLength',
  passwordTooYoung: 'the password was changed less than pwdMinAge ago; the account may not change it again yet',
  passwordInHistory: 'the new password is one of the last pwdInHistory passwords',
  passwordTooLong: 'the new password is longer than pwdMaxLength',
};

export function ppolicyMeaning(errorName: string): string | undefined {
  return PPOLICY_MEANINGS[errorName];
}

/** Node's codes for a certificate that did not verify, or a TLS handshake that failed. */
const TLS_HINTS: Record<string, string> = {
  SELF_SIGNED_CERT_IN_CHAIN: 'the server certificate is not signed by a trusted CA: set tls.caFile to the CA that issued it',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed: set tls.caFile to it (or to the CA that issued it)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate is not signed by a trusted CA: set tls.caFile to the CA that issued it',
  UNABLE_TO_GET_ISSUER_CERT: 'the issuer of the server certificate is unknown: set tls.caFile to the CA that issued it',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the issuer of the server certificate is unknown: set tls.caFile to the CA that issued it',
  CERT_HAS_EXPIRED: 'the server certificate has expired',
  CERT_NOT_YET_VALID: 'the server certificate is not valid yet (check the clocks)',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the server certificate does not name this host: use the name in the certificate, or set tls.serverName',
  ERR_SSL_WRONG_VERSION_NUMBER: 'the server did not answer with TLS: is this an ldap:// port used as ldaps://?',
};


export function isTlsErrorCode(code: string): boolean {
  return code in TLS_HINTS || isSharedTlsErrorCode(code);
}

/** A ppolicy response as words: "ppolicy: passwordInHistory". */
export function describePpolicy(response: PasswordPolicyResponse | undefined): string | undefined {
  if (!response?.errorName) return undefined;
  return `ppolicy: ${response.errorName}`;
}

/**
 * Classifies whatever ldapts (or the socket under it) threw. `scrub` removes secret values
 * from the server's diagnostic message before it goes anywhere (a server may quote input).
 */
export function classifyLdapError(error: unknown, scrub: (text: string) => string, ppolicy?: PasswordPolicyResponse): LdapFailure {
  const err = error as { code?: unknown; message?: unknown; name?: unknown } | undefined;
  const code = err?.code;
  const rawMessage = typeof err?.message === 'string' ? err.message : String(error);
  if (typeof code === 'number') {
    // ldapts appends " Code: 0x31" to the server's diagnostic message; keep only the server's words.
    const diagnostic = scrub(rawMessage.replace(/\s*Code: 0x[0-9a-f]+\s*$/i, '').trim());
    return describeResultCode(code, diagnostic, ppolicy);
  }
  if (typeof code === 'string') {
    if (isTlsErrorCode(code)) {
      const hint = TLS_HINTS[code] ?? 'the TLS handshake failed';
      return { kind: 'tls', status: code, detail: `TLS: ${hint} (${code})` };
    }
    if (isUnreachableCode(code)) return { kind: 'unreachable', status: code, detail: `cannot reach the server (${code})` };
    return { kind: 'error', status: code, detail: scrub(firstLine(rawMessage)) };
  }
  if (/timed? ?out/i.test(rawMessage)) return { kind: 'unreachable', status: 'timeout', detail: `no answer in time (${scrub(firstLine(rawMessage))})` };
  if (/connection closed|socket error/i.test(rawMessage)) {
    return { kind: 'unreachable', status: 'closed', detail: 'the server closed the connection before answering' };
  }
  return { kind: 'error', status: 'error', detail: scrub(firstLine(rawMessage)) };
}

/** One result code (with the server's diagnostic message and any ppolicy error) as a failure. */
export function describeResultCode(code: number, diagnostic = '', ppolicy?: PasswordPolicyResponse): LdapFailure {
  const name = resultCodeName(code);
  if (code === 19 && ALREADY_HELD.test(diagnostic)) {
    return { kind: 'policy', status: code, detail: `${code} ${name}: the directory already holds this password ("${diagnostic}")`, alreadyHeld: true };
  }
  const pp = ppolicy?.errorName;
  const meaning = pp ? ppolicyMeaning(pp) : undefined;
  const parts = [`${code} ${name}`];
  if (pp) parts.push(`(ppolicy: ${pp})`);
  let detail = parts.join(' ');
  if (meaning) detail += `: ${meaning}`;
  else if (diagnostic) detail += `: ${diagnostic}`;
  // 389-DS answers a bind on a locked account with 19 "Exceed password retry limit", even with the right password.
  if (code === 19 && /exceed password retry limit/i.test(diagnostic)) {
    return { kind: 'rejected', status: code, detail: `${detail} (389-DS: the account is locked after passwordMaxFailure failed binds; an admin must unlock it or wait passwordLockoutDuration)` };
  }
  return { kind: kindOf(code), status: code, detail };
}

function kindOf(code: number): LdapFailureKind {
  switch (code) {
    case 49:
      return 'rejected';
    case 19:
    case 21:
      return 'policy';
    case 8:
    case 13:
    case 48:
    case 50:
      return 'denied';
    case 51:
    case 52:
      return 'unreachable';
    default:
      return 'error';
  }
}

function firstLine(text: string): string {
  return text.split('\n')[0]!.trim();
}

/** An ApplyResult for a failure: 19 → policy, 49/50 → denied, no answer or an untrusted certificate → unreachable. */
export function applyFailure(failure: LdapFailure, what: string, reason?: Extract<ApplyResult, { ok: false }>['reason']): Extract<ApplyResult, { ok: false }> {
  const byKind = {
    rejected: 'denied',
    denied: 'denied',
    policy: 'policy',
    unreachable: 'unreachable',
    // Not the server we trust: as good as not reached, never a verdict on the credential.
    tls: 'unreachable',
    error: 'error',
  } as const;
  return { ok: false, reason: reason ?? byKind[failure.kind], detail: `${what}: ${failure.detail}` };
}
