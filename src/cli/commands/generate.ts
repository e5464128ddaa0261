import { UsageError } from '../../core/errors.js';
import { fingerprint } from '../../core/fingerprint.js';
import { DEFAULT_POLICIES, checkPolicy, entropyBits, generateSecret, type GenerationPolicy } from '../../core/keygen.js';
import { checkToken } from '../../core/token-format.js';
import { readSecretInput } from '../confirm.js';
import type { Io } from '../io.js';
import { withSchemaVersion } from '../render/format.js';

export interface GenerateOptions {
  format: string;
  length?: number;
  bytes?: number;
  prefix?: string;
  exclude?: string;
  allowWeak: boolean;
}

export function policyFromFlags(options: GenerateOptions): GenerationPolicy {
  const base = DEFAULT_POLICIES[options.format as GenerationPolicy['type']];
  if (!base) throw new UsageError(`--format: "${options.format}" is not one of token, password, base64url, hex`, 'usage.format');
  const policy: GenerationPolicy = { ...base, allowWeak: options.allowWeak } as GenerationPolicy;
  if (options.length !== undefined) {
    if (policy.type === 'password') policy.length = options.length;
    else if (policy.type === 'token') policy.randomLength = options.length;
    else throw new UsageError('--length: use --bytes for base64url and hex', 'usage.format');
  }
  if (options.bytes !== undefined) {
    if (policy.type !== 'base64url' && policy.type !== 'hex') throw new UsageError('--bytes: only for base64url and hex', 'usage.format');
    policy.bytes = options.bytes;
  }
  if (options.prefix !== undefined) {
    if (policy.type !== 'token') throw new UsageError('--prefix: only for tokens', 'usage.format');
    if (!/^[A-Za-z][A-Za-z0-9]{0,15}$/.test(options.prefix)) throw new UsageError('--prefix: 1-16 letters/digits starting with a letter', 'usage.format');
    policy.prefix = options.prefix;
  }
  if (options.exclude !== undefined) {
    if (policy.type !== 'password') throw new UsageError('--exclude: only for passwords', 'usage.format');
    if (options.exclude.length > 256) throw new UsageError('--exclude: at most 256 characters', 'usage.format');
    policy.exclude = options.exclude;
  }
  // Name the flag the user can change: --length/--bytes for entropy, --exclude for classes.
  const sizeFlag = options.length !== undefined ? '--length' : options.bytes !== undefined ? '--bytes' : '--format';
  try {
    checkPolicy(policy, sizeFlag);
  } catch (error) {
    if (error instanceof UsageError && error.code === 'policy.impossible' && options.exclude !== undefined) {
      throw new UsageError(`--exclude: ${error.message.replace(/^[^:]*: /, '')}`, error.code);
    }
    throw error;
  }
  return policy;
}

/** `generate`: a fresh value to stdout (for piping); its entropy and fingerprint to stderr. */
export async function generateCommand(options: GenerateOptions, io: Io): Promise<number> {
  const policy = policyFromFlags(options);
  const value = generateSecret(policy);
  const bits = entropyBits(policy);
  if (io.json) {
    io.reveal(JSON.stringify(withSchemaVersion({ format: policy.type, value, fingerprint: fingerprint(value), entropyBits: Math.floor(bits) })));
  } else {
    io.reveal(value);
    io.err(io.color.dim(`${policy.type}, ${Math.floor(bits)} bits of entropy, ${fingerprint(value)}`));
  }
  return 0;
}

/** `check-token`: is this string a well-formed provkey token (prefix + checksum)? Reads stdin. */
export async function checkTokenCommand(io: Io): Promise<number> {
  const candidate = await readSecretInput(io, 'token to check');
  const result = checkToken(candidate);
  if (io.json) io.out(JSON.stringify(withSchemaVersion({ ...result, fingerprint: fingerprint(candidate) })));
  else if (result.valid) io.out(`${io.color.green('✔')} valid provkey token (prefix ${result.prefix}), ${fingerprint(candidate)}`);
  else io.err(`${io.color.red('✘')} not a valid provkey token: ${result.reason}`);
  return result.valid ? 0 : 1;
}
