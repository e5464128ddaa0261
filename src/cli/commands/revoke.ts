import { UsageError } from '../../core/errors.js';
import { runOneKey } from '../../engine/batch.js';
import { openKey } from '../../engine/key-context.js';
import { revokeKey, selectVersions, type RevokeSelection } from '../../engine/revoke.js';
import { confirmDestructive } from '../confirm.js';
import { observeRun } from '../../observe/observer.js';
import { withSession, type GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';
import { printJson } from '../render/format.js';
import { renderResults } from '../render/results.js';

export async function revokeCommand(
  options: { key: string; fingerprint?: string; previous: boolean; current: boolean },
  globals: GlobalOptions,
  io: Io,
): Promise<number> {
  const chosen = [options.fingerprint !== undefined, options.previous, options.current].filter(Boolean).length;
  if (chosen > 1) throw new UsageError('revoke: use only one of --fingerprint, --previous, --current', 'usage.revoke');
  const selection: RevokeSelection =
    options.fingerprint !== undefined ? { version: options.fingerprint } : { which: options.previous ? 'previous' : options.current ? 'current' : 'all' };
  return withSession(globals, io, async (session) => {
    const ctx = await openKey(session, options.key);
    const record = await ctx.store.read(options.key);
    if (!record) throw new UsageError(`key ${options.key} has no versions`, 'key.empty');
    const versions = selectVersions(record.versions, selection);
    const list = versions.map((v) => `${v.fingerprint} (${v.label})`).join(', ') || 'nothing';
    if (globals.dryRun) {
      if (io.json) printJson(io.out, { dryRun: true, wouldRevoke: versions.map((v) => ({ fingerprint: v.fingerprint, label: v.label, id: v.id })) });
      else io.out(`would revoke ${list}`);
      return 0;
    }
    const stopsWorking = versions.some((v) => v.label === 'current');
    await confirmDestructive(
      io,
      globals.yes,
      `Revoke ${list} of ${options.key}?${stopsWorking ? ' The integration stops working until a new version is added.' : ''}`,
      `revoke: refusing to revoke ${list} of ${options.key}`,
    );
    const observer = await observeRun(session, globals, io, 'revoke');
    const result = await runOneKey(session, options.key, 'revoke', () => revokeKey(ctx, selection));
    renderResults(io, [result], result.exitCode);
    await observer.finish({ exitCode: result.exitCode });
    return result.exitCode;
  });
}
