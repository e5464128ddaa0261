import { randomBytes } from 'node:crypto';
import { lstat, readdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';

/**
 * Temp files beside a state file (an atomic write's new copy, a lock's holder record) carry
 * the host and pid that made them, so a later run can tell one left by a killed process from
 * one another process is writing right now: it removes a temp file only when its maker is
 * provably gone (this host, and that pid no longer exists).
 *
 *   .<file>.<host>.<pid>.<12 hex>.tmp   (and its -wal/-shm/-journal when the temp is a database)
 */

export function tempPathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${hostname()}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Directories (and base names) already swept in this process: once per run is enough. */
const swept = new Set<string>();

/**
 * Removes the temp files of `files` (state files in one directory) that a dead process left.
 * Names written before provkey recorded the host (`.<file>.<pid>.<hex>.tmp`, `<file>.<pid>.<hex>`)
 * are removed only when that pid is gone here AND they are older than `legacyAfterMs`, since
 * another host sharing the directory may have made them. Never throws: cleaning is a courtesy.
 */
export async function removeStaleTemps(files: readonly string[], legacyAfterMs: number): Promise<string[]> {
  const byDir = new Map<string, string[]>();
  for (const file of files) byDir.set(path.dirname(file), [...(byDir.get(path.dirname(file)) ?? []), file]);
  const removed: string[] = [];
  for (const [dir, inDir] of byDir) removed.push(...(await sweepDirectory(dir, inDir, legacyAfterMs)));
  return removed;
}

async function sweepDirectory(dir: string, files: readonly string[], legacyAfterMs: number): Promise<string[]> {
  const sweepKey = JSON.stringify(files);
  if (swept.has(sweepKey)) return [];
  swept.add(sweepKey);
  const here = hostname();
  const patterns = files.map((file) => {
    const base = escape(path.basename(file));
    return {
      current: new RegExp(`^\\.${base}\\.(.+)\\.(\\d+)\\.[0-9a-f]{12}\\.tmp(?:-wal|-shm|-journal)?$`),
      legacy: [new RegExp(`^\\.${base}\\.(\\d+)\\.[0-9a-f]{12}\\.tmp$`), new RegExp(`^${base}\\.(\\d+)\\.[0-9a-f]{12}$`)],
    };
  });
  const removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    for (const { current, legacy } of patterns) {
      const match = current.exec(name);
      let stale = false;
      if (match) {
        stale = match[1] === here && Number(match[2]) !== process.pid && !isPidAlive(Number(match[2]));
      } else {
        const old = legacy.map((re) => re.exec(name)).find((m) => m);
        if (!old || Number(old[1]) === process.pid || isPidAlive(Number(old[1]))) continue;
        const info = await lstat(path.join(dir, name)).catch(() => undefined);
        stale = info !== undefined && info.isFile() && Date.now() - info.mtimeMs > legacyAfterMs;
      }
      if (!stale) continue;
      try {
        await rm(path.join(dir, name), { force: true });
        removed.push(name);
      } catch {
        // Someone else's file, or already gone.
      }
      break;
    }
  }
  return removed;
}

/** Tests only: forget which directories were swept. */
export function forgetSweeps(): void {
  swept.clear();
}
