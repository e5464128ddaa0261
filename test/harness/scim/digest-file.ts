// Shared helpers for the SHA-256 digest files used by the SCIM test server,
// the token hook and the harness. Only digests ever touch the disk; plaintext
// tokens stay in memory of the caller.
//
// Erasable TypeScript only: runnable by Node 24 type stripping.

import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";

export const DIGEST_RE = /^[0-9a-f]{64}$/;

/** SHA-256 hex digest (lowercase) of a token's UTF-8 bytes. */
export function sha256Hex(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

export type ParsedDigests = { digests: Set<string>; invalidLines: number[] };

/**
 * Parse a digest list: one SHA-256 hex digest per line, `#` starts a comment,
 * blank lines ignored, an optional `sha256:` prefix is tolerated. Digests are
 * normalised to lowercase. Line numbers (1-based) of unparsable lines are
 * returned so callers can warn without echoing the line (it might be a token).
 */
export function parseDigestList(text: string): ParsedDigests {
  const digests = new Set<string>();
  const invalidLines: number[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i] ?? "";
    const hash = line.indexOf("#");
    if (hash >= 0) line = line.slice(0, hash);
    line = line.trim();
    if (line === "") continue;
    if (line.toLowerCase().startsWith("sha256:")) line = line.slice(7);
    line = line.toLowerCase();
    if (DIGEST_RE.test(line)) digests.add(line);
    else invalidLines.push(i + 1);
  }
  return { digests, invalidLines };
}

/** Render a digest list file (sorted, with a header comment). */
export function formatDigestList(digests: Iterable<string>, header?: string): string {
  const sorted = [...new Set(digests)].sort();
  const head = header === undefined ? "" : header.split("\n").map((l) => `# ${l}\n`).join("");
  return head + sorted.map((d) => `${d}\n`).join("");
}

/**
 * Write a file atomically: write a temp file in the same directory, fsync it,
 * then rename over the target (readers see either the old or the new file).
 */
export function writeFileAtomic(path: string, content: string, mode = 0o600): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const fd = openSync(tmp, "wx", mode);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* ignore */ }
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    try { unlinkSync(tmp); } catch { /* ignore */ }
    throw err;
  }
  // Best effort: persist the rename itself.
  try {
    const dfd = openSync(dirname(path), "r");
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch { /* not supported everywhere */ }
}

/** Read a digest file; a missing file counts as an empty list. */
export function readDigestFile(path: string): ParsedDigests {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { digests: new Set(), invalidLines: [] };
    throw err;
  }
  return parseDigestList(text);
}

/** A cheap change signature for a file (inode, size, mtime in ns); "missing" if absent. */
export function fileSignature(path: string): string {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false });
  if (st === undefined) return "missing";
  return `${st.ino}:${st.size}:${st.mtimeNs}`;
}
