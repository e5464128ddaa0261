import { ConfigError, ExitCode, mostSerious } from '../../core/errors.js';
import { formatDuration } from '../../core/duration.js';
import { migrateKeys, type MigrationResult } from '../../engine/migrate.js';
import { confirmDestructive } from '../confirm.js';
import { selectKeys, withSession, type GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';
import { printJson } from '../render/format.js';

export async function migrateCommand(options: { keys: string[]; to: string }, globals: GlobalOptions, io: Io): Promise<number> {
  return withSession(globals, io, async (session) => {
    const names = selectKeys(session.config, options.keys);
    if (!session.config.stores[options.to]) {
      const known = Object.keys(session.config.stores).sort().join(', ');
      throw new ConfigError(`--to: no store named "${options.to}" under stores (known: ${known})`, 'config.unknown_store');
    }
    if (!globals.dryRun) {
      const moving = names.map((n) => `${n} (from "${session.key(n).storeName}")`).join(', ');
      await confirmDestructive(
        io,
        globals.yes,
        `Move ${moving} to store "${options.to}"? Each key is copied and verified, provkey.yaml is updated, then the key is deleted from its old store.`,
        `migrate: refusing to move ${names.join(', ')} to store "${options.to}"`,
      );
    }
    const results = await migrateKeys(session, names, { to: options.to, dryRun: globals.dryRun });
    const exitCode = results.reduce<ExitCode>((worst, r) => mostSerious(worst, r.exitCode as ExitCode), ExitCode.ok);
    renderMigration(io, results, exitCode, globals.dryRun);
    return exitCode;
  });
}

function renderMigration(io: Io, results: MigrationResult[], exitCode: number, dryRun: boolean): void {
  if (io.json) {
    printJson(io.out, { ok: exitCode === 0, exitCode, dryRun, results });
    return;
  }
  const { color } = io;
  for (const r of results) {
    const mark = r.ok ? color.green('✔') : r.exitCode === ExitCode.needsHuman ? color.bgRed.white(' ! ') : color.red('✘');
    (r.ok ? io.out : io.err)(`${mark} ${color.bold(r.key)}  ${color.dim(`${r.from} → ${r.to}`)}  ${color.dim(r.outcome)}  ${r.message}`);
    for (const v of r.versions) {
      const ids = v.toId ? `${v.fromId} → ${v.toId}` : v.fromId;
      const what = v.copy === 'value' ? 'value + metadata' : color.yellow('metadata only (value revoked or gone)');
      io.out(`    ${ids.padEnd(10)} ${v.fingerprint}  ${v.label.padEnd(9)} ${what}`);
    }
    if (!dryRun && (io.verbose || !r.ok)) {
      for (const step of r.steps) {
        io.out(`    ${step.ok ? color.green('✔') : color.red('✘')} ${step.step.padEnd(22)} ${color.dim(formatDuration(step.ms).padStart(7))}${step.detail ? color.dim(`  ${step.detail}`) : ''}`);
      }
    }
  }
}
