import { formatDuration } from '../../core/duration.js';
import { UsageError } from '../../core/errors.js';
import { scanPaths, type Finding, type ScanReport } from '../../scan/scan.js';
import { withSession, type GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';
import { printJson } from '../render/format.js';

export interface ScanCommandOptions {
  paths: string[];
  git: boolean;
  prefix: string[];
  maxFileSize: string;
}

export async function scanCommand(options: ScanCommandOptions, globals: GlobalOptions, io: Io): Promise<number> {
  const maxFileBytes = parseSize(options.maxFileSize, '--max-file-size');
  const started = Date.now();
  return withSession(
    globals,
    io,
    async (session) => {
      const report = await scanPaths(session, session.config, { paths: options.paths, git: options.git, prefixes: options.prefix, maxFileBytes }, process.cwd());
      renderScan(io, report, globals, Date.now() - started);
      return report.exitCode;
    },
    { mustExist: false },
  );
}

/** The command that contains a live finding: the compromise drill for a current version, a revoke for an older one. */
export function containCommand(finding: Finding, globals: GlobalOptions): string | undefined {
  // A key the config no longer names cannot be drilled by name: the output says so instead.
  if (!finding.live || finding.key === null || !finding.inConfig) return undefined;
  const config = globals.config !== undefined ? ` --config ${shellQuote(globals.config)}` : '';
  return finding.label === 'previous'
    ? `provkey${config} revoke ${finding.key} --fingerprint ${finding.fingerprint}`
    : `provkey${config} drill compromise ${finding.key}`;
}

function renderScan(io: Io, report: ScanReport, globals: GlobalOptions, ms: number): void {
  if (io.json) {
    printJson(io.out, {
      ok: report.exitCode === 0,
      exitCode: report.exitCode,
      scanned: report.scanned,
      prefixes: report.prefixes,
      findings: report.findings.map((f) => ({ ...f, contain: containCommand(f, globals) ?? null })),
      skipped: report.skipped,
      storeProblems: report.storeProblems,
    });
    return;
  }
  const { color } = io;
  for (const f of report.findings) {
    const where = `${f.commit ? `${f.commit.slice(0, 12)}:` : ''}${f.path}:${f.line}:${f.column}`;
    const what =
      f.key === null
        ? color.dim('unknown (not a version of any key in the configured stores)')
        : `${f.key} ${f.label} (version ${f.versionId})${f.inConfig ? '' : color.yellow(` in store "${f.store}", but not in the config: add it back to contain it`)}`;
    const mark = f.live ? color.bgRed.white(' LIVE ') : f.key === null ? color.yellow(' ???  ') : color.dim(' dead ');
    io.out(`${mark} ${where}  ${f.fingerprint}  ${what}`);
    const contain = containCommand(f, globals);
    if (contain) io.out(`       contain it: ${color.bold(contain)}`);
  }
  for (const p of report.storeProblems) io.err(`${color.yellow('provkey: warning:')} key ${p.key}: store "${p.store}" could not be read, its tokens show as unknown: ${p.message}`);
  for (const s of report.skipped.filter((s) => s.reason === 'unreadable')) io.err(`${color.yellow('provkey: warning:')} ${s.path}: unreadable (${s.detail ?? 'error'}), not scanned`);
  if (io.verbose) for (const s of report.skipped) io.err(color.dim(`skipped ${s.path}: ${s.reason}${s.detail ? ` (${s.detail})` : ''}`));
  const byReason = new Map<string, number>();
  for (const s of report.skipped) byReason.set(s.reason, (byReason.get(s.reason) ?? 0) + 1);
  const skipped = byReason.size ? `; skipped ${[...byReason].map(([r, n]) => `${n} ${r.replace('_', ' ')}`).join(', ')}` : '';
  const what = report.scanned.commits > 0 ? `${report.scanned.commits} commit(s)` : `${report.scanned.files} file(s)`;
  const live = report.findings.filter((f) => f.live).length;
  const verdict =
    report.findings.length === 0
      ? color.green('no provkey token found')
      : live > 0
        ? color.red(`${live} LIVE token(s) found: contain them now`)
        : report.storeProblems.length > 0
          ? color.red(`${report.findings.length} token(s) found that could not all be identified: a store was unreadable`)
          : color.yellow(`${report.findings.length} token(s) found, none live`);
  io.out(`${verdict}  ${color.dim(`(${what}, ${formatBytes(report.scanned.bytes)} in ${formatDuration(ms)}, prefixes ${report.prefixes.join(', ')}${skipped})`)}`);
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** "1048576", "512k", "10m", "1g" (binary units). */
export function parseSize(text: string, flag: string): number {
  const match = /^(\d+)([kmg]?)i?b?$/i.exec(text.trim());
  if (!match || Number(match[1]) <= 0) throw new UsageError(`${flag}: "${text}" is not a size (use e.g. 10m, 512k, 1048576)`, 'input.size');
  return Number(match[1]) * SIZE_UNITS[match[2]!.toLowerCase()]!;
}

function shellQuote(value: string): string {
  return /^[A-Za-z0-9_./:=@-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}
