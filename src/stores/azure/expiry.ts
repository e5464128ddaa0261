import type { VersionMeta } from '../../core/model.js';
import { expiryMarginMs, type RotationPolicy } from '../../core/schedule.js';

/**
 * The expiresOn of a value version, from the key's own rotation policy (docs/azure.md, expiry):
 *
 *   - a version in use: createdAt + interval + grace, the moment it stops being accepted when
 *     rotations run on schedule (current for `interval`, then previous for `grace`);
 *   - a `previous` version: the end of its grace period (graceUntil);
 *   - never later than the issuer's own expiry (`import --expires-at`).
 *
 * Key Vault refuses to return an expired value (403), but provkey may still need a live one
 * (an overdue rotation; proving that a no-overlap rotation's old version is now rejected): then
 * the store renews it, `renewingAt` set to now, to no earlier than now + the margin `--due`
 * rotates ahead of an expiry (a tenth of the interval, at most a day). A version is stored the
 * same way, so one migrated in after its lifetime is not born expired.
 *
 * `lifetimeMs` (the store's `valueExpiry`), when set, replaces interval + grace. Undefined when
 * neither is known (a store opened outside a config), and for revoked or failed versions,
 * which are disabled instead.
 */
export function valueExpiresOn(
  version: Pick<VersionMeta, 'label' | 'createdAt' | 'graceUntil' | 'expiresAt'>,
  rotation: RotationPolicy | undefined,
  lifetimeMs: number | undefined,
  renewingAt?: number,
): Date | undefined {
  if (version.label === 'revoked' || version.label === 'failed') return undefined;
  const lifetime = lifetimeMs ?? (rotation ? rotation.intervalMs + rotation.graceMs : undefined);
  if (lifetime === undefined) return undefined;
  const graceEnd = version.label === 'previous' && version.graceUntil !== undefined ? Date.parse(version.graceUntil) : Number.NaN;
  const planned = Number.isFinite(graceEnd) ? graceEnd : Date.parse(version.createdAt) + lifetime;
  if (!Number.isFinite(planned)) return undefined;
  const margin = rotation ? expiryMarginMs(rotation) : Math.min(lifetime / 10, 86_400_000);
  const issuer = version.expiresAt === undefined ? Number.NaN : Date.parse(version.expiresAt);
  const at = renewingAt === undefined ? planned : Math.max(planned, renewingAt + margin);
  // Key Vault keeps whole seconds: round up, so the stored expiry is never before the planned one.
  return new Date(Math.ceil((Number.isFinite(issuer) ? Math.min(at, issuer) : at) / 1000) * 1000);
}
