import { randomBytes } from 'node:crypto';
import { Attribute, Change, type Client, type Entry } from 'ldapts';
import { passwordModify, type PasswordModifyRequest } from './password-modify.js';
import { attributeValues, firstValue, parseGeneralizedTime, PasswordPolicyControl, type DirectoryPolicy, type PasswordPolicyResponse } from './ppolicy.js';
import { classifyLdapError, type LdapFailure } from './result-codes.js';
import { resetsByModify, tokenProblem } from './dirsrv-policy.js';

/**
 * What provkey does to the service account's entry, each on an already bound connection:
 * change or reset its password, clear pwdReset, lock it, read when its password changed.
 * Expected failures are values carrying the result code and any ppolicy error.
 */

/** `alreadyHeld`: the directory answered that the account has this password already (nothing changed). */
export type Step = { ok: true; ppolicy?: PasswordPolicyResponse; alreadyHeld?: true } | { ok: false; failure: LdapFailure };

type Scrub = (text: string) => string;

/**
 * RFC 3062 with the ppolicy control, so a 19 says which rule refused the password. Setting the
 * value the account already has is success: the directory holds it (see LdapFailure.alreadyHeld).
 */
export async function changePassword(client: Client, request: PasswordModifyRequest, scrub: Scrub): Promise<Step> {
  const control = new PasswordPolicyControl();
  try {
    // 389-DS holds even a password administrator's RFC 3062 reset to the history; its plain modify is not (dirsrv-policy.ts).
    if (request.user !== undefined && request.oldPassword === undefined && (await resetsByModify(client))) {
      await client.modify(request.user, [new Change({ operation: 'replace', modification: new Attribute({ type: 'userPassword', values: [request.newPassword] }) })], [control]);
      return { ok: true, ...(control.response ? { ppolicy: control.response } : {}) };
    }
    await passwordModify(client, request, [control]);
    return { ok: true, ...(control.response ? { ppolicy: control.response } : {}) };
  } catch (error) {
    const failure = classifyLdapError(error, scrub, control.response);
    if (failure.alreadyHeld) return { ok: true, alreadyHeld: true };
    return { ok: false, failure };
  }
}

/**
 * After an admin puts a password back (rollback) the value is not new, so there is nothing
 * for the account to change: pwdReset would only keep it from working (pwdMustChange). A
 * missing pwdReset (16 noSuchAttribute: no pwdMustChange) is success.
 */
export async function clearPasswordReset(client: Client, accountDn: string, scrub: Scrub, maxAgeSeconds?: number): Promise<Step> {
  // 389-DS computes pwdReset (deleting it does nothing reliable): its own way, at once.
  if (await resetsByModify(client)) return clearDirsrvReset(client, accountDn, scrub, maxAgeSeconds);
  try {
    await client.modify(accountDn, [new Change({ operation: 'delete', modification: new Attribute({ type: 'pwdReset', values: [] }) })]);
    return { ok: true };
  } catch (error) {
    const failure = classifyLdapError(error, scrub);
    return failure.status === 16 ? { ok: true } : { ok: false, failure };
  }
}

/**
 * 389-DS computes pwdReset; what ends "must change" there is a passwordExpirationTime in the
 * future, which a change by the account itself would set to now + passwordMaxAge.
 */
async function clearDirsrvReset(client: Client, accountDn: string, scrub: Scrub, maxAgeSeconds = DIRSRV_DEFAULT_MAX_AGE): Promise<Step> {
  const until = new Date(Date.now() + (maxAgeSeconds > 0 ? maxAgeSeconds : DIRSRV_DEFAULT_MAX_AGE) * 1000).toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
  // 389-DS may still be finishing the reset's own update of passwordExpirationTime (seen: the
  // value written here read back as 19700101000000Z now and then): written until it reads back.
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      await client.modify(accountDn, [new Change({ operation: 'replace', modification: new Attribute({ type: 'passwordExpirationTime', values: [until] }) })]);
      const read = await client.search(accountDn, { scope: 'base', filter: '(objectClass=*)', attributes: ['passwordExpirationTime'] });
      const now = read.searchEntries[0]?.passwordExpirationTime;
      if (now === undefined || String(now) === until) return { ok: true };
    }
    return { ok: false, failure: { kind: 'error', status: 'passwordExpirationTime', detail: 'passwordExpirationTime does not keep the value written (389-DS)' } };
  } catch (error) {
    return { ok: false, failure: classifyLdapError(error, scrub) };
  }
}

/** 389-DS's default passwordMaxAge (100 days), when the policy could not be read. */
const DIRSRV_DEFAULT_MAX_AGE = 8_640_000;

/** ppolicy's "locked until an administrator unlocks it" value (draft-behera §5.3.3). */
export const LOCKED_UNTIL_ADMIN = '000001010000Z';

export async function lockAccount(client: Client, accountDn: string, scrub: Scrub): Promise<Step> {
  try {
    await client.modify(accountDn, [
      new Change({ operation: 'replace', modification: new Attribute({ type: 'pwdAccountLockedTime', values: [LOCKED_UNTIL_ADMIN] }) }),
    ]);
    return { ok: true };
  } catch (error) {
    return { ok: false, failure: classifyLdapError(error, scrub) };
  }
}

/** pwdChangedTime of the account; undefined when absent (such a password never expires) or unreadable. */
export async function readPasswordChangedTime(client: Client, accountDn: string): Promise<Date | undefined> {
  const result = await client.search(accountDn, { scope: 'base', filter: '(objectClass=*)', attributes: ['pwdChangedTime'] });
  const value = result.searchEntries[0] ? firstValue(result.searchEntries[0], 'pwdChangedTime') : undefined;
  return value ? parseGeneralizedTime(value) : undefined;
}

/**
 * A throw-away password that no one ever learns: the temporary value of the two-step admin
 * apply, and the value a revoked account is reset to. It satisfies the policy's length
 * limits and the usual class rules, so an admin without `manage` rights can set it too.
 */
export function throwAwayPassword(policy: DirectoryPolicy): string {
  let length = Math.max(40, policy.minLength ?? 0);
  if (policy.maxLength !== undefined && policy.maxLength > 0) length = Math.min(length, policy.maxLength);
  // Never one that passwordMinTokenLength (389-DS) would refuse: draw again.
  let value = '';
  for (let attempt = 0; attempt < 100; attempt++) {
    value = `Aa1-${randomBytes(length).toString('base64url')}`.slice(0, Math.max(length, 8));
    if (!tokenProblem(value, policy, '')) break;
  }
  return value;
}

/** What the account entry shows without a bind as the account: read by an admin (or anonymously, where allowed). */
export interface AccountEvidence {
  /** userPassword values as stored (hashes); empty when not readable. */
  passwords: string[];
  /** pwdChangedTime: when the password last changed. */
  changedAt?: Date;
  /** What says the account is locked now ("pwdAccountLockedTime …", "389-DS accountUnlockTime …"). */
  lockedSince?: string;
  /** pwdFailureTime values: failed binds the directory holds against the account now. */
  failures: number;
  entryCsn?: string;
}

/**
 * 389-DS keeps its lockout state in its own operational attributes: passwordRetryCount (failed
 * binds held; stale once retryCountResetTime has passed, which only overstates it) and
 * accountUnlockTime (19700101000000Z: locked until an admin unlocks; a future time: locked until
 * then; a past one: the lockout is over).
 */
const DIRSRV_LOCKOUT_ATTRIBUTES = ['passwordRetryCount', 'retryCountResetTime', 'accountUnlockTime'];
/** Clocks of provkey's host and the directory may differ: an unlock time this close proves nothing. */
const CLOCK_SKEW_MS = 5 * 60_000;

function dirsrvRetryCount(entry: Entry): number {
  const value = firstValue(entry, 'passwordRetryCount');
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : 0;
}

/** accountUnlockTime when it says the account is locked now; undefined otherwise. */
function dirsrvLockedUntil(entry: Entry): string | undefined {
  const value = firstValue(entry, 'accountUnlockTime');
  if (!value) return undefined;
  const until = parseGeneralizedTime(value);
  if (!until) return undefined;
  if (until.getTime() === 0 || until.getTime() > Date.now() + CLOCK_SKEW_MS) return `389-DS accountUnlockTime ${value}`;
  return undefined;
}

/** Reads the account's password state; undefined when the entry is not visible to this connection. */
export async function readAccountEvidence(client: Client, accountDn: string): Promise<AccountEvidence | undefined> {
  try {
    const result = await client.search(accountDn, {
      scope: 'base',
      filter: '(objectClass=*)',
      attributes: ['userPassword', 'pwdChangedTime', 'pwdAccountLockedTime', 'pwdFailureTime', 'entryCSN', ...DIRSRV_LOCKOUT_ATTRIBUTES],
    });
    const entry = result.searchEntries[0];
    if (!entry) return undefined;
    const changed = firstValue(entry, 'pwdChangedTime');
    const lockedTime = firstValue(entry, 'pwdAccountLockedTime');
    const locked = lockedTime ? `pwdAccountLockedTime ${lockedTime}` : dirsrvLockedUntil(entry);
    const csn = firstValue(entry, 'entryCSN');
    const changedAt = changed ? parseGeneralizedTime(changed) : undefined;
    return {
      passwords: attributeValues(entry, 'userPassword'),
      ...(changedAt ? { changedAt } : {}),
      ...(locked ? { lockedSince: locked } : {}),
      failures: Math.max(attributeValues(entry, 'pwdFailureTime').length, dirsrvRetryCount(entry)),
      ...(csn ? { entryCsn: csn } : {}),
    };
  } catch {
    return undefined;
  }
}
