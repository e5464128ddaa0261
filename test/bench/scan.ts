/**
 * Scan throughput (`npm run build && node test/bench/scan.ts`): `provkey scan` over a large
 * generated tree, against `grep -rF` of the bare prefix over the same tree (which only finds
 * candidates: no checksum, no store lookup). Runs are interleaved round by round so machine
 * noise hits both alike; each reports its median in MB/s. Not a test: numbers, not verdicts.
 *
 *   BENCH_MB=200 BENCH_ROUNDS=5 node test/bench/scan.ts     (BENCH_GIT=0 skips the history part)
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// The built module (npm run build first): the src/ tree uses .js specifiers tsc rewrites.
const { generateSecret } = (await import(new URL('../../dist/core/keygen.js', import.meta.url).href)) as typeof import('../../src/core/keygen.ts');

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = path.join(root, 'bin/provkey');
const totalMb = Number(process.env.BENCH_MB ?? 100);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const fileKb = 64;
const dir = mkdtempSync(path.join(tmpdir(), 'provkey-bench-scan-'));

// Source-like text: identifiers with underscores, a few `pk_` look-alikes per file, and one
// real token in every hundredth file, spread over nested directories.
const words = ['const', 'user_id', 'return', 'pk_index', 'scim_base', 'token', 'function', 'value', 'if', 'else', 'await', 'self_bind'];
function fileText(i: number): string {
  const lines: string[] = [];
  let size = 0;
  while (size < fileKb * 1024) {
    const line = Array.from({ length: 12 }, () => words[Math.floor(Math.random() * words.length)]).join(' ') + ` ${randomBytes(6).toString('hex')}`;
    lines.push(line);
    size += line.length + 1;
  }
  lines[5] = `lookalike = "pk_${randomBytes(30).toString('base64url').replace(/[-_]/g, 'a')}"`;
  if (i % 100 === 0) lines[9] = `SCIM_TOKEN=${generateSecret({ type: 'token', prefix: 'pk', randomLength: 43 })}`;
  return `${lines.join('\n')}\n`;
}
const files = Math.ceil((totalMb * 1024) / fileKb);
for (let i = 0; i < files; i++) {
  const sub = path.join(dir, `d${i % 37}`, `e${i % 11}`);
  mkdirSync(sub, { recursive: true });
  writeFileSync(path.join(sub, `f${i}.txt`), fileText(i));
}
writeFileSync(path.join(dir, 'provkey.yaml'), 'keys: {}\n');
const bytes = files * fileKb * 1024;

function time(command: string, args: string[], expectCodes: number[]): number {
  const started = process.hrtime.bigint();
  const run = spawnSync(command, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26 });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (!expectCodes.includes(run.status ?? -1)) throw new Error(`${command} ${args.join(' ')} exited ${run.status}: ${run.stderr}`);
  return ms;
}
const runs = {
  'provkey scan': () => time(process.execPath, [bin, 'scan', '.', '--max-file-size', '1m'], [1]),
  'grep -rF pk_ (candidates only)': () => time('grep', ['-rFc', 'pk_', '.'], [0]),
  'grep -rE pk_[0-9A-Za-z]{14,}': () => time('grep', ['-rEc', 'pk_[0-9A-Za-z]{14,}', '.'], [0]),
};
// One warm-up round each, so both read from the page cache.
for (const run of Object.values(runs)) run();
const samples = new Map<string, number[]>(Object.keys(runs).map((name) => [name, []]));
for (let r = 0; r < rounds; r++) for (const [name, run] of Object.entries(runs)) samples.get(name)!.push(run());
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`tree: ${files} files, ${(bytes / 1e6).toFixed(0)} MB (${fileKb} KiB each), ${Math.ceil(files / 100)} real tokens; ${rounds} rounds, medians`);
for (const [name, xs] of samples) {
  const ms = median(xs);
  console.log(`  ${name.padEnd(34)} ${ms.toFixed(0).padStart(6)} ms  ${(bytes / 1e6 / (ms / 1000)).toFixed(0).padStart(5)} MB/s`);
}

// History: the same tree committed in 8 steps (each commit adds an eighth of the files), then
// `provkey scan --git` against `git log -p --all | grep -cF pk_`, the candidate-only baseline.
if (process.env.BENCH_GIT !== '0') {
  const git = (...args: string[]) => {
    const run = spawnSync('git', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, GIT_AUTHOR_NAME: 'b', GIT_AUTHOR_EMAIL: 'b@example.test', GIT_COMMITTER_NAME: 'b', GIT_COMMITTER_EMAIL: 'b@example.test' } });
    if (run.status !== 0) throw new Error(`git ${args.join(' ')}: ${run.stderr}`);
  };
  git('init', '-q');
  const dirs = Array.from({ length: 37 }, (_, i) => `d${i}`);
  for (let step = 0; step < 8; step++) {
    git('add', ...dirs.filter((_, i) => i % 8 === step));
    git('commit', '-q', '-m', `step ${step}`);
  }
  const gitRuns = {
    'provkey scan --git': () => time(process.execPath, [bin, 'scan', '--git', '.'], [1]),
    'git log -p --all | grep -cF pk_': () => time('sh', ['-c', 'git log -p --all -U0 --no-color | grep -cF pk_'], [0]),
  };
  for (const run of Object.values(gitRuns)) run();
  const gitSamples = new Map<string, number[]>(Object.keys(gitRuns).map((name) => [name, []]));
  for (let r = 0; r < rounds; r++) for (const [name, run] of Object.entries(gitRuns)) gitSamples.get(name)!.push(run());
  console.log(`history: 8 commits adding the same ${(bytes / 1e6).toFixed(0)} MB`);
  for (const [name, xs] of gitSamples) {
    const ms = median(xs);
    console.log(`  ${name.padEnd(34)} ${ms.toFixed(0).padStart(6)} ms  ${(bytes / 1e6 / (ms / 1000)).toFixed(0).padStart(5)} MB/s`);
  }
}
rmSync(dir, { recursive: true, force: true });
