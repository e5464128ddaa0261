import type { ExitCode } from '../core/errors.js';
import type { ConnectionTest } from '../targets/target.js';
import type { EngineEvent, StepName } from './events.js';

/** Where a timer reports each step it times: the key's session event stream. */
export interface StepEvents {
  key: string;
  emit(event: EngineEvent): Promise<void>;
}

/** One protocol step as it happened, for human output, --json and drill reports. */
export interface StepRecord {
  step: string;
  ok: boolean;
  ms: number;
  /** When the step ended, in ms since the operation started (drills add these up into TTC/TTR). */
  endedAtMs?: number;
  detail?: string;
}

export type Outcome =
  | 'added'
  | 'imported'
  | 'rotated'
  | 'resumed'
  | 'revoked'
  | 'tested'
  | 'skipped'
  | 'rolled_back'
  | 'failed'
  | 'lockout'
  | 'planned';

/** What an operation on one key returns: data, printed by the CLI, never by the engine. */
export interface KeyResult {
  key: string;
  operation: string;
  outcome: Outcome;
  ok: boolean;
  exitCode: ExitCode;
  message: string;
  fingerprint?: string;
  previousFingerprint?: string;
  steps: StepRecord[];
  tests: ConnectionTest[];
  ms: number;
}

export class StepTimer {
  readonly steps: StepRecord[] = [];
  readonly tests: ConnectionTest[] = [];
  readonly started = Date.now();
  private readonly events: StepEvents | undefined;

  constructor(events?: StepEvents) {
    this.events = events;
  }

  async run<T>(step: StepName, fn: () => Promise<T>, describe?: (value: T) => { ok: boolean; detail?: string }): Promise<T> {
    const start = Date.now();
    let value: T;
    let verdict: { ok: boolean; detail?: string };
    try {
      value = await fn();
      verdict = describe?.(value) ?? { ok: true };
    } catch (error) {
      await this.record({ step, ok: false, ms: Date.now() - start, endedAtMs: Date.now() - this.started, detail: (error as Error).message });
      throw error;
    }
    await this.record({ step, ok: verdict.ok, ms: Date.now() - start, endedAtMs: Date.now() - this.started, ...(verdict.detail ? { detail: verdict.detail } : {}) });
    return value;
  }

  private async record(record: StepRecord & { step: StepName }): Promise<void> {
    this.steps.push(record);
    await this.events?.emit({ type: 'step-done', key: this.events.key, step: record.step, ok: record.ok, durationMs: record.ms, ...(record.detail ? { detail: record.detail } : {}) });
  }

  elapsed(): number {
    return Date.now() - this.started;
  }
}

export type ResultFields = Omit<KeyResult, 'key' | 'operation' | 'steps' | 'tests' | 'ms'>;

/** Builds the results of one operation on one key: name, steps and timing filled in. */
export function resultsFor(key: string, operation: string, timer: StepTimer, defaults: Partial<ResultFields> = {}) {
  return (fields: ResultFields): KeyResult => ({
    key,
    operation,
    steps: timer.steps,
    tests: timer.tests,
    ms: timer.elapsed(),
    ...defaults,
    ...fields,
  });
}
