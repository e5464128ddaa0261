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
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    // Stop reading at the bound: a value piped from the wrong command never fills memory.
    if (size > MAX_STDIN_BYTES) throw new UsageError(`${what}: stdin holds more than ${MAX_STDIN_BYTES} bytes; a key is one short line`, 'input.stdin');
    chunks.push(chunk as Buffer);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new UsageError(`${what}: stdin is not UTF-8 text (binary data?)`, 'input.stdin');
  }
  const value = text.replace(/\r?\n$/, '');
  if (!value) throw new UsageError(`${what}: stdin was empty`, 'input.stdin');
  if (value.includes('\n')) throw new UsageError(`${what}: stdin holds more than one line`, 'input.stdin');
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new UsageError(`${what}: stdin contains a control character (NUL, tab, escape, …); a key is printable text`, 'input.stdin');
  return value;
}

/** 64 KiB: far beyond any key, small enough to hold. */
const MAX_STDIN_BYTES = 64 * 1024;
