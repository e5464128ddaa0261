import { access, constants, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { parseDuration } from '../core/duration.js';
import { ConfigError, UsageError } from '../core/errors.js';
import type { DrillReport } from '../engine/drill.js';
import type { EngineEvent } from '../engine/events.js';
import type { KeyResult } from '../engine/result.js';
import type { Session } from '../engine/session.js';
import type { KeyStatus } from '../engine/status.js';
import type { WebhookEventType } from './events.js';
import type { WebhookData, WebhookEvent, WebhookTarget } from './webhooks.js';

/**
 * Metrics and webhooks for one command run: a best-effort subscriber of the engine's event
 * stream (engine/events.ts) that keeps each key's outcome and each drill's report as the run
 * emits them, and at the end writes the metrics file and sends the webhooks they stand for.
 * Set-up (`observeRun`) checks the metrics path and resolves webhook secrets before the
 * command changes anything, so a bad setting is a usage error (exit 2), not a surprise after
 * a rotation. `finish` is best-effort: it only warns on stderr and never changes the run's
 * exit code; the subscriber itself only collects, so it can neither fail nor slow a rotation.
 */
export type ObservedCommand = 'rotate' | 'revoke' | 'drill' | 'status' | 'test';

export interface RunEnd {
  exitCode: number;
  /** Status data the command already has (status); else it is read after the run. */
  statuses?: KeyStatus[];
}

export interface RunObserver {
  finish(end: RunEnd): Promise<void>;
}

interface Warn {
  err(text: string): void;
  debug(text: string): void;
}

const NOTHING: RunObserver = { finish: async () => {} };
const BACKOFF_MS = 500;

interface ResolvedWebhook extends WebhookTarget {
  dueWithinMs: number;
}

export async function observeRun(session: Session, options: { metricsFile?: string; dryRun: boolean }, io: Warn, command: ObservedCommand): Promise<RunObserver> {
  const configured = session.config.raw.notify.webhooks;
  if (options.dryRun || (options.metricsFile === undefined && configured.length === 0)) return NOTHING;
  const started = Date.now();
  const metricsFile = options.metricsFile === undefined ? undefined : path.resolve(options.metricsFile);
  if (metricsFile) await checkWritableDir(metricsFile);
  const webhooks = configured.length ? await resolveWebhooks(session) : [];
  const stream: EngineEvent[] = [];
  const unsubscribe = session.events.subscribe((event) => {
    if (event.type === 'key-done' || event.type === 'drill-finished') stream.push(event);
  });
  return {
    finish: async (end) => {
      unsubscribe();
      try {
        await finishRun(session, io, command, { metricsFile, webhooks, started }, stream, end);
      } catch (error) {
        io.err(`provkey: warning: metrics/webhooks after ${command} failed: ${(error as Error).message}`);
      }
    },
  };
}

async function checkWritableDir(file: string): Promise<void> {
  const dir = path.dirname(file);
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error('not a directory');
    await access(dir, constants.W_OK);
  } catch (error) {
    throw new UsageError(`--metrics-file: cannot write in ${dir} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, 'usage.metrics_file');
  }
}

async function resolveWebhooks(session: Session): Promise<ResolvedWebhook[]> {
  const { checkWebhookUrl, signingKey } = await import('./webhooks.js');
  const context = session.adapterContext();
  return Promise.all(
    session.config.raw.notify.webhooks.map(async (hook, i): Promise<ResolvedWebhook> => {
      const field = `notify.webhooks.${i}`;
      try {
        checkWebhookUrl(hook.url, hook.allowInsecureHttp, `${field}.url`);
        const secret = await context.resolveSecret(hook.secretRef, `${field}.secretRef`);
        signingKey(secret, `${field}.secretRef`);
        return {
          url: hook.url,
          secret,
          ...(hook.events ? { events: hook.events } : {}),
          timeoutMs: parseDuration(hook.timeout, `${field}.timeout`),
          retries: hook.retries,
          allowInsecureHttp: hook.allowInsecureHttp,
          backoffMs: BACKOFF_MS,
          dueWithinMs: parseDuration(hook.dueWithin, `${field}.dueWithin`),
        };
      } catch (error) {
        if (error instanceof ConfigError || error instanceof UsageError) throw error;
        throw new ConfigError((error as Error).message);
      }
    }),
  );
}

async function finishRun(
  session: Session,
  io: Warn,
  command: ObservedCommand,
  setup: { metricsFile: string | undefined; webhooks: ResolvedWebhook[]; started: number },
  stream: EngineEvent[],
  end: RunEnd,
): Promise<void> {
  const drill = drillOf(stream);
  const results = drill ? [drillAsResult(drill)] : keyResultsOf(stream);
  const wantsStatuses = setup.metricsFile !== undefined || (setup.webhooks.length > 0 && (command === 'status' || command === 'rotate'));
  let statuses = end.statuses;
  if (!statuses && wantsStatuses) {
    const { keyStatuses } = await import('../engine/status.js');
    statuses = await keyStatuses(session, Object.keys(session.config.keys).sort());
  }
  const now = new Date();
  const tasks: Promise<void>[] = [];
  if (setup.metricsFile) {
    const file = setup.metricsFile;
    tasks.push(
      (async () => {
        const { writeMetricsFile } = await import('./metrics.js');
        await writeMetricsFile(file, { now, command, exitCode: end.exitCode, runMs: now.getTime() - setup.started, statuses: statuses ?? [], results });
        io.debug(`metrics written to ${file}`);
      })().catch((error: Error) => io.err(`provkey: warning: --metrics-file ${file} not written: ${error.message}`)),
    );
  }
  if (setup.webhooks.length > 0) {
    tasks.push(
      (async () => {
        const { sendWebhooks } = await import('./webhooks.js');
        const dueSource = command === 'status' || command === 'rotate' ? (statuses ?? []) : [];
        // Every receiver at once: a dead one delays the others by nothing.
        const deliveries = await Promise.all(setup.webhooks.map((hook) => sendWebhooks([hook], eventsFor(command, stream, dueSource, hook.dueWithinMs, now))));
        for (const delivery of deliveries.flat()) {
          // The origin only: a webhook URL's path is often itself a secret.
          const where = new URL(delivery.url).origin;
          if (delivery.ok) io.debug(`webhook ${delivery.type} ${delivery.id} delivered to ${where} (attempt ${delivery.attempts})`);
          else io.err(`provkey: warning: webhook ${delivery.type} to ${where} not delivered after ${delivery.attempts} attempt(s): ${delivery.error}`);
        }
      })(),
    );
  }
  await Promise.all(tasks);
}

/** The outcomes of the keys the run went over, as the engine emitted them (migrations aside). */
function keyResultsOf(stream: EngineEvent[]): KeyResult[] {
  return stream.flatMap((e) => (e.type === 'key-done' && e.result.operation !== 'migrate' ? [e.result as KeyResult] : []));
}

function drillOf(stream: EngineEvent[]): DrillReport | undefined {
  return stream.flatMap((e) => (e.type === 'drill-finished' ? [e.report] : [])).at(-1);
}

function drillAsResult(report: DrillReport): KeyResult {
  return {
    key: report.key,
    operation: 'drill',
    outcome: report.ok ? 'rotated' : 'failed',
    ok: report.ok,
    exitCode: report.exitCode as KeyResult['exitCode'],
    message: report.message,
    fingerprint: report.newFingerprint ?? report.leakedFingerprint,
    steps: report.steps,
    tests: [],
    ms: report.steps.at(-1)?.endedAtMs ?? report.steps.reduce((ms, s) => ms + s.ms, 0),
  };
}

/** The webhook events a run's engine events stand for. Bodies: names, fingerprints, outcomes, times. */
export function eventsFor(command: ObservedCommand, stream: EngineEvent[], statuses: KeyStatus[], dueWithinMs: number, now: Date): WebhookEvent[] {
  const drill = drillOf(stream);
  const results = drill ? [] : keyResultsOf(stream);
  const events: WebhookEvent[] = [];
  const base = (key: string): WebhookData => ({ schemaVersion: 1, key, command, host: hostname() });
  const push = (type: WebhookEventType, data: WebhookData) => events.push({ type, data });
  if (drill) {
    push('drill.finished', {
      ...base(drill.key),
      ok: drill.ok,
      exitCode: drill.exitCode,
      message: drill.message,
      leakedFingerprint: drill.leakedFingerprint,
      newFingerprint: drill.newFingerprint ?? null,
      timeToContainMs: drill.timeToContainMs ?? null,
      timeToRecoverMs: drill.timeToRecoverMs ?? null,
      rtoMs: drill.rtoMs,
      withinRto: drill.withinRto ?? false,
      containmentProven: drill.containmentProven ?? null,
    });
  }
  for (const r of results) {
    const data: WebhookData = {
      ...base(r.key),
      operation: r.operation,
      outcome: r.outcome,
      ok: r.ok,
      exitCode: r.exitCode,
      message: r.message,
      fingerprint: r.fingerprint ?? null,
      previousFingerprint: r.previousFingerprint ?? null,
      ms: r.ms,
      failedSteps: r.steps.filter((s) => !s.ok).map((s) => s.step),
    };
    const type = resultEvent(r);
    if (type) push(type, data);
  }
  for (const s of statuses) {
    if (!s.nextRotationAt || !s.current) continue;
    const left = Date.parse(s.nextRotationAt) - now.getTime();
    const data = { ...base(s.name), fingerprint: s.current.fingerprint, nextRotationAt: s.nextRotationAt, ageMs: s.ageMs };
    if (left <= 0) push('key.expiring', { ...data, overdueMs: -left });
    else if (left <= dueWithinMs) push('key.due_soon', { ...data, dueInMs: left });
  }
  return events;
}

function resultEvent(r: KeyResult): WebhookEventType | undefined {
  if (r.outcome === 'lockout') return 'key.lockout';
  if (r.operation === 'revoke') return r.outcome === 'revoked' ? 'key.revoked' : r.outcome === 'failed' || r.outcome === 'rolled_back' ? 'revoke.failed' : undefined;
  if (r.operation !== 'rotate') return undefined;
  switch (r.outcome) {
    case 'rotated':
    case 'resumed':
      return 'rotation.succeeded';
    case 'failed':
      return 'rotation.failed';
    case 'rolled_back':
      return 'rotation.rolled_back';
    default:
      return undefined;
  }
}
