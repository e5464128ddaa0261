import { hostname } from 'node:os';
import type { ResolvedKey } from '../config/load.js';
import { NeedsHumanError, UsageError } from '../core/errors.js';
import type { Claim, KeyRecord, VersionMeta } from '../core/model.js';
import { versionByLabel } from '../core/model.js';
import { registerSecret } from '../core/redact.js';
import type { SecretStore } from '../stores/store.js';
import type { SecretInUse, Target } from '../targets/target.js';
import type { Session } from './session.js';

/** The store, target and record of one key during one operation. */
export interface KeyContext {
  session: Session;
  key: ResolvedKey;
  store: SecretStore;
  target: Target;
}

export async function openKey(session: Session, name: string): Promise<KeyContext> {
  const key = session.key(name);
  await session.ensureAuditWritable();
  const [store, target] = await Promise.all([session.storeFor(key), session.targetFor(key)]);
  return { session, key, store, target };
}

export function owner(): Claim['owner'] {
  return { host: hostname(), pid: process.pid };
}

/** This process as `isClaimStale` needs it. */
export function thisRun(): { host: string; pid: number; isAlive: (pid: number) => boolean } {
  return { host: hostname(), pid: process.pid, isAlive: isProcessAlive };
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function secretOf(ctx: KeyContext, version: VersionMeta): Promise<SecretInUse> {
  const value = await ctx.store.readSecret(ctx.key.name, version.id);
  registerSecret(value);
  return { value, fingerprint: version.fingerprint, versionId: version.id, createdAt: version.createdAt, ...(version.account ? { account: version.account } : {}) };
}


/** `seen`: the record this operation has just read (convergeFirstSeen), instead of reading it again. */
export async function readExisting(ctx: Pick<KeyContext, 'key' | 'store'>, seen?: { record: KeyRecord | undefined }): Promise<{ record: KeyRecord; current: VersionMeta }> {
  const record = seen ? seen.record : await ctx.store.read(ctx.key.name);
  const current = record && versionByLabel(record, 'current');
  if (record && !current && record.state.claim) {
    // Not "run add": an interrupted change holds the key's next version (issue 7, item 3).
    throw new NeedsHumanError(
      `key ${ctx.key.name} has no current version while an interrupted ${record.state.claim.operation} (stopped at "${record.state.claim.step}") waits to be converged; run "provkey rotate ${ctx.key.name}"`,
      'key.interrupted',
    );
  }
  if (!record || !current) {
    throw new UsageError(`key ${ctx.key.name} has no current version in store "${ctx.key.storeName}" (run "provkey add ${ctx.key.name}")`, 'key.empty');
  }
  return { record, current };
}
