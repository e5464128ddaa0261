import { UsageError } from './errors.js';

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** The longest duration provkey accepts anywhere: ten years (longer is a typo, or an attack on the arithmetic). */
export const MAX_DURATION_MS = 3650 * 86_400_000;
/** The longest timeout: Node timers overflow past 2^31-1 ms (~24.8 days) and would fire at once. */
export const MAX_TIMEOUT_MS = 86_400_000;

/**
 * Parses "90s", "15m", "36h", "30d", "2w", or a combination like "1h30m", up to `maxMs`.
 * A bare number is refused: "60" could mean seconds or days, and guessing is how keys expire.
 * The message names the field, never the text (it may come from a file that is not a config).
 */
export function parseDuration(text: string, field: string, maxMs: number = MAX_DURATION_MS): number {
  const trimmed = text.trim();
  if (trimmed === '0') return 0;
  const invalid = () => new UsageError(`${field}: is not a duration (use e.g. 90s, 15m, 36h, 30d)`, 'input.duration');
  // Bounded before any work: a few units at most, each a number of at most 9 digits.
  if (trimmed.length > 64) throw invalid();
  const re = /(\d{1,9}(?:\.\d{1,6})?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let consumed = 0;
  for (let match = re.exec(trimmed); match; match = re.exec(trimmed)) {
    total += Number(match[1]) * UNIT_MS[match[2]!]!;
    consumed = re.lastIndex;
  }
  if (consumed === 0 || consumed !== trimmed.length) throw invalid();
  if (total > maxMs) {
    throw new UsageError(`${field}: longer than the maximum of ${formatDuration(maxMs)}`, 'input.duration');
  }
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  if (rest < 1000) return `${sign}${Math.round(rest)}ms`;
  if (rest < 60_000) return `${sign}${(rest / 1000).toFixed(rest < 10_000 ? 2 : 1)}s`;
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return sign + parts.join('');
}
