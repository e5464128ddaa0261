/**
 * What the benchmarks measure with: a whole process's wall time and peak RSS, the machine's
 * load when it was measured, and medians of interleaved runs. Numbers, not verdicts: nothing
 * here asserts a time (time-based assertions stay out of the test suite).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';

export interface Measured {
  seconds: number;
  /** Peak resident set of the process, from the kernel (GNU time's %M); undefined without /usr/bin/time. */
  peakRssMb: number | undefined;
  code: number | null;
  stdout: string;
  stderr: string;
  /** The 1-minute load average when the run started and when it ended. */
  load: [number, number];
  /** Killed at the time limit. */
  timedOut: boolean;
}

const GNU_TIME = '/usr/bin/time';

/** The 1-minute load average, with the number of cores it is measured against. */
export function loadNow(): number {
  return Math.round(loadavg()[0]! * 100) / 100;
}
export const CORES = cpus().length;

/**
 * Runs `command args` to the end (or to `timeoutMs`), timing it from outside and reading its
 * peak RSS from GNU time, which reports the kernel's own maximum for the process.
 */
export async function measured(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string }): Promise<Measured> {
  const scratch = mkdtempSync(path.join(tmpdir(), 'provkey-measure-'));
  const rssFile = path.join(scratch, 'rss');
  const withTime = existsSync(GNU_TIME);
  const [file, argv] = withTime ? [GNU_TIME, ['-f', '%M', '-o', rssFile, command, ...args]] : [command, args];
  const loadBefore = loadNow();
  const started = process.hrtime.bigint();
  // Its own process group: at the time limit the whole group goes (GNU time and provkey under it).
  const child = spawn(file, argv, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout = keepTail(stdout + chunk)));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = keepTail(stderr + chunk)));
  child.stdin.end(options.input ?? '');
  let timedOut = false;
  const timer = options.timeoutMs ? setTimeout(() => ((timedOut = true), process.kill(-child.pid!, 'SIGKILL')), options.timeoutMs) : undefined;
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  if (timer) clearTimeout(timer);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  let peakRssMb: number | undefined;
  if (withTime && existsSync(rssFile)) {
    const kb = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop());
    if (Number.isFinite(kb) && kb > 0) peakRssMb = kb / 1024;
  }
  rmSync(scratch, { recursive: true, force: true });
  return { seconds, peakRssMb, code, stdout, stderr, load: [loadBefore, loadNow()], timedOut };
}

/** A run's output can be megabytes (--json of 10,000 keys): keep what a report needs. */
function keepTail(text: string): string {
  return text.length > 4_000_000 ? text.slice(-2_000_000) : text;
}

export interface Interleaved {
  /** Median wall milliseconds per command. */
  wall: Map<string, number>;
  /** Median CPU milliseconds (user + system, from the shell's `times`) per command. */
  cpu: Map<string, number>;
  load: [number, number];
}

/**
 * Times short processes round by round, every command once per round, so machine noise hits
 * all of them alike; reports medians. The CPU time comes from bash's `times` (the children's
 * rusage, millisecond resolution), which a busy machine disturbs less than wall time.
 */
export function interleaved(commands: Record<string, { command: string; args: string[]; env?: NodeJS.ProcessEnv }>, options: { rounds: number; cwd: string; env?: NodeJS.ProcessEnv; warmup?: number }): Interleaved {
  const wall = new Map<string, number[]>();
  const cpu = new Map<string, number[]>();
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const loadBefore = loadNow();
  const warmup = options.warmup ?? 2;
  for (let round = 0; round < options.rounds + warmup; round++) {
    for (const [name, { command, args, env }] of Object.entries(commands)) {
      const script = `${[command, ...args].map(quote).join(' ')} >/dev/null 2>/dev/null </dev/null; status=$?; times; exit $status`;
      const started = process.hrtime.bigint();
      const run = spawnSync('bash', ['-c', script], { cwd: options.cwd, env: { ...(options.env ?? process.env), ...env }, encoding: 'utf8' });
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (run.status !== 0) throw new Error(`${name} exited ${run.status}: ${run.stderr}`);
      // `times` prints the shell's own times, then its children's: "0m0.012s 0m0.004s".
      const children = run.stdout.trim().split('\n').at(-1)!.split(/\s+/).map(seconds);
      if (round < warmup) continue; // warm-up rounds fill the page cache (and the compile cache)
      push(wall, name, ms);
      push(cpu, name, (children[0]! + children[1]!) * 1000);
    }
  }
  return { wall: medians(wall), cpu: medians(cpu), load: [loadBefore, loadNow()] };
}

function seconds(text: string): number {
  const match = /^(\d+)m([\d.]+)s$/.exec(text);
  if (!match) throw new Error(`unexpected output of times: ${text}`);
  return Number(match[1]) * 60 + Number(match[2]);
}

function push(map: Map<string, number[]>, key: string, value: number): void {
  map.set(key, [...(map.get(key) ?? []), value]);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function medians(map: Map<string, number[]>): Map<string, number> {
  return new Map([...map].map(([key, values]) => [key, median(values)]));
}
