import { azureError } from './errors.js';

/**
 * Key Vault's own limits (https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates):
 * the emulator accepts more than real Key Vault, so provkey checks them itself, before any
 * write, with an error naming the key.
 */
export const LIMITS = {
  nameLength: 127,
  tags: 15,
  tagName: 512,
  tagValue: 256,
  /** Secret values: 25 KB (counted in UTF-8 bytes). */
  valueBytes: 25 * 1024,
} as const;

const VAULT_NAME = /^[0-9a-zA-Z-]{1,127}$/;

/**
 * provkey key names are [a-z0-9._-]; Key Vault names are [0-9a-zA-Z-] and case-insensitive.
 * The mapping is reversible and prefix-free: "-" becomes "--", "." becomes "-0", "_" becomes
 * "-1". A lone "-" followed by anything else never occurs in an encoded name, so the state
 * secret's suffix "-state" can never be mistaken for part of a key.
 */
export function encodeKeyName(key: string): string {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(key)) {
    throw azureError('invalid', `"${key}" cannot be stored in Key Vault: provkey key names are lower-case letters, digits, ".", "_" and "-"`);
  }
  return key.replace(/[-._]/g, (c) => (c === '-' ? '--' : c === '.' ? '-0' : '-1'));
}

/** The inverse of encodeKeyName; undefined for names provkey did not make. */
export function decodeKeyName(encoded: string): string | undefined {
  let out = '';
  for (let i = 0; i < encoded.length; i++) {
    const c = encoded[i]!;
    if (c !== '-') {
      if (!/[a-z0-9]/.test(c)) return undefined;
      out += c;
      continue;
    }
    const next = encoded[++i];
    if (next === '-') out += '-';
    else if (next === '0') out += '.';
    else if (next === '1') out += '_';
    else return undefined;
  }
  return out === '' || !/^[a-z0-9]/.test(out) ? undefined : out;
}

export const STATE_SUFFIX = '-state';

export interface SecretNames {
  /** One Key Vault version per provkey version. */
  value: string;
  /** The key's record as an append-only chain of versions (see chain.ts). */
  state: string;
}

export function secretNames(prefix: string, key: string): SecretNames {
  const base = `${prefix}${encodeKeyName(key)}`;
  const names = { value: base, state: `${base}${STATE_SUFFIX}` };
  if (!VAULT_NAME.test(names.state)) {
    throw azureError(
      'invalid',
      `key "${key}" is too long for Key Vault: its state secret "${names.state}" has ${names.state.length} characters, the limit is ${LIMITS.nameLength} (shorten the key name or the store's secretPrefix)`,
    );
  }
  return names;
}

/** The provkey key whose state secret this is, or undefined (a value secret, or not ours). */
export function keyOfStateSecret(prefix: string, name: string): string | undefined {
  // Key Vault names are case-insensitive and may come back in another case than written.
  const lower = name.toLowerCase();
  const p = prefix.toLowerCase();
  if (!lower.startsWith(p) || !lower.endsWith(STATE_SUFFIX)) return undefined;
  return decodeKeyName(lower.slice(p.length, lower.length - STATE_SUFFIX.length));
}

export function checkPrefix(prefix: string, field: string): string | undefined {
  if (prefix !== '' && !/^[0-9a-zA-Z-]+$/.test(prefix)) return `${field}: "${prefix}" may hold only letters, digits and "-" (Key Vault secret names)`;
  if (prefix.length > 40) return `${field}: at most 40 characters, to leave room for key names within Key Vault's 127`;
  return undefined;
}

export function checkValueSize(key: string, value: string, what: string): void {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > LIMITS.valueBytes) {
    throw azureError('invalid', `${what} of ${key} is ${bytes} bytes; Key Vault stores at most ${LIMITS.valueBytes} bytes per secret value`);
  }
}

export function checkTags(key: string, tags: Record<string, string>): void {
  const entries = Object.entries(tags);
  if (entries.length > LIMITS.tags) throw azureError('invalid', `${key}: ${entries.length} tags, Key Vault allows ${LIMITS.tags}`);
  for (const [name, value] of entries) {
    if (name.length > LIMITS.tagName) throw azureError('invalid', `${key}: tag name "${name.slice(0, 40)}…" is longer than ${LIMITS.tagName} characters`);
    if (value.length > LIMITS.tagValue) throw azureError('invalid', `${key}: tag "${name}" is longer than ${LIMITS.tagValue} characters`);
  }
}
