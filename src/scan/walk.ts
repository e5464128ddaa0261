import { lstatSync, readdirSync, type Dirent } from 'node:fs';
import path from 'node:path';

export type SkipReason = 'binary' | 'too_large' | 'symlink' | 'unreadable' | 'special';

export interface SkippedPath {
  path: string;
  reason: SkipReason;
  detail?: string;
}

/** Directories never worth reading: git's object store is compressed (use --git for history). */
const SKIPPED_DIRS = new Set(['.git']);

/**
 * Every regular file under `root` (or `root` itself), depth first in name order. Symlinks are
 * never followed, so a scan cannot leave the tree it was given (nor loop); they are reported
 * as skipped, and the reader opens each file with O_NOFOLLOW, so one swapped for a symlink
 * meanwhile is refused too. Unreadable directories are reported, not fatal. Synchronous on
 * purpose: the scan is CPU-bound and one thread; async fs calls cost more than they overlap.
 */
export function* walkFiles(root: string, skipped: (entry: SkippedPath) => void): Generator<string> {
  const stat = lstatSync(root);
  if (stat.isFile()) {
    yield root;
    return;
  }
  if (!stat.isDirectory()) {
    skipped({ path: root, reason: stat.isSymbolicLink() ? 'symlink' : 'special' });
    return;
  }
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (error) {
      skipped({ path: dir, reason: 'unreadable', detail: (error as NodeJS.ErrnoException).code ?? 'error' });
      continue;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const subdirs: string[] = [];
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isSymbolicLink()) skipped({ path: full, reason: 'symlink' });
      else if (entry.isDirectory()) {
        if (!SKIPPED_DIRS.has(entry.name)) subdirs.push(full);
      } else if (entry.isFile()) yield full;
      else skipped({ path: full, reason: 'special' });
    }
    pending.push(...subdirs.reverse());
  }
}
