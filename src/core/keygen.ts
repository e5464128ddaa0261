import { randomBytes, randomInt } from 'node:crypto';
import { UsageError } from './errors.js';
import { BASE62, encodeTokenChecksum } from './token-format.js';

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
