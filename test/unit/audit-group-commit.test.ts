import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { verifyAuditLog } from '../../src/audit/verify.js';

/**
 * The audit log's group commit (issue 8): appends made while a write+fsync runs share the next
 * one. What must not change: every caller's promise settles only once its own line is in the
 * file, lines keep the order append was called in, the chain stays whole, and a caller never
 * hears "ok" for a line that was not written.
 */

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function logIn(): { dir: string; file: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'provkey-audit-group-'));
  dirs.push(dir);
  return { dir, file: path.join(dir, 'state', 'audit.jsonl') };
}

const linesOf = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { seq: number; event: string; key?: string; generations?: Record<string, number> });

describe('audit log group commit', () => {
  it('concurrent appends: each settles after its own line is written, in call order, on one whole chain', async () => {
    const { file } = logIn();
    const log = new AuditLog(file);
    const settledWithLine: boolean[] = [];
    const appends = Array.from({ length: 25 }, (_, i) =>
      log.append({ event: 'test.event', key: `k${i}` }).then((entry) => {
        // When the caller hears back, its line is already in the file.
        settledWithLine[i] = linesOf(file).some((line) => line.seq === entry.seq && line.key === `k${i}`);
        return entry;
      }),
    );
    const entries = await Promise.all(appends);
    expect(settledWithLine).toEqual(Array.from({ length: 25 }, () => true));
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(linesOf(file).map((l) => l.key)).toEqual(Array.from({ length: 25 }, (_, i) => `k${i}`));
    const verified = await verifyAuditLog(file);
    expect(verified.ok, verified.problem).toBe(true);
    expect(verified.checked).toBe(true);
    expect(verified.entries).toBe(25);
  });

  it('a store announcement in a group carries its own generation, and the lines after it carry it too', async () => {
    const { file } = logIn();
    const log = new AuditLog(file);
    await Promise.all([
      log.append({ event: 'before' }),
      log.announce('default', 1, '/x/store.enc'),
      log.append({ event: 'between' }),
      log.announce('default', 2, '/x/store.enc'),
      log.append({ event: 'after' }),
    ]);
    const byEvent = Object.fromEntries(linesOf(file).map((l) => [l.event === 'store.write' ? `write${l.generations?.default}` : l.event, l.generations ?? {}]));
    expect(byEvent).toEqual({ before: {}, write1: { default: 1 }, between: { default: 1 }, write2: { default: 2 }, after: { default: 2 } });
    expect(await log.announced('default')).toBe(2);
    expect((await verifyAuditLog(file)).ok).toBe(true);
  });

  it('a group that cannot be written rejects every caller in it, and a later append works', async () => {
    const { dir, file } = logIn();
    // The log's directory is a file: mkdir fails for the whole group.
    writeFileSync(path.join(dir, 'state'), 'not a directory');
    const log = new AuditLog(file);
    const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => log.append({ event: 'test.event', key: `k${i}` })));
    expect(results.map((r) => r.status)).toEqual(Array.from({ length: 5 }, () => 'rejected'));
    rmSync(path.join(dir, 'state'));
    const entry = await log.append({ event: 'test.event', key: 'later' });
    expect(entry.seq).toBe(1);
    expect(linesOf(file).map((l) => l.key)).toEqual(['later']);
  });

  it('an event that cannot be serialised fails alone; the others of its group are written', async () => {
    const { file } = logIn();
    const log = new AuditLog(file);
    const results = await Promise.allSettled([
      log.append({ event: 'a' }),
      log.append({ event: 'bad', detail: { n: 1n } }),
      log.append({ event: 'c' }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(linesOf(file).map((l) => l.event)).toEqual(['a', 'c']);
  });

  it('a last line longer than the first tail read (8 KiB) is still read whole before the next append', async () => {
    const { file } = logIn();
    const log = new AuditLog(file);
    await log.append({ event: 'small' });
    await log.append({ event: 'long', detail: { text: 'x'.repeat(40_000) } });
    const next = await log.append({ event: 'after' });
    expect(next.seq).toBe(3);
    const verified = await verifyAuditLog(file);
    expect(verified.ok, verified.problem).toBe(true);
    expect(verified.entries).toBe(3);
  });
});
