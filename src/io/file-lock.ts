import { randomBytes } from 'node:crypto';
import { link, open, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { openStateFile } from './safe-file.js';
import { isPidAlive, tempPathFor } from './stale-temp.js';
import { AdapterError } from '../core/errors.js';

/**
 * An exclusive lock around every read-modify-write of a store file, so that two cron runs
 * (or two hosts sharing the file over NFS) cannot interleave and lose an update.
 *
 * Hand-written rather than proper-lockfile: that library only notices a crashed holder once
 * its stale timeout has passed, while a cron run that died leaves a pid we can check at once.
 * A holder is stale when it is a dead pid on this host (kill(pid, 0) → ESRCH) or its lock is
 * older than `staleAfterMs`; anyone else is waited for, with short retries, up to `timeoutMs`.
 */

export interface LockOptions {
  /** How long to wait for a live holder before failing with kind 'locked'. Default 10 s. */
  timeoutMs: number;
  /** A lock older than this is taken over even if its holder seems alive. Default 2 min. */
  staleAfterMs: number;
}

export const defaultLockOptions: LockOptions = { timeoutMs: 10_000, staleAfterMs: 120_000 };

interface LockHolder {
  pid: number;
  host: string;
  at: string;
  /** Tells our own lock apart from a later one with the same pid (release, takeover). */
  nonce: string;
}

interface FoundLock {
  raw: string;
  holder?: LockHolder;
  mtimeMs: number;
}

/** A takeover guard older than this was left by a crashed takeover (which takes milliseconds). */
const guardStaleMs = 10_000;

/** Same-process callers queue here first, so they never poll a lock held by their own pid. */
const queues = new Map<string, Promise<unknown>>();

/** The holder records this process holds right now (see isStale: a lock with our pid that is not here is a leftover). */
const held = new Set<string>();

export async function withFileLock<T>(lockPath: string, options: LockOptions, fn: () => Promise<T>): Promise<T> {
  const previous = queues.get(lockPath) ?? Promise.resolve();
  const run = previous.then(
    () => holdFileLock(lockPath, options, fn),
    () => holdFileLock(lockPath, options, fn),
  );
  const tail = run.catch(() => undefined);
  queues.set(lockPath, tail);
  try {
    return await run;
  } finally {
    if (queues.get(lockPath) === tail) queues.delete(lockPath);
  }
}

async function holdFileLock<T>(lockPath: string, options: LockOptions, fn: () => Promise<T>): Promise<T> {
  const mine = await acquire(lockPath, options);
  held.add(mine);
  try {
    return await fn();
  } finally {
    held.delete(mine);
    await release(lockPath, mine);
  }
}

async function acquire(lockPath: string, options: LockOptions): Promise<string> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    const mine = JSON.stringify({
      pid: process.pid,
      host: hostname(),
      at: new Date().toISOString(),
      nonce: randomBytes(8).toString('hex'),
    } satisfies LockHolder);
    if (await tryCreate(lockPath, mine)) return mine;
    const found = await readLock(lockPath);
    if (!found) continue; // released between our attempt and the read: try again at once
    if (isStale(found, options.staleAfterMs) && (await takeOver(lockPath, found))) continue;
    const waited = Date.now() - started;
    if (waited >= options.timeoutMs) throw lockedError(lockPath, found, waited);
    // Short, jittered retries: a file-store write takes milliseconds, so most waits are brief.
    const delay = Math.min(100, 5 * 1.5 ** attempt) * (0.5 + Math.random());
    await sleep(Math.min(delay, options.timeoutMs - waited + 1));
  }
}

/**
 * Writes the holder record to a private temp file and hard-links it into place: link fails
 * with EEXIST like O_EXCL, but the lock never exists half-written, so a reader always sees
 * a complete holder (an O_EXCL open followed by a write leaves an empty lock if we crash between).
 */
async function tryCreate(lockPath: string, content: string): Promise<boolean> {
  const temp = tempPathFor(lockPath);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
  try {
    await link(temp, lockPath);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    // File systems without hard links (some network and FUSE mounts): plain O_EXCL instead.
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'ENOSYS' || code === 'EOPNOTSUPP') return createExclusive(lockPath, content);
    throw error;
  } finally {
    await rm(temp, { force: true });
  }
}

async function createExclusive(lockPath: string, content: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(lockPath, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
  return true;
}

async function readLock(lockPath: string): Promise<FoundLock | undefined> {
  // Never follows a link and never blocks on a FIFO planted as the lock: either is refused.
  const handle = await openStateFile(lockPath, 'read', 'lock file');
  if (!handle) return undefined;
  try {
    const [raw, info] = await Promise.all([handle.readFile('utf8'), handle.stat()]);
    return { raw, holder: parseHolder(raw), mtimeMs: info.mtimeMs };
  } finally {
    await handle.close();
  }
}

function parseHolder(raw: string): LockHolder | undefined {
  try {
    const value = JSON.parse(raw) as Partial<LockHolder>;
    // pid must be positive: kill(0, 0) or kill(-1, 0) would probe a whole process group.
    if (!Number.isSafeInteger(value.pid) || (value.pid as number) <= 0) return undefined;
    if (typeof value.host !== 'string' || typeof value.at !== 'string') return undefined;
    return { pid: value.pid as number, host: value.host, at: value.at, nonce: String(value.nonce ?? '') };
  } catch {
    return undefined;
  }
}

function isStale(found: FoundLock, staleAfterMs: number): boolean {
  const { holder } = found;
  if (holder && holder.host === hostname()) {
    // Our own pid but not a lock we hold: left by an earlier run that had the same pid, as
    // happens when every run of a container starts as pid 1 with the same hostname.
    if (holder.pid === process.pid) return !held.has(found.raw);
    if (!isPidAlive(holder.pid)) return true;
  }
  // Unreadable holders are judged by mtime alone; `at` can be skewed when another host wrote it.
  const at = holder ? Date.parse(holder.at) : Number.NaN;
  const since = Number.isNaN(at) ? found.mtimeMs : Math.max(at, found.mtimeMs);
  return Date.now() - since > staleAfterMs;
}

/**
 * Removes a stale lock without racing another waiter that judged it stale too: only the
 * holder of `<lock>.takeover` may remove it, and only if it still holds exactly the holder
 * record we judged, so nobody deletes a fresh lock a faster waiter has just taken.
 */
async function takeOver(lockPath: string, stale: FoundLock): Promise<boolean> {
  const guard = `${lockPath}.takeover`;
  try {
    await (await open(guard, 'wx', 0o600)).close();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const info = await stat(guard).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > guardStaleMs) await rm(guard, { force: true });
    return false;
  }
  try {
    const current = await readLock(lockPath);
    if (current?.raw === stale.raw) await rm(lockPath, { force: true });
    return true;
  } finally {
    await rm(guard, { force: true });
  }
}

/** Removes the lock only if it is still ours: after a takeover it belongs to someone else. */
async function release(lockPath: string, mine: string): Promise<void> {
  const current = await readLock(lockPath).catch(() => undefined);
  if (current?.raw === mine) await rm(lockPath, { force: true });
}

function lockedError(lockPath: string, found: FoundLock, waitedMs: number) {
  const who = found.holder ? `pid ${found.holder.pid} on ${found.holder.host} since ${found.holder.at}` : 'an unknown process (unreadable lock file)';
  // Reported as the file store's error: the audit log's lock sits beside the store's.
  return new AdapterError(
    'file',
    'locked',
    `store is locked by ${who}; gave up after ${(waitedMs / 1000).toFixed(1)}s. If that process is gone, remove ${lockPath}`,
  );
}
