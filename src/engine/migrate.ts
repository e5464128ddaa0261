import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { isMap, isScalar, parseDocument } from 'yaml';
import { parseConfigText } from '../config/located.js';
import { isClaimStale, newClaim } from '../core/claim.js';
import { AdapterError, ConfigError, ConflictError, ExitCode, isProvkeyError, UsageError } from '../core/errors.js';
import { fingerprint } from '../core/fingerprint.js';
import type { Claim, KeyRecord, LifecycleState, Operation, VersionLabel, VersionMeta } from '../core/model.js';
import { versionByLabel } from '../core/model.js';
import { registerSecret } from '../core/redact.js';
import { writeFileAtomic } from '../io/atomic-write.js';
import type { SecretStore } from '../stores/store.js';
import { owner , thisRun } from './key-context.js';
import { StepTimer, type StepRecord } from './result.js';
import type { Session } from './session.js';
import { keyDone, type StepName } from './events.js';

/**
 * `provkey migrate KEY... --to STORE`: moves keys between stores with their whole history.
 *
 *   1. claim    the key in the source store (compare-and-set), so no rotation starts on the
 *               source while it is copied, nor after the config has moved on;
 *   2. copy     every version oldest→newest: live values (current, previous, pending) are read
 *               and written; revoked/failed versions and any whose value is already gone keep
 *               only their metadata (label revoked) — their values are never spread to a new store;
 *   3. verify   read the copy back: every label and date, and every copied value's fingerprint;
 *   4. switch   rewrite `keys.<key>.store` in provkey.yaml (comments kept) and re-load it;
 *   5. retire   delete the key from the source store (`deleteKey`).
 *
 * A failure before 4 deletes the copy and releases the claim: the key stays where it was. The
 * destination assigns its own version ids; fingerprints tie the two histories together and
 * the id map goes into the audit record.
 */

export interface MigrateOptions {
  to: string;
  dryRun: boolean;
}

export interface MigratedVersion {
  fingerprint: string;
  label: VersionLabel;
  fromId: string;
  toId?: string;
  /** value: the value moved; metadata: only the metadata (the value was revoked or already gone). */
  copy: 'value' | 'metadata';
}

export interface MigrationResult {
  key: string;
  operation: 'migrate';
  from: string;
  to: string;
  outcome: 'migrated' | 'planned' | 'skipped' | 'failed';
  ok: boolean;
  exitCode: ExitCode;
  message: string;
  fingerprint?: string;
  versions: MigratedVersion[];
  configRewritten: boolean;
  sourceRetired: boolean;
  steps: StepRecord[];
  ms: number;
}

/** Not one of the rotation operations: a claim a rotation finds stale is simply cleared. */
const MIGRATE_OPERATION: Operation = 'migrate';
const LIVE_LABELS: ReadonlySet<VersionLabel> = new Set(['current', 'previous', 'pending']);

/** Keys are moved one after another: each one's config rewrite must see the previous one's. */
export async function migrateKeys(session: Session, names: string[], options: MigrateOptions): Promise<MigrationResult[]> {
  if (!session.config.stores[options.to]) {
    const known = Object.keys(session.config.stores).sort().join(', ');
    throw new ConfigError(`--to: no store named "${options.to}" under stores (known: ${known})`, 'config.unknown_store');
  }
  if (!session.config.file) throw new ConfigError('migrate needs a config file: it rewrites the key\'s store: field', 'config.missing');
  await session.ensureAuditWritable();
  const results: MigrationResult[] = [];
  await session.emit({ type: 'run-start', total: names.length, operation: 'migrate' });
  for (const name of names) {
    await session.emit({ type: 'key-start', key: name, operation: 'migrate' });
    const result = await migrateKey(session, name, options);
    await session.emit(keyDone(result));
    results.push(result);
  }
  await session.emit({ type: 'run-done', operation: 'migrate' });
  return results;
}

async function migrateKey(session: Session, name: string, options: MigrateOptions): Promise<MigrationResult> {
  const timer = new StepTimer(session.stepEvents(name));
  const key = session.key(name);
  const from = key.storeName;
  const to = options.to;
  const base = { key: name, operation: 'migrate' as const, from, to, steps: timer.steps };
  const result = (partial: Partial<MigrationResult> & Pick<MigrationResult, 'outcome' | 'ok' | 'exitCode' | 'message'>): MigrationResult => ({
    versions: [],
    configRewritten: false,
    sourceRetired: false,
    ...base,
    ...partial,
    ms: timer.elapsed(),
  });
  const progress = (step: StepName, detail?: string) => session.emit({ type: 'step-start', key: name, step, ...(detail ? { detail } : {}) });

  if (from === to) {
    // An earlier migrate may have switched the config and died (or lost its store) before it
    // deleted the source: finish that now instead of leaving a claimed copy behind.
    const finished = await retireLeftoverSources(session, name, to, timer);
    if (finished) return result(finished);
    return result({ outcome: 'skipped', ok: true, exitCode: ExitCode.ok, message: `already on store "${to}" (keys.${name}.store)` });
  }
  let source: SecretStore;
  let target: SecretStore;
  let record: KeyRecord | undefined;
  try {
    [source, target] = await Promise.all([session.storeNamed(from), session.storeNamed(to)]);
    record = await source.read(name);
  } catch (error) {
    return failed(error);
  }
  if (!record || record.versions.length === 0) {
    return result({ outcome: 'failed', ok: false, exitCode: ExitCode.usage, message: `key ${name} has no versions in store "${from}": nothing to migrate` });
  }
  const refusal = claimRefusal(record);
  if (refusal) return result({ outcome: 'failed', ok: false, exitCode: ExitCode.failed, message: refusal });
  if (!versionByLabel(record, 'current')) {
    return result({ outcome: 'failed', ok: false, exitCode: ExitCode.failed, message: `key ${name} has no current version in "${from}"; fix it there first (provkey add/test)` });
  }

  // What will move, and how. Values are read now so an unreadable live version stops the plan.
  let plan: PlannedVersion[];
  try {
    plan = await timer.run('plan', () => planVersions(source, name, record!));
  } catch (error) {
    return failed(error);
  }
  const planned = plan.map((p) => ({ fingerprint: p.meta.fingerprint, label: p.label, fromId: p.meta.id, copy: p.value === undefined ? ('metadata' as const) : ('value' as const) }));
  let existing: KeyRecord | undefined;
  try {
    existing = await target.read(name);
  } catch (error) {
    return failed(error, planned);
  }
  const leftover = existing !== undefined && isLeftoverCopy(existing, record);
  if (existing && !leftover) {
    return result({
      outcome: 'failed',
      ok: false,
      exitCode: ExitCode.failed,
      versions: planned,
      message: `store "${to}" already holds a different key named ${name} (${existing.versions.length} version(s)); remove it there or migrate to another store`,
    });
  }
  const current = versionByLabel(record, 'current')!;
  if (options.dryRun) {
    const copies = planned.filter((p) => p.copy === 'value').length;
    return result({
      outcome: 'planned',
      ok: true,
      exitCode: ExitCode.ok,
      fingerprint: current.fingerprint,
      versions: planned,
      message: `would copy ${planned.length} version(s) from "${from}" to "${to}" (${copies} with their value, ${planned.length - copies} metadata only), verify them, set keys.${name}.store: ${to} in ${session.config.file}, then delete ${name} from "${from}"${leftover ? ` (replacing an unfinished copy in "${to}")` : ''}`,
    });
  }

  // 1. claim the source: a rotation that starts now sees it and skips this key.
  await progress('claim');
  let claimed: KeyRecord;
  try {
    claimed = await timer.run('claim', () =>
      source.update(name, record!.revision, { versions: record!.versions, state: { ...record!.state, claim: migrationClaim() } }),
    );
  } catch (error) {
    if (error instanceof ConflictError) {
      return result({ outcome: 'skipped', ok: false, exitCode: ExitCode.failed, versions: planned, message: `key ${name} changed while migrate read it (another run); try again` });
    }
    return failed(error, planned);
  }
  const release = async () => {
    const now = await source.read(name).catch(() => undefined);
    if (!now || now.state.claim?.id !== claimed.state.claim?.id) return;
    const { claim: _mine, ...state } = now.state;
    await source.update(name, now.revision, { versions: now.versions, state }).catch(() => undefined);
  };
  const undoCopy = async () => {
    await target.deleteKey(name).catch(() => undefined);
    await release();
  };

  // 2. copy
  await progress('copy');
  let copied: { record: KeyRecord; idMap: Map<string, string> };
  try {
    if (leftover) await timer.run('remove-unfinished-copy', () => target.deleteKey(name));
    copied = await timer.run('copy', () => copyVersions(target, name, plan, record!.state), (c) => ({ ok: true, detail: `${c.record.versions.length} version(s)` }));
  } catch (error) {
    await undoCopy();
    return failed(error, planned, 'the copy failed and was removed; the key is unchanged in the source');
  }
  const versions = planned.map((p) => ({ ...p, toId: copied.idMap.get(p.fromId)! }));

  // 3. verify: every label, date and value as read back from the destination.
  await progress('verify');
  try {
    await timer.run('verify', () => verifyCopy(target, name, plan, copied.idMap), (n) => ({ ok: true, detail: `${n} value(s) match their fingerprints` }));
    const stillMine = await source.read(name);
    if (!stillMine || stillMine.revision !== claimed.revision) throw new ConflictError(from, `${name} changed in "${from}" during the copy`);
  } catch (error) {
    await undoCopy();
    return failed(error, versions, 'verification failed; the copy was removed and the key is unchanged in the source');
  }

  // 4. switch: provkey.yaml now says the key lives in the destination.
  await progress('switch-config');
  try {
    await timer.run('switch-config', () => session.writeConfig(name, () => setKeyStore(session.config.file!, name, to)), () => ({ ok: true, detail: `keys.${name}.store: ${to}` }));
  } catch (error) {
    await undoCopy();
    return failed(error, versions, `the config was not changed, the copy was removed; the key stays in "${from}"`);
  }
  await session.emit({
    type: 'audit',
    event: 'key.migrated',
    key: name,
    outcome: 'ok',
    fingerprint: current.fingerprint,
    versionId: copied.idMap.get(current.id)!,
    detail: { from, to, versions: versions.length, values: versions.filter((v) => v.copy === 'value').length, ids: Object.fromEntries(copied.idMap) },
  });

  // 5. retire the source. The key already works from the destination; a failure here leaves a
  // stale copy (claimed, so no rotation touches it) that a human removes.
  await progress('retire-source');
  try {
    await timer.run('retire-source', async () => {
      await source.deleteKey(name);
      if (await source.read(name)) throw new AdapterError(from, 'server_error', `${name} is still there after deleting it`);
    });
  } catch (error) {
    if (!isProvkeyError(error)) throw error;
    // The key already works from the destination; the old copy stays claimed (no rotation
    // touches it) and the next `migrate` finishes deleting it.
    const retry = error.exitCode === ExitCode.unavailable || error.exitCode === ExitCode.denied || error.exitCode === ExitCode.sealed ? error.exitCode : ExitCode.failed;
    return result({
      outcome: 'migrated',
      ok: false,
      exitCode: retry,
      fingerprint: current.fingerprint,
      versions,
      configRewritten: true,
      message: `moved to "${to}" and provkey.yaml updated, but the old copy in "${from}" could not be deleted yet (${error.message}); run "provkey migrate ${name} --to ${to}" again to finish`,
    });
  }
  return result({
    outcome: 'migrated',
    ok: true,
    exitCode: ExitCode.ok,
    fingerprint: current.fingerprint,
    versions,
    configRewritten: true,
    sourceRetired: true,
    message: `moved ${versions.length} version(s) from "${from}" to "${to}"; ${current.fingerprint} is current; keys.${name}.store is now ${to}; the copy in "${from}" is deleted`,
  });

  function failed(error: unknown, versionsSoFar: MigratedVersion[] = [], after?: string): MigrationResult {
    if (!isProvkeyError(error)) throw error;
    return result({
      outcome: 'failed',
      ok: false,
      exitCode: error.exitCode,
      versions: versionsSoFar,
      message: after ? `${error.message}; ${after}` : error.message,
    });
  }
}

/**
 * The last step of an interrupted migrate: the config names `to`, and another store still
 * holds a copy under a stale migrate claim with the same history. The copy is deleted once the
 * destination is proven to hold the same current version.
 */
async function retireLeftoverSources(session: Session, name: string, to: string, timer: StepTimer): Promise<Pick<MigrationResult, 'outcome' | 'ok' | 'exitCode' | 'message'> & Partial<MigrationResult> | undefined> {
  const destination = await (await session.storeNamed(to)).read(name);
  const current = destination && versionByLabel(destination, 'current');
  if (!destination || !current) return undefined;
  const retired: string[] = [];
  for (const storeName of Object.keys(session.config.stores).sort()) {
    if (storeName === to) continue;
    let source: SecretStore;
    let copy: KeyRecord | undefined;
    try {
      source = await session.storeNamed(storeName);
      copy = await source.read(name);
    } catch {
      continue; // a store this key never used may be unreachable or unconfigured here
    }
    const claim = copy?.state.claim;
    if (!copy || !claim || claim.operation !== MIGRATE_OPERATION || !isClaimStale(claim, new Date(), thisRun())) continue;
    if (!isLeftoverCopy(copy, destination) && !isLeftoverCopy(destination, copy)) continue;
    await session.emit({ type: 'audit', event: 'key.migrated', key: name, outcome: 'resumed', fingerprint: current.fingerprint, versionId: current.id, detail: { from: storeName, to, finished: 'retire-source' } });
    await timer.run('retire-source', async () => {
      await source.deleteKey(name);
      if (await source.read(name)) throw new AdapterError(storeName, 'server_error', `${name} is still there after deleting it`);
    });
    retired.push(storeName);
  }
  if (retired.length === 0) return undefined;
  return {
    outcome: 'migrated',
    ok: true,
    exitCode: ExitCode.ok,
    fingerprint: current.fingerprint,
    configRewritten: true,
    sourceRetired: true,
    message: `finished an interrupted migrate: the old copy in ${retired.map((s) => `"${s}"`).join(', ')} is deleted; ${current.fingerprint} is current in "${to}"`,
  };
}

/**
 * A key being rotated, revoked or migrated is not moved; neither is one a crashed rotation
 * left claimed (the target may hold its pending version). A crashed migrate's own claim is
 * taken over: migrate starts again from the source.
 */
function claimRefusal(record: KeyRecord): string | undefined {
  const c = record.state.claim;
  if (!c) return undefined;
  const stale = isClaimStale(c, new Date(), thisRun());
  if (stale && c.operation === MIGRATE_OPERATION) return undefined;
  return stale
    ? `key ${record.key} has an unfinished ${c.operation} (claimed ${c.startedAt} by pid ${c.owner.pid} on ${c.owner.host}); run "provkey rotate ${record.key}" to converge it first`
    : `key ${record.key} is being changed right now (${c.operation} since ${c.startedAt}, pid ${c.owner.pid} on ${c.owner.host}); try again when it is done`;
}

function migrationClaim(): Claim {
  return newClaim(MIGRATE_OPERATION, owner(), new Date());
}

interface PlannedVersion {
  meta: VersionMeta;
  /** The label in the destination: live labels stay; a version without a value is revoked. */
  label: VersionLabel;
  labelledAt: string;
  value: string | undefined;
}

async function planVersions(source: SecretStore, name: string, record: KeyRecord): Promise<PlannedVersion[]> {
  const now = new Date().toISOString();
  const plan: PlannedVersion[] = [];
  for (const meta of record.versions) {
    let value: string | undefined;
    if (LIVE_LABELS.has(meta.label)) {
      try {
        value = await source.readSecret(name, meta.id);
        registerSecret(value);
      } catch (error) {
        if (!(error instanceof AdapterError) || error.kind !== 'not_found') throw error;
        if (meta.label === 'current') {
          throw new AdapterError(source.name, 'not_found', `the current version ${meta.fingerprint} of ${name} has no readable value in "${source.name}"; nothing can be migrated`);
        }
      }
      if (value !== undefined && fingerprint(value) !== meta.fingerprint) {
        throw new AdapterError(source.name, 'tampered', `version ${meta.id} of ${name} does not match its fingerprint ${meta.fingerprint} in "${source.name}"`);
      }
    }
    const keep = value !== undefined || meta.label === 'revoked' || meta.label === 'failed';
    plan.push({ meta, value, label: keep ? meta.label : 'revoked', labelledAt: keep ? meta.labelledAt : now });
  }
  return plan;
}

/**
 * Writes the versions oldest→newest through the store interface. A version without a value
 * still needs a slot in the destination's history: it is written with a random placeholder
 * that is destroyed at once (it never reached any target, and the label says revoked).
 */
async function copyVersions(target: SecretStore, name: string, plan: PlannedVersion[], sourceState: LifecycleState): Promise<{ record: KeyRecord; idMap: Map<string, string> }> {
  const idMap = new Map<string, string>();
  let revision: string | undefined;
  let record: KeyRecord | undefined;
  const placeholders: string[] = [];
  for (const p of plan) {
    const value = p.value ?? `provkey-migrate-placeholder-${randomBytes(24).toString('base64url')}`;
    const meta = {
      label: p.label,
      fingerprint: p.meta.fingerprint,
      createdAt: p.meta.createdAt,
      labelledAt: p.labelledAt,
      ...(p.meta.graceUntil === undefined ? {} : { graceUntil: p.meta.graceUntil }),
      origin: p.meta.origin,
      ...(p.meta.expiresAt === undefined ? {} : { expiresAt: p.meta.expiresAt }),
      ...(p.meta.account === undefined ? {} : { account: p.meta.account }),
    };
    const added = await target.addVersion(name, revision, value, meta);
    idMap.set(p.meta.id, added.versionId);
    if (p.value === undefined) placeholders.push(added.versionId);
    revision = added.record.revision;
    record = added.record;
  }
  for (const id of placeholders) await target.disableVersion(name, id, { destroy: true });
  // The lifecycle state, with version ids translated; the source's claim (ours) stays behind.
  const { claim: _claim, ...state } = structuredClone(sourceState);
  if (state.lastTest?.versionId) {
    const mapped = idMap.get(state.lastTest.versionId);
    if (mapped) state.lastTest.versionId = mapped;
    else delete state.lastTest.versionId;
  }
  record = await target.update(name, revision!, { versions: record!.versions, state });
  return { record, idMap };
}

/** Reads the copy back; returns how many values were compared. Any difference throws. */
async function verifyCopy(target: SecretStore, name: string, plan: PlannedVersion[], idMap: Map<string, string>): Promise<number> {
  const copy = await target.read(name);
  const mismatch = (what: string) => new AdapterError(target.name, 'tampered', `the copy of ${name} in "${target.name}" does not match the source: ${what}`);
  if (!copy) throw mismatch('it is missing');
  if (copy.versions.length !== plan.length) throw mismatch(`${copy.versions.length} version(s) instead of ${plan.length}`);
  let values = 0;
  for (const [i, p] of plan.entries()) {
    const got = copy.versions[i]!;
    if (got.id !== idMap.get(p.meta.id)) throw mismatch(`version order differs at ${p.meta.fingerprint}`);
    for (const field of ['fingerprint', 'createdAt', 'origin'] as const) {
      if (got[field] !== p.meta[field]) throw mismatch(`${field} of ${p.meta.fingerprint}`);
    }
    if (got.label !== p.label) throw mismatch(`label of ${p.meta.fingerprint} is ${got.label}, expected ${p.label}`);
    if (p.value === undefined) {
      const gone = await target.readSecret(name, got.id).then(
        () => false,
        (e: unknown) => e instanceof AdapterError && e.kind === 'not_found',
      );
      if (!gone) throw mismatch(`the placeholder of revoked version ${p.meta.fingerprint} is still readable`);
      continue;
    }
    const value = await target.readSecret(name, got.id);
    if (fingerprint(value) !== p.meta.fingerprint) throw mismatch(`the value of ${p.meta.fingerprint} reads back as ${fingerprint(value)}`);
    values++;
  }
  return values;
}

/**
 * Sets `keys.<name>.store: <store>` in the config file as a surgical text edit: only that
 * value changes (or one line is added), so comments, flow maps and spacing stay byte for byte.
 * The result is re-loaded to prove it is valid and says what we meant, and written atomically
 * with the file's mode. Refuses if the file changed since it was read.
 */
export async function setKeyStore(file: string, name: string, store: string): Promise<void> {
  let text: string;
  let mode: number;
  try {
    text = await readFile(file, 'utf8');
    mode = (await stat(file)).mode & 0o777;
  } catch (error) {
    throw new ConfigError(`cannot read ${file} to update keys.${name}.store: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 'config.unreadable');
  }
  const updated = withKeyStore(text, file, name, store);
  const reloaded = parseConfigText(updated, file);
  if (reloaded.keys[name]?.storeName !== store) throw new ConfigError(`${file}: keys.${name}.store did not take effect`, 'config.invalid');
  if ((await readFile(file, 'utf8')) !== text) {
    throw new UsageError(`${file} changed while migrate was running; run it again`, 'config.changed');
  }
  try {
    await writeFileAtomic(file, updated, mode);
  } catch (error) {
    throw new ConfigError(`cannot write ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 'config.unwritable');
  }
}

/** The config text with keys.<name>.store set; exported for tests. */
export function withKeyStore(text: string, file: string, name: string, store: string): string {
  const document = parseDocument(text, { keepSourceTokens: true });
  if (document.errors.length) throw new ConfigError(`${file}: invalid YAML, cannot update keys.${name}.store`, 'config.yaml');
  const keys = document.get('keys', true);
  const entry = isMap(keys) ? keys.items.find((p) => isScalar(p.key) && p.key.value === name) : undefined;
  const map = entry?.value;
  if (!entry || !isMap(map) || !isScalar(entry.key) || !entry.key.range) throw new ConfigError(`${file}: keys.${name} is not a mapping`, 'config.invalid');
  const scalar = /^[a-z][a-z0-9_-]*$/.test(store) && !/^(true|false|null|yes|no|on|off|y|n)$/.test(store) ? store : JSON.stringify(store);

  const existing = map.items.find((p) => isScalar(p.key) && p.key.value === 'store');
  if (existing && isScalar(existing.value) && existing.value.range) {
    const [start, end] = existing.value.range;
    return text.slice(0, start) + scalar + text.slice(end);
  }
  if (!existing && map.flow && map.range) {
    const brace = map.range[0];
    if (text[brace] === '{') return `${text.slice(0, brace + 1)} store: ${scalar},${text.slice(brace + 1)}`;
  }
  const first = map.items[0];
  if (!existing && !map.flow && first && isScalar(first.key) && first.key.range) {
    // One new line right under "  <name>:", indented like the map's first field.
    const firstLine = text.lastIndexOf('\n', first.key.range[0] - 1) + 1;
    const indent = text.slice(firstLine, first.key.range[0]);
    const afterName = text.indexOf('\n', entry.key.range[1]);
    if (/^ +$/.test(indent) && afterName !== -1 && afterName < first.key.range[0]) {
      return `${text.slice(0, afterName + 1)}${indent}store: ${scalar}\n${text.slice(afterName + 1)}`;
    }
  }
  // Anything unusual (an alias, a store: that is not a plain value): let yaml re-render the document.
  document.setIn(['keys', name, 'store'], store);
  return document.toString({ lineWidth: 0 });
}

/** An earlier migrate that stopped after copying: the destination holds a prefix of this key's history. */
function isLeftoverCopy(existing: KeyRecord, source: KeyRecord): boolean {
  if (existing.versions.length === 0 || existing.versions.length > source.versions.length) return false;
  return existing.versions.every((v, i) => v.fingerprint === source.versions[i]!.fingerprint && v.createdAt === source.versions[i]!.createdAt);
}
