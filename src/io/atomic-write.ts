import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { tempPathFor } from './stale-temp.js';

/**
 * Replaces `file` so that a reader (or a crash) sees either the old bytes or the new ones,
 * never a mix: write a temp file in the same directory (rename is only atomic within one
 * file system), fsync it, rename it over, then fsync the directory so the rename itself
 * survives a power cut.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = path.dirname(file);
  // Named by host and pid, so the next run can remove it if this process is killed before the rename.
  const temp = tempPathFor(file);
  try {
    // 'wx' + mode: the temp file is private from the moment it exists, and never a file we did not create.
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(dir);
}

/** Makes a rename or link durable. Not possible on Windows (EPERM/EISDIR), where NTFS journals it anyway. */
export async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EBADF') throw error;
  } finally {
    await handle?.close();
  }
}
