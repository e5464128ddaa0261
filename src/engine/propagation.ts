import type { ConnectionTest, SecretInUse, Target } from '../targets/target.js';

/**
 * Re-runs a connection test until it gives the expected verdict or the target's propagation
 * timeout runs out: a new credential takes time to reach every app instance or replica.
 * A test whose negative probe costs a failed bind (LDAP) is run once only, never in a loop.
 */
export async function waitForVerdict(
  target: Target,
  secret: SecretInUse,
  expect: 'accept' | 'reject',
  options: { timeoutMs?: number; write?: boolean; onAttempt?: (attempt: number, test: ConnectionTest) => void } = {},
): Promise<{ test: ConnectionTest; attempts: number; ms: number }> {
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? target.capabilities.propagationTimeoutMs;
  const once = expect === 'reject' && target.capabilities.negativeProbe === 'costly';
  let delay = 200;
  for (let attempt = 1; ; attempt++) {
    const test = await target.test(secret, { expect, write: options.write ?? false });
    options.onAttempt?.(attempt, test);
    const elapsed = Date.now() - started;
    const left = timeoutMs - elapsed;
    if (test.ok || once || left <= 0) return { test, attempts: attempt, ms: elapsed };
    // Never give up early: the last attempt lands at the deadline itself.
    await new Promise((resolve) => setTimeout(resolve, Math.min(delay, left)));
    delay = Math.min(delay * 2, 5000);
  }
}
