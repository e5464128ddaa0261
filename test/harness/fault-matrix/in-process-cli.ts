// The real CLI (program.ts, every command module, their exit codes) run inside the test
// process, so the fault matrix can drive the engine's seam without a subprocess per run.
// Output goes through the same redaction as the real Io and is captured for the secret scan.

import { CommanderError } from 'commander';
import { Chalk } from 'chalk';
import { buildProgram } from '../../../src/cli/program.ts';
import type { Io } from '../../../src/cli/io.ts';
import { isProvkeyError } from '../../../src/core/errors.ts';
import { redact } from '../../../src/core/redact.ts';
import { SessionAborted } from '../../../src/engine/seam.ts';

export interface InProcessRun {
  args: string[];
  /** The exit code the CLI would return; null when the seam abandoned the run (a simulated crash). */
  code: number | null;
  stdout: string;
  stderr: string;
  aborted?: SessionAborted;
}

export async function runInProcess(args: string[]): Promise<InProcessRun> {
  const out: string[] = [];
  const err: string[] = [];
  const json = args.includes('--json');
  const io: Io = {
    json,
    verbose: false,
    isTTY: false,
    interactive: false,
    color: new Chalk({ level: 0 }),
    out: (text) => out.push(redact(text)),
    err: (text) => err.push(redact(text)),
    reveal: (value) => out.push(value),
    debug: () => {},
  };
  let code: number | null = 0;
  const program = buildProgram(async (task) => {
    const raw = program.opts();
    code = await task({ config: raw.config, json: Boolean(raw.json), yes: Boolean(raw.yes), dryRun: Boolean(raw.dryRun), verbose: false, color: false }, io);
  });
  const silence = (command: typeof program) => {
    command.exitOverride();
    command.configureOutput({ writeErr: (text) => err.push(text), writeOut: (text) => out.push(text) });
    for (const sub of command.commands) silence(sub);
  };
  silence(program);
  let aborted: SessionAborted | undefined;
  try {
    await program.parseAsync(['node', 'provkey', ...args]);
  } catch (error) {
    if (error instanceof SessionAborted) {
      aborted = error;
      code = null;
    } else if (error instanceof CommanderError) {
      code = error.exitCode === 0 ? 0 : 2;
    } else if (isProvkeyError(error)) {
      err.push(redact(error.message));
      code = error.exitCode;
    } else {
      err.push(`internal error: ${redact(error instanceof Error ? (error.stack ?? error.message) : String(error))}`);
      code = 1;
    }
  }
  return { args, code, stdout: out.join('\n'), stderr: err.join('\n'), ...(aborted ? { aborted } : {}) };
}
