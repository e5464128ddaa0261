import { classifyLdapError, describeResultCode, type LdapFailure } from './result-codes.js';

/**
 * Active Directory's answers (Windows and Samba AD DC alike): a result code plus an extended
 * error in the diagnostic message, "0000052D: Constraint violation - …" on a password change
 * and "80090308: LdapErr: …, data 52e, v…" on a bind. One line each, naming what to do.
 * Pure: unit-tested with the messages Samba 4.17 really sends.
 */

/** A failure with what AD added: its extended code, and whether the account is locked out. */
export type AdFailure = LdapFailure & { locked?: boolean; adCode?: string };

/** The Win32 codes in a 19 on a unicodePwd change. */
const CHANGE_ERRORS: Record<string, { kind: LdapFailure['kind']; meaning: string }> = {
  '0000052D': { kind: 'policy', meaning: "the domain's password policy refused the new password (too short, not complex enough, in the history, or changed again before minPwdAge)" },
  '00000056': { kind: 'rejected', meaning: 'the old password given with the change is wrong (this counts toward lockoutThreshold)' },
  '00000775': { kind: 'rejected', meaning: 'the account is locked out (lockoutThreshold); an admin must set lockoutTime to 0' },
  '00000005': { kind: 'denied', meaning: 'access denied: this identity may not change or reset the password (a reset needs "Reset password" rights)' },
  '0000001F': { kind: 'denied', meaning: 'the change was refused (a unicodePwd change needs LDAPS or StartTLS and the value quoted in UTF-16LE)' },
};

/** The "data" codes of a failed bind (AcceptSecurityContext). */
const BIND_ERRORS: Record<string, string> = {
  '52e': 'invalid credentials (wrong password)',
  '525': 'no such user',
  '530': 'logon not permitted at this time',
  '531': 'logon not permitted from this workstation',
  '532': 'the password has expired (maxPwdAge); an admin reset or a rotation before expiry is needed',
  '533': 'the account is disabled',
  '701': 'the account has expired',
  '773': 'the user must change the password at next logon (pwdLastSet is 0)',
  '775': 'the account is locked out (lockoutThreshold); an admin must set lockoutTime to 0',
};

/** Samba's own words after the Win32 code, for the cases the code alone does not tell apart. */
function policyDetail(diagnostic: string): string | undefined {
  const text = diagnostic.toLowerCase();
  if (text.includes('too short')) return 'shorter than minPwdLength';
  if (text.includes('in history') || text.includes('previous password')) return 'in the password history (pwdHistoryLength)';
  if (text.includes('complex')) return 'not complex enough (pwdProperties: complexity)';
  if (text.includes('too young') || text.includes('minimum password age')) return 'the password was changed less than minPwdAge ago';
  return undefined;
}

export function adExtendedCode(message: string): string | undefined {
  return /\b(0000[0-9A-F]{4})\b/i.exec(message)?.[1]?.toUpperCase();
}

export function adBindData(message: string): string | undefined {
  return /\bdata ([0-9a-f]{3,4})\b/i.exec(message)?.[1]?.toLowerCase();
}

/**
 * Classifies what ldapts threw against AD: the generic LDAP classification, with the AD
 * extended code turned into one line. A locked account (775) is 'rejected' for a bind, which
 * is what a lockout is; `locked` tells it apart.
 */
export function classifyAdError(error: unknown, scrub: (text: string) => string): AdFailure {
  const base = classifyLdapError(error, scrub);
  if (typeof base.status !== 'number') return base;
  const message = scrub(String((error as { message?: unknown }).message ?? ''));
  const data = adBindData(message);
  if (base.status === 49 && data) {
    const meaning = BIND_ERRORS[data] ?? `AD bind error data ${data}`;
    return { kind: 'rejected', status: 49, detail: `49 invalidCredentials (AD data ${data}): ${meaning}`, adCode: data, ...(data === '775' ? { locked: true } : {}) };
  }
  const code = adExtendedCode(message);
  const known = code ? CHANGE_ERRORS[code] : undefined;
  if (known && code) {
    const extra = code === '0000052D' ? policyDetail(message) : undefined;
    const name = describeResultCode(base.status).detail;
    return {
      kind: known.kind,
      status: base.status,
      detail: `${name} (AD ${code}): ${known.meaning}${extra ? `; Samba says: ${extra}` : ''}`,
      adCode: code,
      ...(code === '00000775' ? { locked: true } : {}),
    };
  }
  if (base.status === 8) return { ...base, detail: `${base.detail} (AD refuses simple binds and password changes without TLS: use ldaps:// or StartTLS)` };
  return base;
}
