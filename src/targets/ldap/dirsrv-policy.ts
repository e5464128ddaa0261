import type { Client, Entry } from 'ldapts';
import { attributeValues, firstValue, type DirectoryPolicy } from './ppolicy.js';

/**
 * 389 Directory Server (also Red Hat Directory Server, FreeIPA's core) keeps its password
 * policy not in a pwdPolicy entry but in `password*` attributes: globally on cn=config, or in
 * a local policy entry the account's pwdpolicysubentry names. Read where readable (cn=config
 * is usually Directory Manager's only); the rules provkey must check itself are kept even
 * when it is not: passwordMinTokenLength (default 3) refuses any password containing a run of
 * that many letters of the account's uid, cn or sn, which random values hit now and then.
 */

const POLICY_ATTRIBUTES = [
  'passwordMinLength',
  'passwordCheckSyntax',
  'passwordHistory',
  'passwordInHistory',
  'passwordExp',
  'passwordMaxAge',
  'passwordMinAge',
  'passwordLockout',
  'passwordMaxFailure',
  'passwordMustChange',
  'passwordChange',
  'passwordMinTokenLength',
  'passwordGraceLimit',
];

/** 389-DS's own default when cn=config cannot be read. */
const DEFAULT_MIN_TOKEN_LENGTH = 3;

function on(entry: Entry, name: string): boolean | undefined {
  const v = firstValue(entry, name)?.trim().toLowerCase();
  return v === 'on' || v === 'true' ? true : v === 'off' || v === 'false' ? false : undefined;
}

function int(entry: Entry, name: string): number | undefined {
  const v = firstValue(entry, name);
  return v !== undefined && /^-?\d+$/.test(v.trim()) ? Number(v) : undefined;
}

/** A policy entry's password* attributes as provkey's DirectoryPolicy; undefined when it has none. */
export function parseDirsrvPolicy(entry: Entry): DirectoryPolicy | undefined {
  const minLength = int(entry, 'passwordMinLength');
  const checkSyntax = on(entry, 'passwordCheckSyntax');
  if (minLength === undefined && checkSyntax === undefined) return undefined;
  const policy: DirectoryPolicy = {};
  // passwordMinLength only applies under passwordCheckSyntax.
  if (checkSyntax !== false && minLength !== undefined) policy.minLength = minLength;
  if (checkSyntax !== undefined) policy.checkQuality = checkSyntax ? 2 : 0;
  if (on(entry, 'passwordHistory') === true) policy.inHistory = int(entry, 'passwordInHistory') ?? 6;
  if (on(entry, 'passwordExp') === true) policy.maxAge = int(entry, 'passwordMaxAge');
  const minAge = int(entry, 'passwordMinAge');
  if (minAge !== undefined) policy.minAge = minAge;
  const lockout = on(entry, 'passwordLockout');
  if (lockout !== undefined) policy.lockout = lockout;
  if (lockout) policy.maxFailure = int(entry, 'passwordMaxFailure') ?? 3;
  const mustChange = on(entry, 'passwordMustChange');
  if (mustChange !== undefined) policy.mustChange = mustChange;
  const change = on(entry, 'passwordChange');
  if (change !== undefined) policy.allowUserChange = change;
  const grace = int(entry, 'passwordGraceLimit');
  if (grace !== undefined) policy.graceAuthNLimit = grace;
  if (checkSyntax !== false) policy.minTokenLength = int(entry, 'passwordMinTokenLength') ?? DEFAULT_MIN_TOKEN_LENGTH;
  return policy;
}

/** Is this a 389 Directory Server? (rootDSE vendorName "389 Project"). */
export async function isDirsrv(client: Client): Promise<boolean> {
  try {
    const root = await client.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['vendorName'] });
    return /389 Project|Red Hat|Fedora/i.test(root.searchEntries[0] ? (firstValue(root.searchEntries[0], 'vendorName') ?? '') : '');
  } catch {
    return false;
  }
}

const dirsrvConnections = new WeakMap<Client, Promise<boolean>>();

/**
 * Whether an admin reset on this connection must be a plain modify of userPassword: on 389-DS
 * the RFC 3062 reset is checked against syntax and history even for a password administrator
 * (passwordAdminDN) or Directory Manager, so a rollback to the previous password would fail.
 * Asked once per connection (one rootDSE read).
 */
export function resetsByModify(client: Client): Promise<boolean> {
  let known = dirsrvConnections.get(client);
  if (!known) {
    known = isDirsrv(client);
    dirsrvConnections.set(client, known);
  }
  return known;
}

/**
 * The policy that applies to `accountDn` on a 389 server, read on a bound connection: the
 * local policy its pwdpolicysubentry names, else the global one on cn=config; with neither
 * readable, 389-DS's default token rule. Always carries the account's uid/cn/sn values.
 */
export async function readDirsrvPolicy(client: Client, accountDn: string): Promise<{ policy: DirectoryPolicy; source: string }> {
  const account = await client
    .search(accountDn, { scope: 'base', filter: '(objectClass=*)', attributes: ['uid', 'cn', 'sn', 'pwdpolicysubentry'] })
    .then((r) => r.searchEntries[0])
    .catch(() => undefined);
  const accountTokens = account ? ['uid', 'cn', 'sn'].flatMap((a) => attributeValues(account, a)) : [];
  const subentry = account ? firstValue(account, 'pwdpolicysubentry') : undefined;
  for (const dn of [subentry, 'cn=config'].filter((d): d is string => !!d)) {
    const entry = await client
      .search(dn, { scope: 'base', filter: '(objectClass=*)', attributes: POLICY_ATTRIBUTES })
      .then((r) => r.searchEntries[0])
      .catch(() => undefined);
    const policy = entry ? parseDirsrvPolicy(entry) : undefined;
    if (policy) return { policy: { ...policy, accountTokens }, source: `389-DS ${dn}` };
  }
  return { policy: { minTokenLength: DEFAULT_MIN_TOKEN_LENGTH, accountTokens }, source: '389-DS defaults (cn=config not readable: set passwordPolicy in the config)' };
}

/**
 * passwordMinTokenLength: the value must not contain `length` consecutive characters of any
 * of the account's uid/cn/sn values (case-insensitive; values shorter than that are ignored).
 * Never quotes the value.
 */
export function tokenProblem(value: string, policy: DirectoryPolicy, source: string): string | undefined {
  const length = policy.minTokenLength;
  if (!length || length <= 0 || !policy.accountTokens?.length) return undefined;
  const lower = value.toLowerCase();
  for (const token of policy.accountTokens) {
    const t = token.toLowerCase();
    for (let i = 0; i + length <= t.length; i++) {
      if (lower.includes(t.slice(i, i + length))) {
        return `the password contains ${length} consecutive characters of the account's uid/cn/sn, which passwordMinTokenLength ${length} refuses (${source}); a rotation run again generates a fresh value`;
      }
    }
  }
  return undefined;
}
