import { CommanderError, type Command } from 'commander';
import { ExitCode, isProvkeyError } from '../core/errors.js';
import type { Io } from './io.js';
import type { GlobalOptions } from './globals.js';
import { buildProgram } from './program.js';
import { withSchemaVersion } from './render/format.js';

/**
 * The entry module: the only top-level try/catch and the only place that sets the exit
 * code. Commands throw typed errors; this renders them as one line (or JSON) on stderr.
 */
async function main(argv: string[]): Promise<number> {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  if (major < 22 || (major === 22 && minor < 12)) {
    process.stderr.write(`provkey: Node.js ${process.versions.node} is too old; provkey needs Node.js 22.12 or newer\n`);
    return ExitCode.usage;
  }
  // Every argument has a bound: nothing provkey takes on its command line is longer.
  const tooLong = argv.slice(2).findIndex((arg) => arg.length > MAX_ARGUMENT_LENGTH);
  if (tooLong >= 0) {
    process.stderr.write(`provkey: argument ${tooLong + 1} is longer than ${MAX_ARGUMENT_LENGTH} characters\n`);
    return ExitCode.usage;
  }
  let exitCode: number = ExitCode.ok;
  let io: Io | undefined;
  const program = buildProgram(async (task) => {
    const raw = program.opts();
    const globals: GlobalOptions = {
      config: raw.config,
      stateDir: raw.stateDir,
      json: Boolean(raw.json),
      yes: Boolean(raw.yes),
      dryRun: Boolean(raw.dryRun),
      verbose: Boolean(raw.verbose),
      quiet: Boolean(raw.quiet),
      color: raw.color !== false,
      ...(raw.metricsFile ? { metricsFile: String(raw.metricsFile) } : {}),
    };
    // Output plumbing (redaction, colour) is loaded once a command runs: --help never needs it.
    const { createIo } = await import('./io.js');
    io = await createIo({ json: globals.json, verbose: globals.verbose, color: globals.color, quiet: globals.quiet });
    exitCode = await task(globals, io);
  });
  // Every command, not only the root: commander would otherwise exit(1) itself on a usage error.
  const json = argv.includes('--json');
  for (const command of [program, ...allSubcommands(program)]) {
    command.exitOverride();
    // With --json a usage error is rendered below as JSON; commander's own text is dropped.
    command.configureOutput({ writeErr: (text) => (json ? undefined : process.stderr.write(text)), writeOut: (text) => process.stdout.write(text) });
  }
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError && isHelpOrVersion(error)) return ExitCode.ok;
    const { createIo } = await import('./io.js');
    const { redact } = await import('../core/redact.js');
    return renderError(error, io ?? (await createIo({ json: argv.includes('--json'), verbose: argv.includes('--verbose') || argv.includes('-v'), color: !argv.includes('--no-color') })), redact);
  }
}

const MAX_ARGUMENT_LENGTH = 4096;

function allSubcommands(command: Command): Command[] {
  return command.commands.flatMap((sub) => [sub, ...allSubcommands(sub)]);
}

/** --help and --version end with a CommanderError too, with code 0. */
function isHelpOrVersion(error: CommanderError): boolean {
  return error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.version';
}

function renderError(error: unknown, io: Io, redact: (text: string) => string): number {
  if (error instanceof CommanderError) {
    // Usage errors were already printed by commander.
    if (isHelpOrVersion(error)) return ExitCode.ok;
    if (io.json) io.err(JSON.stringify(withSchemaVersion({ error: { code: 'usage', message: error.message.replace(/^error: /, ''), exitCode: ExitCode.usage } })));
    return ExitCode.usage;
  }
  if (isProvkeyError(error)) {
    if (io.json) io.err(JSON.stringify(withSchemaVersion({ error: { code: error.code, message: error.message, exitCode: error.exitCode } })));
    else io.err(`${io.color.red('provkey:')} ${error.message}`);
    if (io.verbose && error.cause) io.err(io.color.dim(`  cause: ${redact(withoutQuotedInput(String((error.cause as Error).message ?? error.cause)))}`));
    return error.exitCode;
  }
  if ((error as { name?: string })?.name === 'ExitPromptError') {
    io.err('provkey: cancelled');
    return ExitCode.cancelled;
  }
  // Anything else is a bug in provkey: one line, and the stack only with --verbose. A library's
  // message may quote the input it choked on (JSON.parse does): quoted text is left out.
  const message = withoutQuotedInput(error instanceof Error ? error.message : String(error));
  if (io.json) io.err(JSON.stringify(withSchemaVersion({ error: { code: 'internal', message, exitCode: ExitCode.failed } })));
  else io.err(`provkey: internal error: ${message} (please report this at https://github.com/provkey/provkey/issues; --verbose shows the stack)`);
  if (io.verbose && error instanceof Error && error.stack) io.err(io.color.dim([message, ...error.stack.split('\n').filter((line) => /^\s+at /.test(line))].join('\n')));
  return ExitCode.failed;
}

function withoutQuotedInput(message: string): string {
  return message.split('\n')[0]!.replace(/"[^"]*"|'[^']*'|`[^`]*`/g, '"…"').slice(0, 200);
}

// `provkey status | head` closes the pipe early: that is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

// No top-level await: the single executable runs this module bundled as CommonJS (bin/build/sea.mjs).
void main(process.argv).then((code) => {
  process.exitCode = code;
});
