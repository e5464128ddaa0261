import { consumerNameOf } from '../config/validate.js';
import { isProvkeyError } from '../core/errors.js';
import { versionByLabel } from '../core/model.js';
import { currentExpiry, expiryWarning, nextRotationAt } from '../core/schedule.js';
import type { AuditEntry } from '../audit/audit-log.js';
import type { Session } from './session.js';

export interface KeyStatus {
  name: string;
  store: string;
  target: string;
  /**
   * `interrupted`: a run stopped part-way and left the key without a current version; the next
   * `rotate` converges it, and until then nothing works from the store: it needs attention now.
   */
  state: 'ok' | 'empty' | 'rotating' | 'interrupted' | 'lockout' | 'attention' | 'error';
  /** What needs a human, for `lockout`, `attention` and `interrupted`. */
  problem?: string;
  /** `account`: two-account keys, the DN the current password belongs to. */
  current: { fingerprint: string; createdAt: string; versionId: string; account?: string } | null;
  ageMs: number | null;
  nextRotationAt: string | null;
  due: boolean;
  /** The issuer's expiry of the current version, when one was recorded (`import --expires-at`). */
  expiresAt: string | null;
  /** Things to tell a person that are not (yet) a failure, e.g. an expiry coming up. */
  warnings: string[];
  previous: { fingerprint: string; graceUntil: string | null }[];
  lastTest: { ok: boolean; at: string } | null;
  /** Each configured consumer's last proof (delivery or `test`); null when it has none yet. Absent for a key without consumers. */
  consumers?: { name: string; type: string; lastProof: { ok: boolean; at: string; fingerprint: string; detail?: string } | null }[];
  error?: string;
  /** With `error`: the exit code that error carries (5 unreachable, 3 tampered, …). */
  errorExitCode?: number;
}

/** `status`: read-only; opens stores only (never a target), so it stays fast. */
export async function keyStatuses(session: Session, names: string[]): Promise<KeyStatus[]> {
  const now = Date.now();
  return Promise.all(
    names.map(async (name): Promise<KeyStatus> => {
      const key = session.key(name);
      const base = { name, store: key.storeName, target: key.config.target.type };
      try {
        const store = await session.storeFor(key);
        const record = await store.read(name);
        const current = record && versionByLabel(record, 'current');
        const next = nextRotationAt(record, key.rotation);
        const expiry = currentExpiry(record);
        const warning = expiryWarning(record, new Date(now));
        const claim = record?.state.claim;
        const state = record?.state.lockout ? 'lockout' : record?.state.attention ? 'attention' : !current ? (claim ? 'interrupted' : 'empty') : claim ? 'rotating' : 'ok';
        const interrupted = state === 'interrupted' && claim ? `no current version: an interrupted ${claim.operation} (stopped at "${claim.step}") waits; run "provkey rotate ${name}" to converge it` : undefined;
        const problem = record?.state.lockout?.detail ?? record?.state.attention?.detail ?? interrupted;
        return {
          ...base,
          state,
          current: current ? { fingerprint: current.fingerprint, createdAt: current.createdAt, versionId: current.id, ...(current.account ? { account: current.account } : {}) } : null,
          ageMs: current ? now - Date.parse(current.createdAt) : null,
          nextRotationAt: next?.toISOString() ?? null,
          due: next !== undefined && next.getTime() <= now,
          expiresAt: expiry?.toISOString() ?? null,
          warnings: warning ? [warning] : [],
          previous: (record?.versions ?? []).filter((v) => v.label === 'previous').map((v) => ({ fingerprint: v.fingerprint, graceUntil: v.graceUntil ?? null })),
          lastTest: record?.state.lastTest ? { ok: record.state.lastTest.ok, at: record.state.lastTest.at } : null,
          ...(problem ? { problem } : {}),
          ...(key.config.consumers.length ? { consumers: consumerProofs(key, record?.state.consumerProofs) } : {}),
        };
      } catch (error) {
        if (!isProvkeyError(error)) throw error;
        return { ...base, state: 'error', current: null, ageMs: null, nextRotationAt: null, due: false, expiresAt: null, warnings: [], previous: [], lastTest: null, error: error.message, errorExitCode: error.exitCode };
      }
    }),
  );
}

function consumerProofs(key: ReturnType<Session['key']>, proofs: Record<string, { ok: boolean; at: string; fingerprint: string; detail?: string }> | undefined): NonNullable<KeyStatus['consumers']> {
  return key.config.consumers.map((consumer, index) => {
    const name = consumerNameOf(consumer, index);
    const proof = proofs?.[name];
    return { name, type: consumer.type, lastProof: proof ? { ok: proof.ok, at: proof.at, fingerprint: proof.fingerprint, ...(proof.detail ? { detail: proof.detail } : {}) } : null };
  });
}

export interface KeyHistory {
  key: string;
  versions: { id: string; label: string; fingerprint: string; createdAt: string; labelledAt: string; graceUntil?: string; origin: string; account?: string }[];
  events: Pick<AuditEntry, 'seq' | 'at' | 'event' | 'outcome' | 'fingerprint' | 'actor' | 'detail'>[];
}

export async function keyHistory(session: Session, name: string): Promise<KeyHistory> {
  const key = session.key(name);
  const store = await session.storeFor(key);
  const record = await store.read(name);
  const entries = await session.audit.readAll();
  return {
    key: name,
    versions: (record?.versions ?? []).map((v) => ({ ...v })),
    events: entries
      .filter((e) => e.key === name)
      .map((e) => ({ seq: e.seq, at: e.at, event: e.event, ...(e.outcome ? { outcome: e.outcome } : {}), ...(e.fingerprint ? { fingerprint: e.fingerprint } : {}), actor: e.actor, ...(e.detail ? { detail: e.detail } : {}) })),
  };
}
