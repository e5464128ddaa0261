import { fingerprint } from './fingerprint.js';

/**
 * Last line of defence: every secret value provkey handles in this process is registered
 * here, and every line it prints or audits passes through `redact`, which replaces any
 * registered value with its fingerprint. Code never prints secrets on purpose; this catches
 * the accident (an echoed server message, a library error that quotes its input).
 *
 * Not only the exact value: a server or hook that echoes the secret base64-, base64url-, hex-
 * or URL-encoded, JSON-escaped, or only a piece of it (its first 24 characters, a truncated
 * line) betrays it just as well. Each registered value is expanded once into those forms, and
 * every window of WINDOW characters of every form goes into one map; `redact` then looks up
 * each WINDOW-character slice of the text (one hash lookup per character, whatever the number
 * of secrets) and replaces each run of matching slices.
 */

/** The shortest piece of a secret that is redacted: shorter pieces match ordinary text too often. */
export const WINDOW = 12;

/** WINDOW-character slice of some encoded form → the fingerprint of the secret it came from. */
const windows = new Map<string, string>();
/** Forms shorter than WINDOW (secrets of 8–11 characters): matched whole. */
const shortForms = new Map<string, string>();
const registered = new Set<string>();

export function registerSecret(value: string): void {
  // Very short values would redact ordinary words; provkey never generates them.
  if (value.length < 8 || registered.has(value)) return;
  registered.add(value);
  const replacement = `[${fingerprint(value)}]`;
  for (const form of encodedForms(value)) {
    if (form.length < WINDOW) {
      shortForms.set(form, replacement);
      continue;
    }
    for (let i = 0; i + WINDOW <= form.length; i++) windows.set(form.slice(i, i + WINDOW), replacement);
  }
}

/**
 * The value as it may appear in text: as is, JSON-escaped (--json output), URL-encoded (both
 * ways of writing a space), hex (both cases), and base64 / base64url at each of the three
 * byte alignments, so the encoding of any piece of the value is a piece of one of them.
 */
function encodedForms(value: string): Set<string> {
  const forms = new Set<string>([value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value), new URLSearchParams({ v: value }).toString().slice(2)]);
  const bytes = Buffer.from(value, 'utf8');
  forms.add(bytes.toString('hex'));
  forms.add(bytes.toString('hex').toUpperCase());
  // The base64 of a piece starting at byte k is a piece of the base64 of the value from byte k mod 3.
  for (let shift = 0; shift < 3 && shift < bytes.length; shift++) {
    const aligned = bytes.subarray(shift);
    forms.add(aligned.toString('base64').replace(/=+$/, ''));
    forms.add(aligned.toString('base64url'));
  }
  return forms;
}

export function redact(text: string): string {
  if (registered.size === 0) return text;
  let out = text;
  for (const [form, replacement] of shortForms) {
    if (out.includes(form)) out = out.split(form).join(replacement);
  }
  if (windows.size === 0 || out.length < WINDOW) return out;
  let result = '';
  let copied = 0;
  for (let i = 0; i + WINDOW <= out.length; i++) {
    const replacement = windows.get(out.slice(i, i + WINDOW));
    if (replacement === undefined) continue;
    // Extend over every following slice that is also a piece of a secret: one run, one replacement.
    let end = i + WINDOW;
    for (let j = i + 1; j + WINDOW <= out.length && j <= end && windows.has(out.slice(j, j + WINDOW)); j++) end = j + WINDOW;
    result += out.slice(copied, i) + replacement;
    copied = end;
    i = end - 1;
  }
  return copied === 0 ? out : result + out.slice(copied);
}
