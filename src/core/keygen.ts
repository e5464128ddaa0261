import { randomBytes, randomInt } from 'node:crypto';
import { UsageError } from './errors.js';
import { BASE62, checkToken, encodeTokenChecksum } from './token-format.js';

/** How a key's secret values are generated. Validated from config by config/schema.ts. */
export type GenerationPolicy =
  | { type: 'token'; prefix: string; randomLength: number; allowWeak?: boolean }
  | {
      type: 'password';
      length: number;
      lower: number;
      upper: number;
      digits: number;
      symbols: number;
      symbolSet: string;
      exclude: string;
      allowWeak?: boolean;
    }
  | { type: 'base64url'; bytes: number; allowWeak?: boolean }
  | { type: 'hex'; bytes: number; allowWeak?: boolean };

export const MIN_ENTROPY_BITS = 128;

export const DEFAULT_POLICIES = {
  token: { type: 'token', prefix: 'pk', randomLength: 43 },
  password: { type: 'password', length: 32, lower: 1, upper: 1, digits: 1, symbols: 1, symbolSet: '-_.:+=!@%^*', exclude: '' },
  base64url: { type: 'base64url', bytes: 32 },
  hex: { type: 'hex', bytes: 32 },
} as const satisfies Record<GenerationPolicy['type'], GenerationPolicy>;

const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const DIGITS = '0123456789';

function without(chars: string, exclude: string): string {
  return [...chars].filter((c) => !exclude.includes(c)).join('');
}

function passwordClasses(policy: Extract<GenerationPolicy, { type: 'password' }>) {
  const classes = [
    { name: 'lower', chars: without(LOWER, policy.exclude), min: policy.lower },
    { name: 'upper', chars: without(UPPER, policy.exclude), min: policy.upper },
    { name: 'digits', chars: without(DIGITS, policy.exclude), min: policy.digits },
    { name: 'symbols', chars: without(policy.symbolSet, policy.exclude), min: policy.symbols },
  ];
  // A class asked for with -1 is forbidden; 0 means allowed but not required.
  return classes.filter((c) => c.min >= 0 && c.chars.length > 0);
}

/**
 * A lower bound on the entropy of one value in bits. For passwords the required
 * characters are counted only with their own class's alphabet, so the bound stays honest.
 */
export function entropyBits(policy: GenerationPolicy): number {
  switch (policy.type) {
    case 'token':
      return policy.randomLength * Math.log2(62);
    case 'base64url':
    case 'hex':
      return policy.bytes * 8;
    case 'password': {
      const classes = passwordClasses(policy);
      const alphabet = new Set(classes.flatMap((c) => [...c.chars])).size;
      const required = classes.reduce((n, c) => n + c.min, 0);
      const requiredBits = classes.reduce((bits, c) => bits + c.min * Math.log2(c.chars.length), 0);
      return Math.max(0, policy.length - required) * Math.log2(alphabet) + requiredBits;
    }
  }
}

/** Size bounds of a policy (the config schema has the same ones): a typo never allocates gigabytes. */
export const POLICY_BOUNDS = { length: { min: 8, max: 256 }, bytes: { min: 8, max: 1024 } } as const;

/** Throws a UsageError naming the field when a policy cannot produce a value or is too weak. */
export function checkPolicy(policy: GenerationPolicy, field = 'format'): void {
  if (policy.type === 'password') {
    for (const cls of ['lower', 'upper', 'digits', 'symbols'] as const) {
      if (policy[cls] > 0 && passwordClasses(policy).every((c) => c.name !== cls)) {
        throw new UsageError(`${field}.${cls}: requires ${policy[cls]} character(s) but every one is excluded`, 'policy.impossible');
      }
    }
    const required = passwordClasses(policy).reduce((n, c) => n + c.min, 0);
    if (required > policy.length) {
      throw new UsageError(`${field}.length: ${policy.length} is shorter than the ${required} required characters`, 'policy.impossible');
    }
    if (passwordClasses(policy).length === 0) {
      throw new UsageError(`${field}: every character class is excluded`, 'policy.impossible');
    }
  }
  const sizeField = policy.type === 'password' ? 'length' : policy.type === 'token' ? 'randomLength' : 'bytes';
  const size = policy.type === 'password' ? policy.length : policy.type === 'token' ? policy.randomLength : policy.bytes;
  const bounds = policy.type === 'password' || policy.type === 'token' ? POLICY_BOUNDS.length : POLICY_BOUNDS.bytes;
  if (!Number.isSafeInteger(size) || size < bounds.min || size > bounds.max) {
    // A flag names itself (--length); a config field gets the policy's own field appended.
    throw new UsageError(`${field.startsWith('--') ? field : `${field}.${sizeField}`}: must be a whole number from ${bounds.min} to ${bounds.max}`, 'policy.bounds');
  }
  const bits = entropyBits(policy);
  if (bits < MIN_ENTROPY_BITS && !policy.allowWeak) {
    throw new UsageError(
      `${field}: ${Math.floor(bits)} bits of entropy is under the ${MIN_ENTROPY_BITS}-bit minimum (allowWeak: true in the config, or --allow-weak, forces it)`,
      'policy.weak',
    );
  }
}

function randomString(alphabet: string, length: number): string {
  let out = '';
  // randomInt is uniform (rejection sampling inside node:crypto): no modulo bias.
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

function shuffle(chars: string[]): string[] {
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j]!, chars[i]!];
  }
  return chars;
}

/** A fresh secret value from node:crypto randomness only. */
export function generateSecret(policy: GenerationPolicy): string {
  checkPolicy(policy);
  switch (policy.type) {
    case 'token': {
      const body = `${policy.prefix}_${randomString(BASE62, policy.randomLength)}`;
      return body + encodeTokenChecksum(body);
    }
    case 'base64url':
      return randomBytes(policy.bytes).toString('base64url');
    case 'hex':
      return randomBytes(policy.bytes).toString('hex');
    case 'password': {
      const classes = passwordClasses(policy);
      const alphabet = [...new Set(classes.flatMap((c) => [...c.chars]))].join('');
      const chars: string[] = [];
      for (const cls of classes) for (let i = 0; i < cls.min; i++) chars.push(randomString(cls.chars, 1));
      while (chars.length < policy.length) chars.push(randomString(alphabet, 1));
      return shuffle(chars).join('');
    }
  }
}

/** The longest secret value provkey accepts from outside (import): 4 KiB is far beyond any real token. */
export const MAX_SECRET_LENGTH = 4096;

/**
 * An upper estimate of a value's entropy from its length and the character classes it uses
 * (hex digits count 16, not 36): enough to refuse "abc" or "aaaaaaaa…", never proof of strength.
 */
export function estimatedBits(value: string): number {
  const chars = [...value];
  if (new Set(chars).size < 8) return Math.min(chars.length, new Set(chars).size) * Math.log2(Math.max(2, new Set(chars).size));
  let alphabet: number;
  if (/^[0-9a-f]+$/.test(value) || /^[0-9A-F]+$/.test(value)) alphabet = 16;
  else {
    alphabet = 0;
    if (/[a-z]/.test(value)) alphabet += 26;
    if (/[A-Z]/.test(value)) alphabet += 26;
    if (/[0-9]/.test(value)) alphabet += 10;
    if (/[^A-Za-z0-9]/.test(value)) alphabet += 33;
  }
  return chars.length * Math.log2(alphabet);
}

/**
 * A value from outside (import) must be one provkey could have made: printable text within
 * the bound, at least 128 bits by estimate (unless the key's policy allows weak values), and,
 * when provkey will push it to the target (--apply), of the key's format: a token's prefix and
 * checksum, a hex or base64url value's alphabet and size, a password's length.
 */
export function checkImportedValue(value: string, policy: GenerationPolicy, options: { apply: boolean; field: string }): void {
  const { field } = options;
  if (value.length > MAX_SECRET_LENGTH) throw new UsageError(`${field}: longer than ${MAX_SECRET_LENGTH} characters`, 'input.value');
  // Control characters (NUL, escape…) break a header, an LDAP modify or a terminal; no key has them.
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new UsageError(`${field}: contains a control character (NUL, tab, escape, …); a key is printable text`, 'input.value');
  if (value.trim() !== value) throw new UsageError(`${field}: starts or ends with white space`, 'input.value');
  const bits = Math.floor(estimatedBits(value));
  if (bits < MIN_ENTROPY_BITS && !policy.allowWeak) {
    throw new UsageError(`${field}: at most ${bits} bits of entropy by its length and characters, under the ${MIN_ENTROPY_BITS}-bit minimum (allowWeak: true in the key's format forces it)`, 'input.weak');
  }
  if (!options.apply) return;
  const mismatch = formatMismatch(value, policy);
  if (mismatch) throw new UsageError(`${field}: ${mismatch}; a value provkey applies must match the key's format (or run import without --apply)`, 'input.format');
}

function formatMismatch(value: string, policy: GenerationPolicy): string | undefined {
  switch (policy.type) {
    case 'token': {
      const check = checkToken(value);
      if (!check.valid) return `not a provkey token (${check.reason})`;
      return check.prefix === policy.prefix ? undefined : `a token with another prefix than ${policy.prefix}`;
    }
    case 'hex':
      return /^[0-9a-fA-F]+$/.test(value) && value.length >= policy.bytes * 2 ? undefined : `not ${policy.bytes} bytes of hex`;
    case 'base64url':
      return /^[A-Za-z0-9_-]+$/.test(value) && value.length >= Math.ceil((policy.bytes * 4) / 3) ? undefined : `not ${policy.bytes} bytes of base64url`;
    case 'password':
      return value.length >= policy.length ? undefined : `shorter than the ${policy.length} characters of the key's password format`;
  }
}
