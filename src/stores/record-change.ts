import type { VersionMeta } from '../core/model.js';

/**
 * The rule every store's `update` applies to a RecordChange's versions, so the stores cannot
 * drift apart: only labels change through `update`.
 * - Every id must already be stored (versions are only created by addVersion), and appear once.
 * - fingerprint, createdAt, origin and account describe the stored value, so they cannot change.
 * - label, labelledAt and graceUntil are taken from the change (graceUntil removed when absent).
 * - A stored version the change leaves out is dropped (pruning); the result keeps the stored
 *   oldest→newest order, whatever order the change lists them in.
 * Whatever else a stored version carries (the file store keeps the value beside the metadata)
 * is kept as it is. `refuse` builds the adapter's own error ("[file] …", "[vault] …").
 */
export function applyRecordChange<T extends VersionMeta>(key: string, stored: readonly T[], versions: readonly VersionMeta[], refuse: (message: string) => Error): T[] {
  const changes = new Map<string, VersionMeta>();
  for (const meta of versions) {
    const found = stored.find((v) => v.id === meta.id);
    if (!found) throw refuse(`update of ${key} names version ${meta.id}, which does not exist`);
    if (changes.has(meta.id)) throw refuse(`update of ${key} names version ${meta.id} twice`);
    for (const field of ['fingerprint', 'createdAt', 'origin', 'account'] as const) {
      if (meta[field] !== found[field]) throw refuse(`update of ${key} may not change the ${field} of version ${meta.id}`);
    }
    changes.set(meta.id, meta);
  }
  return stored.flatMap((found) => {
    const meta = changes.get(found.id);
    if (!meta) return [];
    const { graceUntil: _old, ...rest } = found;
    return [{ ...rest, label: meta.label, labelledAt: meta.labelledAt, ...(meta.graceUntil === undefined ? {} : { graceUntil: meta.graceUntil }) } as T];
  });
}
