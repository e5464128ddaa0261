import type { ApplyResult } from '../../target.js';
import type { TokenApplier } from './applier.js';

const READS_THE_STORE: ApplyResult = { ok: true, detail: 'the app reads the store' };

/**
 * The app accepts every enabled version labelled current, pending or previous, straight from
 * the store. Nothing to do at the target: the engine changes labels and disables versions,
 * then waits for propagation by re-testing.
 */
export function createStoreApplier(): TokenApplier {
  return {
    set: async () => READS_THE_STORE,
    retire: async () => READS_THE_STORE,
    rollback: async () => READS_THE_STORE,
  };
}
