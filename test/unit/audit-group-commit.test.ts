import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { deriveAuditKey } from '../../src/audit/chain.js';
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

// A process remembers the last line it wrote and does not read it back while the file is as
// its write left it (device, inode, size, mtime, ctime). Whatever changes the file in between
// must be seen by the next append, exactly as when every append read the tail.
describe('audit log: the tail this process wrote', () => {
  const key = deriveAuditKey(Buffer.alloc(32, 7));
  const keyed = (file: string) => new AuditLog(file, { key: async () => key });

  it('a last line edited in place (same length) between two appends is refused by the next append', async () => {
    const { file } = logIn();
    const log = keyed(file);
    await log.append({ event: 'test.first' });
    await log.append({ event: 'test.second' });
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('"test.second"');
    writeFileSync(file, text.replace('"test.second"', '"test.secont"'));
    expect(readFileSync(file, 'utf8')).toHaveLength(text.length);
    await expect(log.append({ event: 'test.third' })).rejects.toThrow(/fails its MAC/);
    expect(linesOf(file)).toHaveLength(2);
  });

  it('a log cut between two appends is read again: the next line follows what the file holds', async () => {
    const { file } = logIn();
    const log = keyed(file);
    await log.append({ event: 'test.first' });
    const firstLength = readFileSync(file).length;
    await log.append({ event: 'test.second' });
    truncateSync(file, firstLength);
    const next = await log.append({ event: 'test.third' });
    expect(next.seq).toBe(2);
    expect(linesOf(file).map((l) => l.event)).toEqual(['test.first', 'test.third']);
    const verified = await verifyAuditLog(file, { key });
    expect(verified.ok, verified.problem).toBe(true);
  });

  it('another writer between two appends: the next line chains onto its line', async () => {
    const { file } = logIn();
    const mine = keyed(file);
    const other = keyed(file);
    await mine.append({ event: 'test.mine' });
    await other.append({ event: 'test.other' });
    const next = await mine.append({ event: 'test.mine-again' });
    expect(next.seq).toBe(3);
    expect(linesOf(file).map((l) => l.event)).toEqual(['test.mine', 'test.other', 'test.mine-again']);
    const verified = await verifyAuditLog(file, { key });
    expect(verified.ok, verified.problem).toBe(true);
    expect(verified.entries).toBe(3);
  });

  it('a store announcement it said has a successor keeps the lock for it; the last one lets go before its caller hears back', async () => {
    const { dir, file } = logIn();
    const log = keyed(file);
    let more = true;
    await log.announce('default', 1, '/x/store.enc', () => more);
    // Held for the announcement said to follow (a store about to commit and announce again).
    expect(readdirSync(path.join(dir, 'state'))).toContain('audit.jsonl.lock');
    more = false;
    await log.announce('default', 2, '/x/store.enc', () => more);
    expect(readdirSync(path.join(dir, 'state'))).not.toContain('audit.jsonl.lock');
    expect(linesOf(file).map((l) => l.generations?.default)).toEqual([1, 2]);
    expect(await log.announced('default')).toBe(2);
  });
});
