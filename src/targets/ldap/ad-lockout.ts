import type { Client, Entry } from 'ldapts';
import { fileTimeToDate, intervalSeconds } from './ad-policy.js';
import { firstValue, parseGeneralizedTime } from './ppolicy.js';

/**
 * What an AD account's entry says about lockout, read as an admin, and how many failed binds
 * `identify` may spend. Seen on Samba AD DC 4.17 (test/integration/ldap-ad-target.test.ts):
 * - lockoutTime stays set after lockoutDuration has ended (until the next successful bind or
 *   an admin's `lockoutTime: 0`); UF_LOCKOUT (0x10) in msDS-User-Account-Control-Computed is
 *   the DC's own answer to "is it locked now", so it decides when readable.
 * - badPwdCount as stored is not lowered when lockOutObservationWindow passes (the DC works
 *   that out at the next failure, from badPasswordTime): the stored value can only overstate
 *   the count that matters, and provkey lowers it to 0 only by the DC's own clock. Each DC
 *   keeps its own count: provkey binds only on the first URL and reads the count there.
 */

const UF_LOCKOUT = 0x10;

export interface AccountLockoutState {
  locked: boolean;
  /** What `locked` comes from. */
  lockSource: 'msDS-User-Account-Control-Computed' | 'lockoutTime';
  /** lockoutTime, when set (it may have ended). */
  lockedAt?: Date;
  /** badPwdCount as stored on this DC; undefined when unreadable. */
  badPwdCount?: number;
  passwordLastSet?: Date;
}

export async function readLockoutState(client: Client, accountDn: string): Promise<AccountLockoutState | undefined> {
  const entry = await readBase(client, accountDn, ['pwdLastSet', 'badPwdCount', 'badPasswordTime', 'lockoutTime', 'msDS-User-Account-Control-Computed', 'msDS-ResultantPSO']);
  if (!entry) return undefined;
  const lockedAt = fileTimeToDate(firstValue(entry, 'lockoutTime'));
  const computed = integer(firstValue(entry, 'msDS-User-Account-Control-Computed'));
  const stored = integer(firstValue(entry, 'badPwdCount'));
  const lastSet = fileTimeToDate(firstValue(entry, 'pwdLastSet'));
  const count = stored !== undefined && stored > 0 && (await observationWindowPassed(client, accountDn, entry)) ? 0 : stored;
  return {
    ...(computed !== undefined ? { locked: (computed & UF_LOCKOUT) !== 0, lockSource: 'msDS-User-Account-Control-Computed' as const } : { locked: lockedAt !== undefined, lockSource: 'lockoutTime' as const }),
    ...(lockedAt ? { lockedAt } : {}),
    ...(count !== undefined ? { badPwdCount: count } : {}),
    ...(lastSet ? { passwordLastSet: lastSet } : {}),
  };
}

/**
 * Whether the last counted failure (badPasswordTime) is older than lockOutObservationWindow by
 * the DC's own clock (rootDSE currentTime), so the DC starts the next failure from 0, as Samba's
 * effective badPwdCount does. The window is the account's PSO's when one applies; anything
 * unreadable is "no" (the stored count stands).
 */
async function observationWindowPassed(client: Client, accountDn: string, entry: Entry): Promise<boolean> {
  const failedAt = fileTimeToDate(firstValue(entry, 'badPasswordTime'));
  if (!failedAt) return false;
  const root = await readBase(client, '', ['currentTime', 'defaultNamingContext']);
  const current = root ? firstValue(root, 'currentTime') : undefined;
  const now = current ? parseGeneralizedTime(current) : undefined;
  const pso = firstValue(entry, 'msDS-ResultantPSO');
  const policyDn = pso || (root ? firstValue(root, 'defaultNamingContext') : undefined);
  if (!now || !policyDn) return false;
  const attribute = pso ? 'msDS-LockoutObservationWindow' : 'lockOutObservationWindow';
  const policy = await readBase(client, policyDn, [attribute]);
  const windowSeconds = intervalSeconds(policy ? firstValue(policy, attribute) : undefined);
  if (windowSeconds === undefined || windowSeconds === 0) return false;
  return failedAt.getTime() + windowSeconds * 1000 < now.getTime();
}

async function readBase(client: Client, dn: string, attributes: string[]): Promise<Entry | undefined> {
  return client
    .search(dn, { scope: 'base', filter: '(objectClass=*)', attributes })
    .then((r) => r.searchEntries[0])
    .catch(() => undefined);
}

/**
 * Counted failed binds `identify` may still spend this run. A success resets badPwdCount, so a
 * failure is left standing only when no candidate binds: with badPwdCount read, up to
 * lockoutThreshold − 2 − badPwdCount, and never more than two per run (at lockoutThreshold 3
 * and badPwdCount 0 that is two, leaving the account one clear of the limit even then);
 * unreadable, one. Threshold 0 is no lockout; an unknown threshold is taken as 3.
 */
export function identifyRoom(threshold: number | undefined, badPwdCount: number | undefined, spentThisRun: number): number {
  if (threshold === 0) return Number.POSITIVE_INFINITY;
  if (badPwdCount === undefined) return Math.max(0, 1 - spentThisRun);
  const limit = threshold ?? 3;
  const room = limit > 3 ? limit - 2 - badPwdCount : 2 - badPwdCount;
  return Math.max(0, Math.min(2, room) - spentThisRun);
}

/**
 * May a candidate that should cost nothing (one of the two previous passwords, by AD's n-2
 * rule) be tried although the room is spent? Only while a failure, should it count after all
 * (the password was changed outside provkey), still leaves the account clear of the limit.
 */
export function assumedFreeAllowed(threshold: number | undefined, badPwdCount: number | undefined, spentThisRun: number): boolean {
  if (threshold === 0 || badPwdCount === undefined) return true;
  return (threshold ?? 3) - (badPwdCount + spentThisRun) >= 2;
}

export function budgetReason(threshold: number | undefined, badPwdCount: number | undefined, spentThisRun: number): string {
  const held = badPwdCount === undefined ? 'badPwdCount could not be read' : `the account has badPwdCount ${badPwdCount}`;
  return `${held} and this run spent ${spentThisRun} failed bind(s) that count: another could bring it too close to lockoutThreshold ${threshold ?? '(unknown, 3 assumed)'}`;
}

function integer(value: string | undefined): number | undefined {
  return value !== undefined && /^\d+$/.test(value.trim()) ? Number(value) : undefined;
}
