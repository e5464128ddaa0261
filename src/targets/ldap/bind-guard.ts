/**
 * Keeps provkey's own failed binds away from pwdMaxFailure while it waits for a change to
 * reach every server. A syncrepl consumer with the ppolicy overlay counts failed binds
 * locally, so polling a lagging replica with the new password could lock the account there.
 * Per server it allows a failed bind with the same password at most once a second, and at
 * most `budget` failed binds in a row (a successful bind resets the count, as it resets
 * pwdFailureTime in the directory).
 */
export class FailedBindGuard {
  readonly #budget: () => number;
  readonly #minIntervalMs: number;
  readonly #servers = new Map<number, { streak: number; lastFailure: Map<string, number> }>();

  constructor(budget: () => number, minIntervalMs = 1000) {
    this.#budget = budget;
    this.#minIntervalMs = minIntervalMs;
  }

  /**
   * May provkey try this password on this server now? With `changeArrived` (a replica just
   * proved it has the change by refusing the previous password, which is one of the failures
   * in the streak) the streak does not hold back the one bind with the new password that ends
   * the wait: without it, a low pwdMaxFailure would leave no bind at all. Pacing still applies.
   * (This is the fallback; replication.ts tells arrival without any failed bind.)
   */
  check(server: number, fingerprint: string, now = Date.now(), options: { changeArrived?: boolean } = {}): { ok: true } | { ok: false; reason: string } {
    const state = this.#servers.get(server);
    if (!state) return { ok: true };
    const budget = this.#budget();
    // The arrival's failure may take the streak to the budget, never past it.
    if (state.streak >= budget && !(options.changeArrived && state.streak <= budget)) {
      return {
        ok: false,
        reason: `not tried: ${state.streak} failed bind(s) in a row on this server already; provkey stops at ${budget} to stay clear of pwdMaxFailure`,
      };
    }
    const last = state.lastFailure.get(fingerprint);
    if (last !== undefined && now - last < this.#minIntervalMs) {
      return { ok: false, reason: `not tried: this password was rejected here ${now - last} ms ago; provkey retries a rejected password at most once a second per server` };
    }
    return { ok: true };
  }

  failed(server: number, fingerprint: string, now = Date.now()): void {
    const state = this.#servers.get(server) ?? { streak: 0, lastFailure: new Map<string, number>() };
    state.streak += 1;
    state.lastFailure.set(fingerprint, now);
    this.#servers.set(server, state);
  }

  succeeded(server: number): void {
    this.#servers.delete(server);
  }

  /** Failed binds in a row on a server (for tests and messages). */
  streak(server: number): number {
    return this.#servers.get(server)?.streak ?? 0;
  }
}
