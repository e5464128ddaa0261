import * as v from 'valibot';
import type { LifecycleState, VersionMeta } from '../../core/model.js';
import { fileStoreError } from './errors.js';
import { lifecycleStateSchema, versionMetaEntries } from '../record-schema.js';

/**
 * The decrypted contents of a provkey 0.1 store file (file/envelope.ts), read only to upgrade
 * it into the database (file/upgrade.ts). Only ever held in memory.
 */
export interface StoreDocument {
  /** Bumped on every write; a key's revision is the sequence of its last write, so a key that is
   * deleted and added again never gets back a revision an old reader still holds. */
  sequence: number;
  /**
   * Bumped on every write, and announced in the audit log before the write commits (see
   * audit/generation.ts): how a put-back older copy of this file is told apart from the newest.
   * Absent in stores written before generations (read as 0).
   */
  generation?: number;
  /** Sorted by name. An array rather than an object so a key named "__proto__" is just a key. */
  keys: StoredKey[];
}

export interface StoredKey {
  name: string;
  revision: number;
  /** Ids are never reused, even after versions are pruned by `update`. */
  lastVersionId: number;
  versions: StoredVersion[];
  state: LifecycleState;
}

/** `value` null: the version was disabled and its value erased. */
export type StoredVersion = VersionMeta & { value: string | null };

/** The file store keeps the value beside the metadata; null once the version is disabled. */
const versionSchema = v.looseObject({ ...versionMetaEntries, value: v.nullable(v.string()) });
const stateSchema = lifecycleStateSchema;

const count = v.pipe(v.number(), v.integer(), v.minValue(0));
const documentSchema = v.strictObject({
  sequence: count,
  generation: v.optional(count),
  keys: v.array(
    v.strictObject({
      name: v.pipe(v.string(), v.minLength(1)),
      revision: v.pipe(v.number(), v.integer(), v.minValue(1)),
      lastVersionId: count,
      versions: v.array(versionSchema),
      state: stateSchema,
    }),
  ),
});

/**
 * Checks the whole decrypted document before any of it is used. The tag already proved the
 * bytes are the ones we wrote, so a failure here means another program or a newer provkey
 * wrote them; the message names the field, never its value.
 */
export function parseDocument(plaintext: string, file: string): StoreDocument {
  const invalid = (where: string) =>
    fileStoreError('tampered', `store file ${file} decrypted, but its contents are not a provkey store (at ${where || 'top level'})`);
  let value: unknown;
  try {
    value = JSON.parse(plaintext);
  } catch {
    throw invalid('JSON');
  }
  const parsed = v.safeParse(documentSchema, value);
  if (!parsed.success) throw invalid(parsed.issues[0]?.path?.map((item) => String(item.key)).join('.') ?? '');
  const document = parsed.output as StoreDocument;
  const names = new Set<string>();
  for (const [index, key] of document.keys.entries()) {
    if (names.has(key.name)) throw invalid(`keys.${index}.name (duplicate)`);
    names.add(key.name);
    const ids = key.versions.map((v) => Number(v.id));
    if (ids.some((id, i) => id > key.lastVersionId || (i > 0 && id <= (ids[i - 1] as number)))) throw invalid(`keys.${index}.versions (ids)`);
  }
  return document;
}
