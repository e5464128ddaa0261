import * as v from 'valibot';
import type { KeyRecord, LifecycleState, VersionMeta } from '../../core/model.js';
import { lifecycleStateSchema, versionMetaEntries } from '../record-schema.js';
import { revisionOf, type ChainNode } from './chain.js';
import { azureError } from './errors.js';

/** A provkey version as the state secret keeps it: the metadata plus where its value lives. */
export interface StoredVersion extends VersionMeta {
  /** The value secret's Key Vault version id holding this version's value. */
  azureVersion: string;
}

/** The value of one state-secret version (JSON, contentType STATE_CONTENT_TYPE). */
export interface StateDocument {
  provkey: 1;
  key: string;
  /** The next provkey version id: ids are never reused, even after pruning. */
  nextId: number;
  versions: StoredVersion[];
  state: LifecycleState;
}

export const STATE_CONTENT_TYPE = 'application/vnd.provkey.state+json';
export const VALUE_CONTENT_TYPE = 'text/plain; charset=utf-8';

const documentSchema = v.looseObject({
  provkey: v.literal(1),
  key: v.string(),
  nextId: v.pipe(v.number(), v.integer(), v.minValue(1)),
  versions: v.array(v.looseObject({ ...versionMetaEntries, azureVersion: v.pipe(v.string(), v.regex(/^[0-9a-zA-Z]+$/)) })),
  state: lifecycleStateSchema,
});

export function parseStateDocument(text: string | undefined, key: string, where: string): StateDocument {
  let data: unknown;
  try {
    data = JSON.parse(text ?? '');
  } catch {
    throw azureError('tampered', `${where} does not hold a provkey state document (not JSON); it was written by something else`);
  }
  const parsed = v.safeParse(documentSchema, data);
  if (!parsed.success) {
    const at = parsed.issues[0]?.path?.map((p) => String(p.key)).join('.') || 'top level';
    throw azureError('tampered', `${where} is not a provkey state document (at ${at}); it was written by something else`);
  }
  const document = parsed.output as StateDocument;
  if (document.key !== key) throw azureError('tampered', `${where} holds the state of "${document.key}", not "${key}"`);
  return document;
}

export function toKeyRecord(document: StateDocument, head: ChainNode): KeyRecord {
  return {
    key: document.key,
    versions: document.versions.map(({ azureVersion: _where, ...meta }) => structuredClone(meta)),
    state: structuredClone(document.state),
    revision: revisionOf(head),
  };
}
