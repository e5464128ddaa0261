import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic, syncDirectory } from '../../io/atomic-write.js';
import { tempPathFor } from '../../io/stale-temp.js';
import { removeSidecars, writeNewDatabase } from './database.js';
import { parseDocument, type StoreDocument } from './document.js';
import { keyCheck, openEnvelope, parseEnvelope, type Envelope } from './envelope.js';
import { writeHeader } from './header.js';
import { writeKey, writeValue, type RowContext, type StoredKey } from './rows.js';
import { deriveStoreKeys } from './sealing.js';

/**
 * The one-time upgrade of a store file written by provkey 0.1 (one encrypted JSON document)
 * into the embedded database, in place: the database keeps the file's name, so configs,
 * backups and volume mounts that name it keep working.
 *
 * Atomic: the new database is written whole to a temp file beside the old one, synced and
 * closed; the old file is copied to `<file>.bak`; then one rename puts the database in its
 * place. A crash before the rename leaves the old file untouched (the temp is garbage the next
 * run removes); after it, the database is complete. There is never a moment in which neither,
 * or a half-written one, is at `file`. The caller holds the lock 0.1's writers take, so no
 * old writer changes the document meanwhile, and no second upgrader races this one.
 *
 * The generation, the sequence, every key's revision, version ids, labels and lifecycle state
 * carry over unchanged (the store holds the same thing, so the audit log has nothing new to
 * announce), and so does the key: the key file or passphrase (its scrypt salt) opens both.
 */

export function legacyDocument(text: string, file: string, key: Buffer, keySource: string): { envelope: Envelope; document: StoreDocument } {
  const envelope = parseEnvelope(text, file);
  return { envelope, document: parseDocument(openEnvelope(envelope, key, file, keySource), file) };
}

export function backupPathOf(file: string): string {
  return `${file}.bak`;
}

/** `at`: tests stop the upgrade at a point (a child process kills itself there) to prove the crash windows. */
export async function upgradeLegacyFile(
  file: string,
  text: string,
  envelope: Envelope,
  document: StoreDocument,
  key: Buffer,
  at: (point: 'database-written' | 'backup-written') => Promise<void> = async () => {},
): Promise<void> {
  const temp = tempPathFor(file);
  const keys = deriveStoreKeys(key);
  const ctx: RowContext = { keys, storeId: randomBytes(16).toString('hex'), file };
  try {
    await writeNewDatabase(temp, (db) => {
      const digest = Buffer.alloc(32);
      for (const legacy of document.keys) {
        const stored: StoredKey = {
          name: legacy.name,
          revision: legacy.revision,
          lastVersionId: legacy.lastVersionId,
          versions: legacy.versions.map(({ value, ...meta }) => ({ ...meta, value: value === null ? null : writeValue(db, ctx, legacy.name, meta.id, value) })),
          state: legacy.state,
        };
        const share = writeKey(db, ctx, stored);
        for (let i = 0; i < 32; i++) digest[i]! ^= share[i]!;
      }
      writeHeader(
        db,
        { kdf: envelope.kdf, keyCheck: keyCheck(key), storeId: ctx.storeId, generation: document.generation ?? 0, sequence: document.sequence, keyCount: document.keys.length, digest },
        keys,
      );
    });
    await at('database-written');
    await writeFileAtomic(backupPathOf(file), text);
    await at('backup-written');
    // A WAL left beside `file` by an earlier database there would be replayed into the new one.
    await removeSidecars(file);
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(path.dirname(file));
}
