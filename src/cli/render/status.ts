import type { KeyStatus } from '../../engine/status.js';
import type { Io } from '../io.js';
import { formatDuration } from '../../core/duration.js';
import { ago, printJson } from './format.js';

/** `status --json` is a stable machine contract: {"keys":[{name, store, target, current, nextRotationAt, lastTest, ...}]}. */
export async function renderStatus(io: Io, keys: KeyStatus[]): Promise<void> {
  if (io.json) {
    printJson(io.out, { keys });
    return;
  }
  if (keys.length === 0) {
    io.out('No keys in the config yet. Add one with "provkey init" or edit provkey.yaml, then "provkey add KEY".');
    return;
  }
  const { color } = io;
  const Table = (await import('cli-table3')).default;
  const table = new Table({
    head: ['key', 'store', 'target', 'current', 'age', 'next rotation', 'last test', 'state'],
    style: { head: io.isTTY && color.level > 0 ? ['cyan'] : [], border: io.isTTY && color.level > 0 ? ['grey'] : [] },
    ...(io.isTTY ? {} : { chars: { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ' } }),
  });
  for (const k of keys) {
    const state =
      k.state === 'ok' ? (k.due ? color.yellow('due') : color.green('ok')) : ['lockout', 'attention', 'error'].includes(k.state) ? color.red(k.state) : color.yellow(k.state);
    const lastTest = k.lastTest ? `${k.lastTest.ok ? color.green('pass') : color.red('FAIL')} ${ago(k.lastTest.at)}` : '-';
    table.push([
      k.name,
      k.store,
      k.target,
      k.current?.fingerprint ?? '-',
      k.ageMs !== null ? formatDuration(k.ageMs) : '-',
      k.nextRotationAt ? (k.due ? color.yellow(`due (${ago(k.nextRotationAt)})`) : ago(k.nextRotationAt)) : '-',
      lastTest,
      state,
    ]);
  }
  io.out(table.toString());
  // Each consumer's last proof under its key (docs/consumers.md).
  for (const k of keys) {
    for (const c of k.consumers ?? []) {
      const proof = c.lastProof ? `${c.lastProof.ok ? color.green('pass') : color.red('FAIL')} ${ago(c.lastProof.at)} with ${c.lastProof.fingerprint}${c.lastProof.detail ? `: ${c.lastProof.detail}` : ''}` : 'no proof yet';
      io.out(`  ${k.name} → ${c.name} (${c.type}): ${proof}`);
    }
  }
  // Long messages go under the table, not into it.
  for (const k of keys) if (k.problem || k.error) io.err(`${color.red(`${k.name}: ${k.state}`)}  ${k.problem ?? k.error}`);
  for (const k of keys) for (const warning of k.warnings) io.err(`${color.yellow(`${k.name}: warning`)}  ${warning}`);
}
