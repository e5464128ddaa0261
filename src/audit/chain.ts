import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/**
 * The audit log's line format. Two kinds of line, in this order only:
 *
 * - legacy (written by provkey before the log was keyed, or with no key available):
 *   `{…, prev, hash}`, hash = SHA-256(prev + "\n" + JSON of the rest). Anyone can recompute
 *   it, so it proves nothing against someone who can write the file.
 * - keyed: `{…, kid, prev, mac}`, mac = HMAC-SHA256(K, prev + "\n" + the line's own text up
 *   to the mac field). K is derived (HKDF) from the key of the embedded store, so only whoever
 *   can open the store can write a line that verifies. `prev` is the previous line's mac or
 *   hash, so the first keyed line also seals every legacy line before it.
 *
 * The MAC covers the exact bytes on disk (no re-serialisation), so JSON key order never matters.
 */

export const GENESIS_HASH = '0'.repeat(64);

/** The chain key and its public id (names which key a line was made with, without revealing it). */
export interface AuditKey {
  key: Buffer;
  id: string;
}

/** A distinct HKDF label: the chain key is never the store's encryption key itself. */
const chainInfo = 'provkey audit chain v1';

export function deriveAuditKey(storeKey: Buffer): AuditKey {
  const key = Buffer.from(hkdfSync('sha256', storeKey, Buffer.alloc(0), chainInfo, 32));
  const id = createHmac('sha256', key).update('provkey audit key id').digest('hex').slice(0, 16);
  return { key, id };
}

export function legacyHash(body: object & { prev: string }): string {
  return createHash('sha256').update(`${body.prev}\n${JSON.stringify(body)}`).digest('hex');
}

function mac(key: Buffer, prev: string, bodyText: string): string {
  return createHmac('sha256', key).update(`${prev}\n${bodyText}`).digest('hex');
}

/** The text of one line (no newline) and the link the next line chains to. */
export function sealLine(body: Record<string, unknown> & { prev: string }, key: AuditKey | undefined): { text: string; link: string } {
  if (!key) {
    const hash = legacyHash(body);
    return { text: JSON.stringify({ ...body, hash }), link: hash };
  }
  const bodyText = JSON.stringify({ ...body, kid: key.id });
  const link = mac(key.key, body.prev, bodyText);
  return { text: `${bodyText.slice(0, -1)},"mac":"${link}"}`, link };
}

export interface ParsedLine {
  entry: Record<string, unknown>;
  keyed: boolean;
  /** The mac or hash the next line must carry as prev. */
  link: string;
  /** keyed lines: the text the mac covers. */
  bodyText?: string;
}

const macSuffix = /,"mac":"([0-9a-f]{64})"\}$/;

/** Parses one line without checking it; undefined when it is not a line of ours. */
export function parseLine(text: string): ParsedLine | undefined {
  let entry: unknown;
  try {
    entry = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return undefined;
  const record = entry as Record<string, unknown>;
  if (typeof record.seq !== 'number' || typeof record.prev !== 'string') return undefined;
  if ('mac' in record) {
    const match = macSuffix.exec(text);
    if (!match || match[1] !== record.mac || typeof record.kid !== 'string') return undefined;
    return { entry: record, keyed: true, link: match[1], bodyText: `${text.slice(0, match.index)}}` };
  }
  if (typeof record.hash !== 'string') return undefined;
  return { entry: record, keyed: false, link: record.hash };
}

/** Checks a parsed line's own link; for keyed lines only with the key it names. */
export function lineIsAuthentic(line: ParsedLine, key: AuditKey | undefined): boolean | 'no_key' {
  if (!line.keyed) {
    const { hash: _hash, ...body } = line.entry;
    return legacyHash(body as { prev: string }) === line.link;
  }
  if (!key || key.id !== line.entry.kid) return 'no_key';
  const expected = Buffer.from(mac(key.key, line.entry.prev as string, line.bodyText!), 'hex');
  return timingSafeEqual(expected, Buffer.from(line.link, 'hex'));
}

/** Generations announced per store, as carried by a line (absent on lines older than generations). */
export function generationsOf(entry: Record<string, unknown>): Map<string, number> {
  const found = new Map<string, number>();
  const value = entry.generations;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return found;
  for (const [store, generation] of Object.entries(value)) {
    if (Number.isSafeInteger(generation) && (generation as number) >= 0) found.set(store, generation as number);
  }
  return found;
}

/** A map as a plain JSON object; Object.fromEntries defines own properties, so "__proto__" is just a name. */
export function generationsObject(map: Map<string, number>): Record<string, number> {
  return Object.fromEntries([...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
