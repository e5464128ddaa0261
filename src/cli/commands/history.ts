import { keyHistory } from '../../engine/status.js';
import { withSession, type GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';
import { ago, printJson } from '../render/format.js';

export async function historyCommand(options: { key: string }, globals: GlobalOptions, io: Io): Promise<number> {
  return withSession(globals, io, async (session) => {
    const history = await keyHistory(session, options.key);
    if (io.json) {
      printJson(io.out, history);
      return 0;
    }
    const { color } = io;
    io.out(color.bold(`${history.key}: versions`));
    if (history.versions.length === 0) io.out('  (none)');
    for (const v of [...history.versions].reverse()) {
      const label = v.label === 'current' ? color.green(v.label) : v.label === 'revoked' || v.label === 'failed' ? color.red(v.label) : color.yellow(v.label);
      const grace = v.label === 'previous' && v.graceUntil ? color.dim(` accepted until ${v.graceUntil}`) : '';
      io.out(`  ${v.id.padStart(4)}  ${v.fingerprint}  ${label.padEnd(18)} created ${ago(v.createdAt)}  ${color.dim(v.origin)}${v.account ? color.dim(` ${v.account}`) : ''}${grace}`);
    }
    io.out(color.bold(`${history.key}: events`));
    if (history.events.length === 0) io.out('  (none)');
    for (const e of history.events) {
      const outcome = e.outcome ? (e.outcome === 'ok' || e.outcome === 'resumed' ? color.green(e.outcome) : color.red(e.outcome)) : '';
      io.out(`  ${e.at}  ${e.event.padEnd(20)} ${outcome.padEnd(12)} ${e.fingerprint ?? ''}  ${color.dim(`${e.actor.user}@${e.actor.host}`)}`);
    }
    return 0;
  }, { writesState: false });
}
