import { parseDuration } from '../../core/duration.js';
import { UsageError } from '../../core/errors.js';
import { drillCompromise, type DrillReport } from '../../engine/drill.js';
import { openKey } from '../../engine/key-context.js';
import { confirmDestructive } from '../confirm.js';
import { observeRun } from '../../observe/observer.js';
import { withSession, type GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';
import { formatDuration } from '../../core/duration.js';
import { printJson } from '../render/format.js';

export async function drillCommand(options: { scenario: string; key: string; rto: string }, globals: GlobalOptions, io: Io): Promise<number> {
  if (options.scenario !== 'compromise') throw new UsageError(`drill: unknown scenario "${options.scenario}" (known: compromise)`, 'usage.drill');
  const rtoMs = parseDuration(options.rto, '--rto');
  return withSession(globals, io, async (session) => {
    const ctx = await openKey(session, options.key);
    if (!globals.dryRun) {
      await confirmDestructive(
        io,
        globals.yes,
        `Run a REAL compromise drill on ${options.key}? Its current version will be revoked with no overlap.`,
        `drill: refusing to run a real compromise drill on ${options.key}`,
      );
    }
    const observer = await observeRun(session, globals, io, 'drill');
    const report = await drillCompromise(ctx, { rtoMs, dryRun: globals.dryRun });
    renderDrill(io, report);
    await observer.finish({ exitCode: report.exitCode });
    return report.exitCode;
  });
}

function renderDrill(io: Io, report: DrillReport): void {
  if (io.json) {
    printJson(io.out, report);
    return;
  }
  const { color } = io;
  io.out(color.bold(`Compromise drill: ${report.key}${report.dryRun ? ' (dry run)' : ''}`));
  io.out(`  leaked version   ${report.leakedFingerprint}`);
  if (report.plan) {
    report.plan.forEach((line, i) => io.out(`  ${i + 1}. ${line}`));
    return;
  }
  if (report.newFingerprint) io.out(`  new version      ${report.newFingerprint}`);
  io.out('');
  for (const s of report.steps) {
    io.out(`  ${s.ok ? color.green('✔') : color.red('✘')} ${s.step.padEnd(24)} ${formatDuration(s.ms).padStart(8)}   ${color.dim(`t+${formatDuration(s.endedAtMs ?? 0)}`)}${s.detail ? color.dim(`  ${s.detail}`) : ''}`);
  }
  io.out('');
  const fmt = (ms: number | undefined) => (ms === undefined ? color.red('not reached') : formatDuration(ms));
  io.out(`  time to contain  ${fmt(report.timeToContainMs)}   (${report.containmentProven === false ? 'leaked version retired; rejection not probed: lockout guard' : 'leaked version proven rejected'})`);
  io.out(`  time to recover  ${fmt(report.timeToRecoverMs)}   (new version proven accepted)`);
  io.out(`  objective (RTO)  ${formatDuration(report.rtoMs)}   ${report.withinRto ? color.green('met') : color.red('MISSED')}`);
  io.out('');
  (report.ok ? io.out : io.err)(report.ok ? color.green(`✔ ${report.message}`) : color.red(`✘ ${report.message}`));
}
