import type { Client, Entry } from 'ldapts';
import { ConfigError } from '../../core/errors.js';
import type { GenerationPolicy } from '../../core/keygen.js';
import { firstValue, generatedLength } from './ppolicy.js';

/**
 * Active Directory's password policy: the domain's settings on the naming context's root
 * (minPwdLength, pwdProperties, pwdHistoryLength, lockoutThreshold, minPwdAge, maxPwdAge),
 * replaced by a fine-grained policy (PSO) when one applies to the account and is readable,
 * and the checks provkey runs against it before it sends a value: Samba enforces length and
 * complexity on an admin reset but not the history, and a refused change costs a round trip.
 */

/** pwdProperties bit 0 (DOMAIN_PASSWORD_COMPLEX). */
const COMPLEX = 1;

export interface AdPolicy {
  minLength: number;
  complexity: boolean;
  historyLength: number;
  /** 0 = no lockout. */
  lockoutThreshold: number;
  /** Seconds; 0 = none. */
  minAge: number;
  /** Seconds; 0 = never expires. */
  maxAge: number;
  /** "domain DC=pk,DC=test", "PSO CN=…", or "config" when nothing was readable. */
  source: string;
}

export interface AdAccount {
  dn: string;
  samAccountName?: string;
  displayName?: string;
  /** pwdLastSet as a Date; undefined when 0 (must change) or unreadable. */
  passwordLastSet?: Date;
  /** msDS-UserPasswordExpiryTimeComputed (covers PSOs); undefined when it never expires or unreadable. */
  expiresAt?: Date;
}

/** AD intervals are negative 100-ns counts ("-36288000000000" = 42 days); "-9223372036854775808" = never. */
export function intervalSeconds(value: string | undefined): number | undefined {
  if (value === undefined || !/^-?\d+$/.test(value.trim())) return undefined;
  const big = BigInt(value.trim());
  if (big === -9223372036854775808n || big === 0n) return 0;
  const abs = big < 0n ? -big : big;
  return Number(abs / 10_000_000n);
}

/** FILETIME (100-ns since 1601-01-01) as a Date; undefined for 0 and "never" (max int64). */
export function fileTimeToDate(value: string | undefined): Date | undefined {
  if (value === undefined || !/^\d+$/.test(value.trim())) return undefined;
  const big = BigInt(value.trim());
  if (big === 0n || big >= 9223372036854775807n) return undefined;
  const ms = Number(big / 10_000n) - 11_644_473_600_000;
  return new Date(ms);
}

function intOf(entry: Entry, name: string): number | undefined {
  const v = firstValue(entry, name);
  return v !== undefined && /^-?\d+$/.test(v.trim()) ? Number(v) : undefined;
}

const DOMAIN_ATTRIBUTES = ['minPwdLength', 'pwdProperties', 'pwdHistoryLength', 'lockoutThreshold', 'minPwdAge', 'maxPwdAge'];
const PSO_ATTRIBUTES = [
  'msDS-MinimumPasswordLength',
  'msDS-PasswordComplexityEnabled',
  'msDS-PasswordHistoryLength',
  'msDS-LockoutThreshold',
  'msDS-MinimumPasswordAge',
  'msDS-MaximumPasswordAge',
];

/** The naming context holding the account (the rootDSE's defaultNamingContext, else the DC= tail of the DN). */
export async function domainOf(client: Client, accountDn: string): Promise<string> {
  try {
    const root = await client.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['defaultNamingContext'] });
    const value = root.searchEntries[0] ? firstValue(root.searchEntries[0], 'defaultNamingContext') : undefined;
    if (value) return value;
  } catch {
    // fall through to the DN
  }
  const parts = accountDn.split(/,(?=\s*dc=)/i);
  return parts.slice(1).join(',') || accountDn;
}

/**
 * Reads the policy that applies to `accountDn` on a bound connection: the account's
 * msDS-ResultantPSO when set and readable (Windows shows it to the account itself and to
 * admins), else the domain's settings. Never throws: unreadable values stay undefined and
 * the note says why.
 */
export async function readAdPolicy(client: Client, accountDn: string): Promise<{ policy: AdPolicy | undefined; account: AdAccount; note: string }> {
  const account: AdAccount = { dn: accountDn };
  let psoDn: string | undefined;
  try {
    const result = await client.search(accountDn, {
      scope: 'base',
      filter: '(objectClass=*)',
      attributes: ['sAMAccountName', 'displayName', 'pwdLastSet', 'msDS-ResultantPSO', 'msDS-UserPasswordExpiryTimeComputed'],
    });
    const entry = result.searchEntries[0];
    if (entry) {
      const sam = firstValue(entry, 'sAMAccountName');
      const display = firstValue(entry, 'displayName');
      const lastSet = fileTimeToDate(firstValue(entry, 'pwdLastSet'));
      const expires = fileTimeToDate(firstValue(entry, 'msDS-UserPasswordExpiryTimeComputed'));
      if (sam) account.samAccountName = sam;
      if (display) account.displayName = display;
      if (lastSet) account.passwordLastSet = lastSet;
      if (expires) account.expiresAt = expires;
      psoDn = firstValue(entry, 'msDS-ResultantPSO') || undefined;
    }
  } catch {
    // The account's own entry unreadable: the domain's policy still applies.
  }
  const notes: string[] = [];
  if (psoDn) {
    try {
      const result = await client.search(psoDn, { scope: 'base', filter: '(objectClass=*)', attributes: PSO_ATTRIBUTES });
      const entry = result.searchEntries[0];
      const minLength = entry ? intOf(entry, 'msDS-MinimumPasswordLength') : undefined;
      if (entry && minLength !== undefined) {
        const policy: AdPolicy = {
          minLength,
          complexity: (firstValue(entry, 'msDS-PasswordComplexityEnabled') ?? '').toUpperCase() === 'TRUE',
          historyLength: intOf(entry, 'msDS-PasswordHistoryLength') ?? 0,
          lockoutThreshold: intOf(entry, 'msDS-LockoutThreshold') ?? 0,
          minAge: intervalSeconds(firstValue(entry, 'msDS-MinimumPasswordAge')) ?? 0,
          maxAge: intervalSeconds(firstValue(entry, 'msDS-MaximumPasswordAge')) ?? 0,
          source: `PSO ${psoDn}`,
        };
        return { policy, account, note: '' };
      }
      notes.push(`the fine-grained policy ${psoDn} applies but is not readable`);
    } catch (error) {
      notes.push(`the fine-grained policy ${psoDn} applies but is not readable (${(error as { code?: unknown }).code ?? 'error'})`);
    }
  }
  const domain = await domainOf(client, accountDn);
  try {
    const result = await client.search(domain, { scope: 'base', filter: '(objectClass=*)', attributes: DOMAIN_ATTRIBUTES });
    const entry = result.searchEntries[0];
    const minLength = entry ? intOf(entry, 'minPwdLength') : undefined;
    if (entry && minLength !== undefined) {
      const policy: AdPolicy = {
        minLength,
        complexity: ((intOf(entry, 'pwdProperties') ?? 0) & COMPLEX) === COMPLEX,
        historyLength: intOf(entry, 'pwdHistoryLength') ?? 0,
        lockoutThreshold: intOf(entry, 'lockoutThreshold') ?? 0,
        minAge: intervalSeconds(firstValue(entry, 'minPwdAge')) ?? 0,
        maxAge: intervalSeconds(firstValue(entry, 'maxPwdAge')) ?? 0,
        source: `domain ${domain}${notes.length ? ` (${notes.join('; ')})` : ''}`,
      };
      return { policy, account, note: notes.join('; ') };
    }
    notes.push(`the domain's password settings on ${domain} are not readable`);
  } catch (error) {
    notes.push(`the domain's password settings on ${domain} are not readable (${(error as { code?: unknown }).code ?? 'error'})`);
  }
  return { policy: undefined, account, note: notes.join('; ') };
}

/** What AD's complexity rule counts: upper, lower, digits, anything else (symbols, non-ASCII letters). */
function categories(value: string): number {
  let n = 0;
  if (/[A-Z]/.test(value)) n++;
  if (/[a-z]/.test(value)) n++;
  if (/[0-9]/.test(value)) n++;
  if (/[^A-Za-z0-9]/.test(value)) n++;
  return n;
}

/** The parts of the account's names AD's complexity rule forbids in the password (3 characters or more). */
export function forbiddenNameParts(account: AdAccount): string[] {
  const parts: string[] = [];
  if (account.samAccountName && account.samAccountName.length >= 3) parts.push(account.samAccountName.toLowerCase());
  for (const token of (account.displayName ?? '').split(/[,.\-_#\s\t]+/)) if (token.length >= 3) parts.push(token.toLowerCase());
  return parts;
}

/** What is wrong with one value under the policy; never quotes the value. */
export function adPasswordProblem(value: string, policy: AdPolicy | undefined, account: AdAccount): string | undefined {
  const length = [...value].length;
  if (length === 0) return 'the password is empty';
  if (!policy) return undefined;
  if (length < policy.minLength) return `the password has ${length} characters, fewer than minPwdLength ${policy.minLength} (${policy.source})`;
  if (policy.complexity) {
    if (categories(value) < 3) return `the password has fewer than 3 of the 4 character categories the complexity rule asks for (${policy.source})`;
    const lower = value.toLowerCase();
    const part = forbiddenNameParts(account).find((p) => lower.includes(p));
    if (part !== undefined) return `the password contains part of the account's name, which the complexity rule forbids (${policy.source})`;
  }
  return undefined;
}

/**
 * Fails early, naming the field, when the key's generation policy cannot make passwords the
 * domain accepts: too short, or (under complexity) values from fewer than 3 categories.
 * Values that can satisfy it but might not (a base64url value without a digit) are checked
 * one by one before they are sent.
 */
export function validateAdGenerationPolicy(generation: GenerationPolicy, policy: AdPolicy, field: string): void {
  const length = generatedLength(generation);
  const lengthField = { password: `${field}.length`, token: `${field}.randomLength`, base64url: `${field}.bytes`, hex: `${field}.bytes` }[generation.type];
  if (length < policy.minLength) {
    throw new ConfigError(`${lengthField}: the key's ${generation.type} values are ${length} characters, shorter than minPwdLength ${policy.minLength} of the AD password policy (${policy.source})`, 'config.policy');
  }
  if (!policy.complexity) return;
  if (generation.type === 'hex') {
    throw new ConfigError(`${field}.type: hex values have only lower-case letters and digits; the AD complexity rule (${policy.source}) asks for 3 of 4 categories: use type: password`, 'config.policy');
  }
  if (generation.type === 'password') {
    const classes = [generation.lower, generation.upper, generation.digits, generation.symbols].filter((n) => n >= 1).length;
    if (classes < 3) {
      throw new ConfigError(`${field}: the AD complexity rule (${policy.source}) asks for 3 of 4 character categories; require at least 1 of three of lower, upper, digits, symbols`, 'config.policy');
    }
  }
}

/** When the account's password expires: msDS-UserPasswordExpiryTimeComputed, else pwdLastSet + maxPwdAge. */
export function adExpiry(account: AdAccount, policy: AdPolicy | undefined): Date | undefined {
  if (account.expiresAt) return account.expiresAt;
  if (!account.passwordLastSet || !policy || policy.maxAge <= 0) return undefined;
  return new Date(account.passwordLastSet.getTime() + policy.maxAge * 1000);
}
