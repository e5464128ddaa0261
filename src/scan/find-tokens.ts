import { checkToken } from '../core/token-format.js';

/** One provkey token found in a piece of text: where it is, never printed itself. */
export interface TokenHit {
  token: string;
  prefix: string;
  /** 1-based line and column of the token's first character. */
  line: number;
  column: number;
}

const PREFIX_SHAPE = /^[A-Za-z][A-Za-z0-9]{0,15}$/;
/** The shortest token the config allows: 8 random characters and the 6-character checksum. */
const MIN_TAIL = 14;

/**
 * Finds provkey tokens of the given prefixes in text. A candidate is `<prefix>_<whole base62
 * run>`, even glued to other text on its left (`TOKEN_pk_…`, `xpk_…`: a leak is a leak); it
 * counts only when its checksum holds, so a look-alike (same shape, wrong checksum, cut short
 * or extended) is never reported: a random candidate passes with odds of about 1 in 2^32.
 */
export class TokenFinder {
  readonly prefixes: readonly string[];
  private readonly pattern: RegExp;
  /** `<prefix>_` as bytes, for findInBytes. */
  private readonly needles: Buffer[];

  constructor(prefixes: Iterable<string>) {
    const unique = [...new Set(prefixes)].sort((a, b) => b.length - a.length);
    if (unique.length === 0) throw new Error('TokenFinder needs at least one prefix');
    for (const prefix of unique) if (!PREFIX_SHAPE.test(prefix)) throw new Error(`not a token prefix: ${prefix}`);
    this.prefixes = unique;
    this.pattern = new RegExp(`(${unique.join('|')})_[0-9A-Za-z]{${MIN_TAIL},}(?![0-9A-Za-z])`, 'g');
    this.needles = unique.map((p) => Buffer.from(`${p}_`, 'latin1'));
  }

  /**
   * Every valid token in a file's bytes. A file with no `<prefix>_` at all (the usual case)
   * is rejected by a native byte search without becoming a string; otherwise the regex runs
   * over its latin1 text (one char per byte, nothing mangled). Measured: the regex beats a
   * per-occurrence byte walk several times over on code full of `pk_`-like names.
   */
  findInBytes(bytes: Buffer): TokenHit[] {
    if (!this.needles.some((needle) => bytes.includes(needle))) return [];
    return this.find(bytes.toString('latin1'));
  }

  /** Cheap test before `find`: false when no `<prefix>_` occurs in the text at all. */
  mayContain(text: string): boolean {
    return this.prefixes.some((prefix) => text.includes(`${prefix}_`));
  }

  /** Every valid token in `text` (latin1 or ASCII-safe text: tokens are ASCII). */
  find(text: string, firstLine = 1): TokenHit[] {
    const hits: TokenHit[] = [];
    let line = firstLine;
    let lineStart = 0;
    let counted = 0;
    this.pattern.lastIndex = 0;
    for (let match = this.pattern.exec(text); match; match = this.pattern.exec(text)) {
      const token = match[0];
      if (!checkToken(token).valid) continue;
      // Count newlines only up to each hit: text without hits costs no line counting.
      for (let nl = text.indexOf('\n', counted); nl !== -1 && nl < match.index; nl = text.indexOf('\n', nl + 1)) {
        line++;
        lineStart = nl + 1;
      }
      counted = match.index;
      hits.push({ token, prefix: match[1]!, line, column: match.index - lineStart + 1 });
    }
    return hits;
  }
}
