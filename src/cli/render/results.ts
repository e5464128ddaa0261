import type { KeyResult } from '../../engine/result.js';
import type { ConnectionTest } from '../../targets/target.js';
import type { Io } from '../io.js';
import { formatDuration } from '../../core/duration.js';
import { printJson } from './format.js';

const ICON: Record<string, string> = { pass: '✔', fail: '✘', unsupported: '–', skipped: '·' };

export function renderTest(io: Io, test: ConnectionTest, indent = '    ', print: (line: string) => void = io.out): void {
  const { color } = io;
  for (const probe of test.probes) {
    const icon = probe.outcome === 'pass' ? color.green(ICON.pass) : probe.outcome === 'fail' ? color.red(ICON.fail) : color.yellow(ICON[probe.outcome] ?? '?');
    const status = probe.status !== undefined ? ` ${probe.status}` : '';
    const detail = probe.detail ? color.dim(`  ${probe.detail}`) : '';
    print(`${indent}${icon} ${probe.name.padEnd(26)}${status.padEnd(6)} ${color.dim(formatDuration(probe.ms).padStart(7))}${detail}`);
  }
}

/** Human output of one or more key operations; --json prints {ok, exitCode, results}. */
export function renderResults(io: Io, results: KeyResult[], exitCode: number): void {
  if (io.json) {
    printJson(io.out, { ok: exitCode === 0, exitCode, results });
    return;
  }
  const { color } = io;
  for (const r of results) {
    // A failed key's whole block goes to stderr, so a cron log keeps it together.
    const print = r.ok ? io.out : io.err;
    const mark = r.ok ? color.green('✔') : r.exitCode === 3 ? color.bgRed.white(' ! ') : color.red('✘');
    print(`${mark} ${color.bold(r.key)}  ${color.dim(r.outcome)}  ${r.message}`);
    if (io.verbose || !r.ok || r.operation === 'test' || results.length === 1) {
      for (const step of r.steps) {
        print(`    ${step.ok ? color.green('✔') : color.red('✘')} ${step.step.padEnd(16)} ${color.dim(formatDuration(step.ms).padStart(7))}${step.detail ? color.dim(`  ${step.detail}`) : ''}`);
      }
      const last = r.tests.at(-1);
      if (last && (r.operation === 'test' || !last.ok || io.verbose)) renderTest(io, last, '    ', print);
    }
  }
  if (results.length > 1) {
    const counts = new Map<string, number>();
    for (const r of results) counts.set(r.outcome, (counts.get(r.outcome) ?? 0) + 1);
    io.out(color.dim([...counts].map(([k, v]) => `${v} ${k}`).join(', ')));
  }
}
