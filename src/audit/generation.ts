/**
 * Replay detection between a store and the audit log.
 *
 * Every write to the embedded store bumps the store's generation (kept inside the encrypted,
 * authenticated document), and BEFORE the new bytes are committed the log gets a keyed
 * `store.write` line announcing that generation. Every later line carries the announced
 * generation of each store forward, so the log's last line alone says where every store must be.
 *
 * A store at generation S against a log that announced A (for that store) is consistent when
 * A - 1 <= S <= A: S = A - 1 is a write that was announced and then never committed (a crash,
 * or a writer still at work). Anything else is refused:
 *   S < A - 1  an older copy of the store was put back (or the store was deleted: S = 0);
 *   S > A      lines were cut from the end of the log, or the log was replaced or deleted.
 *
 * The same rule is used when a command opens the store and by `audit verify`; a future store
 * (issue 8's embedded database) keeps it by bumping one generation per transaction.
 */

/** What a store tells the journal it writes to; the file store gets one from the session. */
export interface StoreJournal {
  /** The generation the log has announced for `store` (0: none yet), after the log's own tail checks. */
  announced(store: string): Promise<number>;
  /**
   * Announces that `store` is about to commit `generation`; throws if the log cannot record it.
   * `more`: whether the store already has its next write waiting (the log then keeps its lock
   * for that write's announcement, instead of letting go and taking it again at once).
   */
  announce(store: string, generation: number, file: string, more?: () => boolean): Promise<void>;
  /** The log file, for messages. */
  readonly file: string;
}

export interface StoreGeneration {
  store: string;
  file: string;
  /** 0 for a store written before generations (or never written). */
  generation: number;
  exists: boolean;
}

/** The problem with a store/log pair, or undefined when they agree. One line, no secret. */
export function generationProblem(state: StoreGeneration, announced: number, logFile: string): string | undefined {
  const problem = describeProblem(state, announced, logFile);
  return problem && `${problem} (if you restored it on purpose: provkey audit accept-store ${state.store})`;
}

function describeProblem(state: StoreGeneration, announced: number, logFile: string): string | undefined {
  const { store, file, generation, exists } = state;
  if (generation >= announced - 1 && generation <= announced) return undefined;
  if (generation > announced) {
    return announced === 0
      ? `store "${store}" (${file}) is at generation ${generation} but the audit log ${logFile} has no record of its writes: the log was deleted, replaced or cut short`
      : `store "${store}" (${file}) is at generation ${generation} but the audit log ${logFile} announces only ${announced}: lines are missing from the end of the log (cut short or replaced)`;
  }
  if (!exists) {
    return `store "${store}" (${file}) is missing, but the audit log ${logFile} records its writes up to generation ${announced}: the store was deleted or moved; restore it (a new, empty store would hide what it held)`;
  }
  return `store "${store}" (${file}) is at generation ${generation} but the audit log ${logFile} records generation ${announced}: an older copy of the store was put back (rollback); restore the newest store file or investigate`;
}
