import { Control, type BerReader, type Client, type Entry } from 'ldapts';
import { ConfigError } from '../../core/errors.js';
import type { GenerationPolicy } from '../../core/keygen.js';
import { isDirsrv, readDirsrvPolicy, tokenProblem } from './dirsrv-policy.js';

/**
 * The directory's password policy (draft-behera-ldap-password-policy, the OpenLDAP ppolicy
 * overlay): the response control that tells "expired" from "locked" from "in history", the
 * policy entry itself, and the checks provkey runs against it. provkey enforces the policy
 * itself on every path: an admin with `manage` rights bypasses the server's own checks.
 */

export const PPOLICY_OID = '1.3.6.1.4.1.42.2.27.8.5.1';

/** The error enumeration of the response control, in order (value = index). */
export const PPOLICY_ERRORS = [
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
] as const;

export interface PasswordPolicyResponse {
  /** Seconds until the password expires (sent within pwdExpireWarning). */
  timeBeforeExpiration?: number;
  /** The password has expired; this many grace binds are left (this bind used one). */
  graceAuthNsRemaining?: number;
  error?: number;
  errorName?: string;
}

/**
 * PasswordPolicyResponseValue ::= SEQUENCE {
 *   warning [0] CHOICE { timeBeforeExpiration [0] INTEGER, graceAuthNsRemaining [1] INTEGER } OPTIONAL,
 *   error   [1] ENUMERATED OPTIONAL }
 * Decoded by hand: ldapts has no parser for it, and a malformed value must not throw.
 */
export function decodePasswordPolicyResponse(value: Buffer): PasswordPolicyResponse {
  const out: PasswordPolicyResponse = {};
  const seq = readTlv(value, 0);
  if (!seq || seq.tag !== 0x30) return out;
  let p = seq.start;
  while (p < seq.end) {
    const t = readTlv(value, p);
    if (!t) break;
    if (t.tag === 0xa0) {
      const w = readTlv(value, t.start);
      if (w && w.tag === 0x80) out.timeBeforeExpiration = readUInt(value, w.start, w.end);
      else if (w && w.tag === 0x81) out.graceAuthNsRemaining = readUInt(value, w.start, w.end);
    } else if (t.tag === 0x81) {
      out.error = readUInt(value, t.start, t.end);
      out.errorName = PPOLICY_ERRORS[out.error] ?? `unknown(${out.error})`;
    }
    p = t.end;
  }
  return out;
}

function readTlv(buf: Buffer, off: number): { tag: number; start: number; end: number } | undefined {
  if (off + 2 > buf.length) return undefined;
  const tag = buf[off]!;
  let len = buf[off + 1]!;
  let p = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n > 4 || p + n > buf.length) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  if (p + len > buf.length) return undefined;
  return { tag, start: p, end: p + len };
}

function readUInt(buf: Buffer, start: number, end: number): number {
  let v = 0;
  for (let i = start; i < end; i++) v = v * 256 + buf[i]!;
  return v;
}

/**
 * The request control (no value). ldapts 8 hands a response control whose OID it does not
 * know to the request control with the same OID, calling its parseControl with the value: so
 * the decoded answer lands on this object, even when the operation fails and ldapts throws.
 * Use a fresh instance per operation.
 */
export class PasswordPolicyControl extends Control {
  response: PasswordPolicyResponse | undefined;
  constructor() {
    super(PPOLICY_OID, { critical: false });
  }
  protected override parseControl(reader: BerReader): void {
    this.response = decodePasswordPolicyResponse(reader.remainingBuffer);
  }
}

/** The policy attributes provkey reads (2.5 names; 2.6's pwdUseCheckModule is simply absent on 2.5). */
export const POLICY_ATTRIBUTES = [
  'objectClass',
  'pwdMinLength',
  'pwdMaxLength',
  'pwdCheckQuality',
  'pwdInHistory',
  'pwdMaxAge',
  'pwdMinAge',
  'pwdMaxFailure',
  'pwdLockout',
  'pwdMustChange',
  'pwdAllowUserChange',
  'pwdSafeModify',
  'pwdCheckModule',
  'pwdUseCheckModule',
  'pwdGraceAuthNLimit',
  'pwdExpireWarning',
];

/** A password policy as provkey uses it. Ages are in seconds, as in the directory. */
export interface DirectoryPolicy {
  minLength?: number;
  maxLength?: number;
  checkQuality?: number;
  inHistory?: number;
  maxAge?: number;
  minAge?: number;
  maxFailure?: number;
  lockout?: boolean;
  mustChange?: boolean;
  allowUserChange?: boolean;
  safeModify?: boolean;
  /** A quality-check module (pwdCheckModule) whose rules provkey cannot read. */
  checkModule?: string;
  graceAuthNLimit?: number;
  /** 389-DS passwordMinTokenLength, with the account's uid/cn/sn values it applies to (dirsrv-policy.ts). */
  minTokenLength?: number;
  accountTokens?: string[];
}

/** The policy in force and where it came from, for messages. */
export interface EffectivePolicy {
  policy: DirectoryPolicy;
  /** "cn=default,ou=policies,dc=example,dc=com", "config", or "cn=… + config". */
  source: string;
  /** The directory's own policy entry was read (not only the config). */
  fromDirectory: boolean;
  /** Why the directory's policy was not read, when it was not. */
  note?: string;
}

/** Case-insensitive attribute lookup: servers answer with their own spelling. */
export function attributeValues(entry: Entry, name: string): string[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === name.toLowerCase());
  if (!key) return [];
  const value = entry[key];
  const list = Array.isArray(value) ? value : [value];
  return list.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v)));
}

export function firstValue(entry: Entry, name: string): string | undefined {
  return attributeValues(entry, name)[0];
}

function intOf(entry: Entry, name: string): number | undefined {
  const v = firstValue(entry, name);
  if (v === undefined || !/^-?\d+$/.test(v.trim())) return undefined;
  return Number(v);
}

function boolOf(entry: Entry, name: string): boolean | undefined {
  const v = firstValue(entry, name)?.trim().toUpperCase();
  return v === 'TRUE' ? true : v === 'FALSE' ? false : undefined;
}

/** A pwdPolicy entry's attributes; undefined when the entry is not a pwdPolicy. */
export function parsePolicyEntry(entry: Entry): DirectoryPolicy | undefined {
  const classes = attributeValues(entry, 'objectClass').map((c) => c.toLowerCase());
  if (classes.length > 0 && !classes.includes('pwdpolicy')) return undefined;
  const policy: DirectoryPolicy = {};
  const set = <K extends keyof DirectoryPolicy>(key: K, value: DirectoryPolicy[K] | undefined) => {
    if (value !== undefined) policy[key] = value;
  };
  set('minLength', intOf(entry, 'pwdMinLength'));
  set('maxLength', intOf(entry, 'pwdMaxLength'));
  set('checkQuality', intOf(entry, 'pwdCheckQuality'));
  set('inHistory', intOf(entry, 'pwdInHistory'));
  set('maxAge', intOf(entry, 'pwdMaxAge'));
  set('minAge', intOf(entry, 'pwdMinAge'));
  set('maxFailure', intOf(entry, 'pwdMaxFailure'));
  set('lockout', boolOf(entry, 'pwdLockout'));
  set('mustChange', boolOf(entry, 'pwdMustChange'));
  set('allowUserChange', boolOf(entry, 'pwdAllowUserChange'));
  set('safeModify', boolOf(entry, 'pwdSafeModify'));
  set('graceAuthNLimit', intOf(entry, 'pwdGraceAuthNLimit'));
  const module = firstValue(entry, 'pwdCheckModule');
  // 2.6 only loads the module when pwdUseCheckModule is TRUE; 2.5 whenever pwdCheckModule is set.
  if (module && boolOf(entry, 'pwdUseCheckModule') !== false) policy.checkModule = module;
  return policy;
}

/** The config's passwordPolicy block, ages in seconds. */
export interface ConfiguredPolicy extends Omit<DirectoryPolicy, 'maxAge'> {
  dn?: string;
  maxAge?: number;
}

/** Config values win over the directory's: the config is how an admin corrects what provkey cannot read. */
export function mergePolicy(directory: { policy: DirectoryPolicy; source: string } | undefined, configured: ConfiguredPolicy, note?: string): EffectivePolicy {
  const { dn: _dn, ...overrides } = configured;
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) as DirectoryPolicy;
  const hasOverrides = Object.keys(defined).length > 0;
  if (!directory) {
    return { policy: defined, source: hasOverrides ? 'config (passwordPolicy)' : 'none', fromDirectory: false, ...(note ? { note } : {}) };
  }
  return {
    policy: { ...directory.policy, ...defined },
    source: hasOverrides ? `${directory.source} + config overrides` : directory.source,
    fromDirectory: true,
  };
}

/**
 * Finds and reads the policy that applies to `accountDn` on an authenticated connection:
 * the configured DN; else the account's pwdPolicySubentry; else cn=default,ou=policies under
 * the naming context holding the account; else the only pwdPolicy entry visible there.
 * Never throws for an unreadable policy: it says why in `note`.
 */
export async function readDirectoryPolicy(
  client: Client,
  options: { configuredDn?: string; accountDn: string },
): Promise<{ found: { policy: DirectoryPolicy; source: string } | undefined; note: string }> {
  const tried: string[] = [];
  const readAt = async (dn: string): Promise<DirectoryPolicy | undefined> => {
    try {
      const result = await client.search(dn, { scope: 'base', filter: '(objectClass=*)', attributes: POLICY_ATTRIBUTES });
      const entry = result.searchEntries[0];
      const policy = entry ? parsePolicyEntry(entry) : undefined;
      tried.push(`${dn} (${policy ? 'read' : 'not a pwdPolicy entry'})`);
      return policy;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      tried.push(`${dn} (${typeof code === 'number' ? code : 'error'})`);
      return undefined;
    }
  };

  if (options.configuredDn) {
    const policy = await readAt(options.configuredDn);
    return policy
      ? { found: { policy, source: options.configuredDn }, note: '' }
      : { found: undefined, note: `passwordPolicy.dn is not readable: ${tried.join(', ')}` };
  }

  const subentry = await client
    .search(options.accountDn, { scope: 'base', filter: '(objectClass=*)', attributes: ['pwdPolicySubentry'] })
    .then((r) => (r.searchEntries[0] ? firstValue(r.searchEntries[0], 'pwdPolicySubentry') : undefined))
    .catch(() => undefined);
  if (subentry) {
    const policy = await readAt(subentry);
    if (policy) return { found: { policy, source: subentry }, note: '' };
  }

  const suffix = await namingContextOf(client, options.accountDn);
  if (suffix) {
    const guess = `cn=default,ou=policies,${suffix}`;
    const policy = await readAt(guess);
    if (policy) return { found: { policy, source: guess }, note: '' };
    const visible = await client
      .search(suffix, { scope: 'sub', filter: '(objectClass=pwdPolicy)', attributes: ['1.1'], sizeLimit: 2 })
      .then((r) => r.searchEntries.map((e) => e.dn))
      .catch(() => [] as string[]);
    if (visible.length === 1) {
      const only = await readAt(visible[0]!);
      if (only) return { found: { policy: only, source: visible[0]! }, note: '' };
    } else if (visible.length > 1) {
      tried.push(`several pwdPolicy entries under ${suffix}; set passwordPolicy.dn`);
    }
  }
  // 389-DS keeps its policy in password* attributes instead (dirsrv-policy.ts).
  if (await isDirsrv(client)) return { found: await readDirsrvPolicy(client, options.accountDn), note: '' };
  return { found: undefined, note: `no password policy entry readable${tried.length ? ` (tried ${tried.join(', ')})` : ''}` };
}

async function namingContextOf(client: Client, dn: string): Promise<string | undefined> {
  try {
    const root = await client.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['namingContexts'] });
    const contexts = root.searchEntries[0] ? attributeValues(root.searchEntries[0], 'namingContexts') : [];
    const normal = normalizeDn(dn);
    return contexts
      .filter((c) => c !== '' && (normal === normalizeDn(c) || normal.endsWith(`,${normalizeDn(c)}`)))
      .sort((a, b) => b.length - a.length)[0];
  } catch {
    return undefined;
  }
}

/** Enough DN normalisation to compare what servers echo: case and spaces around separators. */
export function normalizeDn(dn: string): string {
  return dn
    .trim()
    .replace(/\s*([,=+])\s*/g, '$1')
    .toLowerCase();
}

/** Length of every value a generation policy produces (they are all fixed-length). */
export function generatedLength(policy: GenerationPolicy): number {
  switch (policy.type) {
    case 'password':
      return policy.length;
    case 'token':
      return policy.prefix.length + 1 + policy.randomLength + 6;
    case 'base64url':
      return Math.ceil((policy.bytes * 4) / 3);
    case 'hex':
      return policy.bytes * 2;
  }
}

/**
 * Fails early, with the field to change, when a key's generation policy cannot produce a
 * password the directory accepts. `field` is the key's format path, e.g. keys.ldap.format.
 */
export function validateGenerationPolicy(generation: GenerationPolicy, effective: EffectivePolicy, field: string): void {
  const { policy, source } = effective;
  const length = generatedLength(generation);
  const lengthField = {
    password: `${field}.length`,
    token: `${field}.randomLength`,
    base64url: `${field}.bytes`,
    hex: `${field}.bytes`,
  }[generation.type];
  if (policy.minLength !== undefined && length < policy.minLength) {
    throw new ConfigError(
      `${lengthField}: the key's ${generation.type} values are ${length} characters, shorter than pwdMinLength ${policy.minLength} of the directory's password policy (${source})`,
      'config.policy',
    );
  }
  if (policy.maxLength !== undefined && policy.maxLength > 0 && length > policy.maxLength) {
    throw new ConfigError(
      `${lengthField}: the key's ${generation.type} values are ${length} characters, longer than pwdMaxLength ${policy.maxLength} of the directory's password policy (${source})`,
      'config.policy',
    );
  }
  // A quality module (ppm, pqchecker, …) has rules provkey cannot read: ask for every class.
  if (policy.checkModule && (policy.checkQuality ?? 0) > 0) {
    if (generation.type !== 'password') {
      throw new ConfigError(
        `${field}.type: the directory's password policy (${source}) runs the quality module ${policy.checkModule}; use type: password with lower, upper, digits and symbols of at least 1`,
        'config.policy',
      );
    }
    for (const cls of ['lower', 'upper', 'digits', 'symbols'] as const) {
      if (generation[cls] < 1) {
        throw new ConfigError(
          `${field}.${cls}: the directory's password policy (${source}) runs the quality module ${policy.checkModule}, whose rules provkey cannot read; require at least 1 (${cls}: 1)`,
          'config.policy',
        );
      }
    }
  }
}

/** What is wrong with one concrete value under the policy (never quotes the value). */
export function passwordProblem(value: string, effective: EffectivePolicy): string | undefined {
  const { policy, source } = effective;
  const length = [...value].length;
  if (length === 0) return 'the password is empty (an LDAP bind without a password is an anonymous bind)';
  if (policy.minLength !== undefined && length < policy.minLength) {
    return `the password has ${length} characters, fewer than pwdMinLength ${policy.minLength} (${source})`;
  }
  if (policy.maxLength !== undefined && policy.maxLength > 0 && length > policy.maxLength) {
    return `the password has ${length} characters, more than pwdMaxLength ${policy.maxLength} (${source})`;
  }
  return tokenProblem(value, policy, source);
}

/**
 * Whether provkey may spend a failed bind to prove an old password is rejected. `auto`:
 * not when the policy locks the account after 3 failures or fewer (one probe plus the
 * integration's own retries could lock it).
 */
export function negativeProbeFor(setting: 'auto' | 'always' | 'never', policy: DirectoryPolicy): 'costly' | 'forbidden' {
  if (setting === 'always') return 'costly';
  if (setting === 'never') return 'forbidden';
  return lowFailureLimit(policy) ? 'forbidden' : 'costly';
}

export function lowFailureLimit(policy: DirectoryPolicy): boolean {
  return policy.lockout !== false && policy.maxFailure !== undefined && policy.maxFailure > 0 && policy.maxFailure <= 3;
}

/**
 * How many failed binds in a row provkey allows itself against one server while waiting for a
 * change to replicate: always leaving room below pwdMaxFailure for the integration's own
 * binds and one negative probe.
 */
export function failedBindBudget(policy: DirectoryPolicy): number {
  // Failures lock nothing: still stay polite.
  if (policy.lockout === false || policy.maxFailure === 0) return 5;
  // Unknown limit: assume a strict one (at pwdMaxFailure 3, two runs of two would lock it).
  if (policy.maxFailure === undefined) return 1;
  return Math.max(1, policy.maxFailure - 2);
}

/** GeneralizedTime (RFC 4517 §3.3.13) as written by slapd: 20261122233656Z, 20261122233656.243708Z. */
export function parseGeneralizedTime(text: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:[.,](\d+))?(Z|[+-]\d{2}(?:\d{2})?)$/.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const ms = frac ? Math.round(Number(`0.${frac}`) * 1000) : 0;
  let t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi ?? 0), Number(s ?? 0), ms);
  if (zone && zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const offset = Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5) || 0);
    t -= sign * offset * 60_000;
  }
  return Number.isNaN(t) ? undefined : new Date(t);
}

/**
 * Failed binds `identify` may spend per server in one run: one, and none when the policy locks
 * at 3 failures or fewer, when the limit is not known (assume a strict one), or when the
 * failures the directory already holds (the integration's own, pwdFailureTime) leave less than
 * two binds of room below pwdMaxFailure.
 */
export function identifyBindBudget(policy: DirectoryPolicy, failuresHeld?: number): number {
  if (policy.lockout === false || policy.maxFailure === 0) return 1;
  if (policy.maxFailure === undefined || lowFailureLimit(policy)) return 0;
  if (failuresHeld !== undefined && failuresHeld + 1 > policy.maxFailure - 2) return 0;
  return 1;
}
