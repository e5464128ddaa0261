import type { EngineEvent } from './events.js';

/**
 * Delivers each engine event to two kinds of subscribers:
 * - awaited (the audit log): run first, in order; a failure propagates out of `emit` and
 *   stops the run exactly where the event was emitted, before the change it records commits.
 * - best-effort (progress bar, metrics, webhooks): told only after every awaited subscriber
 *   accepted the event (nothing is announced that the audit log lacks); an exception or a
 *   rejected promise is caught and counted, never awaited by `emit`, so none can fail or
 *   hold up a rotation. `drain` waits for their pending work, bounded in time.
 */
export type Subscriber = (event: EngineEvent) => void | Promise<void>;

export interface BusOptions {
  /** Told about each best-effort failure (the session logs it with --verbose). */
  onFailure?: (error: unknown, event: EngineEvent) => void;
}

export class EventBus {
  private readonly awaited: Subscriber[] = [];
  private readonly bestEffort: Subscriber[] = [];
  private readonly pending = new Set<Promise<void>>();
  private failed = 0;

  private readonly options: BusOptions;

  constructor(options: BusOptions = {}) {
    this.options = options;
  }

  /** Best-effort failures so far. */
  get failures(): number {
    return this.failed;
  }

  /** A subscriber whose failure stops the run (the audit log). */
  subscribeAwaited(subscriber: Subscriber): () => void {
    return this.add(this.awaited, subscriber);
  }

  /** A subscriber that can never fail nor block the run. */
  subscribe(subscriber: Subscriber): () => void {
    return this.add(this.bestEffort, subscriber);
  }

  async emit(event: EngineEvent): Promise<void> {
    for (const subscriber of [...this.awaited]) await subscriber(event);
    for (const subscriber of [...this.bestEffort]) this.offer(subscriber, event);
  }

  /** Waits for best-effort work still running, at most `boundMs`; what is left is given up on. */
  async drain(boundMs: number): Promise<void> {
    if (this.pending.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, boundMs);
      timer.unref();
    });
    await Promise.race([Promise.allSettled([...this.pending]).then(() => undefined), bound]);
    clearTimeout(timer);
  }

  private offer(subscriber: Subscriber, event: EngineEvent): void {
    try {
      const running = subscriber(event);
      if (running && typeof running.then === 'function') {
        const tracked = Promise.resolve(running).then(
          () => undefined,
          (error: unknown) => this.fail(error, event),
        );
        this.pending.add(tracked);
        void tracked.finally(() => this.pending.delete(tracked));
      }
    } catch (error) {
      this.fail(error, event);
    }
  }

  private fail(error: unknown, event: EngineEvent): void {
    this.failed++;
    try {
      this.options.onFailure?.(error, event);
    } catch {
      // A failing failure report is still only a best-effort subscriber's problem.
    }
  }

  private add(list: Subscriber[], subscriber: Subscriber): () => void {
    list.push(subscriber);
    return () => {
      const at = list.indexOf(subscriber);
      if (at >= 0) list.splice(at, 1);
    };
  }
}
