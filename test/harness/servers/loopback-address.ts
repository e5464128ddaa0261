/**
 * One 127.0.0.x address per directory instance, for servers whose ports are fixed (Samba AD:
 * 389/636/3268/3269) or that the harness prefers on their own address (389-DS). Test files
 * run in parallel workers, so each address is claimed with a lock file created exclusively
 * (O_EXCL); a lock whose owner process has died is taken over. The lock is released on stop.
 *
 * Erasable TypeScript only; node: built-ins only.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface LoopbackAddress {
  host: string;
  release(): void;
}

const LOCK_DIR = path.join(os.tmpdir(), 'provkey-test-loopback');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryLock(file: string): boolean {
  try {
    const fd = openSync(file, 'wx', 0o644);
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const owner = Number(readFileSync(file, 'utf8').trim() || '0');
  if (owner > 0 && alive(owner)) return false;
  // A dead owner's lock: remove it and race for it once more.
  rmSync(file, { force: true });
  try {
    const fd = openSync(file, 'wx', 0o644);
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return true;
  } catch {
    return false;
  }
}

/**
 * Claims a free address in 127.0.0.<first>..<last>, starting at an offset derived from the
 * pid (so parallel workers rarely contend). With `alias`, makes sure the address exists on
 * `lo` (Samba binds only addresses that exist; 389-DS binds any 127/8 address without one).
 */
export function claimLoopbackAddress(range: { first: number; last: number }, options: { alias?: boolean } = {}): LoopbackAddress {
  mkdirSync(LOCK_DIR, { recursive: true });
  const size = range.last - range.first + 1;
  const start = process.pid % size;
  for (let i = 0; i < size; i++) {
    const n = range.first + ((start + i) % size);
    const host = `127.0.0.${n}`;
    const file = path.join(LOCK_DIR, host);
    if (!tryLock(file)) continue;
    const added = options.alias ? ensureAlias(host) : false;
    return {
      host,
      release: () => {
        // The alias goes with the lock: the address is ours until the lock file is removed.
        if (added) spawnSync(process.getuid?.() === 0 ? 'ip' : 'sudo', [...(process.getuid?.() === 0 ? [] : ['-n', 'ip']), 'addr', 'del', `${host}/32`, 'dev', 'lo'], { stdio: 'ignore' });
        rmSync(file, { force: true });
      },
    };
  }
  throw new Error(`no free loopback address in 127.0.0.${range.first}-${range.last} (locks in ${LOCK_DIR})`);
}

/** Adds `host` to lo unless it is there; true when this call added it. */
function ensureAlias(host: string): boolean {
  const shown = spawnSync('ip', ['-o', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' });
  if (shown.status === 0 && shown.stdout.includes(` ${host}/`)) return false;
  const sudo = process.getuid?.() === 0 ? [] : ['sudo', '-n'];
  const cmd = [...sudo, 'ip', 'addr', 'add', `${host}/32`, 'dev', 'lo'];
  const added = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' });
  // "File exists": another worker added it first.
  if (added.status !== 0 && !/File exists/.test(added.stderr)) {
    throw new Error(`cannot add ${host} to lo (${cmd.join(' ')}): ${added.stderr.trim()}`);
  }
  return added.status === 0;
}
