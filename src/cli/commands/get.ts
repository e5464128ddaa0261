import { UsageError } from '../../core/errors.js';
import { readExisting } from '../../engine/key-context.js';
import { withSession, type GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';
import { printJson, withSchemaVersion } from '../render/format.js';

/** `get KEY`: the current fingerprint; only with --reveal the value itself (and that is audited). */
export async function getCommand(options: { key: string; reveal: boolean }, globals: GlobalOptions, io: Io): Promise<number> {
  return withSession(globals, io, async (session) => {
    const key = session.key(options.key);
    const store = await session.storeFor(key);
    // Reads the store only: `get` never opens the key's target.
    const { current } = await readExisting({ key, store });
    // Two-account keys: the value is the password of this account (not a secret).
    const account = current.account ? { account: current.account } : {};
    if (!options.reveal) {
      if (io.json) printJson(io.out, { key: options.key, fingerprint: current.fingerprint, versionId: current.id, createdAt: current.createdAt, ...account });
      else io.out(`${current.fingerprint}${current.account ? `  account ${current.account}` : ''}  (pass --reveal to print the value)`);
      return 0;
    }
    if (globals.dryRun) throw new UsageError('get --reveal: nothing to plan in a dry run', 'usage.get');
    const value = await store.readSecret(options.key, current.id);
    await session.emit({ type: 'audit', event: 'key.revealed', key: options.key, outcome: 'ok', fingerprint: current.fingerprint, versionId: current.id });
    if (io.json) io.reveal(JSON.stringify(withSchemaVersion({ key: options.key, fingerprint: current.fingerprint, ...account, value })));
    else io.reveal(value);
    return 0;
  });
}
