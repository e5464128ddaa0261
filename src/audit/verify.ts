import { readFile } from 'node:fs/promises';
import { GENESIS_HASH, hashEntry, type AuditEntry } from './audit-log.js';

export type AuditVerification =
  | { ok: true; entries: number; head: string | undefined }
  | { ok: false; entries: number; line: number; problem: string };

/** Walks the chain from the first line; reports the first line that breaks it. */
export async function verifyAuditLog(file: string): Promise<AuditVerification> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, entries: 0, head: undefined };
    throw error;
  }
  if (text.length > 0 && !text.endsWith('\n')) {
    return { ok: false, entries: 0, line: text.split('\n').length, problem: 'last line is truncated' };
  }
  const lines = text.split('\n').slice(0, -1);
  let prev = GENESIS_HASH;
  for (let i = 0; i < lines.length; i++) {
    const fail = (problem: string): AuditVerification => ({ ok: false, entries: lines.length, line: i + 1, problem });
    let entry: AuditEntry;
    try {
      entry = JSON.parse(lines[i]!) as AuditEntry;
    } catch {
      return fail('not valid JSON');
    }
    if (entry.seq !== i + 1) return fail(`sequence ${String(entry.seq)} where ${i + 1} was expected (a line was removed or inserted)`);
    if (entry.prev !== prev) return fail('does not chain to the line before it');
    const { hash, ...body } = entry;
    if (hashEntry(body) !== hash) return fail('content does not match its hash (edited)');
    prev = hash;
  }
  return { ok: true, entries: lines.length, head: lines.length ? prev : undefined };
}
