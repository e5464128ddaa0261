import { UsageError } from '../../core/errors.js';
import { batchExitCode, forEachKey } from '../../engine/batch.js';
import { graceEnded, inShard, parseJitter, parseShard } from '../../core/schedule.js';
import { runDue, waitJitter } from '../../engine/due.js';
import { rotateKey } from '../../engine/rotate.js';
import { keyStatuses } from '../../engine/status.js';
import { observeRun } from '../../observe/observer.js';
import { selectKeys, withSession, type GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';
import { printJson } from '../render/format.js';
import { renderResults } from '../render/results.js';

export interface RotateOptions {
  keys: string[];
  all: boolean;
  due: boolean;
  /** --jitter DURATION: a random start delay up to this long (--due only). */
  jitter?: string;
  /** --shard I/N: only this slice of the selected keys. */
  shard?: string;
}

export async function rotateCommand(options: RotateOptions, globals: GlobalOptions, io: Io): Promise<number> {
  if (options.keys.length === 0 && !options.all && !options.due) {
    throw new UsageError('rotate: name one or more keys, or pass --all or --due', 'usage.rotate');
  }
  if (options.keys.length > 0 && options.all) throw new UsageError('rotate: --all cannot be combined with key names', 'usage.rotate');
  const shard = options.shard === undefined ? undefined : parseShard(options.shard);
  const jitterMs = options.jitter === undefined ? 0 : parseJitter(options.jitter);
  if (options.jitter !== undefined && !options.due) throw new UsageError('--jitter: only with --due (a scheduled run); a rotation asked for by name starts at once', 'usage.jitter');
  return withSession(globals, io, async (session) => {
    const names = selectKeys(session.config, options.keys).filter((name) => inShard(name, shard));
    if (globals.dryRun) {
      const statuses = await keyStatuses(session, names);
      const now = new Date();
      const plan = statuses.map((s) => ({
        key: s.name,
        wouldRotate: !options.due || s.due,
        // --due also ends grace periods: those previous versions would be revoked.
        wouldRevoke: options.due ? s.previous.filter((p) => graceEnded(p.graceUntil, now)).map((p) => p.fingerprint) : [],
        current: s.current?.fingerprint ?? null,
        nextRotationAt: s.nextRotationAt,
        // The consumers a rotation would switch too (docs/consumers.md).
        consumers: (s.consumers ?? []).map((c) => c.name),
      }));
      if (io.json) printJson(io.out, { dryRun: true, plan });
      else {
        for (const p of plan) {
          const revoke = p.wouldRevoke.length ? io.color.yellow(`  would revoke ${p.wouldRevoke.join(', ')} (grace ended)`) : '';
          const consumers = p.wouldRotate && p.consumers.length ? `  and switch ${p.consumers.join(', ')}` : '';
          io.out(`${p.wouldRotate ? io.color.yellow('would rotate') : io.color.dim('not due     ')}  ${p.key}  ${p.current ?? '-'}  next: ${p.nextRotationAt ?? '-'}${consumers}${revoke}`);
        }
      }
      return 0;
    }
    const observer = await observeRun(session, globals, io, 'rotate');
    // A dry run plans at once; a real --due run spreads the fleet's start before it claims anything.
    await waitJitter(jitterMs, io.debug);
    const results = await forEachKey(session, names, 'rotate', (ctx) => (options.due ? runDue(ctx) : rotateKey(ctx)));
    const exitCode = batchExitCode(results);
    renderResults(io, results, exitCode);
    await observer.finish({ exitCode });
    return exitCode;
  });
}
