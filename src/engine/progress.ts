/**
 * Progress events from the engine. The CLI turns them into a progress bar on a TTY;
 * --json and non-TTY runs ignore them. Events carry fingerprints only.
 */
export type ProgressEvent =
  | { type: 'batch-start'; total: number; operation: string }
  | { type: 'key-start'; key: string }
  | { type: 'step'; key: string; step: string; detail?: string }
  | { type: 'key-done'; key: string; outcome: string }
  | { type: 'batch-done' };

export type ProgressSink = (event: ProgressEvent) => void;

export const silentProgress: ProgressSink = () => {};
