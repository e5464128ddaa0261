import { constants } from 'node:fs';
import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, NeedsHumanError } from '../core/errors.js';

/**
 * Opening provkey's own state files (store, key file, audit log, its anchor, lock files) so that
 * a planted file cannot redirect or stall a run:
 * - O_NOFOLLOW: a symbolic link in place of the file is refused, never followed (a link from
 *   audit.jsonl to another file would otherwise append provkey's lines there).
 * - O_NONBLOCK, then fstat on the open handle: a FIFO or device opens at once instead of
 *   blocking until someone writes to it, and anything that is not a regular file is refused.
 *   The check is on the handle, so what was checked is what is read.
 * O_NONBLOCK has no effect on reads and writes of a regular file.
 */

/** Windows has neither flag; there a symlink needs privileges to create and FIFOs are not files. */
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const NONBLOCK = constants.O_NONBLOCK ?? 0;

export type StateFileMode = 'read' | 'append';

const flagsFor: Record<StateFileMode, number> = {
  read: constants.O_RDONLY | NOFOLLOW | NONBLOCK,
  append: constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | NOFOLLOW | NONBLOCK,
};

/** Why a state file was refused; `what` names it for the message ("audit log", "store file"). */
export class UnsafeStateFileError extends NeedsHumanError {
  constructor(what: string, file: string, reason: string) {
    super(`refusing to open ${what} ${file}: ${reason}; move it aside and restore the real file`, 'state.unsafe_file');
  }
}

/**
 * Opens a state file. Returns undefined when it does not exist (mode "read"); throws
 * UnsafeStateFileError for a symlink or a non-regular file; other system errors pass through.
 */
export async function openStateFile(
  file: string,
  mode: StateFileMode,
  what: string,
  options: { createMode?: number; followLinks?: boolean } = {},
): Promise<FileHandle | undefined> {
  let handle: FileHandle;
  try {
    const flags = options.followLinks ? flagsFor[mode] & ~NOFOLLOW : flagsFor[mode];
    handle = await open(file, flags, options.createMode ?? 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && mode === 'read') return undefined;
    // Linux and macOS answer ELOOP for O_NOFOLLOW on a link; FreeBSD EMLINK.
    if (code === 'ELOOP' || code === 'EMLINK') throw new UnsafeStateFileError(what, file, 'it is a symbolic link (state files are never followed)');
    // Opening a FIFO without a reader for writing with O_NONBLOCK; a directory for writing.
    if (code === 'ENXIO') throw new UnsafeStateFileError(what, file, 'it is not a regular file (a FIFO or socket)');
    if (code === 'EISDIR') throw new UnsafeStateFileError(what, file, 'it is not a regular file (a directory)');
    throw error;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new UnsafeStateFileError(what, file, `it is not a regular file (${kindOf(info)})`);
    return handle;
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** The whole text of a state file, or undefined when it does not exist. */
export async function readStateFile(file: string, what: string): Promise<string | undefined> {
  const handle = await openStateFile(file, 'read', what);
  if (!handle) return undefined;
  try {
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

function kindOf(info: { isFIFO(): boolean; isDirectory(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (info.isFIFO()) return 'a FIFO';
  if (info.isDirectory()) return 'a directory';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device';
  return 'not a file';
}

/**
 * Refuses a file that someone other than its owner could have changed, as ssh refuses a
 * group- or world-writable config: a config or hook anyone can edit is a way to run code as
 * provkey or to redirect its keys. The owner must be the user running provkey or root.
 * `what` names it ("config file", "exec hook"). Exit 2 with one line naming the file.
 */
export async function assertNotWritableByOthers(file: string, what: string): Promise<void> {
  if (process.platform === 'win32') return;
  const info = await stat(file);
  // Never read a FIFO or device as a config: the read would block, or never end.
  if (!info.isFile()) throw new ConfigError(`${what} ${file} is not a regular file`, 'config.unsafe_permissions');
  refuseLoose(info, file, what);
}

/**
 * The same check for a hook and the directory holding it: a writable directory lets anyone
 * swap the hook. A symlinked hook is checked where it really is, and where its link is.
 */
export async function assertTrustedExecutable(file: string, what: string): Promise<void> {
  if (process.platform === 'win32') return;
  const real = await realpath(file);
  refuseLoose(await stat(real), real, what);
  const dirs = new Set([path.dirname(real), path.dirname(path.resolve(file))]);
  // A sticky world-writable directory (/tmp) still lets others plant files beside the hook; ssh refuses it too.
  for (const dir of dirs) refuseLoose(await stat(dir), dir, `directory of ${what}`);
}

function refuseLoose(info: { mode: number; uid: number }, file: string, what: string): void {
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid && info.uid !== 0) {
    throw new ConfigError(`${what} ${file} is owned by uid ${info.uid}, not by you (uid ${uid}) or root: refusing to use it`, 'config.unsafe_permissions');
  }
  if ((info.mode & 0o022) !== 0) {
    const mode = (info.mode & 0o7777).toString(8).padStart(4, '0');
    throw new ConfigError(`${what} ${file} is writable by group or others (mode ${mode}): refusing to use it; run chmod go-w ${file}`, 'config.unsafe_permissions');
  }
}
