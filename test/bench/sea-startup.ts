/**
 * Start-up of the single executable against the npm-installed CLI (`npm run bench:sea`).
 * Packs the package and installs the tarball into a temp prefix (as an operator would), builds
 * dist/sea/provkey, then times whole processes interleaved round by round (so machine noise hits
 * both alike): --help, generate, and status over 20 keys on the embedded store.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const node = path.join(root, 'node_modules/node/bin/node');
const sea = path.join(root, 'dist/sea/provkey');
const rounds = Number(process.env.BENCH_ROUNDS ?? 15);
const dir = mkdtempSync(path.join(tmpdir(), 'provkey-bench-sea-'));
const env = { ...process.env, PATH: `${path.dirname(node)}:/usr/bin:/bin`, NO_COLOR: '1' };

// The npm-installed CLI: pack (the checkout is built already), install into a prefix.
const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: root, env, encoding: 'utf8' });
if (pack.status !== 0) throw new Error(`npm pack failed: ${pack.stderr}`);
const tarball = path.join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!);
const install = spawnSync('npm', ['install', '-g', '--prefix', path.join(dir, 'prefix'), tarball, '--no-audit', '--no-fund', '--prefer-offline'], { env, encoding: 'utf8' });
if (install.status !== 0) throw new Error(`npm install failed: ${install.stderr}`);
const installed = path.join(dir, 'prefix/bin/provkey');

const work = path.join(dir, 'work');
spawnSync('mkdir', [work]);
const keys = Array.from({ length: 20 }, (_, i) => `  app-${i}:\n    target: { type: scim, url: "http://127.0.0.1:9/scim/v2", applier: { type: store } }\n`).join('');
writeFileSync(path.join(work, 'provkey.yaml'), `keys:\n${keys}`);
const { initFileStore } = await import(path.join(root, 'dist/stores/file.js'));
await initFileStore({ type: 'file', path: '.provkey/store.enc', keyFile: '.provkey/store.key' }, { configDir: work, env: process.env, resolveSecret: async () => '', debug: () => {} }, {});

const commands: Record<string, [string, string[]]> = {
  'node -e 0 (Node 24, baseline)': [node, ['-e', '0']],
  'npm-installed provkey --help': [installed, ['--help']],
  'single executable --help': [sea, ['--help']],
  'npm-installed provkey generate': [installed, ['generate']],
  'single executable generate': [sea, ['generate']],
  'npm-installed provkey status (20 keys)': [installed, ['status']],
  'single executable status (20 keys)': [sea, ['status']],
};
const samples = new Map<string, number[]>(Object.keys(commands).map((name) => [name, []]));
for (let round = 0; round < rounds + 2; round++) {
  for (const [name, [command, args]] of Object.entries(commands)) {
    const start = process.hrtime.bigint();
    const run = spawnSync(command, args, { cwd: work, stdio: 'ignore', env });
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (run.status !== 0) throw new Error(`${name} exited ${run.status}`);
    if (round >= 2) samples.get(name)!.push(ms);
  }
}
rmSync(dir, { recursive: true, force: true });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const baseline = median(samples.get('node -e 0 (Node 24, baseline)')!);
console.log(`start-up, median of ${rounds} runs each (${process.platform}/${process.arch})\n`);
console.log(`${'command'.padEnd(44)} ${'median'.padStart(9)} ${'p90'.padStart(9)}  ratio to node -e 0`);
for (const [name, xs] of samples) {
  const sorted = [...xs].sort((a, b) => a - b);
  const p90 = sorted[Math.floor(sorted.length * 0.9)]!;
  console.log(`${name.padEnd(44)} ${median(xs).toFixed(1).padStart(7)}ms ${p90.toFixed(1).padStart(7)}ms  ${(median(xs) / baseline).toFixed(2)}x`);
}
