import { spawn } from 'node:child_process';
import { UsageError } from '../core/errors.js';
import type { TokenFinder, TokenHit } from './find-tokens.js';

export interface GitHit extends TokenHit {
  commit: string;
  path: string;
}

export interface GitScanStats {
  commits: number;
  bytes: number;
}

/**
 * Options that keep a repository's own config from running anything: no external diff
 * driver, no textconv filter, no pager, no colour, no rename detection cost.
 */
const SAFE_LOG_ARGS = ['log', '-p', '--all', '-U0', '--no-color', '--no-ext-diff', '--no-textconv', '--no-renames', '--no-mailmap', '--format=%x00%H'];

/**
 * Scans every line ever added in any commit reachable from any ref (`git log -p --all`):
 * a token that was committed and later deleted is still in the history, and still leaked.
 * git runs as a subprocess with an argv array; its output is read line by line.
 */
export async function scanGitHistory(repo: string, finder: TokenFinder, onHit: (hit: GitHit) => void, maxLineBytes: number): Promise<GitScanStats> {
  await gitOrUsage(repo, ['rev-parse', '--git-dir']);
  const child = spawn('git', ['-C', repo, '-c', 'core.quotePath=false', ...SAFE_LOG_ARGS], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, GIT_PAGER: 'cat', GIT_OPTIONAL_LOCKS: '0', LC_ALL: 'C' },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk.slice(0, 2000)));
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', (error) => reject(new UsageError(`scan --git ${repo}: cannot run git: ${error.message}`, 'scan.git')));
    child.on('close', (code) => resolve(code ?? 1));
  });
  const parser = new PatchParser(finder, onHit, maxLineBytes);
  // latin1 keeps one character per byte: tokens are ASCII and nothing is mangled into U+FFFD.
  // Split on "\n" only (as git writes lines): a bare "\r" inside a line is content.
  // A line longer than the bound (minified code, a data blob) is not kept whole: its start
  // still counts for the hunk, the rest is dropped up to the next newline.
  let rest = '';
  let dropping = false;
  for await (const chunk of child.stdout.setEncoding('latin1') as AsyncIterable<string>) {
    let text = rest + chunk;
    if (dropping) {
      const nl = text.indexOf('\n');
      if (nl === -1) continue;
      text = text.slice(nl + 1);
      dropping = false;
    }
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      parser.line(text.slice(start, nl));
      start = nl + 1;
    }
    rest = text.slice(start);
    if (rest.length > maxLineBytes) {
      parser.line(rest);
      rest = '';
      dropping = true;
    }
  }
  if (rest) parser.line(rest);
  const code = await exited;
  if (code !== 0) throw new UsageError(`scan --git ${repo}: git log failed: ${firstLine(stderr)}`, 'scan.git');
  return parser.stats;
}

/** `git log -p -U0 --format=%x00%H` output, one line at a time: tracks commit, file and new-side line number. */
class PatchParser {
  readonly stats: GitScanStats = { commits: 0, bytes: 0 };
  private commit = '';
  private file: string | undefined;
  private nextLine = 0;
  // Lines still to come in the current hunk: a body line such as "++ x" is not a header.
  private oldLeft = 0;
  private newLeft = 0;

  private readonly finder: TokenFinder;
  private readonly onHit: (hit: GitHit) => void;
  private readonly maxLineBytes: number;

  constructor(finder: TokenFinder, onHit: (hit: GitHit) => void, maxLineBytes: number) {
    this.finder = finder;
    this.onHit = onHit;
    this.maxLineBytes = maxLineBytes;
  }

  line(line: string): void {
    this.stats.bytes += line.length + 1;
    if (this.oldLeft > 0 || this.newLeft > 0) {
      const kind = line[0];
      if (kind === '-') this.oldLeft--;
      else if (kind === '+') {
        this.newLeft--;
        if (this.file !== undefined && line.length <= this.maxLineBytes && this.finder.mayContain(line)) {
          for (const hit of this.finder.find(line.slice(1), this.nextLine)) this.onHit({ ...hit, commit: this.commit, path: this.file });
        }
        this.nextLine++;
      } else if (kind === ' ') {
        this.oldLeft--;
        this.newLeft--;
        this.nextLine++;
      }
      return;
    }
    if (line.startsWith('\0')) {
      this.commit = line.slice(1);
      this.stats.commits++;
      this.file = undefined;
    } else if (line.startsWith('+++ ')) {
      this.file = line === '+++ /dev/null' ? undefined : gitPath(line.slice(4)).replace(/^b\//, '');
    } else if (line.startsWith('@@ ')) {
      const hunk = /^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(line);
      if (hunk) {
        this.oldLeft = Number(hunk[1] ?? 1);
        this.nextLine = Number(hunk[2]);
        this.newLeft = Number(hunk[3] ?? 1);
      }
    }
  }
}

async function gitOrUsage(repo: string, args: string[]): Promise<void> {
  const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
    const child = spawn('git', ['-C', repo, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (error) => resolve({ code: -1, stderr: `cannot run git: ${error.message}` }));
    child.on('close', (code) => resolve({ code: code ?? 1, stderr }));
  });
  if (result.code !== 0) throw new UsageError(`scan --git ${repo}: not a git repository (${firstLine(result.stderr)})`, 'scan.git');
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}

/** A path as git printed it (read as latin1): C-style quotes undone, back to UTF-8. */
function gitPath(path: string): string {
  if (!path.startsWith('"')) return Buffer.from(path, 'latin1').toString('utf8');
  const escapes: Record<string, string> = { n: '\n', t: '\t', '"': '"', '\\': '\\' };
  const bytes = path.slice(1, -1).replace(/\\([0-7]{3}|.)/g, (_m, esc: string) => (esc.length === 3 ? String.fromCharCode(parseInt(esc, 8)) : (escapes[esc] ?? esc)));
  return Buffer.from(bytes, 'latin1').toString('utf8');
}
