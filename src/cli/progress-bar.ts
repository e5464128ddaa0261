import type { EngineEvent } from '../engine/events.js';
import type { Subscriber } from '../engine/events-bus.js';
import type { Io } from './io.js';

/**
 * A best-effort subscriber of the engine's event stream: a progress bar for runs over several
 * keys on a TTY (cli-progress, loaded only then); with --verbose each protocol step is also
 * logged. Nothing on non-TTY or --json runs. Whatever it throws, the bus catches.
 */
export async function createProgress(io: Io): Promise<{ subscriber: Subscriber; stop(): void }> {
  const debugSteps = (event: EngineEvent) => {
    if (event.type === 'step-start') io.debug(`${event.key}: ${event.step}${event.detail ? ` (${event.detail})` : ''}`);
  };
  if (!io.isTTY || io.json || !process.stderr.isTTY) return { subscriber: debugSteps, stop: () => {} };
  const { SingleBar, Presets } = (await import('cli-progress')).default;
  let bar: InstanceType<typeof SingleBar> | undefined;
  let done = 0;
  return {
    subscriber: (event) => {
      debugSteps(event);
      if (event.type === 'run-start' && event.total > 1) {
        bar = new SingleBar({ format: ` ${event.operation} {bar} {value}/{total} keys  {key}`, stream: process.stderr, hideCursor: true, clearOnComplete: true }, Presets.shades_classic);
        bar.start(event.total, 0, { key: '' });
      } else if (event.type === 'key-start') bar?.update(done, { key: event.key });
      else if (event.type === 'key-done') bar?.update(++done, { key: event.key });
      else if (event.type === 'run-done') bar?.stop();
    },
    stop: () => bar?.stop(),
  };
}
