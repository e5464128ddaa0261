// "exec applier" hook, as an app deployment would run it:
//
//   printf '%s' "$TOKEN" | PROVKEY_ACTION=apply node test/harness/scim/token-hook.ts --tokens-file PATH
//
// Reads the plaintext token from STDIN (one trailing newline is tolerated),
// and updates PATH — a list of SHA-256 hex digests, one per line — atomically
// (temp file + fsync + rename, under a short-lived lock file so concurrent hooks
// do not lose updates). Comments and unrelated lines in PATH are preserved.
//
//   PROVKEY_ACTION=apply     add the token's digest (idempotent)
//   PROVKEY_ACTION=revoke    remove the token's digest (idempotent)
//   PROVKEY_ACTION=rollback  remove the token's digest (undo an apply; idempotent)
//
// Exit codes: 0 ok, 2 bad input/usage, 1 I/O failure. Errors are one line on
// stderr. The token is never printed, not even in errors.
//
// Erasable TypeScript only: runnable by Node 24 type stripping.

import { closeSync, openSync, readFileSync, readSync, statSync, unlinkSync, writeSync } from "node:fs";
import { parseArgs } from "node:util";
import { sha256Hex, writeFileAtomic } from "./digest-file.ts";

const MAX_TOKEN_BYTES = 4096;
const LOCK_TIMEOUT_MS = 5000;
const LOCK_STALE_MS = 10000;

function die(code: number, message: string): never {
  process.stderr.write(`token-hook: ${message}\n`);
  process.exit(code);
}

function readStdin(): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  const buf = Buffer.alloc(65536);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") continue;
      if (code === "EOF") break;
      throw err;
    }
    if (n === 0) break;
    total += n;
    if (total > MAX_TOKEN_BYTES + 2) die(2, `token on stdin is longer than ${MAX_TOKEN_BYTES} bytes`);
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function acquireLock(lockPath: string): () => void {
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    try {
      const fd = openSync(lockPath, "wx", 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try { unlinkSync(lockPath); } catch { /* already gone */ }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      try {
        const st = statSync(lockPath);
        if (Date.now() - st.mtimeMs > LOCK_STALE_MS) {
          unlinkSync(lockPath);
          continue;
        }
      } catch { /* lock vanished: retry */ }
      if (Date.now() > deadline) die(1, `timed out waiting for lock ${lockPath}`);
      sleepSync(20);
    }
  }
}

let parsed;
try {
  parsed = parseArgs({
    args: process.argv.slice(2),
    strict: true,
    allowPositionals: false,
    options: { "tokens-file": { type: "string" }, help: { type: "boolean", short: "h" } },
  });
} catch (err) {
  die(2, (err as Error).message);
}
if (parsed.values.help) {
  process.stdout.write("usage: PROVKEY_ACTION=apply|revoke|rollback node token-hook.ts --tokens-file PATH < token\n");
  process.exit(0);
}

const tokensFile = parsed.values["tokens-file"];
if (tokensFile === undefined || tokensFile === "") die(2, "missing --tokens-file PATH");

const action = (process.env.PROVKEY_ACTION ?? "").trim().toLowerCase();
if (action === "") die(2, "PROVKEY_ACTION is not set (expected apply, revoke or rollback)");
if (action !== "apply" && action !== "revoke" && action !== "rollback") {
  die(2, `unknown PROVKEY_ACTION '${action.replace(/[^\x20-\x7e]/g, "?").slice(0, 32)}' (expected apply, revoke or rollback)`);
}

let raw: Buffer;
try {
  raw = readStdin();
} catch (err) {
  die(1, `cannot read token from stdin: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
}
let token = raw.toString("utf8");
if (token.endsWith("\r\n")) token = token.slice(0, -2);
else if (token.endsWith("\n")) token = token.slice(0, -1);
if (token === "") die(2, "no token on stdin");
if (Buffer.byteLength(token) > MAX_TOKEN_BYTES) die(2, `token is longer than ${MAX_TOKEN_BYTES} bytes`);
if (!/^[\x21-\x7e]+$/.test(token)) die(2, "token must be printable ASCII without whitespace (one token, one optional trailing newline)");

const digest = sha256Hex(token);

// Everything under the lock reports failure via `error` (process.exit would skip
// the finally block and leave the lock file behind).
let error: string | undefined;
let release: () => void;
try {
  release = acquireLock(`${tokensFile}.lock`);
} catch (err) {
  die(1, `cannot lock ${tokensFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
}
try {
  let text: string | undefined;
  let mode = 0o600;
  try {
    text = readFileSync(tokensFile, "utf8");
    mode = statSync(tokensFile).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      error = `cannot read ${tokensFile}: ${(err as NodeJS.ErrnoException).code ?? "error"}`;
    }
  }
  if (error === undefined) {
    const lines = text === undefined || text === "" ? [] : text.replace(/\r?\n$/, "").split(/\r?\n/);
    const isOurs = (line: string): boolean => {
      let l = line.replace(/#.*$/, "").trim().toLowerCase();
      if (l.startsWith("sha256:")) l = l.slice(7);
      return l === digest;
    };
    const next = action === "apply" ? (lines.some(isOurs) ? lines : [...lines, digest]) : lines.filter((l) => !isOurs(l));
    const changed = next.length !== lines.length;
    // Nothing to do: apply of a present digest, or revoke/rollback of an absent one (no file is created).
    if (changed) {
      try {
        writeFileAtomic(tokensFile, next.length === 0 ? "" : `${next.join("\n")}\n`, mode);
      } catch (err) {
        error = `cannot write ${tokensFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      }
    }
  }
} finally {
  release();
}
if (error !== undefined) die(1, error);
