import { Chalk, type ChalkInstance } from 'chalk';
import { redact } from '../core/redact.js';

/**
 * Terminal awareness in one place: where output goes, whether it is a TTY, colour, JSON mode.
 * Every line passes through `redact`, so a secret that reached a message by accident is
 * printed as its fingerprint instead.
 */
export interface Io {
  json: boolean;
  verbose: boolean;
  /** stdout is a terminal: colour, tables, progress bars. */
  isTTY: boolean;
  /** Prompts are possible: stdin and stderr are terminals and the run is not --json. */
  interactive: boolean;
  color: ChalkInstance;
  out(text: string): void;
  err(text: string): void;
  /** Writes a value exactly as is (generate, get --reveal): the only unredacted path. */
  reveal(value: string): void;
  debug(text: string): void;
}

export function createIo(options: { json: boolean; verbose: boolean; color: boolean | undefined; quiet?: boolean; env?: NodeJS.ProcessEnv }): Io {
  const env = options.env ?? process.env;
  const isTTY = Boolean(process.stdout.isTTY);
  const forced = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0';
  const colorWanted = options.color !== false && !('NO_COLOR' in env && env.NO_COLOR !== '') && (isTTY || forced) && !options.json;
  const color = new Chalk({ level: colorWanted ? 1 : 0 });
  return {
    json: options.json,
    verbose: options.verbose,
    isTTY,
    interactive: Boolean(process.stdin.isTTY && process.stderr.isTTY) && !options.json && env.CI !== 'true',
    color,
    // --quiet: no report on stdout (errors and warnings still go to stderr; --json and values still print).
    out: options.quiet && !options.json ? () => {} : (text) => process.stdout.write(`${redact(text)}\n`),
    err: (text) => process.stderr.write(`${redact(text)}\n`),
    reveal: (value) => process.stdout.write(`${value}\n`),
    debug: (text) => {
      if (options.verbose) process.stderr.write(`${color.dim(redact(`[debug] ${text}`))}\n`);
    },
  };
}
