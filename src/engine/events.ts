import type { AuditEvent } from '../audit/audit-log.js';
import type { Operation } from '../core/model.js';
import type { DrillReport } from './drill.js';
import type { ExitCode } from '../core/errors.js';
import type { MigrationResult } from './migrate.js';
import type { KeyResult, Outcome } from './result.js';

/**
 * The engine's one typed event stream. Every step, key outcome (with its duration), audit
 * record and drill report is an EngineEvent; the audit log, the progress bar, metrics and
 * webhooks are its subscribers (events-bus.ts). Events carry names, fingerprints and
 * outcomes only: no field is meant for a value, and the audit subscriber redacts anyway.
 */

/** Every step a run reports (the protocols of DESIGN.md, revoke, drills and migrate): a closed set. */
export type StepName =
  | 'plan'
  | 'converge'
  | 'identify'
  | 'verify-current'
  | 'claim'
  | 'create'
  | 'store'
  | 'set'
  | 'test'
  | 'verify-new-rejected'
  | 'finish'
  | 'retire'
  | 'prove-rejected'
  | 'rollback'
  | 'copy'
  | 'remove-unfinished-copy'
  | 'verify'
  | 'switch-config'
  | 'retire-source'
  /** Each consumer's delivery, rollback and test (engine/consumers.ts); the consumer's name is the step's detail. */
  | 'consumer-validate'
  | 'consumer-switch'
  | 'consumer-prove'
  | 'consumer-restore'
  | 'consumer-check';

/** What a batch runs over its keys (forEachKey's operation). */
export type RunOperation = Operation | 'test' | 'grace-end';

/** Every audit line the engine writes: a closed set, never a name built from a string. */
export type AuditName =
  | 'key.added'
  | 'key.imported'
  | 'key.tested'
  | 'key.revealed'
  | 'key.migrated'
  | 'add.abandoned'
  | 'rotate.finished'
  | 'rotate.rolled_back'
  | 'rotate.kept_new'
  | 'rotate.rollback_unproven'
  | 'rotate.abandoned'
  | 'rotate.resumed'
  | 'drill.finished'
  | 'drill.abandoned'
  | 'drill.resumed'
  | 'drill.report'
  | 'drill.started'
  | 'drill.version'
  | 'add.resumed'
  | 'migrate.abandoned'
  | 'migrate.resumed'
  | 'retire.unproven'
  | 'retire.unavailable'
  | 'revoke.started'
  | 'revoke.version'
  | 'revoke.resumed'
  | 'revoke.abandoned'
  | 'grace-end.started'
  | 'grace-end.version'
  | 'consumer.switching'
  | 'consumer.restoring';

/** The audit names per operation, looked up (a claim's operation, revoke's caller). */
export const ABANDONED: Record<Operation, AuditName> = {
  add: 'add.abandoned',
  rotate: 'rotate.abandoned',
  revoke: 'revoke.abandoned',
  drill: 'drill.abandoned',
  migrate: 'migrate.abandoned',
};
export const RESUMED: Record<Operation, AuditName> = {
  add: 'add.resumed',
  rotate: 'rotate.resumed',
  revoke: 'revoke.resumed',
  drill: 'drill.resumed',
  migrate: 'migrate.resumed',
};
export const FINISHED: Record<'add' | 'rotate' | 'drill', AuditName> = { add: 'key.added', rotate: 'rotate.finished', drill: 'drill.finished' };
export type RevokeOperation = 'revoke' | 'grace-end' | 'drill';
export const REVOKE_STARTED: Record<RevokeOperation, AuditName> = { revoke: 'revoke.started', 'grace-end': 'grace-end.started', drill: 'drill.started' };
export const REVOKE_VERSION: Record<RevokeOperation, AuditName> = { revoke: 'revoke.version', 'grace-end': 'grace-end.version', drill: 'drill.version' };

/** One audit line to write: the awaited audit subscriber appends it, or the run stops. */
export type AuditRecord = Omit<AuditEvent, 'event'> & { event: AuditName };

export type EngineEvent =
  | { type: 'run-start'; operation: RunOperation; total: number }
  | { type: 'key-start'; key: string; operation: RunOperation }
  | { type: 'step-start'; key: string; step: StepName; detail?: string }
  /** A timed step ended: its verdict and how long it took. */
  | { type: 'step-done'; key: string; step: StepName; ok: boolean; durationMs: number; detail?: string }
  | {
      type: 'key-done';
      key: string;
      operation: string;
      outcome: Outcome | MigrationResult['outcome'];
      ok: boolean;
      exitCode: ExitCode;
      durationMs: number;
      /** The whole result (steps with their durations, tests): what --json prints too. */
      result: KeyResult | MigrationResult;
    }
  | { type: 'run-done'; operation: RunOperation }
  | { type: 'drill-finished'; key: string; ok: boolean; report: DrillReport }
  | ({ type: 'audit' } & AuditRecord);

export type EngineEventType = EngineEvent['type'];

/** The key-done event of one key's result. */
export function keyDone(result: KeyResult | MigrationResult): EngineEvent {
  return { type: 'key-done', key: result.key, operation: result.operation, outcome: result.outcome, ok: result.ok, exitCode: result.exitCode, durationMs: result.ms, result };
}
