import { fingerprint } from './fingerprint.js';

/**
 * Last line of defence: every secret value provkey handles in this process is registered
 * here, and every line it prints or audits passes through `redact`, which replaces any
 * registered value with its fingerprint. Code never prints secrets on purpose; this catches
 * the accident (an echoed server message, a library error that quotes its input).
 *
 * Not only the exact value: a server or hook that echoes the secret base64-, base64url-, hex-
 * or URL-encoded, JSON-escaped, or only a piece of it (its first 24 characters, a truncated
 * line) betrays it just as well. Each registered value is expanded once into those forms;
 * every run of text that shares WINDOW or more consecutive characters with one of the forms
 * (at any offset, so every WINDOW-character piece of every form) is replaced.
 *
 * How, without a map entry per window (a million strings for 2,000 secrets, most of a run's
 * memory): the forms are kept as they are, and a GRAM-character piece is indexed at every
 * STRIDE-th offset of each form (STRIDE = WINDOW - GRAM + 1, so every WINDOW-character piece
 * of a form contains one indexed piece whole) in an open-addressing table of numbers. `redact`
 * looks up the piece at EVERY offset of the text, so a shared run of WINDOW characters always
 * meets one of its indexed pieces; each hit is then confirmed character by character against
 * the form itself and extended both ways to the whole shared run. A hash collision can only
 * cost a comparison, never a redaction of text that is not a piece of a secret; and the runs
 * found are exactly the union of every WINDOW-character window of the text that is a window of
 * a form, which is what the map of windows found.
 */

/** The shortest piece of a secret that is redacted: shorter pieces match ordinary text too often. */
export const WINDOW = 12;
/** The indexed piece; a hit on it is only a candidate, confirmed against the form. */
const GRAM = 6;
/** Offsets between indexed pieces of a form: any WINDOW consecutive characters hold one whole. */
const STRIDE = WINDOW - GRAM + 1;

/** Forms shorter than WINDOW (secrets of 8–11 characters): matched whole. */
const shortForms = new Map<string, string>();
const registered = new Set<string>();

/** Every form of WINDOW or more characters, the secret it belongs to, and that secret's replacement. */
const forms: string[] = [];
const formSecret: number[] = [];
const replacements: string[] = [];

/** Indexed pieces ("entries"): the form and offset they come from, the next entry with the same text, an 8-bit tag of their hash. */
let entryForm = new Uint32Array(1024);
let entryOffset = new Uint32Array(1024);
let entryNext = new Int32Array(1024);
let entryTag = new Uint8Array(1024);
let entries = 0;
/** Open addressing, linear probing: slot → first entry of a distinct piece, -1 empty. At most half full. */
let table = new Int32Array(2048).fill(-1);
let distinct = 0;

export function registerSecret(value: string): void {
  // Very short values would redact ordinary words; provkey never generates them.
  if (value.length < 8 || registered.has(value)) return;
  registered.add(value);
  const secret = replacements.push(`[${fingerprint(value)}]`) - 1;
  for (const form of encodedForms(value)) {
    if (form.length < WINDOW) {
      shortForms.set(form, replacements[secret]!);
      continue;
    }
    const index = forms.push(form) - 1;
    formSecret.push(secret);
    // Offsets 0, STRIDE, 2·STRIDE, … up to the last piece: the WINDOW-character piece at any
    // offset w covers pieces w … w + STRIDE - 1, one of which is a multiple of STRIDE.
    for (let offset = 0; offset + GRAM <= form.length; offset += STRIDE) addEntry(index, offset);
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

/** A 32-bit hash of the GRAM characters of `text` from `at` (FNV-1a over code units, then mixed). */
function hashAt(text: string, at: number): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < GRAM; k++) h = Math.imul(h ^ text.charCodeAt(at + k), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

const tagOf = (hash: number) => hash >>> 24;

function sameGram(a: string, at: number, b: string, bt: number): boolean {
  for (let k = 0; k < GRAM; k++) if (a.charCodeAt(at + k) !== b.charCodeAt(bt + k)) return false;
  return true;
}

function addEntry(form: number, offset: number): void {
  if (entries === entryForm.length) growEntries();
  const e = entries++;
  entryForm[e] = form;
  entryOffset[e] = offset;
  const hash = hashAt(forms[form]!, offset);
  entryTag[e] = tagOf(hash);
  const mask = table.length - 1;
  for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
    const head = table[slot]!;
    if (head === -1) {
      entryNext[e] = -1;
      table[slot] = e;
      if (++distinct * 2 > table.length) rehash();
      return;
    }
    // The same piece of text (a prefix many secrets share): one slot, a chain of entries.
    if (entryTag[head] === entryTag[e] && sameGram(forms[entryForm[head]!]!, entryOffset[head]!, forms[form]!, offset)) {
      entryNext[e] = head;
      table[slot] = e;
      return;
    }
  }
}

function growEntries(): void {
  const size = entryForm.length * 2;
  const grown = <T extends Uint32Array | Int32Array | Uint8Array>(old: T, make: (n: number) => T): T => {
    const next = make(size);
    next.set(old);
    return next;
  };
  entryForm = grown(entryForm, (n) => new Uint32Array(n));
  entryOffset = grown(entryOffset, (n) => new Uint32Array(n));
  entryNext = grown(entryNext, (n) => new Int32Array(n));
  entryTag = grown(entryTag, (n) => new Uint8Array(n));
}

function rehash(): void {
  const old = table;
  table = new Int32Array(old.length * 2).fill(-1);
  const mask = table.length - 1;
  for (const head of old) {
    if (head === -1) continue;
    let slot = hashAt(forms[entryForm[head]!]!, entryOffset[head]!) & mask;
    while (table[slot] !== -1) slot = (slot + 1) & mask;
    table[slot] = head;
  }
}

/** A run of text shared with a form: [start, end), and whose secret it is. */
interface Found {
  start: number;
  end: number;
  secret: number;
}

/** Every run of WINDOW or more characters of `text` that is a piece of a registered form. */
function findRuns(text: string): Found[] {
  const found: Found[] = [];
  const mask = table.length - 1;
  // The last run found per diagonal is skipped when met again inside it (one run gives many hits).
  let lastForm = -1;
  let lastShift = 0;
  let lastEnd = -1;
  for (let i = 0; i + GRAM <= text.length; i++) {
    const hash = hashAt(text, i);
    const tag = tagOf(hash);
    let slot = hash & mask;
    let head = table[slot]!;
    while (head !== -1 && !(entryTag[head] === tag && sameGram(forms[entryForm[head]!]!, entryOffset[head]!, text, i))) {
      slot = (slot + 1) & mask;
      head = table[slot]!;
    }
    for (let e = head; e !== -1; e = entryNext[e]!) {
      const form = entryForm[e]!;
      const offset = entryOffset[e]!;
      if (form === lastForm && i - offset === lastShift && i < lastEnd) continue;
      const source = forms[form]!;
      let before = 0;
      while (before < offset && before < i && source.charCodeAt(offset - before - 1) === text.charCodeAt(i - before - 1)) before++;
      let after = GRAM;
      while (offset + after < source.length && i + after < text.length && source.charCodeAt(offset + after) === text.charCodeAt(i + after)) after++;
      const start = i - before;
      const end = i + after;
      lastForm = form;
      lastShift = i - offset;
      lastEnd = end;
      if (end - start >= WINDOW) found.push({ start, end, secret: formSecret[form]! });
    }
  }
  return found;
}

export function redact(text: string): string {
  if (registered.size === 0) return text;
  let out = text;
  for (const [form, replacement] of shortForms) {
    if (out.includes(form)) out = out.split(form).join(replacement);
  }
  if (entries === 0 || out.length < WINDOW) return out;
  const found = findRuns(out);
  if (found.length === 0) return out;
  found.sort((a, b) => a.start - b.start || b.end - a.end);
  let result = '';
  let copied = 0;
  for (let k = 0; k < found.length; ) {
    const { start, secret } = found[k]!;
    let end = found[k]!.end;
    // Runs that overlap or touch are one run, one replacement (the first run's secret).
    for (k++; k < found.length && found[k]!.start <= end; k++) end = Math.max(end, found[k]!.end);
    result += out.slice(copied, start) + replacements[secret]!;
    copied = end;
  }
  return result + out.slice(copied);
}
