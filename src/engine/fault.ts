/**
 * Fault injection for the crash tests (test/fault): when PROVKEY_FAULT names a point, the
 * process kills itself there with SIGKILL, exactly as a crashed cron host would stop. Not a
 * feature: it exists so that "resumable at any step" is proven, not assumed.
 */
export type FaultPoint =
  | 'after-claim'
  | 'after-create'
  | 'before-set'
  | 'after-set'
  | 'after-test'
  | 'after-finish'
  /** The target has been told to reject a version; the store has not disabled it yet. */
  | 'after-retire'
  /** The target has been rolled back; the store still shows the pending version. */
  | 'after-rollback';

export function faultPoint(point: FaultPoint): void {
  if (process.env.PROVKEY_FAULT === point) process.kill(process.pid, 'SIGKILL');
}
