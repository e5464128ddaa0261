import { CancelledError, UsageError } from '../core/errors.js';
import type { Io } from './io.js';

/**
 * Destructive commands ask on a TTY and require --yes otherwise: a cron job must say so
 * explicitly, never hang on a prompt nobody will answer.
 */
export async function confirmDestructive(io: Io, yes: boolean, question: string, refusal: string): Promise<void> {
  if (yes) return;
  if (!io.interactive) {
    throw new UsageError(`${refusal} without --yes when not on a terminal; nothing was changed`, 'usage.confirm');
  }
  const { confirm } = await import('@inquirer/prompts');
  const answer = await confirm({ message: question, default: false }, { output: process.stderr });
  if (!answer) throw new CancelledError('cancelled at the confirmation prompt; nothing was changed');
}

/** Reads a secret from stdin (piped) or a hidden prompt (TTY); never from argv. */
export async function readSecretInput(io: Io, what: string): Promise<string> {
  if (process.stdin.isTTY) {
    if (!io.interactive) throw new UsageError(`${what}: pipe the value on stdin`, 'input.stdin');
    const { password } = await import('@inquirer/prompts');
    return password({ message: `${what}:`, mask: true }, { output: process.stderr });
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const value = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (!value) throw new UsageError(`${what}: stdin was empty`, 'input.stdin');
  if (value.includes('\n')) throw new UsageError(`${what}: stdin holds more than one line`, 'input.stdin');
  return value;
}
