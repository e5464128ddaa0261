import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import type { SkippedPath } from './walk.js';

/** git's rule for "binary": a NUL byte in the first 8000 bytes. */
const BINARY_SNIFF_BYTES = 8000;

export type FileRead = { ok: true; bytes: Buffer } | { ok: false; skipped: SkippedPath };

/**
 * Reads files for scanning into one reused buffer (the bytes of a read are valid until the
 * next one), within a size bound, refusing symlinks at open time (O_NOFOLLOW) and anything
 * that is not a regular file (O_NONBLOCK: a FIFO cannot hang the scan).
 */
export class ScanReader {
  private buffer = Buffer.allocUnsafe(1 << 16);
  private readonly maxBytes: number;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  read(path: string): FileRead {
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      return { ok: false, skipped: { path, reason: code === 'ELOOP' ? 'symlink' : 'unreadable', detail: code } };
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) return { ok: false, skipped: { path, reason: 'special' } };
      if (stat.size > this.maxBytes) return { ok: false, skipped: { path, reason: 'too_large', detail: `${stat.size} bytes` } };
      if (this.buffer.length < stat.size + 1) this.buffer = Buffer.allocUnsafe(Math.min(Math.max(stat.size + 1, this.buffer.length * 2), this.maxBytes + 1));
      // Read to end of file, not to the stat size: a file growing meanwhile stops at the bound.
      let length = 0;
      for (;;) {
        if (length === this.buffer.length) {
          if (length > this.maxBytes) return { ok: false, skipped: { path, reason: 'too_large', detail: `over ${this.maxBytes} bytes` } };
          const grown = Buffer.allocUnsafe(Math.min(this.buffer.length * 2, this.maxBytes + 1));
          this.buffer.copy(grown, 0, 0, length);
          this.buffer = grown;
        }
        const n = readSync(fd, this.buffer, length, this.buffer.length - length, null);
        if (n === 0) break;
        length += n;
      }
      if (length > this.maxBytes) return { ok: false, skipped: { path, reason: 'too_large', detail: `over ${this.maxBytes} bytes` } };
      const bytes = this.buffer.subarray(0, length);
      if (bytes.subarray(0, BINARY_SNIFF_BYTES).includes(0)) return { ok: false, skipped: { path, reason: 'binary' } };
      return { ok: true, bytes };
    } catch (error) {
      return { ok: false, skipped: { path, reason: 'unreadable', detail: (error as NodeJS.ErrnoException).code ?? 'error' } };
    } finally {
      closeSync(fd);
    }
  }
}
