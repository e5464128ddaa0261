import { stripVTControlCharacters } from 'node:util';
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
  const head = ['key', 'store', 'target', 'current', 'age', 'next rotation', 'last test', 'state'];
  const rows = keys.map((k) => {
    const state =
      k.state === 'ok' ? (k.due ? color.yellow('due') : color.green('ok')) : ['lockout', 'attention', 'error'].includes(k.state) ? color.red(k.state) : color.yellow(k.state);
    const lastTest = k.lastTest ? `${k.lastTest.ok ? color.green('pass') : color.red('FAIL')} ${ago(k.lastTest.at)}` : '-';
    return [
      k.name,
      k.store,
      k.target,
      k.current?.fingerprint ?? '-',
      k.ageMs !== null ? formatDuration(k.ageMs) : '-',
      k.nextRotationAt ? (k.due ? color.yellow(`due (${ago(k.nextRotationAt)})`) : ago(k.nextRotationAt)) : '-',
      lastTest,
      state,
    ];
  });
  io.out(io.isTTY ? await boxedTable(head, rows, color.level > 0) : plainColumns([head, ...rows]));
  // A two-account (blue/green) LDAP key: which account the current password is for (docs/ldap.md).
  for (const k of keys) if (k.current?.account) io.out(`  ${k.name}: current account ${k.current.account}`);
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

/** A terminal gets a drawn table; the table library is loaded only then. */
async function boxedTable(head: string[], rows: string[][], colour: boolean): Promise<string> {
  const Table = (await import('cli-table3')).default;
  const table = new Table({ head, style: { head: colour ? ['cyan'] : [], border: colour ? ['grey'] : [] } });
  table.push(...rows);
  return table.toString();
}

/**
 * A pipe or a log gets plain aligned columns (one line per key, two spaces between columns),
 * the same text the table library printed without borders, without loading it.
 */
export function plainColumns(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => visibleWidth(row[column] ?? ''))));
  return rows.map((row) => row.map((cell, column) => ` ${cell}${' '.repeat(widths[column]! - visibleWidth(cell))} `).join('  ')).join('\n');
}

/** Key names and fingerprints are ASCII; colour codes (FORCE_COLOR into a pipe) take no room. */
function visibleWidth(text: string): number {
  return stripVTControlCharacters(text).length;
}
