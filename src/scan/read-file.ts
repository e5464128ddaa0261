import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { SkippedPath } from './walk.js';

/** git's rule for "binary": a NUL byte in the first 8000 bytes. */
const BINARY_SNIFF_BYTES = 8000;

export type FileRead = { ok: true; bytes: Buffer } | { ok: false; skipped: SkippedPath };

/**
 * Reads one file for scanning, within the size bound, refusing symlinks at open time
 * (O_NOFOLLOW) and anything that is not a regular file.
 */
export async function readScannable(path: string, maxBytes: number): Promise<FileRead> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    return { ok: false, skipped: { path, reason: code === 'ELOOP' ? 'symlink' : 'unreadable', detail: code } };
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return { ok: false, skipped: { path, reason: 'special' } };
    if (stat.size > maxBytes) return { ok: false, skipped: { path, reason: 'too_large', detail: `${stat.size} bytes` } };
    const bytes = await handle.readFile();
    const sniff = bytes.subarray(0, BINARY_SNIFF_BYTES);
    if (sniff.includes(0)) return { ok: false, skipped: { path, reason: 'binary' } };
    return { ok: true, bytes };
  } catch (error) {
    return { ok: false, skipped: { path, reason: 'unreadable', detail: (error as NodeJS.ErrnoException).code ?? 'error' } };
  } finally {
    await handle.close();
  }
}
