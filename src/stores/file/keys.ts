import { createHash, randomBytes, scrypt } from 'node:crypto';
import { link, mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { openStateFile } from '../../io/safe-file.js';
import { tempPathFor } from '../../io/stale-temp.js';
import { syncDirectory } from '../../io/atomic-write.js';
import { decodeBase64, type Kdf } from './envelope.js';
import { fileStoreError, fsFailure } from './errors.js';

/** Where a store's 32-byte AES key comes from: a key file, or a passphrase through scrypt. */
export type KeySource =
  | { mode: 'keyfile'; keyFile: string }
  /** `passphrase` undefined: the environment variable `envName` was not set. `envName` undefined: given to init directly. */
  | {
      mode: 'passphrase';
      envName: string | undefined;
      passphrase: string | undefined;
      /** When the variable is unset and someone is at a terminal: ask (hidden), once per process. */
      ask?: () => Promise<string>;
    };

const keyBytes = 32;

type ScryptKdf = Extract<Kdf, { type: 'scrypt' }>;

/** The scrypt cost for new stores: N=2^15, r=8, p=1 takes ~50–100 ms and 32 MiB, once per process. */
export function newScryptKdf(): ScryptKdf {
  return { type: 'scrypt', salt: randomBytes(16).toString('base64'), N: 2 ** 15, r: 8, p: 1 };
}

/**
 * Reads a key file, refusing one that group or others can access (like ssh does with a
 * private key): the key file is the only thing between a copied store file and its secrets.
 * Returns undefined when the file does not exist; the caller decides whether that is an error.
 */
export async function loadKeyFile(keyFile: string): Promise<Buffer | undefined> {
  let handle;
  try {
    // No FIFO waited on (see io/safe-file.ts). A link is followed here, unlike for the files
    // provkey writes: a Kubernetes Secret volume mounts every key as a symlink, and the key file
    // is only read; the mode check below is on the file the link leads to.
    handle = await openStateFile(keyFile, 'read', 'key file', { followLinks: true });
  } catch (error) {
    throw fsFailure('read key file', keyFile, error);
  }
  if (!handle) return undefined;
  try {
    // fstat on the open handle: the mode we check is the mode of the file we read.
    const info = await handle.stat();
    if (!info.isFile()) throw fileStoreError('invalid', `key file ${keyFile} is not a regular file`);
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
      throw fileStoreError('invalid', `key file ${keyFile} is accessible by group or others (mode ${mode}); run: chmod 600 ${keyFile}`);
    }
    const key = decodeBase64((await handle.readFile('utf8')).trim(), keyBytes);
    if (!key) throw fileStoreError('invalid', `key file ${keyFile} does not hold a base64-encoded ${keyBytes}-byte key`);
    return key;
  } catch (error) {
    throw fsFailure('read key file', keyFile, error);
  } finally {
    await handle.close();
  }
}

/**
 * Creates a new random key file with mode 0600, never replacing an existing one: the key is
 * written to a temp file, synced, then hard-linked into place (link fails if the name exists),
 * so a crash cannot leave a half-written key file behind. If another process won the race,
 * its key is used.
 */
export async function createKeyFile(keyFile: string): Promise<Buffer> {
  const dir = path.dirname(keyFile);
  const key = randomBytes(keyBytes);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await placeNewFile(keyFile, `${key.toString('base64')}\n`);
    await syncDirectory(dir);
    return key;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      const existing = await loadKeyFile(keyFile);
      if (existing) return existing;
    }
    throw fsFailure('create key file', keyFile, error);
  }
}

async function placeNewFile(file: string, text: string): Promise<void> {
  const temp = tempPathFor(file);
  try {
    await writeNewFile(temp, text);
    try {
      await link(temp, file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // File systems without hard links (some network and FUSE mounts): plain O_EXCL instead.
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw error;
      await writeNewFile(file, text);
    }
  } finally {
    await rm(temp, { force: true });
  }
}

async function writeNewFile(file: string, text: string): Promise<void> {
  const handle = await open(file, 'wx', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** scrypt is deliberately slow: derive once per process per (passphrase, salt, cost) and reuse. */
const derivedKeys = new Map<string, Promise<Buffer>>();

export function derivePassphraseKey(passphrase: string, kdf: ScryptKdf): Promise<Buffer> {
  // A hash as the cache key keeps the passphrase itself out of yet another long-lived structure.
  const cacheKey = createHash('sha256').update(JSON.stringify([passphrase, kdf.salt, kdf.N, kdf.r, kdf.p])).digest('hex');
  let derived = derivedKeys.get(cacheKey);
  if (!derived) {
    derived = new Promise<Buffer>((resolve, reject) => {
      const options = { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r };
      scrypt(passphrase.normalize('NFC'), Buffer.from(kdf.salt, 'base64'), keyBytes, options, (error, key) => (error ? reject(error) : resolve(key)));
    });
    derivedKeys.set(cacheKey, derived);
    derived.catch(() => derivedKeys.delete(cacheKey));
  }
  return derived;
}

/** How the wrong-key error names the key's origin (never the key or passphrase itself). */
export function describeKeySource(source: KeySource): string {
  if (source.mode === 'keyfile') return `key file ${source.keyFile}`;
  return source.envName === undefined ? 'passphrase' : `passphrase from $${source.envName}`;
}
