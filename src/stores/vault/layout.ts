import * as v from 'valibot';
import type { KeyRecord, LifecycleState, VersionMeta } from '../../core/model.js';
import { vaultError } from './errors.js';
import type { VaultSettings } from './settings.js';
import { lifecycleStateSchema, versionMetaEntries } from '../record-schema.js';

/**
 * Where a key lives in KV v2, under <mount>/<prefix>/<key>/:
 *
 *   value   one KV version per provkey version: data {value, fingerprint}. The KV version
 *           number is the provkey version id, so `bao kv get -version=N` finds it, and revoke
 *           is a KV soft delete (or destroy) of exactly that version.
 *   state   the key's record: every version's metadata (label, fingerprint, times), the
 *           lifecycle state (claim, last test, lockout) and an incarnation id. Every write is a
 *           KV check-and-set on the version last read, so this secret is the single point
 *           where two writers are ordered: the revision is "<state KV version>.<incarnation>".
 *
 * Why not labels in custom_metadata alone: metadata writes have no check-and-set in Vault, so
 * a claim kept there could be won by two rotators. The value secret's custom_metadata carries
 * a copy of the live labels (current/pending/previous → version ids) for apps and humans
 * reading Vault directly; the state secret is the truth.
 */
export interface KeyPaths {
  stateData: string;
  stateMetadata: string;
  valueData: string;
  valueMetadata: string;
  valueDelete: string;
  valueDestroy: string;
  /** Human form for messages: "secret/provkey/<key>". */
  where: string;
}

const KEY_NAME = /^[A-Za-z0-9._-]+$/;

export function checkKeyName(key: string): void {
  if (!KEY_NAME.test(key) || key === '.' || key === '..') {
    throw vaultError('invalid', `"${key}" cannot be a Vault key name: use letters, digits, ".", "_" and "-"`);
  }
}

export function keyPaths(settings: VaultSettings, key: string): KeyPaths {
  checkKeyName(key);
  const { mount, prefix } = settings;
  const rel = prefix ? `${prefix}/${key}` : key;
  return {
    stateData: `${mount}/data/${rel}/state`,
    stateMetadata: `${mount}/metadata/${rel}/state`,
    valueData: `${mount}/data/${rel}/value`,
    valueMetadata: `${mount}/metadata/${rel}/value`,
    valueDelete: `${mount}/delete/${rel}/value`,
    valueDestroy: `${mount}/destroy/${rel}/value`,
    where: `${mount}/${rel}`,
  };
}

/** The LIST path whose sub-folders are the keys. */
export function listPath(settings: VaultSettings): string {
  return settings.prefix ? `${settings.mount}/metadata/${settings.prefix}/` : `${settings.mount}/metadata/`;
}

/** What the state secret's data holds. */
export interface StateDocument {
  provkey: 1;
  key: string;
  /** Random per creation: a key deleted and added again never reuses a revision an old reader holds. */
  incarnation: string;
  versions: VersionMeta[];
  state: LifecycleState;
}

export interface StoredState {
  /** The KV version of the state secret this document was read from (the cas value for the next write). */
  kvVersion: number;
  document: StateDocument;
}

const versionSchema = v.looseObject(versionMetaEntries);

const documentSchema = v.looseObject({
  provkey: v.literal(1),
  key: v.string(),
  incarnation: v.pipe(v.string(), v.minLength(1)),
  versions: v.array(versionSchema),
  state: lifecycleStateSchema,
});

/** Checks a state secret's data before any of it is used; the error names the field, never a value. */
export function parseStateDocument(data: unknown, key: string, paths: KeyPaths, kvVersion: number): StateDocument {
  const parsed = v.safeParse(documentSchema, data);
  if (!parsed.success) {
    const at = parsed.issues[0]?.path?.map((p) => String(p.key)).join('.') || 'top level';
    throw vaultError('tampered', `${paths.stateData} (KV version ${kvVersion}) is not a provkey state document (at ${at}); it was written by something else`);
  }
  const document = parsed.output as StateDocument;
  if (document.key !== key) {
    throw vaultError('tampered', `${paths.stateData} holds the state of "${document.key}", not "${key}"`);
  }
  return document;
}

export function revisionOf(stored: StoredState): string {
  return `${stored.kvVersion}.${stored.document.incarnation}`;
}

export function toKeyRecord(key: string, stored: StoredState): KeyRecord {
  return {
    key,
    versions: structuredClone(stored.document.versions),
    state: structuredClone(stored.document.state),
    revision: revisionOf(stored),
  };
}

/** The live labels mirrored into the value secret's custom_metadata (strings only, ≤ 512 chars each). */
export function labelMirror(key: string, versions: VersionMeta[]): Record<string, string> {
  const mirror: Record<string, string> = { 'managed-by': 'provkey', 'provkey-key': key, 'provkey-state': 'see ./state (authoritative)' };
  for (const label of ['current', 'pending', 'previous'] as const) {
    const ids = versions.filter((v) => v.label === label).map((v) => v.id);
    if (ids.length) mirror[label] = ids.slice(-20).join(' ');
  }
  return mirror;
}
