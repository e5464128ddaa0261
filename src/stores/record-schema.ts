import * as v from 'valibot';

/**
 * The shape of a key's version metadata and lifecycle state as every store persists it.
 * Loose objects keep fields a newer provkey may add instead of dropping them on rewrite.
 */
export const versionMetaEntries = {
  id: v.pipe(v.string(), v.regex(/^[1-9][0-9]*$/)),
  label: v.picklist(['current', 'pending', 'previous', 'revoked', 'failed']),
  fingerprint: v.string(),
  createdAt: v.string(),
  labelledAt: v.string(),
  graceUntil: v.optional(v.string()),
  origin: v.picklist(['generated', 'imported']),
  expiresAt: v.optional(v.string()),
  account: v.optional(v.string()),
};

const note = v.looseObject({ at: v.string(), detail: v.string() });

export const lifecycleStateSchema = v.looseObject({
  claim: v.optional(v.looseObject({ id: v.string(), operation: v.string(), step: v.string(), startedAt: v.string(), expiresAt: v.string() })),
  lastTest: v.optional(v.looseObject({ ok: v.boolean(), at: v.string() })),
  lastRotatedAt: v.optional(v.string()),
  lockout: v.optional(note),
  attention: v.optional(note),
});
