import { fstatSync, statSync } from 'node:fs';
import { redact } from '../core/redact.js';

/**
 * The few styles provkey prints. On a terminal they are chalk's, loaded only then (a pipe, a
 * cron log or --json never loads it); anywhere else each one returns its text unchanged.
 */
export interface Colors {
  /** 0: no colour; above 0: chalk's colour level. */
  level: number;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
  bgRed: { white(text: string): string };
}

const plain = (text: string) => text;
const NO_COLORS: Colors = { level: 0, red: plain, green: plain, yellow: plain, dim: plain, bold: plain, bgRed: { white: plain } };

async function chalkColors(): Promise<Colors> {
  // provkey has already decided that colour is wanted (NO_COLOR, FORCE_COLOR, --no-color, a TTY):
  // chalk keeps the terminal's level when it knows one, basic colours otherwise.
  const { Chalk, supportsColor } = await import('chalk');
  const chalk = new Chalk({ level: supportsColor ? Math.max(1, supportsColor.level) as 1 | 2 | 3 : 1 });
  return { level: chalk.level, red: chalk.red, green: chalk.green, yellow: chalk.yellow, dim: chalk.dim, bold: chalk.bold, bgRed: { white: chalk.bgRed.white } };
}

/**
 * Whether `fd` is a terminal. A file, pipe, socket or /dev/null (cron, CI, a redirect) is told
 * by its fstat alone: node:tty, which answers the rest, loads net and all of streams.
 */
async function isTerminal(fd: number): Promise<boolean> {
  try {
    const stat = fstatSync(fd);
    if (!stat.isCharacterDevice()) return false;
    if (process.platform !== 'win32' && stat.rdev === statSync('/dev/null').rdev) return false;
  } catch {
    return false; // a closed descriptor is no terminal (tty.isatty says the same)
  }
  const { isatty } = await import('node:tty');
  return isatty(fd);
}

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
  color: Colors;
  out(text: string): void;
  err(text: string): void;
  /** Writes a value exactly as is (generate, get --reveal): the only unredacted path. */
  reveal(value: string): void;
  debug(text: string): void;
}

export async function createIo(options: { json: boolean; verbose: boolean; color: boolean | undefined; quiet?: boolean; env?: NodeJS.ProcessEnv }): Promise<Io> {
  const env = options.env ?? process.env;
  // Not process.stdin.isTTY: reading process.stdin builds a stream (and loads all of streams)
  // in a run that never reads stdin.
  const isTTY = await isTerminal(1);
  const forced = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0';
  const colorWanted = options.color !== false && !('NO_COLOR' in env && env.NO_COLOR !== '') && (isTTY || forced) && !options.json;
  const color = colorWanted ? await chalkColors() : NO_COLORS;
  return {
    json: options.json,
    verbose: options.verbose,
    isTTY,
    interactive: !options.json && env.CI !== 'true' && (await isTerminal(0)) && (await isTerminal(2)),
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
