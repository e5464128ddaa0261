import { realpath } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/load.js';
import { ExitCode, UsageError, mostSerious } from '../core/errors.js';
import { fingerprint } from '../core/fingerprint.js';
import { registerSecret } from '../core/redact.js';
import type { Session } from '../engine/session.js';
import { TokenFinder, type TokenHit } from './find-tokens.js';
import { scanGitHistory } from './git-history.js';
import { EMPTY_INDEX, indexFingerprints, prefixesOf, type Identity, type StoreProblem } from './match.js';
import { ScanReader } from './read-file.js';
import { walkFiles, type SkippedPath } from './walk.js';

export interface ScanOptions {
  paths: string[];
  /** Scan the history of each path (a git repository) instead of its files. */
  git: boolean;
  /** Extra prefixes besides the configured keys'. */
  prefixes: string[];
  /** Files (and diff lines) larger than this are skipped and reported. */
  maxFileBytes: number;
}

/** One leaked token: where, which key and version it is. Never the value. */
export interface Finding {
  path: string;
  line: number;
  column: number;
  commit?: string;
  prefix: string;
  fingerprint: string;
  key: string | null;
  /** The store holding the key (null for unknown tokens). */
  store: string | null;
  /** False for a key its store still holds but the config no longer names. */
  inConfig: boolean;
  versionId: string | null;
  label: Identity['label'];
  live: boolean;
}

export interface ScanReport {
  findings: Finding[];
  skipped: SkippedPath[];
  scanned: { files: number; bytes: number; commits: number };
  prefixes: string[];
  /** Stores that could not be read: findings of their keys may be marked unknown wrongly. */
  storeProblems: StoreProblem[];
  exitCode: ExitCode;
}

type RawHit = TokenHit & { path: string; commit?: string };

export async function scanPaths(session: Session, config: Config, options: ScanOptions, cwd: string): Promise<ScanReport> {
  if (options.paths.length === 0) throw new UsageError('scan: name one or more files or directories', 'usage.scan');
  for (const prefix of options.prefixes) {
    if (!/^[A-Za-z][A-Za-z0-9]{0,15}$/.test(prefix)) throw new UsageError(`--prefix: "${prefix}" must be 1-16 letters/digits starting with a letter (a token prefix, without the "_")`, 'usage.scan');
  }
  const finder = new TokenFinder(prefixesOf(config, options.prefixes));
  const hits: RawHit[] = [];
  const skipped: SkippedPath[] = [];
  const scanned = { files: 0, bytes: 0, commits: 0 };
  for (const given of options.paths) {
    // A path named on the command line is followed if it is a symlink (the user chose it);
    // the walk below it follows none.
    let root: string;
    try {
      root = await realpath(path.resolve(cwd, given));
    } catch {
      throw new UsageError(`scan: ${given}: no such file or directory`, 'usage.scan');
    }
    // Findings name paths as the user gave them (relative stays relative).
    const shown = (p: string) => path.join(given, path.relative(root, p)) || given;
    if (options.git) {
      const stats = await scanGitHistory(root, finder, (hit) => hits.push(hit), options.maxFileBytes);
      scanned.commits += stats.commits;
      scanned.bytes += stats.bytes;
      continue;
    }
    const reader = new ScanReader(options.maxFileBytes);
    for (const file of walkFiles(root, (s) => skipped.push({ ...s, path: shown(s.path) }))) {
      const read = reader.read(file);
      if (!read.ok) {
        skipped.push({ ...read.skipped, path: shown(file) });
        continue;
      }
      scanned.files++;
      scanned.bytes += read.bytes.length;
      for (const hit of finder.findInBytes(read.bytes)) hits.push({ ...hit, path: shown(file) });
    }
  }
  if (scanned.bytes === 0 && scanned.files === 0 && scanned.commits === 0) {
    // Checking nothing is never success.
    throw new UsageError(`scan: nothing was scanned (${skipped.length} path(s) skipped)`, 'scan.nothing');
  }
  // Found values pass through redact from here on: a slip prints a fingerprint, never the value.
  for (const hit of hits) registerSecret(hit.token);
  // Stores are read only when there is something to identify, so a clean tree needs no store.
  const index = hits.length > 0 ? await indexFingerprints(session, config) : EMPTY_INDEX;
  const findings = hits.map((hit): Finding => {
    const fp = fingerprint(hit.token);
    const who = index.identify(fp);
    return {
      path: hit.path,
      line: hit.line,
      column: hit.column,
      ...(hit.commit ? { commit: hit.commit } : {}),
      prefix: hit.prefix,
      fingerprint: fp,
      key: who.key,
      store: who.key === null ? null : who.store,
      inConfig: who.key !== null && who.inConfig,
      versionId: who.key === null ? null : who.versionId,
      label: who.label,
      live: who.live,
    };
  });
  findings.sort((a, b) => a.path.localeCompare(b.path) || a.line - b.line || a.column - b.column || (a.commit ?? '').localeCompare(b.commit ?? ''));
  skipped.sort((a, b) => a.path.localeCompare(b.path));
  return { findings, skipped, scanned, prefixes: finder.prefixes.slice(), storeProblems: index.problems, exitCode: scanExitCode(findings, index.problems) };
}

/**
 * 0 nothing found · 3 a live version (current, pending, previous) leaked: contain it now ·
 * 1 only revoked, failed or unknown tokens · a store's own code (5, 6, 7) when a finding could
 * not be identified because its store was unreadable (it might be live).
 */
export function scanExitCode(findings: Finding[], problems: StoreProblem[]): ExitCode {
  if (findings.some((f) => f.live)) return ExitCode.needsHuman;
  if (findings.length === 0) return ExitCode.ok;
  if (problems.length > 0) return problems.map((p) => p.exitCode).reduce(mostSerious, ExitCode.ok);
  return ExitCode.failed;
}
