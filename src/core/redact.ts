import { fingerprint } from './fingerprint.js';

/**
 * Last line of defence: every secret value provkey handles in this process is registered
 * here, and every line it prints or audits passes through `redact`, which replaces any
 * registered value with its fingerprint. Code never prints secrets on purpose; this catches
 * the accident (an echoed server message, a library error that quotes its input).
 */
const known = new Map<string, string>();

export function registerSecret(value: string): void {
  // Very short values would redact ordinary words; provkey never generates them.
  if (value.length < 8 || known.has(value)) return;
  const replacement = `[${fingerprint(value)}]`;
  known.set(value, replacement);
  // --json output escapes quotes and backslashes: catch the value in that form too.
  const escaped = JSON.stringify(value).slice(1, -1);
  if (escaped !== value) known.set(escaped, replacement);
}

export function redact(text: string): string {
  if (known.size === 0) return text;
  let out = text;
  for (const [value, replacement] of known) {
    if (out.includes(value)) out = out.split(value).join(replacement);
  }
  return out;
}
