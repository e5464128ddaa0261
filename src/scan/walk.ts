import { lstat, opendir } from 'node:fs/promises';
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
 * Every regular file under `root` (or `root` itself), depth first (the reader opens each
 * with O_NOFOLLOW, so a file swapped for a symlink meanwhile is refused too). Symlinks are never
 * followed, so a scan cannot leave the tree it was given (nor loop); they are reported as
 * skipped. Unreadable directories are reported, not fatal.
 */
export async function* walkFiles(root: string, skipped: (entry: SkippedPath) => void): AsyncGenerator<string> {
  const stat = await lstat(root);
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
    let entries;
    try {
      entries = await opendir(dir);
    } catch (error) {
      skipped({ path: dir, reason: 'unreadable', detail: (error as NodeJS.ErrnoException).code ?? 'error' });
      continue;
    }
    const subdirs: string[] = [];
    for await (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isSymbolicLink()) skipped({ path: full, reason: 'symlink' });
      else if (entry.isDirectory()) {
        if (!SKIPPED_DIRS.has(entry.name)) subdirs.push(full);
      } else if (entry.isFile()) yield full;
      else skipped({ path: full, reason: 'special' });
    }
    // Sorted, reversed onto the stack: files come out in a stable, readable order.
    pending.push(...subdirs.sort().reverse());
  }
}
