import { createHash } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import path from 'node:path';
import { NeedsHumanError } from '../core/errors.js';
import { redact } from '../core/redact.js';
import { defaultLockOptions, withFileLock } from '../stores/file/lock.js';

/**
 * Append-only, hash-chained audit log (JSON Lines). Each entry carries the hash of the one
 * before it, so any edit, insertion, deletion or reordering breaks the chain and
 * `provkey audit verify` finds the first line where it breaks. Entries hold fingerprints only.
 */

export const GENESIS_HASH = '0'.repeat(64);

export interface AuditEvent {
  event: string;
  key?: string;
  outcome?: 'ok' | 'failed' | 'rolled_back' | 'lockout' | 'skipped' | 'resumed';
  fingerprint?: string;
  versionId?: string;
  detail?: Record<string, unknown>;
}

export interface AuditEntry extends AuditEvent {
  seq: number;
  at: string;
  actor: { user: string; host: string; pid: number };
  prev: string;
  hash: string;
}

export function hashEntry(entry: Omit<AuditEntry, 'hash'>): string {
  return createHash('sha256').update(`${entry.prev}\n${JSON.stringify(entry)}`).digest('hex');
}

function actor(): AuditEntry['actor'] {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // Containers may run as a uid with no passwd entry.
  }
  return { user, host: hostname(), pid: process.pid };
}

async function lastEntry(file: string): Promise<{ seq: number; hash: string }> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { seq: 0, hash: GENESIS_HASH };
    throw error;
  }
  try {
    // Only the tail is needed: read backwards in 64 KiB steps until a whole last line is seen.
    const { size } = await handle.stat();
    let chunk = 65536;
    for (;;) {
      const start = Math.max(0, size - chunk);
      const buffer = Buffer.alloc(size - start);
      await handle.read(buffer, 0, buffer.length, start);
      const text = buffer.toString('utf8');
      const lines = text.split('\n').filter((l) => l.trim() !== '');
      if (lines.length >= 2 || start === 0) {
        const last = lines.at(-1);
        if (!last) return { seq: 0, hash: GENESIS_HASH };
        return parseTail(last, text.endsWith('\n'), file);
      }
      chunk *= 4;
    }
  } finally {
    await handle.close();
  }
}

/** The last entry, or a refusal: appending to a damaged log would hide the damage. */
function parseTail(line: string, complete: boolean, file: string): { seq: number; hash: string } {
  const damaged = () =>
    new NeedsHumanError(`audit log ${file}: its last line is damaged, so nothing was changed; run "provkey audit verify" and repair or move the log`, 'audit.damaged');
  if (!complete) throw damaged();
  let parsed: Partial<AuditEntry>;
  try {
    parsed = JSON.parse(line) as Partial<AuditEntry>;
  } catch {
    throw damaged();
  }
  if (typeof parsed.seq !== 'number' || typeof parsed.hash !== 'string') throw damaged();
  return { seq: parsed.seq, hash: parsed.hash };
}

export class AuditLog {
  readonly file: string;
  constructor(file: string) {
    this.file = file;
  }

  async append(event: AuditEvent): Promise<AuditEntry> {
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    return withFileLock(`${this.file}.lock`, defaultLockOptions, async () => {
      const last = await lastEntry(this.file);
      const body: Omit<AuditEntry, 'hash'> = {
        seq: last.seq + 1,
        at: new Date().toISOString(),
        actor: actor(),
        ...JSON.parse(redact(JSON.stringify(event))),
        prev: last.hash,
      };
      const entry: AuditEntry = { ...body, hash: hashEntry(body) };
      const handle = await open(this.file, 'a', 0o600);
      try {
        await handle.write(`${JSON.stringify(entry)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      return entry;
    });
  }

  /** Throws (exit 3) when the log cannot be appended to; called before a command changes anything. */
  async checkWritable(): Promise<void> {
    await lastEntry(this.file);
  }

  async readAll(): Promise<AuditEntry[]> {
    try {
      const text = await readFile(this.file, 'utf8');
      const entries: AuditEntry[] = [];
      for (const line of text.split('\n')) {
        if (line.trim() === '') continue;
        try {
          entries.push(JSON.parse(line) as AuditEntry);
        } catch {
          // `history` shows what it can read; `audit verify` reports the damage.
        }
      }
      return entries;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }
}
